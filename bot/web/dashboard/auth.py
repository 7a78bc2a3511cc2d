"""Staff logins of the dashboard: Argon2 password hashes, session tokens, CSRF tokens, a throttle on failed logins.

Passwords are hashed with Argon2id (``argon2-cffi``'s defaults, RFC 9106's
low-memory profile); the config holds only the hash, as
``slabot dashboard hash-password`` prints it. A login for a name that does not
exist still verifies against a dummy hash, so the answer takes as long either
way. A session's token is random; the database keeps its SHA-256 only
(:mod:`storage.sessions`), with a mark of the password it was opened with, so
a new password ends it. The CSRF token is a random value kept in the signed
session cookie and repeated in every POST form; a POST whose form does not
carry the session's token is refused.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections import deque
from collections.abc import Callable

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

_HASHER = PasswordHasher()
_DUMMY_HASH = _HASHER.hash(secrets.token_urlsafe(16))
CSRF_FIELD = "csrf"


def hash_password(password: str) -> str:
    """The Argon2id hash of ``password`` (``$argon2id$v=19$...``), for ``[[dashboard.users]] password_hash``."""
    if not password:
        raise ValueError("an empty password cannot be used")
    return _HASHER.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """Whether ``password`` matches ``password_hash``; with None (no such user) it checks a dummy and says no."""
    try:
        matched = _HASHER.verify(password_hash or _DUMMY_HASH, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False
    return matched and password_hash is not None


def new_session_token() -> str:
    """A new session's token, for the cookie; the database keeps only :func:`token_hash` of it."""
    return secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    """What the database keeps of a session token (SHA-256, hex): enough to find it, useless to present."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def password_tag(password_hash: str) -> str:
    """A session's mark of the password it was opened with: a changed ``password_hash`` ends the session."""
    return hashlib.sha256(f"slabot-session:{password_hash}".encode()).hexdigest()


def new_csrf_token() -> str:
    return secrets.token_urlsafe(32)


def csrf_matches(expected: object, given: str | None) -> bool:
    """The form's token is the session's (compared in constant time); no token in the session matches nothing."""
    if not isinstance(expected, str) or not expected or not given:
        return False
    return hmac.compare_digest(expected.encode("utf-8"), given.encode("utf-8"))


class LoginThrottle:
    """Failed logins counted within ``window`` seconds, per account from one client, per client and per account.

    - ``limit`` failures for one account from one client address lock that account from that address only: a
      guesser elsewhere cannot lock a member of staff out of their own browser;
    - ``client_limit`` failures from one address, whatever the names (made-up ones too), stop that address;
    - ``account_limit`` failures for one account from anywhere stop guessing it from many addresses.

    The client address is the peer, or the client a trusted proxy names (``[http] trusted_proxies``). Kept in
    memory: a restart forgets it, which costs an attacker a restart per few guesses. The table is capped so that
    a flood of made-up names or addresses cannot grow it without bound.
    """

    def __init__(self, limit: int = 5, window: float = 900.0, *, client_limit: int = 20, account_limit: int = 50,
                 clock: Callable[[], float] = time.monotonic, max_keys: int = 10_000) -> None:
        self.limit = limit
        self.client_limit = client_limit
        self.account_limit = account_limit
        self.window = window
        self.clock = clock
        self.max_keys = max_keys
        self._failures: dict[str, deque[float]] = {}

    def _keys(self, account: str | None, client: str) -> list[tuple[str, int]]:
        """The counters a login touches, with their limits; ``account`` None: a name that is no account."""
        keys = [(f"client:{client}", self.client_limit)]
        if account is not None:
            keys += [(f"account:{account}|client:{client}", self.limit), (f"account:{account}", self.account_limit)]
        return keys

    def _recent(self, key: str) -> deque[float]:
        failures = self._failures.get(key, deque())
        horizon = self.clock() - self.window
        while failures and failures[0] <= horizon:
            failures.popleft()
        if not failures:
            self._failures.pop(key, None)
        return failures

    def retry_after(self, account: str | None, client: str) -> float:
        """Seconds until ``account`` may try again from ``client`` (0: now)."""
        waits = [0.0]
        for key, limit in self._keys(account, client):
            failures = self._recent(key)
            if len(failures) >= limit:
                waits.append(failures[-limit] + self.window - self.clock())
        return max(waits)

    def failed(self, account: str | None, client: str) -> None:
        now = self.clock()
        for key, _ in self._keys(account, client):
            if key not in self._failures and len(self._failures) >= self.max_keys:
                self._failures.pop(next(iter(self._failures)))  # the oldest key goes
            self._failures.setdefault(key, deque()).append(now)

    def succeeded(self, account: str, client: str) -> None:
        """A right password: that account's counters start again (the client's stays)."""
        for key, _ in self._keys(account, client)[1:]:
            self._failures.pop(key, None)
