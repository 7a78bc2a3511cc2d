"""What every route of the HTTP app shares: a request body read up to a limit, never more."""

from __future__ import annotations

from starlette.requests import Request


class PayloadTooLarge(Exception):
    """The body is over the route's limit (answered 413)."""


async def read_limited(request: Request, limit: int) -> bytes:
    """The request body, refusing more than ``limit`` bytes without reading them all."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > limit:
            raise PayloadTooLarge
    return bytes(body)
