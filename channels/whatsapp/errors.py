"""What the Twilio adapter raises besides the send errors of :mod:`channels.messages`.

    TwilioError                  the root: anything the adapter refuses that is not a send
    └── WebhookError             a webhook that cannot be accepted (ValueError; ``status`` 400 or 413)

Sending speaks :mod:`channels.messages`' ``SendError`` tree (``TemporarySendError``,
``PermanentSendError``, ``NeedsStaffError``...): twilio's own errors are caught in
:mod:`channels.whatsapp.rest` and re-raised as those, with ``from``.
"""

from __future__ import annotations


class TwilioError(Exception):
    """The root of what the Twilio adapter raises outside sending."""


class WebhookError(TwilioError, ValueError):
    """A webhook that cannot be accepted; ``status`` is the HTTP answer (400, 413)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


__all__ = ["TwilioError", "WebhookError"]
