#!/usr/bin/env bash
# Everything scripts/gpu/launch_smoke.sh needs on the GPU machine, into .device/ (git-ignored; the device tool
# carries .device/whl and .device/launch). Run from any folder of the checkout the device call sends, on a machine
# that reaches PyPI:
#   scripts/gpu/fetch_launch.sh [MODEL_DIR]
# 1. wheels: requirements.txt + requirements-launch.txt (Ray 2.55.0 and what the image lacks for it and for
#    OpenRLHF's dataset loader), via fetch.sh;
# 2. Ray's wheel repacked from 74 MB to 35 MB (repack_ray.py says what is dropped and why), so that one call holds
#    everything (64 MiB limit);
# 3. the policy model, copied to .device/launch/model: MODEL_DIR, default $LAUNCH_MODEL, is a closed-loop SFT
#    folder (sft/selected) with the loop's config.json beside its work folder; see docs/training.md. Without one
#    the run uses a random-init model (one row per rollout: the rows-per-rollout check then fails).
# Prints what will travel and fails if it exceeds the transfer limit. Carry exactly .device/whl and
# .device/launch (not all of .device: other runs keep state there).
set -euo pipefail
cd "$(dirname "$0")/../.."
rm -rf .device/whl   # a fresh set: two versions of one package stop the install on the device
EXTRA="$(grep -v '^#' scripts/gpu/requirements-launch.txt | awk 'NF {print $1}' | tr '\n' ' ') ${EXTRA:-}" \
  bash scripts/gpu/fetch.sh
python3 scripts/gpu/repack_ray.py .device/whl/ray-2.55.0-cp312-*.whl
MODEL_DIR=${1:-${LAUNCH_MODEL:-}}
if [[ -n "$MODEL_DIR" && "$(realpath "$MODEL_DIR")" != "$(realpath -m .device/launch/model)" ]]; then
  rm -rf .device/launch/model
  mkdir -p .device/launch
  cp -r "$MODEL_DIR" .device/launch/model
  if [[ ! -f .device/launch/model/loop_config.json ]]; then
    # a closed-loop work folder: WORK/sft/selected -> WORK/config.json
    cfg="$MODEL_DIR/../../config.json"
    [[ -f "$cfg" ]] || { echo "error: no loop_config.json in $MODEL_DIR and no $cfg" >&2; exit 2; }
    cp "$cfg" .device/launch/model/loop_config.json
  fi
fi
python3 - <<'PY'
import collections, os, re, subprocess
names = collections.Counter(re.split(r"-\d", f, maxsplit=1)[0].lower().replace("_", "-") for f in os.listdir(".device/whl"))
twice = [n for n, c in names.items() if c > 1]
if twice:
    raise SystemExit(f"two versions of {twice} in .device/whl")
tracked = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                         capture_output=True, check=True).stdout.split(b"\0")
size = sum(os.path.getsize(p) for p in tracked if p and os.path.isfile(p))
carried = sum(os.path.getsize(os.path.join(d, f)) for top in (".device/whl", ".device/launch")
              for d, _, fs in os.walk(top) for f in fs)
total = size + carried
print(f"travels: checkout {size / 2**20:.1f} MiB + .device/whl + .device/launch {carried / 2**20:.1f} MiB = "
      f"{total / 2**20:.1f} MiB "
      f"(limit 64 MiB)")
print("model:", "carried" if os.path.isdir(".device/launch/model") else "NONE (random init on the device)")
if total > 63 * 2**20:
    raise SystemExit("too large for one device call")
PY
