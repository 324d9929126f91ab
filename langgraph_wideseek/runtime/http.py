"""Reading HTTP replies with a byte limit, for every client of the package (model server, judge, search).

A reply is read chunk by chunk and the transfer stops as soon as it passes the limit, so an endless or huge
reply from a broken or hostile server costs at most ``limit`` bytes of memory, once: callers treat an
oversized reply as final, never as something to retry.
"""

from __future__ import annotations

import aiohttp

__all__ = ["read_capped"]


async def read_capped(resp: aiohttp.ClientResponse, limit: int) -> bytes | None:
    """The body of ``resp``, or ``None`` (the connection released) once it would exceed ``limit`` bytes."""
    declared = resp.content_length
    if declared is not None and declared > limit:
        resp.close()  # do not download what we will refuse
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in resp.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > limit:
            resp.close()
            return None
        chunks.append(chunk)
    return b"".join(chunks)
