"""Known corpus layouts, discovery in a data folder, and ingest with deduplication.

Label conventions: label 1 is always the classifier's positive class ("phishing/spam"),
but what it means differs by corpus. Nazario is phishing in the narrow sense; Enron-Spam,
Ling-Spam and SpamAssassin label generic spam. `label_meaning` keeps that visible.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

from tqdm import tqdm

from data.mailfiles import iter_mbox, read_eml
from data.normalise import normalisation_name
from data.parse import DEFAULT_LIMITS, ParseError, ParseLimits, make_email
from data.parse_csv import iter_csv
from data.records import CorpusInfo, Email, IngestReport
from data.store import StagedCorpus, Store

# Corpora whose positive label means phishing in the narrow sense; any other corpus is
# taken to label spam in general unless told otherwise (--label-meaning).
PHISHING_CORPORA = {"nazario", "phishingcorpus", "phishing"}

CSV_CONVENTION = "CSV label column: 1/spam/phishing = {meaning}, 0/ham/legitimate = legitimate"
FILE_NAME_CONVENTION = "file name: *ham* = legitimate, *spam* / *phish* = {meaning}"


class IngestError(ValueError):
    """A corpus source that cannot be ingested as given; the message says why."""


@dataclass(frozen=True)
class CorpusSource:
    """A corpus found on disk: a CSV file, or a folder of mbox / .eml files."""

    name: str
    path: Path
    format: str  # csv | mbox | eml


def _stem(path: Path) -> str:
    name = path.name
    for suffix in (".gz", ".csv", ".mbox", ".eml"):
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
    return name


def label_from_file_name(path: Path) -> int | None:
    """1 for spam/phish files, 0 for ham files, None when the name says neither."""
    name = path.name.lower()
    if "ham" in name:
        return 0
    if "spam" in name or "phish" in name:
        return 1
    return None


def discover_corpora(data_dir: Path, exclude: Iterable[str] = ("raw_samples",)) -> list[CorpusSource]:
    """Every corpus in a data folder: top-level CSV files, and sub-folders of mbox or .eml files.

    `exclude` names folders to skip; by default `raw_samples`, the parser-test messages
    that duplicate SpamAssassin and must not be training data (see shared/data/SOURCES.md).
    """
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise IngestError(f"data folder {data_dir} does not exist")
    excluded = set(exclude)
    found: list[CorpusSource] = []
    for path in sorted(data_dir.iterdir()):
        if path.name in excluded or path.name.startswith("."):
            continue
        if path.is_file() and re.search(r"\.csv(\.gz)?$", path.name, re.I):
            found.append(CorpusSource(_stem(path), path, "csv"))
        elif path.is_file() and re.search(r"\.mbox(\.gz)?$", path.name, re.I):
            found.append(CorpusSource(_stem(path), path, "mbox"))
        elif path.is_dir():
            if any(re.search(r"\.mbox(\.gz)?$", p.name, re.I) for p in path.iterdir()):
                found.append(CorpusSource(path.name, path, "mbox"))
            elif any(p.suffix.lower() == ".eml" for p in path.iterdir()):
                found.append(CorpusSource(path.name, path, "eml"))
    if not found:
        raise IngestError(f"no corpora in {data_dir}: expected *.csv(.gz), *.mbox(.gz) or folders of them / of .eml files")
    return found


def source_for_path(path: Path) -> CorpusSource:
    """A corpus source for one file or folder given on the command line, named after it."""
    try:
        path = Path(path).resolve(strict=True)
    except FileNotFoundError:
        raise IngestError(f"{path} does not exist") from None
    except (OSError, RuntimeError) as exc:  # RuntimeError: pathlib's symlink loop
        raise IngestError(f"{path} cannot be followed ({exc}): a symbolic link loop?") from None
    if not path.is_file() and not path.is_dir():
        raise IngestError(f"{path} is not a regular file or a folder (a FIFO or device?): not read")
    if path.is_file():
        for pattern, fmt in ((r"\.csv(\.gz)?$", "csv"), (r"\.mbox(\.gz)?$", "mbox"), (r"\.eml$", "eml")):
            if re.search(pattern, path.name, re.I):
                return CorpusSource(_stem(path), path, fmt)
        raise IngestError(f"{path.name}: expected a .csv, .csv.gz, .mbox, .mbox.gz or .eml file")
    found = discover_corpora(path.parent, exclude=())
    for source in found:
        if source.path == path:
            return source
    raise IngestError(f"{path} holds no .mbox or .eml files")


def corpus_info(source: CorpusSource, label_meaning: str | None = None) -> CorpusInfo:
    """The corpus record: format, what label 1 means, and where labels come from."""
    meaning = label_meaning or ("phishing" if source.name.lower() in PHISHING_CORPORA else "spam")
    convention = (CSV_CONVENTION if source.format == "csv" else FILE_NAME_CONVENTION).format(meaning=meaning)
    return CorpusInfo(source.name, str(source.path), source.format, meaning, convention)


def _mbox_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    return sorted(p for p in path.iterdir() if re.search(r"\.mbox(\.gz)?$", p.name, re.I))


def _label_of_file(path: Path) -> int:
    label = label_from_file_name(path)
    if label is None:
        raise ParseError(f"cannot tell the label of {path.name}: name mbox/.eml files *ham* or *spam*")
    return label


def _raw_items(source: CorpusSource, limits: ParseLimits):
    """(source_ref, fields or ParseError, label, truncated) for each input of a source.

    A fault of one file (unreadable, a directory, a dangling link, corrupt gzip, no label in
    its name) is a ParseError for that file; the corpus keeps every other file's messages."""
    if source.format == "csv":
        yield from iter_csv(source.path, limits)
    elif source.format == "mbox":
        for box in _mbox_files(source.path):
            try:
                label = _label_of_file(box)
            except ParseError as exc:
                yield box.name, exc, None, False
                continue
            for ref, fields, truncated in iter_mbox(box, limits):
                yield ref, fields, label, truncated
    elif source.format == "eml":
        for path in [source.path] if source.path.is_file() else sorted(source.path.glob("*.eml")):
            try:
                label = _label_of_file(path)
                fields, truncated = read_eml(path, limits)
                yield path.name, fields, label, truncated
            except ParseError as exc:
                yield path.name, exc, None, False
    else:
        raise IngestError(f"unknown corpus format {source.format!r}")


def read_corpus(source: CorpusSource, lowercase: bool, limits: ParseLimits = DEFAULT_LIMITS,
                progress: bool = True) -> Iterator[Email | tuple[str, str]]:
    """Yield Emails, or (source_ref, error) pairs for inputs that could not be parsed."""
    with tqdm(desc=f"parse {source.name}", unit=" mails", disable=not progress) as bar:
        for ref, fields, label, truncated in _raw_items(source, limits):
            bar.update()
            if isinstance(fields, ParseError):
                yield ref, str(fields)
            else:
                yield make_email(fields, source.name, label, ref, lowercase, truncated)


INGEST_SCRATCH_PREFIX = "phishlens-ingest-"  # beside the store; only a killed ingest leaves one (`doctor` lists them)
INGEST_BATCH = 2000  # emails parsed per batch written to the staging file: bounds ingest memory


def ingest_emails(store: Store, info: CorpusInfo, items: Iterable[Email | tuple[str, str]],
                  lowercase: bool) -> IngestReport:
    """Stream parsed emails to a staging file in batches, then dedupe within the corpus and
    against every corpus already stored (in SQL) and write, all in one transaction."""
    if store.has_corpus(info.name):
        raise IngestError(f"corpus {info.name!r} is already in the store; nothing was changed")
    with tempfile.TemporaryDirectory(prefix=INGEST_SCRATCH_PREFIX, dir=store.path.parent) as scratch:
        staged = StagedCorpus(Path(scratch) / "staged.duckdb")
        try:
            emails: list[Email] = []
            errors: list[tuple[str, str]] = []
            for item in items:
                if isinstance(item, Email):
                    emails.append(item)
                else:
                    errors.append(item)
                if len(emails) + len(errors) >= INGEST_BATCH:
                    staged.add(emails, errors)
                    emails, errors = [], []
            staged.add(emails, errors)
            report = store.add_staged_corpus(info, staged, normalisation_name(lowercase))
        finally:
            staged.close()
    if not report.kept:
        raise IngestError(f"corpus {info.name!r}: no email left to store "
                          f"({report.parsed} parsed, {report.parse_errors} errors, all others duplicates)")
    return report


def ingest_source(store: Store, source: CorpusSource, lowercase: bool = False,
                  limits: ParseLimits = DEFAULT_LIMITS, label_meaning: str | None = None,
                  progress: bool = True, eval_only: bool = False) -> IngestReport:
    """Parse, dedupe and store one corpus source (eval_only: held out, every email a test email)."""
    info = replace(corpus_info(source, label_meaning), eval_only=eval_only)
    items = read_corpus(source, lowercase, limits, progress)
    return ingest_emails(store, info, items, lowercase)


USER_CORPUS = "user"


def save_user_email(store_path: Path, mail: Email, label: int) -> bool:
    """Keep a pasted or uploaded email in the 'user' corpus (test split: never trained on).

    Returns False when an email with the same content hash is already stored.
    """
    from dataclasses import replace

    return Store.open(store_path).add_user_email(replace(mail, corpus=USER_CORPUS, label=int(label)), USER_CORPUS)
