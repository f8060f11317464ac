"""The one place that keeps credentials out of text: messages, log lines, server echoes.

Every credential value is registered here when it is loaded (:func:`register`). From then on

* :func:`redact` replaces it in any text, in every spelling a server or library might echo it:
  literal (or any run of 16 or more of its characters), JSON-escaped (``\\/``, ``\\uXXXX``),
  URL-encoded (either hex case, ``+`` for spaces) and base64 at any byte alignment, which
  also covers ``Authorization: Basic base64(client_id:client_secret)``;
* :func:`server_text` turns text a server sent (error messages, header values, ids) into one
  printable line: control characters and terminal escape sequences removed first (so they cannot
  hide a secret from the scrub or rewrite the operator's terminal), then the scrub, and only
  then the cut to a length (a cut first could leave 39 of 40 characters of a key visible);
* :class:`ArchiverError` messages pass through :func:`redact` when printed (errors.py), and
  :func:`install_log_redaction` scrubs every log record as it is created, and withholds the
  response bodies botocore prints at DEBUG (a GetSecretValue body holds the secret itself).
"""

from __future__ import annotations

import base64
import json
import logging
import re
import threading
from urllib.parse import quote, quote_plus

REDACTED = "***"
# Shorter values would match ordinary text; every real credential is far longer.
_MIN_SECRET_LENGTH = 6
_MIN_BASE64_FRAGMENT = 8
_PARTIAL = 16


class _Registry:
    """The process-wide set of values never to print, and one regex of all their spellings."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.secrets: set[str] = set()
        # Whole spellings, longest first; `in` + `str.replace` rather than one regex, whose
        # compile time grows with every kilobyte-long token registered at each renewal.
        self.forms: tuple[str, ...] = ()
        # Every _PARTIAL-character window of every secret: looked up per text position, since
        # `re` tries alternatives one by one and thousands of them made each scrub milliseconds.
        self.windows: frozenset[str] = frozenset()


_registry = _Registry()

# CSI and OSC escape sequences first (so their parameters go too), then any single control or
# invisible-formatting character: C0, DEL, C1, and bidirectional overrides that reorder text.
_ESCAPES = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?")
_CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]")


def register(*values: str) -> None:
    """Never show these values again, in any spelling (credentials, tokens)."""
    fresh = {v for v in values if isinstance(v, str) and len(v) >= _MIN_SECRET_LENGTH}
    with _registry.lock:
        if fresh <= _registry.secrets:
            return
        _registry.secrets.update(fresh)
        variants = {form for secret in _registry.secrets for form in _spellings(secret)}
        _registry.forms = tuple(sorted(variants, key=len, reverse=True))
        _registry.windows = frozenset(
            secret[i : i + _PARTIAL]
            for secret in _registry.secrets
            for i in range(len(secret) - _PARTIAL + 1)
        )
    # From the first secret on, every log record is scrubbed, whichever entry point runs.
    install_log_redaction()


def redact(text: str) -> str:
    """``text`` with every registered secret, in every spelling, replaced by ``***``."""
    forms, windows = _registry.forms, _registry.windows
    if not forms or not text:
        return text
    for form in forms:
        if form in text:
            text = text.replace(form, REDACTED)
    return _redact_windows(text, windows)


def _redact_windows(text: str, windows: frozenset[str]) -> str:
    """Replace every run of text covered by windows of a secret (a partial echo) by ``***``."""
    if not windows or len(text) < _PARTIAL:
        return text
    spans: list[list[int]] = []
    for start in range(len(text) - _PARTIAL + 1):
        if text[start : start + _PARTIAL] in windows:
            if spans and start <= spans[-1][1]:
                spans[-1][1] = start + _PARTIAL
            else:
                spans.append([start, start + _PARTIAL])
    if not spans:
        return text
    pieces: list[str] = []
    kept_from = 0
    for span_start, span_end in spans:
        pieces += [text[kept_from:span_start], REDACTED]
        kept_from = span_end
    pieces.append(text[kept_from:])
    return "".join(pieces)


def printable(text: str) -> str:
    """One line without control characters or terminal escape sequences."""
    text = _ESCAPES.sub("", text)
    return " ".join(_CONTROLS.sub(" ", text).split())


def server_text(value: object, limit: int = 300) -> str:
    """Text a server sent, safe to print: one printable line, secrets scrubbed, then cut."""
    text = value if isinstance(value, str) else str(value)
    cleaned = redact(printable(text))
    return cleaned if len(cleaned) <= limit else cleaned[: limit - 1] + "…"


def display_secret_id(secret_id: str) -> str:
    """How to name a secret id in a message without ever printing a credential.

    Operators sometimes paste the key itself where the secret's name belongs. Names and ARNs
    of Secrets Manager secrets have a path or a recognisable shape; a long single token without
    separators does not, so it is described instead of shown.
    """
    if secret_id.startswith("arn:"):
        return redact(secret_id)
    parts = secret_id.split("/")
    if len(parts) == 1:
        shown = len(secret_id) < 20 and not re.search(r"\d{6,}", secret_id)
    else:
        shown = not any(_looks_like_credential(part) for part in parts)
    if shown:
        return redact(secret_id)
    return (
        f"(the secret id given, {len(secret_id)} characters, not shown: it looks like a credential)"
    )


def _looks_like_credential(part: str) -> bool:
    """A long run of digits, or 20+ characters mixing letters and digits (a key, or a piece of
    a base64 secret, whose ``/`` would otherwise pass it off as a secret's path)."""
    if re.search(r"\d{6,}", part):
        return True
    return len(part) >= 20 and bool(re.search(r"\d", part)) and bool(re.search(r"[A-Za-z]", part))


def _spellings(secret: str) -> set[str]:
    forms = {secret}
    # A long piece of the literal secret (a partial echo, a cut message) is scrubbed by its
    # _PARTIAL-character windows in redact(), not here.
    escaped = json.dumps(secret)[1:-1]
    forms |= {escaped, escaped.replace("/", "\\/")}
    for hexcase in (str.lower, str.upper):
        forms.add("".join(f"\\u{hexcase(format(ord(c), '04x'))}" for c in secret))
    for encoded in (quote(secret, safe=""), quote_plus(secret, safe="")):
        forms |= {encoded, re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), encoded)}
    raw = secret.encode("utf-8")
    for encode in (base64.b64encode, base64.urlsafe_b64encode):
        for shift in range(3):
            fragment = _base64_fragment(raw, shift, encode)
            if len(fragment) >= _MIN_BASE64_FRAGMENT:
                forms.add(fragment)
    return {form for form in forms if form}


def _base64_fragment(raw: bytes, shift: int, encode: object) -> str:
    """The base64 characters determined by ``raw`` alone when it starts ``shift`` bytes into a
    3-byte group of some longer text (so an encoded ``id:secret`` pair contains it)."""
    assert callable(encode)
    encoded: bytes = encode(b"\0" * shift + raw)
    skip = (shift * 8 + 5) // 6  # characters that mix in the bytes before the secret
    usable = (shift + len(raw)) // 3 * 4  # characters of whole groups only
    return encoded[skip:usable].decode("ascii")


_WITHHELD = "(a Secrets Manager response body, withheld by di-archiver)"


def _scrub_record(record: logging.LogRecord) -> logging.LogRecord:
    try:
        message = record.getMessage()
    except Exception:  # a malformed record: let logging report it as it usually does
        return record
    withheld = "SecretString" in message or "SecretBinary" in message
    cleaned = _WITHHELD if withheld else redact(message)
    if cleaned != message:
        record.msg, record.args = cleaned, None
    if record.exc_info and record.exc_info[0] is not None:
        # Formatters reuse a pre-rendered traceback; render it now, scrubbed.
        record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
    return record


class RedactingOutput:
    """Mixin for a logging formatter: its whole output is scrubbed (message, ``extra`` fields
    and tracebacks, chained exceptions included), which a record factory cannot reach."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))  # type: ignore[misc]


class RedactingFormatter(RedactingOutput, logging.Formatter):
    """The standard formatter, scrubbed."""


def install_log_redaction() -> None:
    """Scrub every log record of every logger as it is created (idempotent).

    A record factory rather than a handler filter: it sees records of any logger (botocore
    prints response bodies at DEBUG, GetSecretValue's included), whichever handlers exist
    now or are added later.
    """
    previous = logging.getLogRecordFactory()
    if getattr(previous, "di_archiver_redacts", False):
        return

    def factory(*args: object, **kwargs: object) -> logging.LogRecord:
        return _scrub_record(previous(*args, **kwargs))

    factory.di_archiver_redacts = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)
