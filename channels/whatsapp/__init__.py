"""WhatsApp and the outage line through Twilio, one protocol in three parts.

- :mod:`channels.whatsapp.webhook`: signatures, the inbound message and the status callback, parsed;
- :mod:`channels.whatsapp.rest`: the REST client and :class:`WhatsAppSender` (the 24-hour window, templates,
  Twilio's errors as slabot's send errors);
- :mod:`channels.whatsapp.voice`: the outage line's call form and its TwiML answer;
- :mod:`channels.whatsapp.media`: media downloads, with the credentials for Twilio's API host only;
- :mod:`channels.whatsapp.errors`: what the adapter raises that is not a send error (:class:`WebhookError`).

twilio is imported here and nowhere else in slabot.
"""

from __future__ import annotations

from channels.whatsapp.errors import TwilioError, WebhookError
from channels.whatsapp.media import MediaError, MediaFetcher, MediaRefused
from channels.whatsapp.rest import (
    SESSION_WINDOW,
    LastInbound,
    LocalApiHttpClient,
    TemplateChoice,
    TemplateFor,
    TwilioHttpClient,
    WhatsAppSender,
    rest_client,
    translate_error,
)
from channels.whatsapp.voice import DialResult, parse_dial_result, parse_voice_call, voice_answer
from channels.whatsapp.webhook import (
    EMPTY_TWIML,
    OUTSIDE_WINDOW_CODES,
    STATUS_STATES,
    StatusUpdate,
    parse_status_callback,
    parse_whatsapp_webhook,
    rebase_url,
    sign_request,
    signature_url,
    signature_valid,
)

__all__ = [
    "EMPTY_TWIML", "OUTSIDE_WINDOW_CODES", "SESSION_WINDOW", "STATUS_STATES", "DialResult", "LastInbound",
    "LocalApiHttpClient", "MediaError", "MediaFetcher", "MediaRefused", "StatusUpdate", "TemplateChoice", "TemplateFor", "TwilioError", "TwilioHttpClient",
    "WebhookError", "WhatsAppSender", "parse_dial_result", "parse_status_callback", "parse_voice_call",
    "parse_whatsapp_webhook", "rebase_url",
    "rest_client", "sign_request", "signature_url", "signature_valid", "translate_error", "voice_answer",
]
