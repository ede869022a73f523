"""CSV corpora: column detection (sender, subject, body, label, urls under their many names),
label values, and rows read with the same caps as raw messages (a 50 MB cell is cut, not read)."""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from pathlib import Path

from data.mailfiles import FILE_FAULTS, file_fault, open_maybe_gzip
from data.parse import DEFAULT_LIMITS, ParseError, ParseLimits, RawFields, capped, extract_urls, unique

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
        raw = open_maybe_gzip(path)
    except FILE_FAULTS as exc:
        raise file_fault(path, exc) from exc
    with raw:
        lines = CappedLines(raw, limits.max_message_bytes)
        reader = csv.DictReader(lines)
        try:
            fieldnames = reader.fieldnames
        except FILE_FAULTS as exc:
            raise file_fault(path, exc) from exc
        if lines.dropped:
            raise ParseError(f"{path.name}: line {lines.dropped[0]} is longer than the message cap "
                             f"({limits.max_message_bytes:,} bytes) before the header was read: not a CSV of emails")
        if fieldnames is None:
            raise ParseError(f"{path.name}: empty CSV file")
        columns = detect_csv_columns(list(fieldnames))
        row_number = 1
        while True:
            reported = len(lines.dropped)
            try:
                row = next(reader)
            except StopIteration:
                yield from _dropped_line_errors(path, lines.dropped[reported:], limits)
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
            yield from _dropped_line_errors(path, lines.dropped[reported:], limits)
            row_number += 1
            ref = f"{path.name}:row{row_number}"
            try:
                label = map_label((row.get(columns["label"]) or "")[:100])
            except ParseError as exc:
                yield ref, exc, None, False
                continue
            fields, truncated = _csv_fields(row, columns, limits)
            yield ref, fields, label, truncated


def _dropped_line_errors(path: Path, dropped: list[int], limits: ParseLimits):
    """The row errors of lines CappedLines dropped for their length."""
    for line in dropped:
        yield (f"{path.name}:line{line}", ParseError(
            f"line {line} is longer than the message cap ({limits.max_message_bytes:,} bytes): a field or row "
            f"too large, skipped unread"), None, False)


class CappedLines:
    """The physical lines of a CSV byte stream as text (UTF-8, undecodable bytes replaced), for
    csv.reader. A line longer than `max_bytes` is read in pieces and dropped, never held whole;
    its number goes to `dropped` and an empty line (which csv skips) stands in for it."""

    _LONE_CR = re.compile(r"(?<=\r)(?!\n)")  # old Mac line ends: a line break csv expects to see as one

    def __init__(self, raw, max_bytes: int):
        self.raw = raw
        self.max_bytes = max_bytes
        self.line = 0
        self.dropped: list[int] = []
        self._pending: list[str] = []

    def __iter__(self) -> "CappedLines":
        return self

    def __next__(self) -> str:
        if self._pending:
            return self._pending.pop(0)
        piece = self.raw.readline(self.max_bytes + 1)
        if not piece:
            raise StopIteration
        self.line += 1
        if len(piece) > self.max_bytes and not piece.endswith(b"\n"):
            while piece and not piece.endswith(b"\n"):
                piece = self.raw.readline(1 << 20)
            self.dropped.append(self.line)
            return "\n"
        text = piece.decode("utf-8", errors="replace")
        if "\r" in text:
            first, *self._pending = [part for part in self._LONE_CR.split(text) if part]
            return first
        return text


def _csv_fields(row: dict, columns: dict[str, str], limits: ParseLimits) -> tuple[RawFields, bool]:
    """One CSV row's fields, each cut to its cap, and whether any was cut."""
    def cell(name: str, limit: int) -> tuple[str, bool]:
        return capped(row.get(columns.get(name, ""), "") or "", limit)

    body, cut_body = cell("body", limits.max_body_chars)
    sender, cut_sender = cell("sender", limits.max_header_chars)
    receiver, cut_receiver = cell("receiver", limits.max_header_chars)
    date, cut_date = cell("date", limits.max_date_chars)
    subject, cut_subject = cell("subject", limits.max_header_chars)
    url_cell, cut_urls = cell("urls", limits.max_body_chars) if "urls" in columns else ("", False)
    listed = [] if url_cell.strip() in {"", "0", "1"} else extract_urls(url_cell)
    fields = RawFields(sender=sender, receiver=receiver, date=date, subject=subject, body=body,
                       urls=unique([*listed, *extract_urls(body)]))
    return fields, cut_body or cut_sender or cut_receiver or cut_date or cut_subject or cut_urls
