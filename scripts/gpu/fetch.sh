#!/usr/bin/env bash
# Download what the GPU machine needs into .device/whl (git-ignored; the device tool carries it with
# `carry: [".device"]`). Run from the repository root, on a machine that reaches PyPI.
#   scripts/gpu/fetch.sh            # the closed loop's needs (requirements.txt)
#   EXTRA="ray==2.55.0 ..." scripts/gpu/fetch.sh   # more wheels (the launch path)
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=.device/whl
mkdir -p "$OUT"
PLAT=(--platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64
      --platform manylinux2014_x86_64 --platform manylinux1_x86_64 --platform manylinux_2_24_x86_64)
mapfile -t WHEELS < <(grep -v '^#' scripts/gpu/requirements.txt | grep -v '# sdist$' | awk 'NF {print $1}')
mapfile -t SDISTS < <(grep -E '^[^#].*# sdist$' scripts/gpu/requirements.txt | awk '{print $1}')
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp "${PLAT[@]}" \
  -d "$OUT" "${WHEELS[@]}" ${EXTRA:-}
python3 -m pip download -q --no-deps --no-binary=:all: -d "$OUT" "${SDISTS[@]}"
du -sh "$OUT"
