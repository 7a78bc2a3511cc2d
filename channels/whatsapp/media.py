"""WhatsApp media downloads: the account's credentials go to Twilio's API host only.

A webhook names each media by URL (``MediaUrl0``...). :class:`MediaFetcher`
fetches one the way Twilio serves it, and no other way:

- the first request carries the account SID and auth token (HTTP Basic), and
  goes only to Twilio's API host (``api.twilio.com``, port 443) over https; in
  tests, to the host, port and scheme of the configured stand-in
  (``[twilio] api_base_url``). Any other URL raises :class:`MediaRefused`
  before a connection is made;
- Twilio answers with a redirect to its CDN: redirects are followed by hand,
  without the credentials, only to https (or the stand-in's scheme), at most
  :data:`MAX_REDIRECTS` of them;
- the body is read in chunks and given up past ``max_bytes`` (a
  ``Content-Length`` above it is refused before the body is read).

What cannot be fetched now (a timeout, a 5xx, a 404 while Twilio still
processes the media) raises :class:`MediaError`, worth another try; what will
never be fetched raises :class:`MediaRefused`.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import httpx

from channels.whatsapp.errors import TwilioError

TWILIO_API_HOST = "api.twilio.com"  # where Twilio's media URLs point; the credentials go nowhere else
MAX_REDIRECTS = 5
_DEFAULT_PORTS = {"http": 80, "https": 443}


class MediaError(TwilioError):
    """A media that could not be fetched this time (network, timeout, an HTTP error): worth another try."""


class MediaRefused(MediaError):
    """A media that is never fetched: not on Twilio's API host, not https, too many redirects, or too large."""


@dataclass(frozen=True)
class Media:
    """A media's bytes and the content type it was served with."""

    data: bytes
    content_type: str | None


def _origin(url: str) -> tuple[str, str | None, int | None]:
    """(scheme, host, port) of ``url``, the port made explicit; a port that is not a number is None."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port or _DEFAULT_PORTS.get(scheme)
    except ValueError:
        port = None
    return scheme, parts.hostname, port


class MediaFetcher:
    """Downloads media with the account's credentials, from Twilio's API host only (see the module docstring)."""

    def __init__(self, account_sid: str, auth_token: str, *, api_base_url: str | None = None,
                 max_bytes: int, timeout: float = 30.0) -> None:
        self.auth = httpx.BasicAuth(account_sid, auth_token)
        base = api_base_url or f"https://{TWILIO_API_HOST}"
        self.origin = _origin(base)
        self.redirect_schemes = frozenset({"https", self.origin[0]})
        self.max_bytes = max_bytes
        self.timeout = timeout

    def check(self, url: str) -> None:
        """Raise :class:`MediaRefused` unless ``url`` is on Twilio's API host, over its scheme and port."""
        scheme, host, port = _origin(url)
        if urlsplit(url).username is not None or (scheme, host, port) != self.origin:
            wanted = f"{self.origin[0]}://{self.origin[1]}:{self.origin[2]}"
            raise MediaRefused(f"the media URL is not Twilio's ({wanted}): {_brief(url)}")

    def check_redirect(self, url: str) -> None:
        """Raise :class:`MediaRefused` for a redirect that does not go to an https URL (the stand-in's scheme
        in tests)."""
        scheme, host, _ = _origin(url)
        if scheme not in self.redirect_schemes or not host:
            raise MediaRefused(f"the media redirects to a URL that is not https: {_brief(url)}")

    async def fetch(self, url: str, client: httpx.AsyncClient | None = None) -> Media:
        """The media at ``url`` (see the module docstring); raises :class:`MediaError` or :class:`MediaRefused`.

        ``client``: one to share between several downloads; it must not follow redirects or carry auth.
        """
        self.check(url)
        if client is None:
            async with httpx.AsyncClient(timeout=self.timeout, follow_redirects=False) as own:
                return await self._fetch(own, url)
        return await self._fetch(client, url)

    async def _fetch(self, client: httpx.AsyncClient, url: str) -> Media:
        auth: httpx.BasicAuth | None = self.auth
        for _ in range(MAX_REDIRECTS + 1):
            try:
                async with client.stream("GET", url, auth=auth, follow_redirects=False) as response:
                    if response.is_redirect:
                        url = urljoin(url, response.headers["location"])
                        self.check_redirect(url)
                        auth = None  # the credentials went to Twilio's API host, and go nowhere else
                        continue
                    if response.is_error:
                        raise MediaError(f"HTTP {response.status_code} for {_brief(url)}")
                    return Media(await self._body(response), response.headers.get("content-type"))
            except httpx.HTTPError as exc:
                raise MediaError(f"{exc.__class__.__name__}: {exc}") from exc
        raise MediaRefused(f"the media redirects more than {MAX_REDIRECTS} times")

    async def _body(self, response: httpx.Response) -> bytes:
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            raise MediaRefused(f"the media is {int(declared)} bytes, more than max_media_bytes ({self.max_bytes} bytes)")
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            if size > self.max_bytes:
                raise MediaRefused(f"the media is more than max_media_bytes ({self.max_bytes} bytes)")
            chunks.append(chunk)
        return b"".join(chunks)


def _brief(url: str, limit: int = 200) -> str:
    """A URL for a message: without its query (a CDN's signature), cut at ``limit`` characters."""
    text = url.split("?", 1)[0]
    return text if len(text) <= limit else text[: limit - 1] + "…"


__all__ = ["MAX_REDIRECTS", "TWILIO_API_HOST", "Media", "MediaError", "MediaFetcher",
           "MediaRefused"]
