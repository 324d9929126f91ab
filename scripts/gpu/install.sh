#!/usr/bin/env bash
# On the GPU machine: install the carried wheels into /tmp/site (then `export PYTHONPATH=/tmp/site:$PWD`).
# DeepSpeed builds without its CUDA ops (they are JIT-built when first used; TORCH_CUDA_ARCH_LIST names the
# H200's 9.0, because DeepSpeed cannot parse torch's "9.0a").
set -euo pipefail
SITE=${SITE:-/tmp/site}
WHL=${WHL:-.device/whl}
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$SITE" "$WHL"/*.whl
export PYTHONPATH="$SITE:${PYTHONPATH:-}"
DS_BUILD_OPS=0 python3 -m pip install -q --no-index --no-deps --no-build-isolation --no-cache-dir --target "$SITE" \
  "$WHL"/deepspeed-*.tar.gz "$WHL"/pylatexenc-*.tar.gz
python3 - <<'PY'
import importlib
for m in ("langgraph", "langchain_core", "pydantic", "tantivy", "openrlhf", "deepspeed", "torch", "transformers"):
    mod = importlib.import_module(m)
    print(f"{m} {getattr(mod, '__version__', '?')}")
PY
