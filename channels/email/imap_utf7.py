"""IMAP mailbox names in modified UTF-7 (RFC 3501 section 5.1.3).

An IMAP server names folders in 7-bit ASCII: a folder called
``Afgehandeld ✓`` or ``Klanten/Café`` travels as ``Afgehandeld &JxM-`` and
``Klanten/Caf&AOk-``. Printable ASCII stands for itself, except ``&``, which
is written ``&-``; every other run of characters is UTF-16BE in base64 (with
``,`` for ``/`` and no padding) between ``&`` and ``-``. The configuration
takes folder names as people write them; the IMAP intake sends them encoded.
"""

from __future__ import annotations

import base64
import binascii


def _printable(char: str) -> bool:
    return 0x20 <= ord(char) <= 0x7E


def encode(name: str) -> str:
    """``name`` as an IMAP mailbox name: modified UTF-7."""
    out: list[str] = []
    run: list[str] = []

    def flush() -> None:
        if run:
            data = "".join(run).encode("utf-16-be")
            out.append("&" + base64.b64encode(data).decode("ascii").rstrip("=").replace("/", ",") + "-")
            run.clear()

    for char in name:
        if _printable(char):
            flush()
            out.append("&-" if char == "&" else char)
        else:
            run.append(char)
    flush()
    return "".join(out)


def decode(name: str) -> str:
    """A modified UTF-7 mailbox name as text; a malformed run is kept as it stands (names are shown, not used)."""
    out: list[str] = []
    i = 0
    while i < len(name):
        start = name.find("&", i)
        if start < 0:
            out.append(name[i:])
            break
        out.append(name[i:start])
        end = name.find("-", start)
        if end < 0:
            out.append(name[start:])
            break
        chunk = name[start + 1:end]
        if not chunk:
            out.append("&")
        else:
            padded = chunk.replace(",", "/") + "=" * (-len(chunk) % 4)
            try:
                out.append(base64.b64decode(padded, validate=True).decode("utf-16-be"))
            except (binascii.Error, UnicodeDecodeError):
                out.append(name[start:end + 1])
        i = end + 1
    return "".join(out)


__all__ = ["decode", "encode"]
