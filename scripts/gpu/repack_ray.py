"""Repack Ray's manylinux wheel without what a single-node ``ray.init`` + actors run does not load.

    python3 scripts/gpu/repack_ray.py .device/whl/ray-2.55.0-cp312-*.whl      # rewrites it in place

Ray 2.55.0's cp312 wheel is 74 MB, more than the GPU machine's 64 MiB transfer holds next to the other wheels.
Dropped (measured on the wheel, compressed sizes):

* ``ray/jars`` (31.8 MB): the Java worker. ``services.start_raylet`` only adds Java workers when both ``java``
  and this folder exist, and catches the folder's absence.
* ``ray/dashboard/client/build`` (2.4 MB): the dashboard's web front end. The dashboard does not start on a
  machine without Ray's optional dashboard dependencies (aiohttp_cors, opencensus, opentelemetry: absent
  there).
* ``ray/rllib``, ``ray/data``, ``ray/serve``, ``ray/tune``, ``ray/train``, ``ray/llm``, ``ray/air`` (4.0 MB):
  libraries OpenRLHF does not use; nothing in Ray's core, workers or (minimal-mode) dashboard agent imports
  them at start (the agent skips dashboard modules whose imports fail, in minimal mode).

Everything else (``_raylet.so``, ``core/src/ray/{raylet,gcs}``, ``_private``, ``util``, ``dashboard`` Python,
``autoscaler``, the runtime-env agent and its vendored aiohttp) stays byte for byte; ``RECORD`` is rewritten
to list exactly what remains. The result installs with ``pip install --no-index --no-deps`` like the original.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import os
import sys
import tempfile
import zipfile
from pathlib import Path

DROP = (
    "ray/jars/",
    "ray/dashboard/client/build/",
    "ray/rllib/",
    "ray/data/",
    "ray/serve/",
    "ray/tune/",
    "ray/train/",
    "ray/llm/",
    "ray/air/",
)


def _record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def repack(src: Path, dst: Path) -> dict[str, int]:
    kept = dropped = 0
    with zipfile.ZipFile(src) as zin:
        record = next(i.filename for i in zin.infolist() if i.filename.endswith(".dist-info/RECORD"))
        lines = []
        with zipfile.ZipFile(dst, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zout:
            for info in zin.infolist():
                if info.filename.startswith(DROP):
                    dropped += 1
                    continue
                if info.filename == record:
                    continue
                data = zin.read(info)
                out = zipfile.ZipInfo(info.filename, date_time=info.date_time)
                out.external_attr = (
                    info.external_attr
                )  # keeps the executables (raylet, gcs_server) executable
                out.compress_type = zipfile.ZIP_DEFLATED
                zout.writestr(out, data, compress_type=zipfile.ZIP_DEFLATED, compresslevel=9)
                if not info.is_dir():
                    lines.append(_record_line(info.filename, data))
                kept += 1
            lines.append(f"{record},,")
            zout.writestr(zipfile.ZipInfo(record, date_time=(2026, 1, 1, 0, 0, 0)), "\n".join(lines) + "\n")
    return {
        "kept": kept,
        "dropped": dropped,
        "bytes_before": src.stat().st_size,
        "bytes_after": dst.stat().st_size,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("wheel", type=Path)
    p.add_argument("--out", type=Path, help="write here instead of replacing the wheel")
    args = p.parse_args(argv)
    with zipfile.ZipFile(args.wheel) as z:
        if not any(n.startswith(DROP) for n in z.namelist()):
            print(f"{args.wheel}: already repacked")
            return 0
    fd, tmp = tempfile.mkstemp(suffix=".whl", dir=str(args.wheel.parent))
    os.close(fd)
    stats = repack(args.wheel, Path(tmp))
    os.replace(tmp, args.out or args.wheel)
    print(
        f"{args.wheel.name}: {stats['bytes_before'] / 1e6:.1f} MB -> {stats['bytes_after'] / 1e6:.1f} MB "
        f"({stats['dropped']} entries dropped, {stats['kept']} kept)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
