"""Twilio Voice for the outage line: the form Twilio posts when a call comes in, and the TwiML that answers it.

:func:`parse_voice_call` reads the call into a :class:`channels.calls.Call` (a
missed call: no one at the desk took it); :func:`voice_answer` builds the
answer: a sentence spoken in the caller's language, optionally a transfer to
the on-call number, then the end of the call. :func:`parse_dial_result` reads
what Twilio posts to the transfer's ``action`` URL when on-call's leg ends.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone

from twilio.twiml.voice_response import VoiceResponse

from channels.calls import Call
from channels.identity import phone_identity
from channels.messages import without_nul
from channels.whatsapp.errors import WebhookError

MAX_VOICE_FIELD = 64  # CallSid and numbers are far shorter
SAY_LANGUAGE: dict[str, str] = {"nl": "nl-NL", "en": "en-GB"}  # slabot's languages as Twilio's <Say> knows them
DIAL_TIMEOUT = 30  # seconds the on-call phone rings


def parse_voice_call(params: Mapping[str, str], received_at: datetime, *, critical: bool) -> Call:
    """The form Twilio Voice posts for an incoming call, as a missed :class:`Call` (no one at the desk took it).

    :class:`WebhookError` without a CallSid; :class:`channels.identity.IdentityError` when the caller's number
    is withheld (``anonymous``, a SIP or client address) or not a phone number.
    """
    sid = params.get("CallSid", "").strip()
    if not sid or len(sid) > MAX_VOICE_FIELD:
        raise WebhookError("missing or overlong field CallSid")
    caller = phone_identity(params.get("From", "")[:MAX_VOICE_FIELD]).value
    called = params.get("To", "")[:MAX_VOICE_FIELD] or None
    notes = ("Automatisch aangenomen op de storingslijn (Twilio Voice)" if critical
             else "Automatisch aangenomen (Twilio Voice): geen storingsdienst")
    return Call(call_id=sid, at=received_at.astimezone(timezone.utc), caller=caller, called=called, duration=0,
                missed=True, agent=None, notes=notes, critical=critical)


@dataclass(frozen=True)
class DialResult:
    """How the transfer to on-call ended: the caller's CallSid, whether on-call answered, and how long they spoke."""

    call_id: str
    answered: bool
    duration: int  # seconds on-call was on the line (0 when not answered)


def parse_dial_result(params: Mapping[str, str]) -> DialResult:
    """The form Twilio posts to a ``<Dial>``'s ``action`` URL when the dialled leg ends (``DialCallStatus``
    ``completed``: answered); :class:`WebhookError` without a CallSid or with a duration that is no number. The
    CallSid without NUL characters, as the call was stored (:func:`channels.messages.storable`)."""
    sid = without_nul(params.get("CallSid", "")).strip()
    if not sid or len(sid) > MAX_VOICE_FIELD:
        raise WebhookError("missing or overlong field CallSid")
    answered = params.get("DialCallStatus", "").strip().lower() == "completed"
    raw = params.get("DialCallDuration", "").strip() or "0"
    if not raw.isdigit() or len(raw) > 6:
        raise WebhookError("field DialCallDuration is not a number of seconds")
    return DialResult(sid, answered, int(raw) if answered else 0)


def voice_answer(spoken: str, language: str, *, dial: str | None = None, action: str | None = None) -> str:
    """TwiML that says ``spoken`` in ``language`` (``nl``, ``en``), puts the call through to ``dial`` if given
    (Twilio posts to ``action`` when that leg ends), and hangs up."""
    twiml = VoiceResponse()
    twiml.say(spoken, language=SAY_LANGUAGE[language])
    if dial is not None:
        twiml.dial(dial, timeout=DIAL_TIMEOUT, **({"action": action} if action else {}))
    twiml.hangup()
    return str(twiml)


__all__ = ["DialResult", "parse_dial_result", "parse_voice_call", "voice_answer"]
