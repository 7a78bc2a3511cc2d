"""The intake as the config makes it: the one place its pipeline and its mail intake are built.

``slabot run`` (:mod:`bot.app`), the command line (``ingest email``, ``calls import``, ``calls log``,
``mail reprocess``) and the demo all take them from here, so that a message gets the same decision
whichever way it came in. Cheap to import: a mail piped in by the MTA starts a process of its own.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from bot.config import LoadedConfig
from bot.intake import IntakePipeline
from bot.mail import MailIntake, mail_reply_guards
from bot.texts import Texts
from channels.messages import utc_now
from storage.database import Database


def intake_pipeline(loaded: LoadedConfig, db: Database, now: Callable[[], datetime] = utc_now) -> IntakePipeline:
    """The intake pipeline: the config's preset and language, and e-mail's guards on automatic replies."""
    cfg = loaded.config
    return IntakePipeline(db, loaded.preset, Texts(), default_language=cfg.language, now=now,
                          reply_guards=mail_reply_guards(cfg.email.auto_replies_per_hour, now))


def mail_intake(loaded: LoadedConfig, db: Database, pipeline: IntakePipeline | None = None,
                now: Callable[[], datetime] = utc_now) -> MailIntake:
    """The mail intake on ``pipeline`` (by default a new one): the config's own address, cut-off and size cap."""
    cfg = loaded.config
    return MailIntake(db, pipeline or intake_pipeline(loaded, db, now), own_addresses=(cfg.email.from_address or "",),
                      acknowledge_max_age=timedelta(hours=cfg.email.acknowledge_max_age_hours),
                      max_message_bytes=cfg.email.max_message_bytes, now=now)
