"""A private Dovecot on loopback for the IMAP tests (see ../shared/TESTING.md), and its pytest fixtures.

One instance per test module: ``dovecot -F`` as a child process with its
configuration, users, mail and state in a ``tempfile.mkdtemp()`` directory
(readable by Dovecot's own users when the tests run as root). Each test gets a
user of its own (bot1 ... bot100, all written before the start), so tests do
not see each other's mail. The server listens on two loopback addresses:
127.0.0.1 offers everything Dovecot has (IDLE, MOVE, STARTTLS and, when
``openssl`` is installed, IMAPS on a second port); 127.0.0.2 offers a plain
IMAP4rev1 without IDLE or MOVE, for the polling and COPY + EXPUNGE paths.

The stdlib ``imaplib`` is the second client: it appends mail and reads flags.
Failed logins are not slowed down (Dovecot's auth penalty is off). Stopping
signals Dovecot's whole process group, so the connections of its imap
processes close at once; starting again keeps the data directory (restart tests);
:meth:`MailServer.reset_uidvalidity` makes Dovecot forget its UIDs, as a
restored backup or a rebuilt index would.
"""

from __future__ import annotations

import contextlib
import imaplib
import itertools
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import pytest
from helpers import free_port

DOVECOT = shutil.which("dovecot") or ("/usr/sbin/dovecot" if os.path.exists("/usr/sbin/dovecot") else None)
PASSWORD = "secret"
USERS = 100  # users bot1 ... bot100, one per test
PLAIN_HOST = "127.0.0.2"  # no IDLE, no MOVE
# what 127.0.0.2 offers after login: no IDLE, no MOVE (UIDPLUS stays, for UID EXPUNGE)
PLAIN_CAPABILITY = "IMAP4rev1 LITERAL+ SASL-IR LOGIN-REFERRALS ID ENABLE SORT UIDPLUS"


def _config(root: Path, port: int, tls_port: int, tls: bool) -> str:
    if os.getuid() == 0:
        login_user, internal_user, internal_group = "dovenull", "dovecot", "dovecot"
    else:
        login_user = internal_user = os.environ.get("USER") or str(os.getuid())
        internal_group = str(os.getgid())
    ssl_lines = (f"ssl = yes\nssl_cert = <{root}/cert.pem\nssl_key = <{root}/key.pem\n" if tls else "ssl = no\n")
    return f"""\
protocols = imap
listen = 127.0.0.1, {PLAIN_HOST}
base_dir = {root}/run
state_dir = {root}/state
instance_name = slabot-test-{port}
log_path = {root}/dovecot.log
{ssl_lines}disable_plaintext_auth = no
auth_mechanisms = plain login
auth_failure_delay = 0
default_login_user = {login_user}
default_internal_user = {internal_user}
default_internal_group = {internal_group}
first_valid_uid = {_mail_uid()}
first_valid_gid = {_mail_gid()}
mail_location = maildir:~/Maildir
mail_max_userip_connections = 100
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%n {root}/users
}}
userdb {{
  driver = passwd-file
  args = username_format=%n {root}/users
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1, {PLAIN_HOST}
    port = {port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {tls_port if tls else 0}
  }}
}}
# no growing delay after failed logins (Dovecot's auth penalty): the wrong-password tests retry quickly
service anvil {{
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
local {PLAIN_HOST} {{
  protocol imap {{
    imap_capability = {PLAIN_CAPABILITY}
  }}
}}
"""


def _mail_uid() -> int:
    return 65534 if os.getuid() == 0 else os.getuid()  # nobody, as root


def _mail_gid() -> int:
    return 65534 if os.getuid() == 0 else os.getgid()


@dataclass
class MailServer:
    """A running Dovecot: ``port`` (plain, STARTTLS) and ``tls_port`` (IMAPS, 0 without TLS)."""

    root: Path
    port: int
    tls_port: int
    cafile: Path | None
    process: subprocess.Popen[bytes] | None = None
    host: str = "127.0.0.1"
    _users: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    @classmethod
    def create(cls) -> MailServer:
        root = Path(tempfile.mkdtemp(prefix="slabot-dovecot-"))
        root.chmod(0o755)
        for sub in ("mail", "run", "state"):
            (root / sub).mkdir()
        tls = shutil.which("openssl") is not None
        cafile = None
        if tls:
            subprocess.run(
                ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                 "-keyout", str(root / "key.pem"), "-out", str(root / "cert.pem"), "-subj", "/CN=localhost",
                 "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
                check=True, capture_output=True)
            cafile = root / "cert.pem"
        server = cls(root, free_port(), free_port() if tls else 0, cafile)
        # Dovecot notices a changed users file by its mtime, in whole seconds: every user is written before
        # the start, and new_user() hands them out
        lines = []
        for n in range(1, USERS + 1):
            home = root / "mail" / f"bot{n}"
            home.mkdir()
            if os.getuid() == 0:
                os.chown(home, _mail_uid(), _mail_gid())
            lines.append(f"bot{n}:{{PLAIN}}{PASSWORD}:{_mail_uid()}:{_mail_gid()}::{home}\n")
        (root / "users").write_text("".join(lines), encoding="utf-8")
        (root / "dovecot.conf").write_text(_config(root, server.port, server.tls_port, tls), encoding="utf-8")
        return server

    # -- lifecycle --------------------------------------------------------------------------

    def start(self, timeout: float = 10.0) -> None:
        """Start Dovecot on the same data directory and wait for its greeting."""
        assert self.process is None, "already running"
        assert DOVECOT is not None
        self.process = subprocess.Popen([DOVECOT, "-F", "-c", str(self.root / "dovecot.conf")],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                err = self.process.stderr.read().decode(errors="replace") if self.process.stderr else ""
                self.process = None
                raise RuntimeError(f"dovecot exited at start: {err}\n{self.log()}")
            try:
                with socket.create_connection((self.host, self.port), timeout=1) as sock:
                    if sock.recv(200).startswith(b"* OK"):
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"dovecot did not greet within {timeout} s\n{self.log()}")
            time.sleep(0.02)

    def stop(self) -> None:
        """Stop Dovecot and every process it started (so its connections close); the data directory stays.

        The master alone leaves running imap processes behind for a while: the whole process group
        (Dovecot runs in a session of its own) is signalled.
        """
        process, self.process = self.process, None
        if process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)  # stragglers
        if process.stderr is not None:
            process.stderr.close()

    @property
    def running(self) -> bool:
        return self.process is not None

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def log(self) -> str:
        path = self.root / "dovecot.log"
        return path.read_text(encoding="utf-8", errors="replace")[-4000:] if path.exists() else ""

    # -- users and mail ------------------------------------------------------------------------

    def new_user(self) -> str:
        """A user nobody has used yet, with an empty mailbox (password :data:`PASSWORD`)."""
        number = next(self._users)
        assert number <= USERS, f"more than {USERS} users: raise mailserver.USERS"
        return f"bot{number}"

    def maildir(self, user: str, folder: str = "INBOX") -> Path:
        base = self.root / "mail" / user / "Maildir"
        return base if folder == "INBOX" else base / f".{folder}"

    def client(self, user: str) -> imaplib.IMAP4:
        imap = imaplib.IMAP4(self.host, self.port, timeout=10)
        imap.login(user, PASSWORD)
        return imap

    def append(self, raw: bytes, folder: str = "INBOX", *, user: str, flags: str = "",
               internaldate: datetime | None = None) -> int:
        """Deliver ``raw`` into ``folder`` (created when missing), received at ``internaldate`` (APPEND's
        date-time; default now); its UID."""
        imap = self.client(user)
        try:
            if folder != "INBOX":
                imap.create(folder)  # NO when it exists: fine
            stamp = imaplib.Time2Internaldate(internaldate) if internaldate is not None else None
            typ, data = imap.append(folder, f"({flags})" if flags else None, stamp, raw)
            assert typ == "OK", data
            found = re.search(rb"APPENDUID \d+ (\d+)", data[0] or b"")
            assert found, data
            return int(found.group(1))
        finally:
            imap.logout()

    def deliver_offline(self, raw: bytes, *, user: str, folder: str = "INBOX") -> None:
        """Drop ``raw`` into the Maildir directly, as a local delivery agent would (works while stopped)."""
        maildir = self.maildir(user, folder)
        name = f"{time.time_ns()}.P{os.getpid()}.slabot-test"
        tmp = maildir / "tmp" / name
        tmp.write_bytes(raw)
        if os.getuid() == 0:
            os.chown(tmp, _mail_uid(), _mail_gid())
        tmp.rename(maildir / "new" / name)

    def imap_processes(self) -> list[int]:
        """The pids of the imap processes (one per logged-in client) of this instance."""
        if self.process is None:
            return []
        found = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                text = stat.read_text()
            except OSError:
                continue
            name = text[text.index("(") + 1:text.rindex(")")]
            fields = text[text.rindex(")") + 2:].split()
            if name == "imap" and int(fields[2]) == self.process.pid:  # fields[2]: the process group
                found.append(int(stat.parent.name))
        return found

    def freeze(self) -> list[int]:
        """Stop every imap process (SIGSTOP): their connections stay open and answer nothing (half-open)."""
        pids = self.imap_processes()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGSTOP)
        return pids

    @staticmethod
    def thaw(pids: list[int]) -> None:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)

    def flags(self, user: str, folder: str = "INBOX") -> dict[int, set[str]]:
        """The flags of every message in ``folder`` by UID (read-only: changes nothing)."""
        imap = self.client(user)
        try:
            typ, data = imap.select(folder, readonly=True)
            if typ != "OK":
                return {}
            typ, data = imap.uid("FETCH", "1:*", "(FLAGS)")
            found: dict[int, set[str]] = {}
            for item in data:
                if not isinstance(item, bytes):
                    continue
                match = re.search(rb"UID (\d+) FLAGS \(([^)]*)\)|FLAGS \(([^)]*)\) UID (\d+)", item)
                if match:
                    uid = int(match.group(1) or match.group(4))
                    words = (match.group(2) if match.group(1) else match.group(3)).decode()
                    found[uid] = set(words.split())
            return found
        finally:
            imap.logout()

    def uidvalidity(self, user: str, folder: str = "INBOX") -> int:
        imap = self.client(user)
        try:
            typ, data = imap.status(folder, "(UIDVALIDITY)")
            assert typ == "OK", data
            found = re.search(rb"UIDVALIDITY (\d+)", data[0] or b"")
            assert found
            return int(found.group(1))
        finally:
            imap.logout()

    def reset_uidvalidity(self, user: str, folder: str = "INBOX") -> None:
        """Stop, forget ``folder``'s UIDs (``dovecot-uidlist``, ``dovecot.index*``) and start again."""
        self.stop()
        maildir = self.maildir(user, folder)
        uidlist = maildir / "dovecot-uidlist"
        header = uidlist.read_text(encoding="utf-8").split("\n", 1)[0] if uidlist.exists() else ""
        old = re.search(r"\bV(\d+)", header)
        for path in [uidlist, *maildir.glob("dovecot.index*")]:
            path.unlink(missing_ok=True)
        while old is not None and time.time() < int(old.group(1)) + 1:
            time.sleep(0.05)  # Dovecot takes the new UIDVALIDITY from the clock, in seconds
        self.start()

    def ssl_context(self) -> ssl.SSLContext:
        """A client context that trusts this server's self-signed certificate."""
        assert self.cafile is not None
        return ssl.create_default_context(cafile=str(self.cafile))


@pytest.fixture(scope="module")
def mailserver() -> Iterator[MailServer]:
    """A Dovecot for the whole module (skipped when Dovecot is not installed)."""
    if DOVECOT is None:
        pytest.skip("dovecot is not installed (Debian package dovecot-imapd)")
    server = MailServer.create()
    try:
        server.start()
        yield server
    finally:
        server.remove()


@pytest.fixture
def mailbox(mailserver: MailServer) -> Iterator[tuple[MailServer, str]]:
    """The module's Dovecot and a fresh user on it; the server is running again afterwards."""
    user = mailserver.new_user()
    try:
        yield mailserver, user
    finally:
        if not mailserver.running:
            mailserver.start()
