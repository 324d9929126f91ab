#!/usr/bin/env bash
# Install into the *current* Python environment exactly what the CPU tests of the
# OpenRLHF extension need (tests/training/test_ext_*.py), without OpenRLHF's GPU stack.
#
#   scripts/install_openrlhf_cpu.sh            # core tier: OpenRLHF classes that import without vLLM
#   scripts/install_openrlhf_cpu.sh --vllm     # + vLLM 0.29.0 (no deps): SamplesGenerator and
#                                              #   RemoteExperienceMaker import too (~+330 MB)
#
# Env: PYTHON (default: python3) picks the interpreter whose environment is changed.
#
# Why this shape (measured, see docs/training-internals.md):
# * openrlhf==0.11.2 pins flash-attn (needs CUDA to build), transformers==5.15.0 and
#   vllm; installing it with its dependencies is impossible on a CPU runner, so it goes
#   in with --no-deps and we add the few imports its modules really make.
# * deepspeed ships as an sdist whose setup.py imports torch: --no-build-isolation makes it
#   build against the torch already installed, DS_BUILD_OPS=0 skips every CUDA op.
# * flash_attn is not installable here at all: the tests put a small stand-in package
#   (tests/training/stubs/flash_attn) on sys.path themselves; nothing is installed for it.
# * vllm is a 316 MB wheel; only openrlhf.trainer.ray.* and the samples generator need it,
#   so CI runs the core tier and those tests skip themselves (pytest.importorskip).
set -euo pipefail

PY="${PYTHON:-python3}"
WITH_VLLM=0
for arg in "$@"; do
  case "$arg" in
    --vllm) WITH_VLLM=1 ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "install_openrlhf_cpu.sh: unknown argument: $arg (try --help)" >&2; exit 2 ;;
  esac
done

if ! "$PY" -c "import torch" 2>/dev/null; then
  echo "install_openrlhf_cpu.sh: torch must already be installed in $PY's environment" \
       "(the project's dev extra pins it); deepspeed builds against it." >&2
  exit 1
fi

pip_install() { "$PY" -m pip install --disable-pip-version-check --no-input "$@"; }

start=$(date +%s)

# The --no-deps packages (OpenRLHF, vLLM) go in last: once one is installed, every later pip run would print
# an "ERROR: pip's dependency resolver ..." block about its missing GPU dependencies, which reads as a failed
# install though nothing failed (pip does not check conflicts on a --no-deps install).

# What openrlhf.models / openrlhf.trainer.ppo_utils / openrlhf.utils import at module level,
# plus ray (openrlhf.trainer.ray.*, and our worker-setup-hook test).
pip_install "peft" "pylatexenc" "jsonlines" "loralib" "optree>=0.15" "torchdata" "sympy" \
            "einops" "hjson" "msgpack" "ninja" "psutil" "py-cpuinfo" "ray==2.55.0"

# DeepSpeed: sdist, built against the installed torch with no CUDA ops. Without build isolation the build
# tools must be in the environment (venvs of Python >= 3.12 ship without setuptools).
pip_install "setuptools>=68" "wheel"
DS_BUILD_OPS=0 DS_SKIP_CUDA_CHECK=1 pip_install --no-build-isolation "deepspeed==0.19.6"

if [[ "$WITH_VLLM" == 1 ]]; then
  # Only `from vllm import SamplingParams` (and vllm.inputs / vllm.utils) must import.
  pip_install "msgspec" "cbor2" "pyzmq" "openai" "openai-harmony" "cloudpickle" "pillow" \
              "pybase64" "cachetools" "uvloop"
  pip_install --no-deps "vllm==0.29.0"
fi

# OpenRLHF itself, without its pinned GPU dependency set.
pip_install --no-deps "openrlhf==0.11.2"

end=$(date +%s)
echo "install_openrlhf_cpu.sh: done in $((end - start)) s (vllm tier: $WITH_VLLM)"
