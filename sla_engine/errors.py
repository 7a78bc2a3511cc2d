"""The SLA engine's error tree.

    SlaEngineError
    ├── CalendarError      a calendar that cannot answer (no opening hours, out of range)
    ├── PolicyError        a preset or plan that is inconsistent or unknown
    └── BillingError       money arithmetic asked to do something the SLA forbids
"""

from __future__ import annotations


class SlaEngineError(Exception):
    """Base class of every error raised by ``sla_engine``."""


class CalendarError(SlaEngineError, ValueError):
    """A calendar cannot answer the question asked of it."""


class PolicyError(SlaEngineError, ValueError):
    """A preset, plan or target is unknown or inconsistent."""


class BillingError(SlaEngineError, ValueError):
    """A billing calculation was asked for something the SLA does not allow."""
