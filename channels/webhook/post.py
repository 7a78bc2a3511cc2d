"""One webhook event POSTed and its answer: :func:`post_event`, the signature it carries (:func:`sign`)."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

import httpx

SIGNATURE_HEADER = "X-Slabot-Signature"
USER_AGENT = "slabot-webhooks/1"


class WebhookSendError(ConnectionError):
    """The endpoint could not be reached, or did not answer in time."""


@dataclass(frozen=True)
class WebhookAnswer:
    """What the endpoint answered."""

    status: int
    text: str  # the first 2,000 characters of the answer's body

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


def sign(secret: str, body: bytes) -> str:
    """The ``X-Slabot-Signature`` value of ``body``: ``sha256=`` and the hex HMAC-SHA256 with ``secret``."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def signature_valid(secret: str, body: bytes, header: str | None) -> bool:
    """A receiver's check: ``header`` is the signature of ``body`` with ``secret`` (compared in constant time)."""
    return header is not None and hmac.compare_digest(sign(secret, body), header)


async def post_event(client: httpx.AsyncClient, url: str, secret: str, body: bytes, event_id: str,
                     event_type: str, *, timeout: float = 10.0) -> WebhookAnswer:
    """POST ``body`` (JSON) to ``url`` signed with ``secret``; the answer, whatever its status.

    :class:`WebhookSendError` when the endpoint cannot be reached or does not answer within ``timeout``.
    """
    headers = {"Content-Type": "application/json", SIGNATURE_HEADER: sign(secret, body),
               "X-Slabot-Event": event_type, "X-Slabot-Event-Id": event_id, "User-Agent": USER_AGENT}
    try:
        answer = await client.post(url, content=body, headers=headers, timeout=timeout)
    except httpx.HTTPError as exc:
        raise WebhookSendError(f"{url}: {exc.__class__.__name__}: {exc}") from exc
    return WebhookAnswer(answer.status_code, answer.text[:2000])
