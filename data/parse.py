"""Parse raw email into Email records with the standard library's email package.

Email is hostile input: every function here returns a parse or raises ParseError with
a message that says what was wrong. Charsets are decoded as declared, sniffed when the
declaration is missing or unknown, and undecodable bytes are replaced, never fatal.
"""

from __future__ import annotations

import codecs
import email
import email.header
import email.policy
import re
from dataclasses import dataclass
from html.parser import HTMLParser

from data.normalise import content_hash, normalisation_name, normalise_text
from data.records import Email


class ParseError(ValueError):
    """An input that cannot be read as an email; the message says why."""


@dataclass(frozen=True)
class ParseLimits:
    """Size caps that keep a hostile message cheap; whatever they cut is flagged `truncated`.

    The defaults bound any single message to well under 2 s and 512 MB (benchmarks/
    bench_hostile.py measures the worst inputs we know): the standard library's parser
    costs about 40 bytes of memory per input byte on short-line messages, so the raw cap
    sets the memory bound, and the other caps stop the parts of it whose cost grows
    faster than linearly (header decoding, MIME part count, HTML nesting).
    """

    max_body_chars: int = 100_000  # visible text kept per email
    max_message_bytes: int = 25 * 2**20  # raw bytes read per message (headers, all parts)
    max_header_chars: int = 2_000  # decoded text kept of sender, receiver and subject each
    max_date_chars: int = 200  # decoded text kept of the date
    max_message_lines: int = 400_000  # lines read per message (a 25 MiB base64 attachment has 340,000)
    max_header_block_bytes: int = 256 * 2**10  # the top-level headers together; later header lines are dropped
    max_mime_parts: int = 1_000  # MIME boundary lines read; the message is cut at the next one
    max_html_chars: int = 1_000_000  # HTML fed to the text extractor, over all HTML parts
    # Bytes of one mbox message read and discarded past the raw cap (to find the next message)
    # before the rest of the file is given up: a gzip bomb inflating to 10 GB would otherwise
    # cost seconds per GB to skip.
    max_mbox_skip_bytes: int = 256 * 2**20


DEFAULT_LIMITS = ParseLimits()


@dataclass(frozen=True)
class RawFields:
    """What a parser extracts before normalisation and labelling."""

    sender: str
    receiver: str
    date: str
    subject: str
    body: str
    urls: tuple[str, ...]


# ---------------------------------------------------------------- text helpers

URL_PATTERN = re.compile(r"""(?:https?://|www\.)[^\s<>"'`{}|\\^\[\]]+""", re.IGNORECASE)


def extract_urls(text: str) -> list[str]:
    """URLs written in text, trailing punctuation removed, in order of appearance."""
    return [m.group(0).rstrip(".,;:!?)") for m in URL_PATTERN.finditer(text)]


def unique(items) -> tuple[str, ...]:
    return tuple(dict.fromkeys(i for i in items if i))


def capped(text: str, limit: int) -> tuple[str, bool]:
    """`text` cut to `limit` characters, and whether it was cut."""
    return (text[:limit], True) if len(text) > limit else (text, False)


class _VisibleText(HTMLParser):
    """HTML to the text a reader would see; script/style dropped, links collected."""

    _HIDDEN = {"script", "style", "head", "title", "noscript", "template"}
    _BLOCK = {"p", "div", "br", "tr", "li", "h1", "h2", "h3", "h4", "h5", "h6", "table", "hr", "blockquote"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.links: list[str] = []
        self._hidden_depth = 0

    def handle_starttag(self, tag, attrs):
        if tag in self._HIDDEN:
            self._hidden_depth += 1
        if tag in self._BLOCK:
            self.parts.append("\n")
        for name, value in attrs:
            if name in {"href", "src", "action"} and value and re.match(r"(?i)(https?:|www\.)", value.strip()):
                self.links.append(value.strip())

    def handle_endtag(self, tag):
        if tag in self._HIDDEN and self._hidden_depth:
            self._hidden_depth -= 1
        if tag in self._BLOCK:
            self.parts.append("\n")

    def handle_data(self, data):
        if not self._hidden_depth:
            self.parts.append(data)


def html_to_text(html: str, max_chars: int = DEFAULT_LIMITS.max_html_chars) -> tuple[str, list[str]]:
    """Visible text and the link targets of an HTML document. Never executes or fetches.

    Only the first `max_chars` characters are read: html.parser's time grows with tag
    count (20 MB of nested <div> took 14 s), so the cap bounds it."""
    parser = _VisibleText()
    try:
        parser.feed(html[:max_chars])
        parser.close()
    except Exception:  # html.parser is lenient; this guards pathological input only
        pass
    return "".join(parser.parts), parser.links


def decode_bytes(payload: bytes, declared: str | None) -> str:
    """Decode with the declared charset when Python knows it, else sniff; replace the rest."""
    if declared:
        try:
            codecs.lookup(declared)
            return payload.decode(declared, errors="replace")
        except (LookupError, ValueError):
            pass  # unknown or bogus charset ("default", "x-unknown"): fall through to sniffing
    try:
        return payload.decode("utf-8")
    except UnicodeDecodeError:
        return payload.decode("cp1252", errors="replace")


# ---------------------------------------------------------------- RFC822 / MIME
#
# Messages are split into parts by the standard library with its compat32 policy, whose
# header handling is linear in a header's size. The modern policy's structured header
# parser is not (a 280 KB Subject took 2.4 s and 2.7 GB, a 980 KB one was killed), so it
# only ever sees the four headers we read, each cut to a few kilobytes first.

_HEADER_BLOCK_END = re.compile(rb"\r?\n\r?\n")
_MIME_BOUNDARY_LINE = b"\n--"
# Raw header text kept per decoded character: encoded words take up to ~4 bytes each
# ("=?utf-8?q?=C3=A9?=" for one "é" in a run of them).
_RAW_HEADER_FACTOR = 4


_HEADER_UNIT = re.compile(rb"[^\n]*(?:\n[ \t][^\n]*)*(?:\n|$)")  # one header with its folded lines


def _bounded_header_block(block: bytes, limits: ParseLimits) -> tuple[bytes, bool]:
    """The top-level headers with each cut to the per-header raw cap and all of them to the
    block cap, so one huge header does not hide the ones after it."""
    per_header = limits.max_header_chars * _RAW_HEADER_FACTOR
    kept, size, cut = [], 0, False
    for unit in _HEADER_UNIT.finditer(block):
        start, end = unit.span()
        if start == end:
            break
        if end - start > per_header:
            end, cut = start + per_header, True
        if size + end - start > limits.max_header_block_bytes:
            cut = True
            break
        piece = block[start:end]
        kept.append(piece if piece.endswith(b"\n") else piece + b"\n")
        size += end - start
    return b"".join(kept).rstrip(b"\r\n"), cut


def _bounded_message(raw: bytes, limits: ParseLimits) -> tuple[bytes, bool]:
    """The message cut to what the parser may read, and whether anything was cut: the raw
    size cap, the header caps, the line cap and the MIME part cap."""
    cut = len(raw) > limits.max_message_bytes
    raw = raw[: limits.max_message_bytes]
    end = match.start() if (match := _HEADER_BLOCK_END.search(raw)) else len(raw)
    if end > limits.max_header_chars * _RAW_HEADER_FACTOR:  # one header or the block may be over its cap
        head, cut_head = _bounded_header_block(raw[:end], limits)
        if cut_head:
            raw, cut = head + raw[end:], True
    if raw.count(b"\n") > limits.max_message_lines:  # the parser's cost is per line: cut at the last one kept
        position = -1
        for _ in range(limits.max_message_lines):
            position = raw.find(b"\n", position + 1)
        raw, cut = raw[: position + 1], True
    position = 0
    for _ in range(limits.max_mime_parts + 1):
        position = raw.find(_MIME_BOUNDARY_LINE, position + 1)
        if position < 0:
            break
    else:  # more boundary lines than parts allowed: stop before the next one
        raw, cut = raw[: position + 1], True
    return raw, cut


def _declared_charsets(msg: email.message.Message) -> list[str]:
    try:
        return [c for c in msg.get_charsets() if c]
    except Exception:
        return []


def _header(msg: email.message.Message, name: str, limit: int) -> tuple[str, bool]:
    """A header as text, at most `limit` characters, and whether it was cut.

    Raw 8-bit headers (no encoded-words, common in old spam) are decoded with the
    message's declared charset; encoded words by the modern policy's parser on a raw
    value cut to a bounded size; malformed ones leniently, falling back to the raw text."""
    raw = next((v for k, v in msg.raw_items() if k.lower() == name), None)
    if raw is None:
        return "", False
    raw, cut = capped("".join(str(raw).splitlines()), limit * _RAW_HEADER_FACTOR)  # unfolded
    if any("\udc80" <= ch <= "\udcff" for ch in raw):  # undecoded 8-bit bytes, kept as surrogates
        data = raw.encode("ascii", "surrogateescape")
        charsets = _declared_charsets(msg)
        text = decode_bytes(data, charsets[0] if charsets else None)
    else:
        try:
            text = str(email.policy.default.header_factory(name, raw))
        except Exception:
            try:
                text = str(email.header.make_header(email.header.decode_header(raw)))
            except Exception:
                text = raw
    text, cut_text = capped(text, limit)
    return text, cut or cut_text


def _part_text(part: email.message.Message) -> str:
    payload = part.get_payload(decode=True)
    if payload is None:  # not a leaf, or an unparsable payload
        raw = part.get_payload()
        return raw if isinstance(raw, str) else ""
    try:
        declared = part.get_content_charset()
    except Exception:
        declared = None
    return decode_bytes(payload, declared)


def parse_message_bytes(raw: bytes, limits: ParseLimits = DEFAULT_LIMITS) -> tuple[RawFields, bool]:
    """Parse one RFC822 message; returns its fields and whether a size cap cut it."""
    if not raw or not raw.strip():
        raise ParseError("empty message: no headers and no body")
    raw, cut = _bounded_message(raw, limits)
    try:
        msg = email.message_from_bytes(raw, policy=email.policy.compat32)
    except RecursionError:
        raise ParseError("MIME structure nested too deeply to read") from None
    except Exception as exc:  # the parser is lenient; this is a last resort
        raise ParseError(f"not an RFC822 message: {type(exc).__name__}: {exc}") from exc
    fields, truncated = _fields_from_message(msg, limits)
    return fields, truncated or cut


def _fields_from_message(msg: email.message.Message, limits: ParseLimits) -> tuple[RawFields, bool]:
    plain: list[str] = []
    html: list[str] = []
    links: list[str] = []
    html_budget = limits.max_html_chars
    truncated = False
    try:
        parts = list(msg.walk())
    except RecursionError:
        raise ParseError("MIME structure nested too deeply to read") from None
    for part in parts:
        try:
            if part.is_multipart():
                continue
            ctype = part.get_content_type()
            if part.get_content_disposition() == "attachment":
                continue
            if ctype == "text/html":
                source = _part_text(part)
                truncated |= len(source) > html_budget
                text, found = html_to_text(source, html_budget)
                html_budget = max(0, html_budget - len(source))
                html.append(text)
                links.extend(found)
            elif ctype.startswith("text/") or ctype == "message/rfc822":
                plain.append(_part_text(part))
        except RecursionError:
            raise ParseError("MIME structure nested too deeply to read") from None
        except Exception:
            continue  # one broken part must not lose the rest of the message
    # Prefer the plain alternative; HTML-only messages get their visible text.
    body, cut_body = capped("\n\n".join(t for t in (plain or html) if t.strip()), limits.max_body_chars)
    urls = unique([*extract_urls(body), *links])
    sender, cut_sender = _header(msg, "from", limits.max_header_chars)
    receiver, cut_receiver = _header(msg, "to", limits.max_header_chars)
    date, cut_date = _header(msg, "date", limits.max_date_chars)
    subject, cut_subject = _header(msg, "subject", limits.max_header_chars)
    fields = RawFields(sender=sender, receiver=receiver, date=date, subject=subject, body=body, urls=urls)
    return fields, truncated or cut_body or cut_sender or cut_receiver or cut_date or cut_subject


def make_email(fields: RawFields, corpus: str, label: int, source_ref: str,
               lowercase: bool = False, truncated: bool = False) -> Email:
    """Normalise fields and give the email its content-hash id."""
    subject = normalise_text(fields.subject, lowercase)
    body = normalise_text(fields.body, lowercase)
    return Email(
        id=content_hash(subject, body),
        corpus=corpus,
        sender=normalise_text(fields.sender, lowercase),
        receiver=normalise_text(fields.receiver, lowercase),
        date=normalise_text(fields.date),
        subject=subject,
        body=body,
        urls=fields.urls,
        label=label,
        source_ref=source_ref,
        normalisation=normalisation_name(lowercase),
        truncated=truncated,
    )


def parse_pasted_text(text: str, limits: ParseLimits = DEFAULT_LIMITS) -> tuple[RawFields, bool]:
    """A pasted email: a full RFC822 message when it starts with headers, else a plain body."""
    if not text.strip():
        raise ParseError("empty email: paste a message or its text")
    if re.match(r"(?is)^(from |[a-z-]+: )", text[:1000].lstrip()):
        return parse_message_bytes(text[: limits.max_message_bytes + 1].encode("utf-8", "surrogatepass"), limits)
    body, truncated = capped(text, limits.max_body_chars)
    return RawFields("", "", "", "", body, unique(extract_urls(body))), truncated
