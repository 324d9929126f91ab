#!/usr/bin/env bash
# On the GPU machine: install the carried wheels into /tmp/site (then `export PYTHONPATH=/tmp/site:$PWD`).
# With the launch wheels (fetch_launch.sh) Ray's `ray` command lands in /tmp/site/bin.
# DeepSpeed builds without its CUDA ops (they are JIT-built when first used; TORCH_CUDA_ARCH_LIST names the
# H200's 9.0, because DeepSpeed cannot parse torch's "9.0a").
set -euo pipefail
export SITE=${SITE:-/tmp/site}
WHL=${WHL:-.device/whl}
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$SITE" "$WHL"/*.whl
export PYTHONPATH="$SITE:${PYTHONPATH:-}"
DS_BUILD_OPS=0 python3 -m pip install -q --no-index --no-deps --no-build-isolation --no-cache-dir --target "$SITE" \
  "$WHL"/deepspeed-*.tar.gz "$WHL"/pylatexenc-*.tar.gz
python3 - <<'PY'
import importlib
import os
names = ["langgraph", "langchain_core", "pydantic", "tantivy", "openrlhf", "deepspeed", "torch", "transformers"]
site = os.environ.get("SITE", "/tmp/site")
if os.path.isdir(os.path.join(site, "ray")):   # the launch path's wheels (requirements-launch.txt)
    names += ["ray", "jsonschema", "datasets", "pyarrow", "tensorboard"]
for m in names:
    mod = importlib.import_module(m)
    print(f"{m} {getattr(mod, '__version__', '?')}")
PY
