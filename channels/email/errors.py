"""The e-mail channel's errors: aioimaplib's, OSError and TimeoutError are translated into these.

::

    EmailError
    ├── MailParseError (ValueError)                not a mail at all (channels.email.parse)
    └── ImapError
        ├── ImapConnectionError (ConnectionError)  refused, dropped, TLS failed
        ├── ImapTimeoutError (TimeoutError)        no answer in time (half-open)
        ├── ImapLoginError                         the credentials were refused
        └── ImapCommandError                       the server answered NO or BAD

Sending (SMTP) answers with :mod:`channels.messages`' ``SendError`` tree, as every outbound channel does.
"""

from __future__ import annotations


class EmailError(Exception):
    """Base class of the e-mail channel's errors."""


class ImapError(EmailError):
    """Base class of the IMAP client's errors."""


class ImapConnectionError(ImapError, ConnectionError):
    """The connection could not be made, or it was lost."""


class ImapTimeoutError(ImapError, TimeoutError):
    """The server did not answer in time."""


class ImapLoginError(ImapError):
    """The server refused the user name and password."""


class ImapCommandError(ImapError):
    """The server refused a command (NO or BAD)."""


__all__ = ["EmailError", "ImapCommandError", "ImapConnectionError", "ImapError", "ImapLoginError",
           "ImapTimeoutError"]
