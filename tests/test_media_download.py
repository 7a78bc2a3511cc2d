"""WhatsApp media downloads never hand the Twilio credentials to anyone else (issue 18, point 7).

A signed webhook names its media by URL (``MediaUrl0``...). slabot fetches a media with the account's
credentials only from Twilio's API host over https (in these tests: the configured ``api_base_url``, the
stand-in on loopback, over http), follows a redirect (Twilio's media answer with one, to a CDN) without the
credentials and only to https (here: the stand-in's scheme), and stops at ``[twilio] max_media_bytes``. A
media that cannot be fetched is noted on its attachment; the message itself is always kept.

"Elsewhere" is a second loopback server that records every request it gets, and whether it carried an
Authorization header.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route
from test_whatsapp import Harness, bound_port, scenario, serve, stop_server, webhook

from channels.whatsapp.media import MediaFetcher, MediaRefused

PICTURE = b"\xff\xd8\xff\xe0 a photo of the error message" * 40  # 1,640 bytes


class Elsewhere:
    """A server that is not Twilio's: it records who asked, and with which Authorization header."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str | None]] = []

    async def serve_any(self, request: Request) -> Response:
        self.requests.append((request.url.path, request.headers.get("authorization")))
        if request.url.path.startswith("/stream/"):
            async def chunks() -> AsyncIterator[bytes]:
                for _ in range(40):
                    yield PICTURE[:1000]
            return StreamingResponse(chunks(), media_type="image/jpeg")
        return Response(PICTURE, media_type="image/jpeg")

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/{path:path}", self.serve_any, methods=["GET"])])


@asynccontextmanager
async def elsewhere() -> AsyncIterator[tuple[Elsewhere, str]]:
    other = Elsewhere()
    server, task = await serve(other.app())
    try:
        yield other, f"http://127.0.0.1:{bound_port(server)}"
    finally:
        await stop_server(server, task)


async def _attachments(h: Harness, sid: str) -> list[tuple[bool, int | None, str | None]]:
    (ticket,) = [t for t in await h.tickets()]
    found = await h.ticket(ticket.ref)
    (message,) = [m for m in found.messages if m.external_id == sid]
    assert message.text == "Zie foto"  # the message is kept, whatever became of its media
    return [(a.fetched, a.size, a.error) for a in message.attachments]


def test_a_media_url_on_another_host_is_never_fetched_with_the_credentials(tmp_path: Path) -> None:
    async def body(h: Harness) -> None:
        assert h.app.whatsapp is not None
        async with elsewhere() as (other, other_url):
            host_port = other_url.removeprefix("http://")
            standin_host = h.standin_url.removeprefix("http://")
            urls = [f"{other_url}/steal", f"http://{standin_host}@{host_port}/steal",
                    f"ftp://{standin_host}/media/x"]
            params = webhook("SM-elsewhere", body="Zie foto", NumMedia=str(len(urls)),
                             **{f"MediaUrl{i}": url for i, url in enumerate(urls)},
                             **{f"MediaContentType{i}": "image/jpeg" for i in range(len(urls))})
            assert (await h.post(params)).status_code == 200
            assert await h.app.whatsapp.fetch_media() == 0
            assert other.requests == []
            found = await _attachments(h, "SM-elsewhere")
            assert [(fetched, size) for fetched, size, _ in found] == [(False, None)] * len(urls)
            assert all(error and "not Twilio's" in error for _, _, error in found), found
            h.clock.advance(hours=3)
            assert await h.app.whatsapp.fetch_media() == 0 and other.requests == []  # refused for good

    scenario(tmp_path, body)


def test_a_redirect_is_followed_without_the_credentials(tmp_path: Path) -> None:
    async def body(h: Harness) -> None:
        assert h.app.whatsapp is not None
        async with elsewhere() as (cdn, cdn_url):
            h.standin.media_redirects["moved"] = f"{cdn_url}/cdn/photo.jpg"
            params = webhook("SM-moved", body="Zie foto", NumMedia="1", MediaUrl0=f"{h.standin_url}/media/moved",
                             MediaContentType0="image/jpeg")
            assert (await h.post(params)).status_code == 200
            assert await h.app.whatsapp.fetch_media() == 1
            assert cdn.requests == [("/cdn/photo.jpg", None)]
            assert await _attachments(h, "SM-moved") == [(True, len(PICTURE), None)]

    scenario(tmp_path, body)


@pytest.mark.parametrize("served", ["direct", "streamed"])
def test_a_media_over_max_media_bytes_is_not_stored_and_the_message_is_kept(tmp_path: Path, served: str) -> None:
    async def body(h: Harness) -> None:
        assert h.app.whatsapp is not None
        async with elsewhere() as (cdn, cdn_url):
            h.standin.media["big"] = (PICTURE, "image/jpeg")  # 1,640 bytes, with its Content-Length
            h.standin.media_redirects["moved"] = f"{cdn_url}/stream/big.jpg"  # 40,000 bytes in chunks, no Content-Length
            name = "big" if served == "direct" else "moved"
            params = webhook("SM-big", body="Zie foto", NumMedia="1", MediaUrl0=f"{h.standin_url}/media/{name}",
                             MediaContentType0="image/jpeg")
            assert (await h.post(params)).status_code == 200
            assert await h.app.whatsapp.fetch_media() == 0
            ((fetched, size, error),) = await _attachments(h, "SM-big")
            assert not fetched and size is None and error and "1000 bytes" in error, error
            h.clock.advance(hours=3)
            asked = len(cdn.requests)
            assert await h.app.whatsapp.fetch_media() == 0 and len(cdn.requests) == asked  # not tried again

    scenario(tmp_path, body, twilio_extra="max_media_bytes = 1000\n")


@pytest.mark.parametrize("url", [
    "http://api.twilio.com/2010-04-01/Accounts/AC1/Messages/MM1/Media/ME1",  # not https
    "https://evil.example/2010-04-01/Accounts/AC1/Messages/MM1/Media/ME1",
    "https://api.twilio.com.evil.example/x",
    "https://api.twilio.com@evil.example/x",
    "https://api.twilio.com:8443/x",
    "file:///etc/passwd",
])
def test_in_production_only_https_on_twilios_api_host_gets_the_credentials(url: str) -> None:
    fetcher = MediaFetcher("AC1", "token", max_bytes=1000)
    with pytest.raises(MediaRefused):
        fetcher.check(url)
    with pytest.raises(MediaRefused):  # refused before any connection is made
        asyncio.run(fetcher.fetch(url))
    fetcher.check("https://api.twilio.com/2010-04-01/Accounts/AC1/Messages/MM1/Media/ME1")
    fetcher.check_redirect("https://media.twiliocdn.com/x?sig=1")
    with pytest.raises(MediaRefused):
        fetcher.check_redirect("http://media.twiliocdn.com/x")
