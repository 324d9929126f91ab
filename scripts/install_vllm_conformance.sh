#!/usr/bin/env bash
# Build the vLLM conformance tier's environment ($TIER, default .venv-vllm): vLLM 0.29.0's OpenAI server code
# and what its frontend imports, layered over the dev environment ($BASE, default .venv), which stays untouched.
#
#   BASE=.venv TIER=.venv-vllm bash scripts/install_vllm_conformance.sh     (what `make test-vllm` runs)
#
# Why this shape (measured, see docs/vllm-conformance.md):
# * vLLM's wheel pins a CUDA stack (flashinfer, cutlass, triton, torchvision, ...) that a CPU runner cannot use
#   and does not need to serve the API layer; it goes in with --no-deps, and the frontend's own imports are added
#   by name. torch 2.13.0 (vLLM's pin) comes from the dev environment.
# * xgrammar is imported by vLLM's tool-parser registry; its dependency list pulls triton (~1 GB) that the CPU
#   import never touches, so it also goes in with --no-deps, plus its one native dependency (apache-tvm-ffi).
# * The tier venv reads the dev venv's packages through a .pth file (site.addsitedir), so nothing is installed
#   twice and `make test` never sees vLLM (which would switch other code paths to vLLM's classes).
set -euo pipefail
BASE=${BASE:-.venv}
TIER=${TIER:-.venv-vllm}
start=$(date +%s)
if [ ! -x "$BASE/bin/python" ]; then
  echo "install_vllm_conformance.sh: $BASE has no python; run 'make setup-dev' first" >&2
  exit 1
fi
"$BASE/bin/python" -m venv "$TIER"
base_site=$("$BASE/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
tier_site=$("$TIER/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
base_site=$(cd "$base_site" && pwd)
echo "import site; site.addsitedir('$base_site')" > "$tier_site/_wideseek_dev_env.pth"
pip_install() { "$TIER/bin/python" -m pip install -q --disable-pip-version-check --no-input "$@"; }
pip_install "apache-tvm-ffi==0.1.11" "fastapi>=0.133,<0.137" "cbor2" "pyzmq>=25" "openai-harmony>=0.0.3" "msgspec" \
            "pybase64" "cachetools" "llguidance>=1.7,<1.8" "partial-json-parser" "ijson" \
            "model-hosting-container-standards>=0.1.14,<1" "mistral_common>=1.11.6" \
            "prometheus-fastapi-instrumentator>=8" "prometheus_client>=0.18"
# --no-deps last: after it, every pip run would print a resolver ERROR block about vLLM's GPU dependencies.
pip_install --no-deps "vllm==0.29.0" "xgrammar==0.2.9"
"$TIER/bin/python" -c "import torch, vllm; assert vllm.__version__ == '0.29.0', vllm.__version__"
end=$(date +%s)
echo "install_vllm_conformance.sh: done in $((end - start)) s"
