"""The outage line on Twilio Voice (R17): what a call to ``POST /webhooks/twilio/voice`` does.

Twilio posts there when someone calls the outage number. The request is
checked like every Twilio webhook (:func:`bot.web.twilio.signed_params`: the
``X-Twilio-Signature`` against ``http.public_url``; 403 and nothing stored when
it does not match) and handed to :meth:`VoiceLine.answer`. The call, with its
CallSid as id and the caller's number (``From``, E.164) as sender, is logged
through the intake (:func:`bot.calls.log_call`) and committed before Twilio
gets its answer, in TwiML (:func:`channels.whatsapp.voice_answer`; the spoken
texts are :data:`bot.texts.VOICE_TEXTS`):

- the preset has an outage line (``[critical]``, preset paynl): a critical
  ticket on the 24/7 calendar clock, which the staff chat pages to on-call at
  once and every 15 minutes until someone acknowledges it. The caller hears
  that the outage is logged and on-call is being paged, with the warning that
  the outage service may be charged when the cause lies in their own domain;
  then the call is put through to ``[twilio] oncall_number`` when that is set,
  else it ends. The line is open to every plan, plans without an SLA and
  without the phone included (R5: a Pioneer customer is taken and paged like
  any other); only a third party not authorised on the account (R2) opens no
  ticket and hears that the line cannot take the report.
- the preset has none (preset mailcampaigns): nothing critical. The call is
  logged as an ordinary missed call (a ticket for staff, and a callback
  reminder when it came in during opening hours); the caller hears that there
  is no outage service and that the desk will come back to them.

When the caller is put through, the ``<Dial>`` carries an ``action`` URL
(``POST /webhooks/twilio/voice/dialled``, signed like every Twilio webhook):
Twilio posts there when on-call's leg ends. ``DialCallStatus`` ``completed``
means on-call answered: the call is the ticket's response from the moment
on-call picked up (the end minus ``DialCallDuration``), and on-call's
acknowledgement, so the pages stop (:func:`bot.calls.answered_by_oncall`). The
answer is empty TwiML: the call ends.

Twilio may post the same call again (a retry, the fallback URL): the CallSid
is stored once and the caller hears the same answer. A withheld number cannot
be logged: the caller is asked to call again with the number shown or to
write; nothing is stored (on the outage line they are still put through when
``oncall_number`` is set).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from bot.calls import answered_by_oncall, log_call
from bot.i18n import Language
from bot.intake import Outcome
from bot.texts import VOICE_TEXTS
from channels.identity import IdentityError
from channels.messages import utc_now
from channels.whatsapp import EMPTY_TWIML, parse_dial_result, parse_voice_call, voice_answer

if TYPE_CHECKING:
    from bot.config import HttpConfig, TwilioConfig
    from bot.intake import IntakePipeline

log = logging.getLogger(__name__)

DIALLED_PATH = "/webhooks/twilio/voice/dialled"  # the <Dial>'s action: on-call's leg ended
LOGGED = (Outcome.NEW_TICKET, Outcome.UNKNOWN_SENDER, Outcome.REPLY, Outcome.DUPLICATE)


class VoiceLine:
    """The outage line's use case: a call logged, and the TwiML that answers it; see the module docstring."""

    def __init__(self, twilio: TwilioConfig, http: HttpConfig, pipeline: IntakePipeline, *,
                 language: Language = "nl", now: Callable[[], datetime] = utc_now,
                 on_callback: Callable[[], None] | None = None) -> None:
        """``on_callback``: told when a call planned a callback reminder (the reminder rounds look at once)."""
        assert twilio.auth_token is not None
        self.auth_token = twilio.auth_token.get_secret_value()
        self.public_url = http.public_url
        self.oncall_number = twilio.oncall_number
        self.pipeline = pipeline
        self.language = language
        self.now = now
        self.on_callback = on_callback

    async def answer(self, params: Mapping[str, str], body: bytes) -> str:
        """A call to the outage number (a signed webhook's fields and body): logged (committed) first, then the
        TwiML that answers it. :class:`channels.whatsapp.WebhookError` when the form is not a call."""
        critical = self.pipeline.preset.critical
        try:
            call = parse_voice_call(params, self.now(), critical=critical is not None)
        except IdentityError as exc:
            log.warning("voice call %s from a withheld number: not logged (%s)", params.get("CallSid"), exc)
            return self._answer("hidden", dial=critical is not None)
        # committed before the answer: an error here is a 500 and Twilio plays its own apology
        logged = await asyncio.to_thread(log_call, self.pipeline, call, body)
        if logged.callback and self.on_callback is not None:
            self.on_callback()  # a callback reminder due at once: the reminder rounds look now, not at their poll
        result = logged.result
        log.info("voice call %s from %s: %s %s", call.call_id, call.caller, result.outcome.value,
                 result.ticket_ref or "")
        if critical is None:
            return self._answer("no_line", dial=False)
        if result.outcome not in LOGGED:
            return self._answer("not_taken", dial=False)
        return self._answer("paged", dial=True, charge=critical.outage_charge_warning)

    async def dialled(self, params: Mapping[str, str], body: bytes) -> str:
        """On-call's leg of a call put through ended (the ``<Dial>``'s action webhook): when on-call answered, the
        call is the ticket's response and acknowledgement (committed first); empty TwiML, the call ends.
        :class:`channels.whatsapp.WebhookError` when the form names no call."""
        result = parse_dial_result(params)
        if result.answered:
            answered_at = self.now() - timedelta(seconds=result.duration)
            ref = await asyncio.to_thread(answered_by_oncall, self.pipeline, result.call_id, answered_at)
            log.info("voice call %s answered by on-call (%ss): %s", result.call_id, result.duration,
                     ref or "no ticket")
        return EMPTY_TWIML

    @property
    def dial_action(self) -> str:
        """The ``<Dial>``'s action URL: the public URL when set (Twilio signs what it requests), else the path."""
        return (self.public_url or "").rstrip("/") + DIALLED_PATH

    def _answer(self, what: str, *, dial: bool, charge: bool = False) -> str:
        t = VOICE_TEXTS[self.language]
        dialling = dial and self.oncall_number is not None
        spoken = [t[what].format(company=self.pipeline.preset.title)]
        if charge:
            spoken.append(t["charge"])
        if dialling:
            spoken.append(t["through"])
        elif what == "paged":
            spoken.append(t["later"])
        return voice_answer(" ".join(spoken), self.language, dial=self.oncall_number if dialling else None,
                            action=self.dial_action)


__all__ = ["DIALLED_PATH", "VoiceLine"]
