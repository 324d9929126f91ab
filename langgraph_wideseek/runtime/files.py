"""File writes that a crash cannot leave half done, and appends that stay off the event loop.

:func:`atomic_write_text` is the one atomic write of the package (cache entries, score files): the text goes
to a temporary file in the target's folder, which is then renamed over the target, so readers see the old file
or the new one, never a part. :class:`DurableAppender` appends whole lines from async code: writes and
``fsync`` run in order on one worker thread of its own, since an ``fsync`` can take milliseconds (far more on
a busy disk) and would stall every agent on the loop.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ..errors import OutputPathError

__all__ = [
    "DurableAppender",
    "OutputPathError",
    "atomic_write_text",
    "check_writable_dir",
    "check_writable_file",
    "trim_partial_tail",
]


def _reason(e: OSError) -> str:
    return e.strerror or type(e).__name__


def check_writable_file(path: str | Path, what: str = "output file") -> None:
    """Check, before any work is done, that ``path`` can be appended to (its folder is created as the later
    write would). Nothing already in the file changes; a file this check creates is removed again."""
    p = Path(path)
    if p.is_dir():
        raise OutputPathError(f"{what} {str(p)!r} is a directory")
    existed = p.exists()
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        with p.open("a", encoding="utf-8"):
            pass
    except OSError as e:
        raise OutputPathError(f"cannot write {what} {str(p)!r}: {_reason(e)}") from None
    if not existed:
        p.unlink(missing_ok=True)


def check_writable_dir(path: str | Path, what: str = "output folder") -> None:
    """Check, before any work is done, that files can be created in the folder ``path`` (made if missing)."""
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise OutputPathError(f"{what} {str(p)!r} is not a folder")
    try:
        p.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=p, prefix=".write-check-")
        os.close(fd)
        os.unlink(tmp)
    except OSError as e:
        raise OutputPathError(f"cannot write to {what} {str(p)!r}: {_reason(e)}") from None


def atomic_write_text(path: str | Path, text: str) -> None:
    """Replace ``path`` with ``text`` (UTF-8) atomically; creates the parent folder."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-", suffix=target.suffix)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def trim_partial_tail(path: Path) -> None:
    """Cut a last line that a killed writer left without its newline (it is redone, not half-trusted)."""
    if not path.exists():
        return
    with path.open("rb+") as f:
        f.seek(0, os.SEEK_END)
        size = f.tell()
        if size == 0:
            return
        f.seek(size - 1)
        if f.read(1) == b"\n":
            return
        f.seek(0)
        data = f.read()
        f.truncate(data.rfind(b"\n") + 1)


class DurableAppender:
    """Appends lines to ``path`` in call order, each flushed (and with ``sync``, fsynced) before it returns.

    A partial last line left by a killed writer is cut first. Use :meth:`append` from async code and
    :meth:`close` when done.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        trim_partial_tail(self.path)
        self._file = self.path.open("a", encoding="utf-8")
        self._worker = ThreadPoolExecutor(1, thread_name_prefix="wideseek-append")

    def _write(self, line: str, sync: bool) -> None:
        self._file.write(line + "\n")
        self._file.flush()
        if sync:
            os.fsync(self._file.fileno())

    async def append(self, line: str, *, sync: bool = True) -> None:
        await asyncio.get_running_loop().run_in_executor(self._worker, self._write, line, sync)

    def close(self) -> None:
        self._worker.shutdown(wait=True)
        self._file.close()
