"""Files of messages: one .eml (or .eml.gz), and mbox files (gzip or not) split at their From_
lines while they are read, so no message past the size cap is ever held whole. Each message is
parsed by data.parse; a fault of the file itself (unreadable, a directory, a dangling link, a
FIFO or device, a corrupt gzip stream) becomes a ParseError for that file.
"""

from __future__ import annotations

import gzip
import os
import stat
import zlib
from collections.abc import Iterator
from pathlib import Path

from data.parse import DEFAULT_LIMITS, ParseError, ParseLimits, RawFields, parse_message_bytes


class NotARegularFile(OSError):
    """A FIFO, device or socket where a file of messages was expected: reading it could block forever."""


# Faults of a file rather than of its content: unreadable, a directory, a dangling link, a FIFO,
# a corrupt or truncated gzip stream. Each becomes a ParseError for that file.
FILE_FAULTS = (OSError, EOFError, zlib.error)


def file_fault(path: Path, exc: BaseException) -> ParseError:
    """A ParseError saying why a file could not be read."""
    if isinstance(exc, NotARegularFile):
        reason = f"is {exc.strerror}, not a regular file: not read"
    elif isinstance(exc, IsADirectoryError):
        reason = "is a directory, not a file"
    elif isinstance(exc, FileNotFoundError):
        reason = "does not exist (a dangling link?)"
    elif isinstance(exc, OSError) and exc.errno == 40:  # ELOOP
        reason = "is a symbolic link loop"
    elif isinstance(exc, (EOFError, zlib.error, gzip.BadGzipFile)):
        reason = f"is a corrupt or truncated gzip file ({exc})"
    else:
        reason = f"cannot be read ({type(exc).__name__}: {exc})"
    return ParseError(f"{path.name} {reason}")


def open_regular_file(path: Path):
    """A binary handle on `path`, refused (NotARegularFile) unless it is a regular file. Opened
    non-blocking and checked on the open descriptor, so a FIFO never blocks and cannot be swapped
    in between the check and the read."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise IsADirectoryError(21, "Is a directory", str(path))
        if not stat.S_ISREG(mode):
            kind = "a FIFO" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode) else "a device"
            raise NotARegularFile(0, kind, str(path))
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


class _GzipOwningFile(gzip.GzipFile):
    """A GzipFile that closes the file it reads when it is closed."""

    def __init__(self, raw):
        super().__init__(fileobj=raw, mode="rb")
        self._raw = raw

    def close(self) -> None:
        try:
            super().close()
        finally:
            self._raw.close()


def open_maybe_gzip(path: Path):
    """The file's bytes as a stream, decompressed on the fly when it starts with gzip's magic.
    Regular files only (open_regular_file)."""
    raw = open_regular_file(path)
    try:
        magic = raw.read(2)
        raw.seek(0)
    except BaseException:
        raw.close()
        raise
    return _GzipOwningFile(raw) if magic == b"\x1f\x8b" else raw


def read_eml(path: Path, limits: ParseLimits = DEFAULT_LIMITS) -> tuple[RawFields, bool]:
    """Parse one .eml / raw RFC822 file (gzip allowed); reads no more than the size cap."""
    try:
        with open_maybe_gzip(path) as handle:
            raw = handle.read(limits.max_message_bytes + 1)
    except FILE_FAULTS as exc:
        raise file_fault(path, exc) from exc
    return parse_message_bytes(raw, limits)


_BLOCK = 1 << 20  # an mbox is read a block at a time and searched for From_ lines at C speed
_FROM_LINE = b"\nFrom "  # a From_ line starts a line


class _MboxGivenUp(Exception):
    """The rest of an mbox file is not read: the message says why."""


class _MboxSplitter:
    """Splits an mbox byte stream at its "From " lines as mailbox.mbox does (the blank line before a
    From_ line is not part of the message), keeping at most the message caps of each message (bytes
    and lines) and discarding the rest as it is read.

    Blocks are searched with bytes.find, never line by line in Python: a file of hundreds of MiB
    of empty lines costs what reading it costs. Past the skip budget, bytes discarded from one
    message, or read before the first From_ line (or in one From_ line), end the file."""

    def __init__(self, limits: ParseLimits):
        self.limits = limits
        self.message: bytearray | None = None  # None until the first From_ line
        self.lines = 0
        self.cut = False
        self.skipped = 0  # bytes of the current message discarded past its caps
        self.outside = 0  # bytes read outside any message: before the first From_ line, or in the current From_ line
        self.in_from_line = False

    def messages(self, stream) -> Iterator[tuple[bytes, bool]]:
        buffer = b"\n"  # the file's first byte starts a line
        eof = False
        while not eof:
            # read1: whatever one step of decompression gives, so a fault part-way (a truncated gzip
            # stream) loses only that step, not the block the messages before it are in.
            block = stream.read1(_BLOCK)
            eof = not block
            buffer = yield from self._scan(buffer + block, eof)
        if self.message is not None:
            yield self._finished()

    def _scan(self, buffer: bytes, eof: bool):
        """Hand the buffer's bytes to messages, yielding each message a From_ line ends; return the
        tail that may be the start of a From_ line split across blocks."""
        safe = len(buffer) if eof else len(buffer) - (len(_FROM_LINE) - 1)
        pos = search = 0
        while True:
            if self.in_from_line:
                end = buffer.find(b"\n", pos)
                if end < 0:
                    self._outside(len(buffer) - pos)
                    return b""
                self._outside(end - pos)
                self.in_from_line = False
                self.message, self.lines, self.cut, self.skipped = bytearray(), 0, False, 0
                pos, search = end + 1, end  # that "\n" may be the one before the next From_ line
            found = buffer.find(_FROM_LINE, search)
            if found < 0:
                if safe > pos:
                    self._take(buffer, pos, safe)
                return buffer[max(pos, safe):]
            self._take(buffer, pos, found + 1)
            if self.message is not None:
                yield self._finished()
            self.in_from_line, self.outside, pos = True, 0, found + 1  # each From_ line has its own budget

    def _outside(self, n: int) -> None:
        self.outside += n
        if self.outside > self.limits.max_mbox_skip_bytes:
            where = "in one From_ line" if self.in_from_line else "before the first From_ line"
            raise _MboxGivenUp(f"more than {self.limits.max_mbox_skip_bytes / 2**20:.0f} MiB {where} "
                               f"(not an mbox file?)")

    def _take(self, buffer: bytes, start: int, end: int) -> None:
        """Append buffer[start:end] to the current message within its caps (or count it outside)."""
        if self.message is None:
            self._outside(end - start)
            return
        if not self.cut:
            keep_end = min(end, start + self.limits.max_message_bytes - len(self.message))
            newlines = buffer.count(b"\n", start, keep_end)
            if self.lines + newlines > self.limits.max_message_lines:
                keep_end = start
                for _ in range(self.limits.max_message_lines - self.lines):
                    keep_end = buffer.find(b"\n", keep_end, end) + 1
                newlines = self.limits.max_message_lines - self.lines
            self.message += buffer[start:keep_end]
            self.lines += newlines
            self.cut = keep_end < end
            start = keep_end
        self.skipped += end - start
        if self.skipped > self.limits.max_mbox_skip_bytes:
            raise _MboxGivenUp("message goes on past the skip limit")

    def _finished(self) -> tuple[bytes, bool]:
        raw = bytes(self.message)
        if not self.cut and (raw.endswith(b"\n\n") or raw == b"\n"):
            raw = raw[:-1]  # the blank line before the next From_ line
        self.message = None
        return raw, self.cut


def iter_mbox(path: Path, limits: ParseLimits = DEFAULT_LIMITS) -> Iterator[tuple[str, RawFields | ParseError, bool]]:
    """Yield (key, fields or error, truncated) for every message of an mbox file (gzip allowed).

    The file is streamed (decompressed on the fly): no more than the message caps of any one
    message is held in memory. A file fault (a truncated gzip stream, say) ends the file with
    one ParseError after the messages read before it."""
    count = 0
    splitter = _MboxSplitter(limits)

    def parsed(raw: bytes, cut: bool) -> tuple[str, RawFields | ParseError, bool]:
        ref = f"{path.name}#{count}"
        try:
            fields, truncated = parse_message_bytes(raw, limits)
            return ref, fields, truncated or cut
        except ParseError as exc:
            return ref, exc, False

    try:
        with open_maybe_gzip(path) as stream:
            for raw, cut in splitter.messages(stream):
                yield parsed(raw, cut)
                count += 1
    except FILE_FAULTS as exc:
        fault = file_fault(path, exc)
        kept = f"; the {count} messages before it were kept" if count else ""
        yield f"{path.name}#{count}", ParseError(f"{fault}{kept}"), False
    except _MboxGivenUp as exc:
        if splitter.message is not None:  # the message being read when the file was given up: kept cut
            yield parsed(*splitter._finished())
            count += 1
            reason = (f"message #{count - 1} goes on for more than {limits.max_mbox_skip_bytes / 2**20:.0f} MiB "
                      f"past its caps (a decompression bomb?); it was kept cut at the caps")
        else:
            reason = str(exc)
        yield (f"{path.name}#{count}", ParseError(f"{path.name}: {reason}, and the rest of the file was not read"),
               False)
