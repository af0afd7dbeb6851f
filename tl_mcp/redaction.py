"""Secrets (the API key, bearer tokens, state keys) masked wherever outside data enters or logs leave.

A :class:`Redactor` knows each secret in the spellings an echo could use: as is, percent-encoded, and
base64 (standard and URL-safe, at each of the three byte alignments a secret can have inside a longer
base64 text); and each of those inside a JSON string, where any of its characters may be a JSON escape
(``\\u0074`` in either case of hex, ``\\/``, ``\\"``). The API client runs every upstream response
(body, headers, stream chunks, transport errors) through one before anything parses it
(``tl_mcp.api._http``), and
:func:`install_log_redaction` puts a :class:`RedactingFilter` on the log handlers, which masks every
secret registered with :data:`SECRETS` in every record, whichever library wrote it.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import threading
from collections.abc import Iterable
from urllib.parse import quote, quote_plus

MASK = "***"
#: Shorter secrets are not masked: they would mask ordinary text (and no real key is that short).
MIN_SECRET_CHARS = 4
#: Derived spellings (a base64 core, …) shorter than this are not masked either, for the same reason.
_MIN_FORM_CHARS = 6


def _base64_cores(raw: bytes) -> set[str]:
    """The base64 characters that depend on ``raw`` alone, wherever it sits in a longer base64 text."""
    cores: set[str] = set()
    for offset in range(3):
        encoded = base64.b64encode(bytes(offset) + raw).decode()
        first = -(-8 * offset // 6)  # characters that also carry bits of the bytes before
        last = (8 * (offset + len(raw))) // 6  # characters made of secret bits only end here
        core = encoded[first:last]
        cores |= {core, core.replace("+", "-").replace("/", "_")}
    return cores


def spellings(secret: str) -> set[str]:
    """``secret`` and the forms an upstream could echo it in (each also matched JSON-escaped, see
    :func:`json_string_pattern`)."""
    forms = {secret, quote(secret, safe=""), quote_plus(secret)}
    forms |= {re.sub(r"%[0-9A-F]{2}", lambda m: m.group().lower(), f) for f in list(forms)}
    forms |= _base64_cores(secret.encode())
    # A line break never belongs to a secret: streams are masked a line at a time (see MaskingStream).
    return {f for f in forms if len(f) >= _MIN_FORM_CHARS and "\n" not in f and "\r" not in f}


def json_string_pattern(form: str) -> tuple[str, int]:
    """A regex matching ``form`` with each character as is or in any spelling a JSON string allows, and the
    most UTF-8 bytes a match can take. Every escape is covered, not one encoder's choice: an upstream may
    escape any character, in either case of hex, and only some of them; the JSON means the same."""
    parts: list[str] = []
    longest = 0
    for char in form:
        units = char.encode("utf-16-be")
        hexes = [f"{int.from_bytes(units[i : i + 2]):04x}" for i in range(0, len(units), 2)]
        escape = "".join(f"\\u{h}" for h in hexes)
        options = [re.escape(char), "".join(f"\\\\u(?i:{h})" for h in hexes)]
        short = json.dumps(char)[1:-1]
        if short not in (char, escape):
            options.append(re.escape(short))  # \" \\ \n …
        if char == "/":
            options.append(re.escape("\\/"))
        parts.append(f"(?:{'|'.join(options)})")
        longest += max(len(char.encode()), len(escape), len(short))
    return "".join(parts), longest


class Redactor:
    """Masks a set of secrets in text and bytes. Thread-safe; secrets can be added at any time."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._lock = threading.Lock()
        self._forms: set[str] = set()
        # (any spelling, JSON escapes included; the literal forms alone): a value without a backslash
        # cannot hold an escape, so the cheap pattern serves most text, log lines and stream lines.
        self._text: tuple[re.Pattern[str], re.Pattern[str]] | None = None
        self._bytes: tuple[re.Pattern[bytes], re.Pattern[bytes]] | None = None
        self.longest = 0
        self.add(*secrets)

    def add(self, *secrets: str) -> None:
        new = set()
        for secret in secrets:
            if secret and len(secret) >= MIN_SECRET_CHARS:
                new |= spellings(secret)
        with self._lock:
            if new <= self._forms:
                return
            self._forms |= new
            # Longest first, so a form that contains another is masked whole.
            ordered = sorted(self._forms, key=len, reverse=True)
            patterns = [json_string_pattern(form) for form in ordered]
            pattern = "|".join(p for p, _ in patterns)
            plain = "|".join(re.escape(form) for form in ordered)
            self._text = (re.compile(pattern), re.compile(plain))
            self._bytes = (re.compile(pattern.encode()), re.compile(plain.encode()))
            self.longest = max(n for _, n in patterns)

    def __bool__(self) -> bool:
        return self._text is not None

    def mask(self, value: str) -> str:
        patterns = self._text
        if patterns is None:
            return value
        return patterns[0 if "\\" in value else 1].sub(MASK, value)

    def mask_bytes(self, value: bytes) -> bytes:
        patterns = self._bytes
        if patterns is None:
            return value
        return patterns[0 if b"\\" in value else 1].sub(MASK.encode(), value)

    def found_in(self, value: bytes) -> bool:
        patterns = self._bytes
        return patterns is not None and patterns[0 if b"\\" in value else 1].search(value) is not None


class LineMasker:
    """Masks a byte stream fed in arbitrary chunks. Complete lines pass at once (an SSE event is never
    held back); only a line's unfinished tail, at most one secret long, waits for the next chunk."""

    def __init__(self, redactor: Redactor) -> None:
        self._redactor = redactor
        self._tail = b""

    def feed(self, chunk: bytes) -> bytes:
        if not self._redactor:
            return chunk
        # Every complete secret is masked; what may still be the start of one is after the last line
        # break and shorter than the longest secret, so that is all that waits.
        data = self._redactor.mask_bytes(self._tail + chunk)
        cut = max(data.rfind(b"\n") + 1, len(data) - (self._redactor.longest - 1))
        self._tail = data[cut:]
        return data[:cut]

    def flush(self) -> bytes:
        tail, self._tail = self._tail, b""
        return self._redactor.mask_bytes(tail)


#: Every secret of this process, for the log filter: configured ones and each API client's key.
SECRETS = Redactor()


class RedactingFilter(logging.Filter):
    """Masks every secret of ``redactor`` in a record's message, arguments, traceback and stack."""

    def __init__(self, redactor: Redactor = SECRETS) -> None:
        super().__init__()
        self._redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: logging reports it, and must not print the secret doing so
            message = f"{record.msg} {record.args!r}"
        masked = self._mask(message)
        if masked != message:  # untouched records keep their arguments (formatters may read them)
            record.msg, record.args = masked, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self._mask(record.exc_text)
        if record.stack_info:
            record.stack_info = self._mask(record.stack_info)
        return True

    def _mask(self, text: str) -> str:
        # URL credentials are masked by shape: they are the caller's, never registered as secrets.
        return mask_urls(self._redactor.mask(text))


_filter = RedactingFilter()


def redact_logger(name: str) -> None:
    """Put the process-wide filter on the logger ``name`` itself: every record it logs is masked, whichever
    handlers (a host application's, pytest's) end up with it."""
    logger = logging.getLogger(name)
    if _filter not in logger.filters:
        logger.addFilter(_filter)


def install_log_redaction(*loggers: logging.Logger) -> None:
    """Put the process-wide filter on every handler of ``loggers`` (the root logger by default)."""
    for logger in loggers or (logging.getLogger(),):
        for handler in logger.handlers:
            if _filter not in handler.filters:
                handler.addFilter(_filter)


# Query (and fragment) parameters whose value is a credential: presigned S3 (X-Amz-Signature,
# X-Amz-Credential, X-Amz-Security-Token), GCS (X-Goog-Signature, X-Goog-Credential), Azure SAS (sig),
# CloudFront (Signature, Policy, Key-Pair-Id), Azure account keys (AccountKey), and the usual token= /
# access_token= / jwt= / hmac= / pass= / any *key=. Masking a harmless value only costs its echo.
_SECRET_PARAM = re.compile(
    r"(?i)token|sig|secret|passw|pwd|^pw$|^pass$|jwt|hmac|credential|api[-_]?key|key$|auth|session|^policy$|key-pair-id"
)
_PARAM = re.compile(r"(?P<lead>[?&#;])(?P<name>[^=&#;]*)=(?P<value>[^&#;]*)")
#: An http(s) URL inside free text (a log line, an upstream error); quotes and brackets end it, and so
#: does the next URL (joined by a comma, or a redirect target in a query), which is masked on its own.
#: Slashes may be JSON-escaped (``https:\\/\\/``): an upstream body quoted in a message.
_URL_IN_TEXT = re.compile(r"(?i)\bhttps?:(?:\\?/){2}(?:(?!https?:(?:\\?/){2})[^\s'\"<>`])+")


def display_url(url: str) -> str:
    """``url`` as it may be shown (results, progress, errors, logs): the password of its userinfo (or a
    userinfo that is a bare token) and every credential-like query or fragment value become ``***``.
    The real URL is what goes upstream; this is only ever its echo."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    cut = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    netloc, tail = rest[:cut], rest[cut:]
    userinfo, at, host = netloc.rpartition("@")
    if at:
        user, colon, _password = userinfo.partition(":")
        netloc = f"{user}:{MASK}@{host}" if colon else f"{MASK}@{host}"

    def masked(m: re.Match[str]) -> str:
        if not _SECRET_PARAM.search(m["name"]) or not m["value"]:
            return m.group()
        return f"{m['lead']}{m['name']}={MASK}"

    return f"{scheme}://{netloc}{_PARAM.sub(masked, tail)}"


def mask_urls(text: str) -> str:
    """Every http(s) URL in ``text`` as :func:`display_url` shows it."""
    if "://" not in text and ":\\/\\/" not in text:
        return text

    def shown(m: re.Match[str]) -> str:
        url = m.group()
        if "\\/" not in url:
            return display_url(url)
        return display_url(url.replace("\\/", "/")).replace("/", "\\/")

    return _URL_IN_TEXT.sub(shown, text)
