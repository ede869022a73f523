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
import mailbox
import re
import tempfile
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
    """Size caps that keep a hostile message cheap; whatever they cut is flagged `truncated`."""

    max_body_chars: int = 100_000  # visible text kept per email
    max_message_bytes: int = 25 * 2**20  # raw bytes read per message (headers, all parts)


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


def html_to_text(html: str) -> tuple[str, list[str]]:
    """Visible text and the link targets of an HTML document. Never executes or fetches."""
    parser = _VisibleText()
    try:
        parser.feed(html)
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

def _declared_charsets(msg: email.message.Message) -> list[str]:
    try:
        return [c for c in msg.get_charsets() if c]
    except Exception:
        return []


def _header(msg: email.message.Message, name: str) -> str:
    """A header as text. Raw 8-bit headers (no encoded-words, common in old spam) are
    decoded with the message's declared charset; malformed ones leniently."""
    raw = next((v for k, v in msg.raw_items() if k.lower() == name), None)
    if raw is None:
        return ""
    if any("\udc80" <= ch <= "\udcff" for ch in raw):  # undecoded 8-bit bytes, kept as surrogates
        data = raw.encode("ascii", "surrogateescape")
        charsets = _declared_charsets(msg)
        return decode_bytes(data, charsets[0] if charsets else None)
    try:
        return str(msg.get(name))
    except Exception:
        try:
            return str(email.header.make_header(email.header.decode_header(raw)))
        except Exception:
            return raw


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
    cut = len(raw) > limits.max_message_bytes
    raw = raw[: limits.max_message_bytes]
    try:
        msg = email.message_from_bytes(raw, policy=email.policy.default)
    except Exception as exc:  # the parser is lenient; this is a last resort
        raise ParseError(f"not an RFC822 message: {type(exc).__name__}: {exc}") from exc
    fields, truncated = _fields_from_message(msg, limits.max_body_chars)
    return fields, truncated or cut


def _fields_from_message(msg: email.message.Message, max_body_chars: int) -> tuple[RawFields, bool]:
    plain: list[str] = []
    html: list[str] = []
    links: list[str] = []
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
                text, found = html_to_text(_part_text(part))
                html.append(text)
                links.extend(found)
            elif ctype.startswith("text/") or ctype == "message/rfc822":
                plain.append(_part_text(part))
        except Exception:
            continue  # one broken part must not lose the rest of the message
    # Prefer the plain alternative; HTML-only messages get their visible text.
    body = "\n\n".join(t for t in (plain or html) if t.strip())
    truncated = len(body) > max_body_chars
    body = body[:max_body_chars]
    urls = _unique([*extract_urls(body), *links])
    fields = RawFields(
        sender=_header(msg, "from"),
        receiver=_header(msg, "to"),
        date=_header(msg, "date"),
        subject=_header(msg, "subject"),
        body=body,
        urls=urls,
    )
    return fields, truncated


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


def _open_maybe_gzip(path: Path):
    with open(path, "rb") as handle:
        magic = handle.read(2)
    return gzip.open(path, "rb") if magic == b"\x1f\x8b" else open(path, "rb")


def read_eml(path: Path, limits: ParseLimits = DEFAULT_LIMITS) -> tuple[RawFields, bool]:
    """Parse one .eml / raw RFC822 file (gzip allowed); reads no more than the size cap."""
    with _open_maybe_gzip(path) as handle:
        return parse_message_bytes(handle.read(limits.max_message_bytes + 1), limits)


def iter_mbox(path: Path, limits: ParseLimits = DEFAULT_LIMITS) -> Iterator[tuple[str, RawFields | ParseError, bool]]:
    """Yield (key, fields or error, truncated) for every message of an mbox file (gzip allowed).

    mailbox.mbox needs a real file; gzipped mboxes are streamed to a temporary file first.
    """
    tmp = None
    try:
        if path.suffix == ".gz":
            tmp = tempfile.NamedTemporaryFile(suffix=".mbox", delete=False)
            with gzip.open(path, "rb") as src:
                while chunk := src.read(1 << 20):
                    tmp.write(chunk)
            tmp.close()
            box_path = tmp.name
        else:
            box_path = str(path)
        box = mailbox.mbox(box_path, factory=None, create=False)
        try:
            for key in box.iterkeys():
                ref = f"{path.name}#{key}"
                try:
                    raw = box.get_bytes(key)
                    fields, truncated = parse_message_bytes(raw, limits)
                    yield ref, fields, truncated
                except ParseError as exc:
                    yield ref, exc, False
        finally:
            box.close()
    finally:
        if tmp is not None:
            Path(tmp.name).unlink(missing_ok=True)


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
    list: then URLs are extracted from the body instead.
    """
    csv.field_size_limit(1 << 30)
    with _open_maybe_gzip(path) as raw:
        text = io.TextIOWrapper(raw, encoding="utf-8", errors="replace", newline="")
        reader = csv.DictReader(text)
        if reader.fieldnames is None:
            raise ParseError(f"{path.name}: empty CSV file")
        columns = detect_csv_columns(list(reader.fieldnames))
        row_number = 1
        while True:
            try:
                row = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                row_number += 1
                yield f"{path.name}:row{row_number}", ParseError(f"broken CSV quoting: {exc}"), None, False
                continue
            row_number += 1
            ref = f"{path.name}:row{row_number}"
            try:
                label = map_label(row.get(columns["label"]) or "")
            except ParseError as exc:
                yield ref, exc, None, False
                continue
            body = row.get(columns["body"]) or ""
            truncated = len(body) > limits.max_body_chars
            body = body[: limits.max_body_chars]
            url_cell = (row.get(columns["urls"]) or "") if "urls" in columns else ""
            listed = [] if url_cell.strip() in {"", "0", "1"} else extract_urls(url_cell)
            fields = RawFields(
                sender=row.get(columns.get("sender", ""), "") or "",
                receiver=row.get(columns.get("receiver", ""), "") or "",
                date=row.get(columns.get("date", ""), "") or "",
                subject=row.get(columns.get("subject", ""), "") or "",
                body=body,
                urls=_unique([*listed, *extract_urls(body)]),
            )
            yield ref, fields, label, truncated


def parse_pasted_text(text: str, limits: ParseLimits = DEFAULT_LIMITS) -> tuple[RawFields, bool]:
    """A pasted email: a full RFC822 message when it starts with headers, else a plain body."""
    if not text.strip():
        raise ParseError("empty email: paste a message or its text")
    if re.match(r"(?is)^(from |[a-z-]+: )", text.lstrip()):
        return parse_message_bytes(text.encode("utf-8", "surrogatepass"), limits)
    body = text[: limits.max_body_chars]
    return RawFields("", "", "", "", body, _unique(extract_urls(body))), len(text) > limits.max_body_chars
