"""Phone calls: the call-log formats a PBX or Twilio exports (CSV or JSON), read into calls and inbound messages.

See :mod:`channels.calls.log` for the columns.
"""

from __future__ import annotations

from channels.calls.log import (
    AMSTERDAM,
    Call,
    CallLogError,
    call_external_id,
    call_message,
    parse_call,
    read_rows,
)

__all__ = ["AMSTERDAM", "Call", "CallLogError", "call_external_id", "call_message", "parse_call", "read_rows"]
