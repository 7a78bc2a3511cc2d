"""Outgoing webhooks: a JSON event POSTed to an endpoint, signed with its secret.

The signature is ``X-Slabot-Signature: sha256=HEX``, the HMAC-SHA256 of the raw body with the endpoint's
secret; a receiver computes it over the bytes it got and compares in constant time (:func:`signature_valid`
does it the way a receiver should).
"""

from __future__ import annotations

from channels.webhook.post import (
    SIGNATURE_HEADER,
    WebhookAnswer,
    WebhookSendError,
    post_event,
    sign,
    signature_valid,
)

__all__ = ["SIGNATURE_HEADER", "WebhookAnswer", "WebhookSendError", "post_event", "sign", "signature_valid"]
