"""Parse raw email into Email records with the standard library's email package.

Email is hostile input: every function here returns a parse or raises ParseError with
a message that says what was wrong. Charsets are decoded as declared, sniffed when the
declaration is missing or unknown, and undecodable bytes are replaced, never fatal.
"""

from __future__ import annotations

import codecs
import csv
import email
import email.header
import email.policy
import gzip
import io
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

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


def _unique(items) -> tuple[str, ...]:
    return tuple(dict.fromkeys(i for i in items if i))


def _capped(text: str, limit: int) -> tuple[str, bool]:
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
    raw, cut = _capped("".join(str(raw).splitlines()), limit * _RAW_HEADER_FACTOR)  # unfolded
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
    text, cut_text = _capped(text, limit)
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
    body, cut_body = _capped("\n\n".join(t for t in (plain or html) if t.strip()), limits.max_body_chars)
    urls = _unique([*extract_urls(body), *links])
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


# Faults of a file rather than of its content: unreadable, a directory, a dangling link,
# a corrupt or truncated gzip stream. Each becomes a ParseError for that file.
FILE_FAULTS = (OSError, EOFError, zlib.error)


def file_fault(path: Path, exc: BaseException) -> ParseError:
    """A ParseError saying why a file could not be read."""
    if isinstance(exc, IsADirectoryError):
        reason = "is a directory, not a file"
    elif isinstance(exc, FileNotFoundError):
        reason = "does not exist (a dangling link?)"
    elif isinstance(exc, (EOFError, zlib.error, gzip.BadGzipFile)):
        reason = f"is a corrupt or truncated gzip file ({exc})"
    else:
        reason = f"cannot be read ({type(exc).__name__}: {exc})"
    return ParseError(f"{path.name} {reason}")


def _open_maybe_gzip(path: Path):
    """The file's bytes as a stream, decompressed on the fly when it starts with gzip's magic."""
    with open(path, "rb") as handle:
        magic = handle.read(2)
    return gzip.open(path, "rb") if magic == b"\x1f\x8b" else open(path, "rb")


def read_eml(path: Path, limits: ParseLimits = DEFAULT_LIMITS) -> tuple[RawFields, bool]:
    """Parse one .eml / raw RFC822 file (gzip allowed); reads no more than the size cap."""
    try:
        with _open_maybe_gzip(path) as handle:
            raw = handle.read(limits.max_message_bytes + 1)
    except FILE_FAULTS as exc:
        raise file_fault(path, exc) from exc
    return parse_message_bytes(raw, limits)


_LINE_PIECE = 1 << 16  # an mbox is read in lines of at most this many bytes: a huge line comes in pieces


class _MessageTooLarge(Exception):
    """An mbox message went on past the skip limit: the rest of the file is not read."""


def _mbox_messages(stream, max_bytes: int, max_skipped: int) -> Iterator[tuple[bytes, bool]]:
    """Split an mbox byte stream at its "From " lines as mailbox.mbox does (the blank line
    before a From_ line is not part of the message), keeping at most `max_bytes` of each
    message and discarding the rest as it is read; a message that goes on for more than
    `max_skipped` bytes past that is yielded cut, then _MessageTooLarge is raised."""
    kept: list[bytes] = []
    size, cut, started, line_start, in_from_line, last_was_empty = 0, False, False, True, False, False
    skipped = 0

    def message() -> tuple[bytes, bool]:
        raw = b"".join(kept)
        return (raw[:-1] if last_was_empty and raw.endswith(b"\n") else raw), cut

    while piece := stream.readline(_LINE_PIECE):
        starts_line, line_start = line_start, piece.endswith(b"\n")
        if starts_line and piece.startswith(b"From "):
            if started:
                yield message()
            kept, size, cut, started, in_from_line, last_was_empty = [], 0, False, True, not line_start, False
            skipped = 0
            continue
        if in_from_line:  # the rest of a From_ line longer than one piece
            in_from_line = not line_start
            continue
        if not started:  # text before the first From_ line belongs to no message
            continue
        last_was_empty = starts_line and piece == b"\n"
        room = max_bytes - size
        if len(piece) > room:
            skipped += len(piece) - room
            piece, cut = piece[:room], True
            if skipped > max_skipped:
                if kept:
                    yield message()
                raise _MessageTooLarge
        if piece:
            kept.append(piece)
            size += len(piece)
    if started:
        yield message()


def iter_mbox(path: Path, limits: ParseLimits = DEFAULT_LIMITS) -> Iterator[tuple[str, RawFields | ParseError, bool]]:
    """Yield (key, fields or error, truncated) for every message of an mbox file (gzip allowed).

    The file is streamed (decompressed on the fly): no more than the message cap of any one
    message is held in memory. A file fault (a truncated gzip stream, say) ends the file with
    one ParseError after the messages read before it."""
    count = 0
    try:
        with _open_maybe_gzip(path) as stream:
            for raw, cut in _mbox_messages(stream, limits.max_message_bytes, limits.max_mbox_skip_bytes):
                ref = f"{path.name}#{count}"
                count += 1
                try:
                    fields, truncated = parse_message_bytes(raw, limits)
                    yield ref, fields, truncated or cut
                except ParseError as exc:
                    yield ref, exc, False
    except FILE_FAULTS as exc:
        fault = file_fault(path, exc)
        yield f"{path.name}#{count}", ParseError(f"{fault}; the {count} messages before it were kept"), False
    except _MessageTooLarge:
        limit = (limits.max_message_bytes + limits.max_mbox_skip_bytes) / 2**20
        yield (f"{path.name}#{count}", ParseError(
            f"{path.name}: message #{count - 1} goes on past {limit:.0f} MiB (a decompression bomb?); it was kept "
            f"cut at the message cap, and the rest of the file was not read"), False)


# ---------------------------------------------------------------- CSV corpora

# Column name → field, first match wins; compared case-insensitively.
CSV_COLUMNS = {
    "sender": ("sender", "from", "from_address"),
    "receiver": ("receiver", "to", "recipient"),
    "date": ("date", "sent", "timestamp"),
    "subject": ("subject", "title"),
    "body": ("body", "text", "content", "message", "email text", "email_text"),
    "label": ("label", "class", "category", "email type", "email_type", "spam"),
    "urls": ("urls", "url", "links"),
}

POSITIVE_LABELS = {"1", "spam", "phishing", "phish", "phishing email", "malicious", "fraud", "true", "yes"}
NEGATIVE_LABELS = {"0", "ham", "legitimate", "legit", "safe email", "safe", "benign", "false", "no"}


def map_label(value: str) -> int:
    """1 for phishing/spam, 0 for legitimate; ParseError for anything else."""
    key = str(value).strip().lower()
    if key in POSITIVE_LABELS:
        return 1
    if key in NEGATIVE_LABELS:
        return 0
    raise ParseError(f"unknown label {value!r}: expected 0/1, spam/ham or phishing/legitimate")


def detect_csv_columns(header: list[str]) -> dict[str, str]:
    """Map our field names to the CSV's own column names."""
    lowered = {h.strip().lower(): h for h in header}
    found = {}
    for field_name, candidates in CSV_COLUMNS.items():
        for candidate in candidates:
            if candidate in lowered:
                found[field_name] = lowered[candidate]
                break
    missing = [f for f in ("body", "label") if f not in found]
    if missing:
        raise ParseError(
            f"CSV has no {' or '.join(missing)} column; columns are {header}. "
            f"Expected one of {[CSV_COLUMNS[m] for m in missing]}"
        )
    return found


def iter_csv(path: Path, limits: ParseLimits = DEFAULT_LIMITS) -> Iterator[tuple[str, RawFields | ParseError, int | None, bool]]:
    """Yield (row ref, fields or error, label or None, truncated) for each CSV row (gzip allowed).

    A `urls` column that holds only 0/1 is a "has a URL" flag (as in Nazario), not a
    list: then URLs are extracted from the body instead. A row is one message: a cell
    longer than the message cap is an error for that row, and a file fault part-way (a
    truncated gzip stream) ends the file with one error after the rows read before it.
    """
    csv.field_size_limit(limits.max_message_bytes)
    try:
        raw = _open_maybe_gzip(path)
    except FILE_FAULTS as exc:
        raise file_fault(path, exc) from exc
    with raw:
        text = io.TextIOWrapper(raw, encoding="utf-8", errors="replace", newline="")
        reader = csv.DictReader(text)
        try:
            fieldnames = reader.fieldnames
        except FILE_FAULTS as exc:
            raise file_fault(path, exc) from exc
        if fieldnames is None:
            raise ParseError(f"{path.name}: empty CSV file")
        columns = detect_csv_columns(list(fieldnames))
        row_number = 1
        while True:
            try:
                row = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                row_number += 1
                yield f"{path.name}:row{row_number}", ParseError(f"broken CSV row: {exc}"), None, False
                continue
            except FILE_FAULTS as exc:
                fault = file_fault(path, exc)
                yield (f"{path.name}:row{row_number + 1}",
                       ParseError(f"{fault}; the {row_number - 1} rows before it were read"), None, False)
                return
            row_number += 1
            ref = f"{path.name}:row{row_number}"
            try:
                label = map_label((row.get(columns["label"]) or "")[:100])
            except ParseError as exc:
                yield ref, exc, None, False
                continue
            fields, truncated = _csv_fields(row, columns, limits)
            yield ref, fields, label, truncated


def _csv_fields(row: dict, columns: dict[str, str], limits: ParseLimits) -> tuple[RawFields, bool]:
    """One CSV row's fields, each cut to its cap, and whether any was cut."""
    def cell(name: str, limit: int) -> tuple[str, bool]:
        return _capped(row.get(columns.get(name, ""), "") or "", limit)

    body, cut_body = cell("body", limits.max_body_chars)
    sender, cut_sender = cell("sender", limits.max_header_chars)
    receiver, cut_receiver = cell("receiver", limits.max_header_chars)
    date, cut_date = cell("date", limits.max_date_chars)
    subject, cut_subject = cell("subject", limits.max_header_chars)
    url_cell, cut_urls = cell("urls", limits.max_body_chars) if "urls" in columns else ("", False)
    listed = [] if url_cell.strip() in {"", "0", "1"} else extract_urls(url_cell)
    fields = RawFields(sender=sender, receiver=receiver, date=date, subject=subject, body=body,
                       urls=_unique([*listed, *extract_urls(body)]))
    return fields, cut_body or cut_sender or cut_receiver or cut_date or cut_subject or cut_urls


def parse_pasted_text(text: str, limits: ParseLimits = DEFAULT_LIMITS) -> tuple[RawFields, bool]:
    """A pasted email: a full RFC822 message when it starts with headers, else a plain body."""
    if not text.strip():
        raise ParseError("empty email: paste a message or its text")
    if re.match(r"(?is)^(from |[a-z-]+: )", text[:1000].lstrip()):
        return parse_message_bytes(text[: limits.max_message_bytes + 1].encode("utf-8", "surrogatepass"), limits)
    body, truncated = _capped(text, limits.max_body_chars)
    return RawFields("", "", "", "", body, _unique(extract_urls(body))), truncated
