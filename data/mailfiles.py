"""Files of messages: one .eml (or .eml.gz), and mbox files (gzip or not) split at their From_
lines while they are read, so no message past the size cap is ever held whole. Each message is
parsed by data.parse; a fault of the file itself (unreadable, a directory, a dangling link, a
corrupt gzip stream) becomes a ParseError for that file.
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Iterator
from pathlib import Path

from data.parse import DEFAULT_LIMITS, ParseError, ParseLimits, RawFields, parse_message_bytes

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


def open_maybe_gzip(path: Path):
    """The file's bytes as a stream, decompressed on the fly when it starts with gzip's magic."""
    with open(path, "rb") as handle:
        magic = handle.read(2)
    return gzip.open(path, "rb") if magic == b"\x1f\x8b" else open(path, "rb")


def read_eml(path: Path, limits: ParseLimits = DEFAULT_LIMITS) -> tuple[RawFields, bool]:
    """Parse one .eml / raw RFC822 file (gzip allowed); reads no more than the size cap."""
    try:
        with open_maybe_gzip(path) as handle:
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
        with open_maybe_gzip(path) as stream:
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
