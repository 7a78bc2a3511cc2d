"""The outage line on Twilio Voice (R17): ``POST /webhooks/twilio/voice``.

Twilio posts here when someone calls the outage number. The request is
checked like every Twilio webhook (:func:`bot.whatsapp.signed_params`: the
``X-Twilio-Signature`` against ``http.public_url``; 403 and nothing stored when
it does not match). The call, with its CallSid as id and the caller's number
(``From``, E.164) as sender, is logged through the intake
(:func:`bot.calls.log_call`) and committed before Twilio gets its answer, in
TwiML:

- the preset has an outage line (``[critical]``, preset paynl): a critical
  ticket on the 24/7 calendar clock, which the staff chat pages to on-call at
  once and every 15 minutes until someone acknowledges it. The caller hears
  that the outage is logged and on-call is being paged, with the warning that
  the outage service may be charged when the cause lies in their own domain;
  then the call is put through to ``[twilio] oncall_number`` when that is set,
  else it ends. A caller whose plan does not include the phone (R5) or a third
  party (R2) opens no ticket and hears that the line cannot take the report.
- the preset has none (preset mailcampaigns): nothing critical. The call is
  logged as an ordinary missed call (a ticket for staff, and a callback
  reminder when it came in during opening hours); the caller hears that there
  is no outage service and that the desk will come back to them.

Twilio may post the same call again (a retry, the fallback URL): the CallSid
is stored once and the caller hears the same answer. A withheld number cannot
be logged: the caller is asked to call again with the number shown or to
write; nothing is stored (on the outage line they are still put through when
``oncall_number`` is set).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from twilio.twiml.voice_response import VoiceResponse

from bot.calls import log_call
from bot.i18n import Language
from bot.intake import Outcome
from bot.whatsapp import signed_params
from channels.calls import parse_voice_call
from channels.identity import IdentityError
from channels.messages import utc_now

if TYPE_CHECKING:
    from bot.config import HttpConfig, TwilioConfig
    from bot.intake import IntakePipeline

log = logging.getLogger(__name__)

VOICE_PATH = "/webhooks/twilio/voice"
LOGGED = (Outcome.NEW_TICKET, Outcome.UNKNOWN_SENDER, Outcome.REPLY, Outcome.DUPLICATE)
SAY_LANGUAGE: dict[Language, str] = {"nl": "nl-NL", "en": "en-GB"}

TEXTS: dict[Language, dict[str, str]] = {
    "nl": {
        "paged": "U belt met de storingslijn van {company}. Uw melding is vastgelegd en de dienstdoende "
                 "engineer wordt nu opgeroepen.",
        "charge": "Let op: ligt de oorzaak van de storing binnen uw eigen domein, dan kunnen de kosten van de "
                  "storingsdienst in rekening worden gebracht.",
        "through": "U wordt nu doorverbonden.",
        "later": "Wij nemen zo snel mogelijk contact met u op.",
        "not_taken": "U belt met de storingslijn van {company}. Uw oproep is genoteerd, maar kan op deze lijn "
                     "niet als storing worden aangenomen. Neem contact met ons op via WhatsApp of e-mail.",
        "no_line": "U belt met {company}. Wij hebben geen storingsdienst buiten kantoortijden. Uw oproep is "
                   "genoteerd; wij nemen binnen onze openingstijden contact met u op.",
        "hidden": "U belt met {company}. Uw nummer is afgeschermd, zodat wij uw oproep niet kunnen vastleggen. "
                  "Bel opnieuw met zichtbaar nummer, of stuur ons een bericht via WhatsApp of e-mail.",
    },
    "en": {
        "paged": "You have reached the outage line of {company}. Your report is logged and the engineer on "
                 "call is being paged now.",
        "charge": "Please note: if the cause of the outage lies in your own domain, the outage service may be "
                  "charged.",
        "through": "You are being put through now.",
        "later": "We will get back to you as soon as possible.",
        "not_taken": "You have reached the outage line of {company}. Your call is noted, but this line cannot "
                     "take it as an outage. Please contact us on WhatsApp or by e-mail.",
        "no_line": "You have reached {company}. We have no outage service outside office hours. Your call is "
                   "noted; we will get back to you during our opening hours.",
        "hidden": "You have reached {company}. Your number is withheld, so we cannot log your call. Please "
                  "call again with your number shown, or write to us on WhatsApp or by e-mail.",
    },
}



class VoiceLine:
    """The voice webhook: routes for the HTTP app; see the module docstring."""

    def __init__(self, twilio: TwilioConfig, http: HttpConfig, pipeline: IntakePipeline, *,
                 language: Language = "nl", now: Callable[[], datetime] = utc_now) -> None:
        assert twilio.auth_token is not None
        self.auth_token = twilio.auth_token.get_secret_value()
        self.public_url = http.public_url
        self.oncall_number = twilio.oncall_number
        self.pipeline = pipeline
        self.language = language
        self.now = now
        self.on_callback: Callable[[], None] | None = None  # told when a call planned a callback reminder

    def routes(self) -> list[Route]:
        return [Route(VOICE_PATH, self.call, methods=["POST"])]

    async def call(self, request: Request) -> Response:
        """A call to the outage number: logged (committed) first, then answered in TwiML."""
        checked = await signed_params(request, self.auth_token, self.public_url)
        if isinstance(checked, Response):
            return checked
        params, body = checked
        critical = self.pipeline.preset.critical
        try:
            call = parse_voice_call(params, self.now(), critical=critical is not None)
        except IdentityError as exc:
            log.warning("voice call %s from a withheld number: not logged (%s)", params.get("CallSid"), exc)
            return self._answer("hidden", dial=critical is not None)
        except ValueError as exc:
            return PlainTextResponse(str(exc), status_code=400)
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

    def _answer(self, what: str, *, dial: bool, charge: bool = False) -> Response:
        t = TEXTS[self.language]
        dialling = dial and self.oncall_number is not None
        spoken = [t[what].format(company=self.pipeline.preset.title)]
        if charge:
            spoken.append(t["charge"])
        if dialling:
            spoken.append(t["through"])
        elif what == "paged":
            spoken.append(t["later"])
        twiml = VoiceResponse()
        twiml.say(" ".join(spoken), language=SAY_LANGUAGE[self.language])
        if dialling:
            twiml.dial(self.oncall_number, timeout=30)
        twiml.hangup()
        return Response(str(twiml), media_type="text/xml")


__all__ = ["VOICE_PATH", "VoiceLine"]
