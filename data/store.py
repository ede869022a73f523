"""The DuckDB results store: typed reads and writes over the schema of data/schema.py.

All SQL of the product lives here and in data/schema.py, by design: a query changes together
with the tables it reads, and a newcomer looks in one place. That makes this module long
(one short method per read or write, grouped by table); it holds nothing else. Writers open the file read-write for the length of
one job step; pages open it read-only. Metrics (F1, precision, recall, accuracy) are
computed by SQL over the predictions table, never stored.
"""

from __future__ import annotations

import json
import os
import stat
import shutil
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path

import duckdb
import pandas as pd

from data.processes import ProcessIdentity, is_gone, rerun_command, this_process
from data.records import ZERO_SHOT, AdapterInfo, CorpusInfo, Email, Explanation, Faithfulness, IngestReport, Prediction
from data.schema import METRICS_SQL, MIGRATIONS, SCHEMA_VERSION  # noqa: F401 (SCHEMA_VERSION: re-exported)
from data.metrics import COLLAPSE_MIN_EMAILS, COLLAPSED_SHARE, MIXED_LABELS
from data.scorers import ZERO_SHOT_PREFIX, catalogue, model_of_zero_shot

# The explanations table's columns before created_at, in order: explanation_record() holds each.
EXPLANATION_COLUMNS = ("adapter_id", "email_id", "method", "params", "level", "score", "base_value", "evaluations",
                       "seconds", "deletion_area", "insertion_area", "random_deletion_area", "payload")
INGEST_MEMORY_LIMIT = "512MB"  # DuckDB's cap while a staged corpus is deduplicated and written


EMAIL_COLUMNS = ["id", "corpus", "sender", "receiver", "date", "subject", "body", "urls", "label", "source_ref",
                 "normalisation", "truncated"]
# SELECT list that casts a frame of email_frame() rows to the emails table's types.
EMAIL_SELECT = ("id, corpus, sender, receiver, date, subject, body, urls::VARCHAR[], label::TINYINT, source_ref, "
                "normalisation, truncated")


# Every connection: never install or load a DuckDB extension (nothing is fetched at run time).
NO_EXTENSIONS = {"autoinstall_known_extensions": False, "autoload_known_extensions": False}


def email_frame(emails: list[Email]) -> pd.DataFrame:
    """Emails as rows of the emails table (urls as lists), for registering with DuckDB."""
    return pd.DataFrame([{**asdict(e), "urls": list(e.urls)} for e in emails], columns=EMAIL_COLUMNS)


class StagedCorpus:
    """A corpus being parsed, written batch by batch to a scratch DuckDB file, so an ingest's
    memory stays bounded however large the source is (Store.add_staged_corpus dedupes it)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.count = 0
        self._con = duckdb.connect(str(self.path), config={"memory_limit": INGEST_MEMORY_LIMIT, **NO_EXTENSIONS})
        self._con.execute("CREATE TABLE emails (seq BIGINT, id VARCHAR, corpus VARCHAR, sender VARCHAR, "
                          "receiver VARCHAR, date VARCHAR, subject VARCHAR, body VARCHAR, urls VARCHAR[], "
                          "label TINYINT, source_ref VARCHAR, normalisation VARCHAR, truncated BOOLEAN)")
        self._con.execute("CREATE TABLE errors (seq BIGINT, source_ref VARCHAR, error VARCHAR)")

    def add(self, emails: list[Email], errors: list[tuple[str, str]]) -> None:
        """Append one batch of parsed emails and (source_ref, message) parse errors."""
        try:
            self._add(emails, errors)
        except duckdb.Error as exc:
            first_line = (str(exc).splitlines() or [type(exc).__name__])[0]
            raise StoreError(f"Could not write the ingest's scratch file {self.path} ({first_line}); nothing was "
                             f"stored. Free disk space beside the store, then rerun the command.") from exc

    def _add(self, emails: list[Email], errors: list[tuple[str, str]]) -> None:
        if emails:
            rows = email_frame(emails)
            rows.insert(0, "seq", range(self.count, self.count + len(rows)))
            self._con.register("batch", rows)
            self._con.execute(f"INSERT INTO emails SELECT seq, {EMAIL_SELECT} FROM batch")
            self._con.unregister("batch")
        if errors:
            rows = pd.DataFrame(errors, columns=["source_ref", "error"])
            rows.insert(0, "seq", range(self.count, self.count + len(rows)))
            self._con.register("batch", rows)
            self._con.execute("INSERT INTO errors SELECT * FROM batch")
            self._con.unregister("batch")
        self.count += len(emails) + len(errors)

    def close(self) -> None:
        if self._con is not None:
            self._con.close()
            self._con = None


class StoreError(RuntimeError):
    """The store cannot be used as asked; the message says what to do."""


# DuckDB errors that say the file is damaged (or not a PhishLens store), not that a query is
# wrong: catalog errors (missing tables), internal and serialization errors, I/O errors on
# reading (a truncated file), and the plain duckdb.Error raised for a block whose checksum
# does not match.
_DAMAGE = (duckdb.CatalogException, duckdb.InternalException, duckdb.FatalException, duckdb.SerializationException)
_READ_FAULT_WORDS = ("read", "corrupt", "checksum", "truncat")
# A write that failed for want of room (a commit's journal write, say, raised as a TransactionException)
_WRITE_FAULT_WORDS = ("no space left", "could not write", "file too large", "disk quota")
DUCKDB_HEADER_BYTES = 3 * 4096  # the file header and two database headers, before the first block


class CorpusExists(StoreError):
    """A corpus of that name is already stored (by another ingest, perhaps one running at the same time)."""


def store_error_for(path: Path, exc: BaseException) -> StoreError | None:
    """The StoreError (what happened, what to do) for a DuckDB error that is the file's fault,
    or None for an error in a query, which is a bug to report as it is."""
    first_line = (str(exc).splitlines() or [type(exc).__name__])[0]
    damaged = isinstance(exc, _DAMAGE) or type(exc) is duckdb.Error or (
        isinstance(exc, duckdb.IOException) and any(word in first_line.lower() for word in _READ_FAULT_WORDS))
    if damaged:
        return StoreError(f"The store {path} is damaged or not a PhishLens store ({first_line}). It was not "
                          f"modified: move it aside and rebuild it (`python cli.py demo`, or ingest, train and "
                          f"evaluate again); `python cli.py doctor` reads every table to find what is damaged.")
    if isinstance(exc, duckdb.IOException) or any(words in first_line.lower() for words in _WRITE_FAULT_WORDS):
        return StoreError(f"Could not write to the store {path} ({first_line}); the step was rolled back. "
                          f"Free disk space or fix the folder's permissions, then rerun the command.")
    return None


DUCKDB_MAGIC = b"DUCK"  # at byte 8 of every DuckDB database file
_FOREIGN_MAGIC = {b"SQLite format 3\x00": "a SQLite database", b"PAR1": "a Parquet file", b"PK\x03\x04": "a zip file",
                  b"\x1f\x8b": "a gzip file"}


def check_store_file(path: Path) -> None:
    """Refuse, without opening it for writing, a path that is not a regular file, or a non-empty
    file that is not a DuckDB database. Never blocks: a FIFO is refused from its stat."""
    try:
        info = path.stat()
    except FileNotFoundError:
        return  # a new store
    except OSError as exc:
        raise StoreError(f"The store path {path} cannot be read ({exc.strerror}). Pass another --store.") from exc
    if not stat.S_ISREG(info.st_mode):
        kind = ("a folder" if stat.S_ISDIR(info.st_mode) else "a FIFO" if stat.S_ISFIFO(info.st_mode)
                else "a device or socket")
        raise StoreError(f"The store path {path} is {kind}, not a store file. Pass a file path with --store "
                         f"(or PHISHLENS_STORE).")
    if info.st_size == 0:
        return
    with open(path, "rb") as handle:
        head = handle.read(16)
    if head[8:12] != DUCKDB_MAGIC:
        what = next((f"it is {name}" for magic, name in _FOREIGN_MAGIC.items() if head.startswith(magic)),
                    "its header is not DuckDB's")
        raise StoreError(f"{path} is not a readable DuckDB store ({what}), so not a PhishLens store. It was not "
                         f"modified: pass another --store (a new path creates a store).")


def writable(path: Path) -> bool:
    """Whether the store file and its folder (where DuckDB writes its journal) can be written."""
    return os.access(path, os.W_OK) and os.access(path.parent, os.W_OK)


def read_only_message(path: Path) -> str:
    return (f"The store {path} is read-only (a read-only mount, or no write permission) and this command "
            f"writes to it. It was not modified: copy it to a writable folder and pass --store, or use a command "
            f"that only reads it (status, doctor, serve).")


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


class Store:
    """A DuckDB results file. Use `Store.open(path)` (read-write) or `read_only=True`.

    DuckDB lets one process write a file, or several read it, never both at once. So a
    Store holds a connection only for the length of one operation (or one `connection()`
    / `transaction()` block), and waits for a busy file instead of failing: a job and the
    dashboard can use the same store at the same time.
    """

    def __init__(self, path: Path, read_only: bool, busy_timeout: float):
        self.path = path
        self.read_only = read_only
        self.busy_timeout = busy_timeout
        self._pinned: duckdb.DuckDBPyConnection | None = None

    # ------------------------------------------------------------ lifecycle
    @classmethod
    def open(cls, path: Path, read_only: bool = False, busy_timeout: float = 60.0) -> "Store":
        """Open (and, read-write, create or migrate) a store; clear errors for bad files.

        Only an empty file or a PhishLens store is opened: anything else (another program's
        DuckDB database, a SQLite file, a FIFO) is refused without being written to."""
        path = Path(path)
        if read_only and not path.exists():
            raise StoreError(f"No results store at {path}. Build one with `python cli.py demo` "
                             f"or `python cli.py ingest/train/evaluate`.")
        check_store_file(path)
        if not read_only and path.exists() and not writable(path):
            raise StoreError(read_only_message(path))
        path.parent.mkdir(parents=True, exist_ok=True)
        store = cls(path, read_only, busy_timeout)
        store._check_and_migrate()
        return store

    @classmethod
    def open_to_read(cls, path: Path, busy_timeout: float = 60.0) -> "Store":
        """For commands that only read: read-only where the file cannot be written (a read-only
        mount), else as `open` (which migrates an older schema)."""
        path = Path(path)
        return cls.open(path, read_only=path.exists() and not writable(path), busy_timeout=busy_timeout)

    def close(self) -> None:
        """Nothing stays open between operations; kept so `with Store.open(...)` reads naturally."""

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _connect(self) -> duckdb.DuckDBPyConnection:
        deadline = time.monotonic() + self.busy_timeout
        delay = 0.01
        while True:
            try:
                # Never install or load an extension: a foreign file type (SQLite, say) would make
                # DuckDB download its reader.
                return duckdb.connect(str(self.path), read_only=self.read_only, config=NO_EXTENSIONS)
            except duckdb.IOException as exc:
                text = str(exc)
                if not self.read_only and any(w in text.lower() for w in ("read-only file system", "permission denied")):
                    raise StoreError(read_only_message(self.path)) from exc
                if "lock" not in text.lower():
                    raise StoreError(f"{self.path} is not a readable DuckDB store ({text.splitlines()[0]}). "
                                     f"Move it aside and rebuild; it was not modified.") from exc
                if time.monotonic() >= deadline:
                    raise StoreError(f"The store {self.path} stayed busy for {self.busy_timeout:.0f} s: another "
                                     f"process holds it. Retry when its job step has finished.") from exc
                time.sleep(delay)
                delay = min(delay * 2, 0.25)
            except duckdb.Error as exc:
                raise StoreError(f"{self.path} is not a readable DuckDB store ({exc}). "
                                 f"Move it aside and rebuild; it was not modified.") from exc

    @contextmanager
    def connection(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """One connection for the block (reused by the operations inside it), closed after."""
        if self._pinned is not None:
            yield self._pinned
            return
        con = self._connect()
        self._pinned = con
        try:
            yield con
        except duckdb.Error as exc:
            if (error := store_error_for(self.path, exc)) is not None:
                raise error from exc
            raise
        finally:
            self._pinned = None
            con.close()

    @contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """All-or-nothing writes: a failure (or a kill) leaves no partial rows."""
        with self.connection() as con:
            con.execute("BEGIN TRANSACTION")
            try:
                yield con
            except BaseException:
                try:
                    con.execute("ROLLBACK")
                except duckdb.Error:
                    pass  # a failed connection has rolled back already; the original error is what matters
                raise
            con.execute("COMMIT")

    def schema_version(self) -> int:
        with self.connection():
            exists = self.scalar(
                "SELECT count(*) FROM information_schema.tables WHERE table_name = 'schema_version'")
            return self.scalar("SELECT coalesce(max(version), 0) FROM schema_version") if exists else 0

    def truncation(self) -> str | None:
        """Why the file is too short to hold the blocks its header says are in use (a copy cut short),
        or None. A cheap check on every open; `damaged_tables` reads everything."""
        with self.connection() as con:
            block_size, used_blocks = con.execute("SELECT block_size, used_blocks FROM pragma_database_size() "
                                                  "WHERE database_name = current_database()").fetchone()
        # Free blocks at the end need not be on disk, so only the used ones set a lower bound.
        least = DUCKDB_HEADER_BYTES + block_size * used_blocks
        size = self.path.stat().st_size
        return None if size >= least else (f"{size:,} bytes, too short for the {used_blocks} blocks of "
                                           f"{block_size:,} bytes its header says are in use: the file was cut short")

    def damaged_tables(self) -> dict[str, str]:
        """Every table read in full, every column (DuckDB checks each block's checksum as it reads it):
        the first line of the error for each table that cannot be read."""
        with self.connection() as con:
            tables = [row[0] for row in con.execute(
                "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database() "
                "ORDER BY table_name").fetchall()]
        damaged = {}
        for table in tables:
            try:
                with self.connection() as con:  # one connection per table: a damaged block may spoil it
                    con.execute(f'SELECT count(*), bit_xor(hash(COLUMNS(*))) FROM "{table}"').fetchall()
            except StoreError as exc:
                damaged[table] = str(exc.__cause__ or exc).splitlines()[0]
        return damaged

    def _check_and_migrate(self) -> None:
        if (short := self.truncation()) is not None:
            raise StoreError(f"The store {self.path} is damaged ({short}). It was not modified: move it aside "
                             f"and rebuild it, or restore the full file.")
        version = self.schema_version()
        if version > SCHEMA_VERSION:
            raise StoreError(f"{self.path} has schema version {version}, newer than this PhishLens "
                             f"({SCHEMA_VERSION}). Upgrade PhishLens; the file was not modified.")
        if version == SCHEMA_VERSION:
            return
        if version == 0 and (foreign := self._foreign_tables()):
            raise StoreError(f"{self.path} is a DuckDB database but not a PhishLens store (it holds "
                             f"{', '.join(foreign[:5])}{' …' if len(foreign) > 5 else ''}). It was not modified: "
                             f"pass another --store (a new path creates a store).")
        if self.read_only:
            raise StoreError(f"{self.path} has schema version {version}; run any PhishLens command "
                             f"(e.g. `python cli.py status`) to migrate it to {SCHEMA_VERSION}.")
        if version > 0:  # a store with results: keep a copy of it as it was
            shutil.copy2(self.path, self.path.with_name(f"{self.path.name}.v{version}.bak"))
        with self.transaction() as con:
            con.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER, applied_at TIMESTAMP)")
            # Read again inside the transaction: another process may have created or migrated the
            # store since (two commands started at once on a new store).
            version = con.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchone()[0]
            for target in range(version + 1, SCHEMA_VERSION + 1):
                con.execute(MIGRATIONS[target - 1])
                con.execute("INSERT INTO schema_version VALUES (?, ?)", [target, _now()])

    def _foreign_tables(self) -> list[str]:
        """Tables and views of a database without PhishLens's schema_version table: someone else's.
        Read in one go with the check for schema_version: another process may have just created the
        store (two commands started at once on a new path)."""
        with self.connection() as con:
            tables = [row[0] for row in con.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_catalog = current_database() "
                "ORDER BY table_name").fetchall()]
        return [] if "schema_version" in tables else tables

    @contextmanager
    def _frames(self, con: duckdb.DuckDBPyConnection, **frames: pd.DataFrame) -> Iterator[None]:
        """Make DataFrames visible to SQL on `con` under the given names for the block's length."""
        for name, frame in frames.items():
            con.register(name, frame)
        try:
            yield
        finally:
            for name in frames:
                con.unregister(name)

    def scalar(self, sql: str, params: list | None = None):
        """The single value a query returns. Fetches the whole result: DuckDB refuses other
        work on a connection (registering a frame, say) while a result is left unfinished."""
        with self.connection() as con:
            return con.execute(sql, params or []).fetchall()[0][0]

    def rows(self, sql: str, params: list | None = None) -> list[tuple]:
        with self.connection() as con:
            return con.execute(sql, params or []).fetchall()

    def execute(self, sql: str, params: list | None = None) -> None:
        with self.connection() as con:
            con.execute(sql, params or []).fetchall()

    def query(self, sql: str, params: list | None = None) -> pd.DataFrame:
        with self.connection() as con:
            return con.execute(sql, params or []).df()

    # ------------------------------------------------------------ corpora and emails
    def corpus_names(self) -> list[str]:
        return [r[0] for r in self.rows("SELECT name FROM corpora ORDER BY name")]

    def has_corpus(self, name: str) -> bool:
        return bool(self.scalar("SELECT count(*) FROM corpora WHERE name = ?", [name]))

    def add_corpus(self, info: CorpusInfo, report: IngestReport, emails: list[Email]) -> None:
        """Write a corpus, its emails and its ingest errors in one transaction."""
        errors = pd.DataFrame([(info.name, ref, message) for ref, message in report.errors],
                              columns=["corpus", "source_ref", "error"])
        with self.transaction() as con, self._frames(con, new_errors=errors):
            con.execute(
                "INSERT INTO corpora VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                [info.name, info.source, info.format, info.label_meaning, info.label_convention,
                 info.synthetic, report.normalisation, report.parsed, report.parse_errors,
                 report.duplicates_within, report.label_conflicts, report.duplicates_across,
                 report.kept, _now()],
            )
            if info.eval_only:
                con.execute("INSERT INTO held_out_corpora VALUES (?)", [info.name])
            self.insert_emails(con, emails)
            if len(errors):
                con.execute("INSERT INTO ingest_errors SELECT * FROM new_errors")

    def add_staged_corpus(self, info: CorpusInfo, staged: "StagedCorpus", normalisation: str) -> IngestReport:
        """Dedupe a staged corpus in SQL and write it in one transaction; returns the counts.

        Within the corpus the first copy of each content hash is kept and both sides of a label
        conflict are dropped; hashes another corpus already holds are dropped. Nothing is
        written when no email is left (the report says kept = 0).
        """
        staged.close()
        with self.connection() as con:
            quoted = str(staged.path).replace("'", "''")
            con.execute(f"ATTACH '{quoted}' AS staged (READ_ONLY)")
            # Dedupe on (id, label, seq) only and copy the texts straight from the staging file, under a
            # memory cap (DuckDB spills past it), so a corpus larger than memory ingests in bounded memory.
            con.execute(f"SET memory_limit = '{INGEST_MEMORY_LIMIT}'")
            try:
                with self.transaction():
                    if con.execute("SELECT count(*) FROM corpora WHERE name = ?", [info.name]).fetchone()[0]:
                        raise CorpusExists(f"corpus {info.name!r} was stored by another ingest while this one ran; "
                                           f"nothing was changed (the store keeps the other one's copy)")
                    con.execute(
                        "CREATE TEMP TABLE staged_ids AS SELECT id, min(seq) AS seq, count(*) AS copies, "
                        "count(DISTINCT label) AS labels FROM staged.emails GROUP BY id")
                    parsed, distinct, conflicts = con.execute(
                        "SELECT coalesce(sum(copies), 0), count(*), count(*) FILTER (labels > 1) FROM staged_ids").fetchone()
                    con.execute("DELETE FROM staged_ids WHERE labels > 1")
                    unique = distinct - conflicts
                    con.execute("DELETE FROM staged_ids WHERE id IN (SELECT id FROM emails)")
                    kept = con.execute("SELECT count(*) FROM staged_ids").fetchone()[0]
                    n_errors = con.execute("SELECT count(*) FROM staged.errors").fetchone()[0]
                    examples = tuple(con.execute("SELECT source_ref, error FROM staged.errors ORDER BY seq LIMIT 100")
                                     .fetchall())
                    report = IngestReport(info.name, int(parsed), n_errors, int(parsed) - distinct, conflicts,
                                          unique - kept, kept, normalisation, examples)
                    if kept:
                        con.execute(
                            "INSERT INTO corpora VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                            [info.name, info.source, info.format, info.label_meaning, info.label_convention,
                             info.synthetic, normalisation, int(parsed), n_errors, report.duplicates_within, conflicts,
                             report.duplicates_across, kept, _now()])
                        if info.eval_only:
                            con.execute("INSERT INTO held_out_corpora VALUES (?)", [info.name])
                        con.execute("INSERT INTO emails BY NAME SELECT e.* EXCLUDE (seq) FROM staged.emails e "
                                    "SEMI JOIN staged_ids k ON e.seq = k.seq")
                        con.execute("INSERT INTO ingest_errors SELECT ?, source_ref, error FROM staged.errors", [info.name])
                    con.execute("DROP TABLE staged_ids")
            finally:
                con.execute("RESET memory_limit")
                con.execute("DETACH staged")
        return report

    def insert_emails(self, con: duckdb.DuckDBPyConnection, emails: list[Email]) -> None:
        """Insert emails on `con` (inside the caller's transaction)."""
        with self._frames(con, new_emails=email_frame(emails)):
            con.execute(f"INSERT INTO emails SELECT {EMAIL_SELECT} FROM new_emails")

    def emails_by_ids(self, ids: Iterable[str]) -> list[Email]:
        with self.connection() as con, self._frames(con, wanted=pd.DataFrame({"id": list(ids)})):
            rows = con.execute("SELECT e.* FROM emails e JOIN wanted w ON w.id = e.id ORDER BY e.id").df()
        return [_email_from_row(r) for r in rows.to_dict("records")]

    def corpora(self) -> pd.DataFrame:
        """Every corpus with its label meaning, normalisation, ingest counts and whether it is held out."""
        return self.query("SELECT *, name IN (SELECT name FROM held_out_corpora) AS held_out FROM corpora ORDER BY name")

    def held_out_corpora(self) -> list[str]:
        """Corpora ingested for evaluation only: never in a training set."""
        return [r[0] for r in self.rows("SELECT name FROM held_out_corpora ORDER BY name")]

    def training_corpora(self) -> list[str]:
        """Corpora a training set may draw on: every one but the held-out ones."""
        return [r[0] for r in self.rows(
            "SELECT name FROM corpora WHERE name NOT IN (SELECT name FROM held_out_corpora) ORDER BY name")]

    def two_class_corpora(self) -> list[str]:
        """Corpora holding both labels and not held out (the ones a specialist can be trained on)."""
        return [r[0] for r in self.rows(
            "SELECT corpus FROM emails WHERE corpus NOT IN (SELECT name FROM held_out_corpora) "
            "GROUP BY corpus HAVING count(DISTINCT label) = 2 ORDER BY corpus")]

    def ingest_error_summary(self) -> pd.DataFrame:
        return self.query("SELECT corpus, count(*) AS n, any_value(error) AS example FROM ingest_errors GROUP BY corpus")

    def add_user_email(self, mail: Email, corpus: str) -> bool:
        """Keep one analyst-supplied email in `corpus`, test split only; False if its hash is stored."""
        with self.transaction() as con:
            if self.scalar("SELECT count(*) FROM emails WHERE id = ?", [mail.id]):
                return False
            if not self.has_corpus(corpus):
                con.execute(
                    "INSERT INTO corpora VALUES (?, 'pasted or uploaded in the dashboard', 'user', 'phishing', "
                    "'set by the analyst who saved it', false, ?, 0, 0, 0, 0, 0, 0, now())",
                    [corpus, mail.normalisation])
            self.insert_emails(con, [mail])
            con.execute("INSERT INTO splits VALUES (?, ?, 'test', 0)", [mail.id, corpus])
            con.execute("UPDATE corpora SET kept = kept + 1, parsed = parsed + 1 WHERE name = ?", [corpus])
        return True

    def emails_of_corpus(self, corpus: str) -> pd.DataFrame:
        return self.query("SELECT id, label FROM emails WHERE corpus = ? ORDER BY id", [corpus])

    # ------------------------------------------------------------ splits and training sets
    def add_splits(self, corpus: str, assignments: dict[str, str], seed: int) -> None:
        frame = pd.DataFrame({"email_id": list(assignments), "split": list(assignments.values())})
        with self.transaction() as con, self._frames(con, new_splits=frame):
            con.execute("DELETE FROM splits WHERE corpus = ?", [corpus])
            con.execute("INSERT INTO splits SELECT email_id, ?, split, ? FROM new_splits", [corpus, seed])

    def split_ids(self, corpus: str, split: str) -> pd.DataFrame:
        """Ids and labels of one corpus split, in a stable order."""
        return self.query(
            "SELECT e.id, e.label FROM splits s JOIN emails e ON e.id = s.email_id "
            "WHERE s.corpus = ? AND s.split = ? ORDER BY e.id", [corpus, split]
        )

    def add_training_set(self, name: str, kind: str, corpora: list[str], ids: list[str], seed: int) -> None:
        with self.transaction() as con, self._frames(con, members=pd.DataFrame({"email_id": ids})):
            con.execute("DELETE FROM training_set_emails WHERE training_set = ?", [name])
            con.execute("DELETE FROM training_sets WHERE name = ?", [name])
            con.execute("INSERT INTO training_sets VALUES (?,?,?,?,?,?)",
                             [name, kind, corpora, len(ids), seed, _now()])
            con.execute("INSERT INTO training_set_emails SELECT ?, email_id FROM members", [name])

    def training_set(self, name: str) -> dict | None:
        rows = self.query("SELECT * FROM training_sets WHERE name = ?", [name])
        return rows.to_dict("records")[0] if len(rows) else None

    def training_sets(self) -> pd.DataFrame:
        return self.query("SELECT * FROM training_sets ORDER BY name")

    def split_counts(self) -> pd.DataFrame:
        """Emails per (corpus, split, label)."""
        return self.query("SELECT s.corpus, s.split, e.label, count(*) AS n FROM splits s "
                          "JOIN emails e ON e.id = s.email_id GROUP BY ALL ORDER BY ALL")

    def training_set_composition(self) -> pd.DataFrame:
        """Emails per (training set, corpus, label)."""
        return self.query("SELECT t.name, t.kind, t.size, t.seed, e.corpus, e.label, count(*) AS n "
                          "FROM training_sets t JOIN training_set_emails m ON m.training_set = t.name "
                          "JOIN emails e ON e.id = m.email_id GROUP BY ALL ORDER BY ALL")

    def training_set_emails(self, name: str) -> list[Email]:
        rows = self.query(
            "SELECT e.* FROM training_set_emails t JOIN emails e ON e.id = t.email_id "
            "WHERE t.training_set = ? ORDER BY e.id", [name]
        )
        return [_email_from_row(r) for r in rows.to_dict("records")]

    def leaked_test_emails(self) -> int:
        """Test emails whose content hash is in any training set (must be 0)."""
        return self.scalar(
            "SELECT count(DISTINCT s.email_id) FROM splits s "
            "JOIN training_set_emails t ON t.email_id = s.email_id WHERE s.split = 'test'"
        )

    # ------------------------------------------------------------ adapters
    def add_adapter(self, info: AdapterInfo) -> None:
        with self.transaction() as con:
            con.execute("DELETE FROM adapters WHERE id = ?", [info.id])
            con.execute(
                "INSERT INTO adapters VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                [info.id, info.model, info.base_weights_sha256, info.architecture, info.training_set,
                 info.path, json.dumps(info.hyperparameters), info.seed, list(info.train_loss),
                 info.n_train, info.seconds, info.created_at],
            )

    def adapters(self, model: str | None = None) -> pd.DataFrame:
        sql = "SELECT * FROM adapters" + (" WHERE model = ?" if model else "") + " ORDER BY id"
        return self.query(sql, [model] if model else [])

    def scorer_catalogue(self, extra_models: Iterable[str] = ()) -> pd.DataFrame:
        """Every scorer (data.scorers.catalogue): each adapter, the zero-shot base of each model in the
        store (and of `extra_models`), each bag-of-words reference, with unique display names."""
        zero_shot = [model_of_zero_shot(r[0]) for r in self.rows(
            "SELECT DISTINCT adapter_id FROM predictions WHERE starts_with(adapter_id, ?) ORDER BY 1", [ZERO_SHOT_PREFIX])]
        return catalogue(self.adapters(), self.reference_models(), [*zero_shot, *extra_models])

    def evaluated_scorers(self) -> pd.DataFrame:
        """Every scorer with predictions (adapters, zero-shot bases, references): id, model, training set."""
        return self.query("SELECT p.adapter_id, any_value(p.model) AS model, "
                          f"coalesce(any_value(s.training_set), '{ZERO_SHOT}') AS training_set FROM predictions p "
                          "LEFT JOIN scorers s ON s.id = p.adapter_id GROUP BY p.adapter_id ORDER BY p.adapter_id")

    # ------------------------------------------------------------ runs
    def add_reference_model(self, model_id: str, model: str, training_set: str, hyperparameters: dict, seed: int,
                            n_train: int, seconds: float) -> None:
        """Record a reference model (its predictions go to `predictions` under model_id)."""
        with self.transaction() as con:
            con.execute("DELETE FROM reference_models WHERE id = ?", [model_id])
            con.execute("INSERT INTO reference_models VALUES (?,?,?,?,?,?,?,?)",
                        [model_id, model, training_set, json.dumps(hyperparameters), seed, n_train, seconds, _now()])

    def reference_models(self) -> pd.DataFrame:
        return self.query("SELECT * FROM reference_models ORDER BY id")

    def start_run(self, kind: str, params: dict) -> str:
        """A new 'running' run, recording the process that runs it and the command that reruns it."""
        run_id = f"{kind}-{_now():%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:6]}"
        process = this_process()
        with self.transaction() as con:
            con.execute("INSERT INTO runs VALUES (?,?,?,?,?,NULL,NULL)",
                        [run_id, kind, "running", json.dumps(params, default=str), _now()])
            con.execute("INSERT INTO run_processes VALUES (?,?,?,?,?)",
                        [run_id, process.pid, process.host, process.start, rerun_command()])
        return run_id

    def add_run_params(self, run_id: str, params: dict) -> None:
        """Merge what a run learned while running (e.g. precision checks) into its params
        (JSON merge patch: nested objects are merged, not replaced)."""
        self.execute("UPDATE runs SET params = json_merge_patch(params, ?::JSON) WHERE id = ?",
                     [json.dumps(params, default=str), run_id])

    def run_params(self, run_id: str) -> dict:
        """A run's params ({} for an unknown run)."""
        rows = self.rows("SELECT params FROM runs WHERE id = ?", [run_id])
        return json.loads(rows[0][0]) if rows and rows[0][0] else {}

    def finish_run(self, run_id: str, error: str | None = None) -> None:
        self.execute("UPDATE runs SET status = ?, finished_at = ?, error = ? WHERE id = ?",
                         ["failed" if error else "done", _now(), error, run_id])

    def runs(self) -> pd.DataFrame:
        """Every run, newest first, with its duration in seconds. A run left 'running' by a process
        that is gone reads as 'interrupted', its error saying what to rerun."""
        runs = self.query("SELECT id, kind, status, started_at, finished_at, "
                          "date_diff('second', started_at, finished_at) AS seconds, error, pid, host, "
                          "process_start, command FROM runs LEFT JOIN run_processes p ON p.run_id = runs.id "
                          "ORDER BY started_at DESC")
        for i in runs.index[runs["status"] == "running"]:
            row = runs.loc[i]
            if pd.notna(row["pid"]) and is_gone(ProcessIdentity(int(row["pid"]), row["host"], row["process_start"] or "")):
                runs.loc[i, "status"] = "interrupted"
                rerun = f"rerun `{row['command']}`" if row["command"] else "rerun its command"
                runs.loc[i, "error"] = (f"its process ({row['pid']} on {row['host']}) ended without finishing it (killed?); "
                                        f"what it wrote is whole batches only: {rerun} to resume")
        return runs.drop(columns=["pid", "host", "process_start", "command"])

    def integrity_problems(self) -> dict[str, int]:
        """Counts that must be 0 in a healthy store, runs a killed job left behind (interrupted) and runs
        in progress."""
        with self.connection():
            statuses = self.runs()["status"]
            return {
                "orphan_predictions": self.scalar(
                    "SELECT count(*) FROM predictions p ANTI JOIN emails e ON e.id = p.email_id"),
                "emails_without_split": self.scalar(
                    "SELECT count(*) FROM emails e ANTI JOIN splits s ON s.email_id = e.id"),
                **{f"runs_{status}": int((statuses == status).sum()) for status in ("interrupted", "running")},
            }

    @contextmanager
    def run(self, kind: str, params: dict) -> Iterator[str]:
        """A run row that ends 'done', or 'failed' with the error, whatever happens inside."""
        run_id = self.start_run(kind, params)
        try:
            yield run_id
        except BaseException as exc:
            self.finish_run(run_id, error=f"{type(exc).__name__}: {exc}")
            raise
        self.finish_run(run_id)

    # ------------------------------------------------------------ predictions and metrics
    def predicted_email_ids(self, adapter_id: str) -> set[str]:
        rows = self.rows("SELECT email_id FROM predictions WHERE adapter_id = ?", [adapter_id])
        return {r[0] for r in rows}

    def add_prediction_shards(self, paths: Sequence[Path]) -> int:
        """Ingest Parquet shards of predictions (written by distributed workers); rows already
        stored for (adapter, email) are kept, so ingesting a shard twice adds nothing."""
        if not paths:
            return 0
        with self.transaction() as con:
            before = con.execute("SELECT count(*) FROM predictions").fetchone()[0]
            con.execute(
                "INSERT INTO predictions BY NAME SELECT run_id, adapter_id, model, email_id, corpus, score, "
                "predicted::TINYINT AS predicted, true_label::TINYINT AS true_label, truncated_tokens "
                "FROM read_parquet(?) ON CONFLICT DO NOTHING", [[str(p) for p in paths]])
            after = con.execute("SELECT count(*) FROM predictions").fetchone()[0]
        return after - before

    def add_predictions(self, predictions: list[Prediction]) -> int:
        """Insert predictions; rows already stored for (adapter, email) are kept, not duplicated."""
        if not predictions:
            return 0
        with self.transaction() as con, self._frames(con, new_predictions=pd.DataFrame([asdict(p) for p in predictions])):
            before = self.scalar("SELECT count(*) FROM predictions")
            con.execute(
                "INSERT INTO predictions BY NAME SELECT run_id, adapter_id, model, email_id, corpus, score, "
                "predicted::TINYINT AS predicted, true_label::TINYINT AS true_label, truncated_tokens "
                "FROM new_predictions ON CONFLICT DO NOTHING"
            )
            after = self.scalar("SELECT count(*) FROM predictions")
        return after - before

    def metrics(self) -> pd.DataFrame:
        """F1, precision, recall, accuracy per (adapter, corpus), with in-domain flags."""
        return self.query(METRICS_SQL)

    def collapsed_scorers(self) -> pd.DataFrame:
        """Fine-tuned adapters that gave one verdict to nearly every test email of a label mix
        (data.metrics.COLLAPSED_SHARE): adapter_id, model, training_set, n, positive_share, label_share.
        The base model zero-shot is not judged: it was never trained to answer."""
        low, high = MIXED_LABELS
        return self.query(
            "SELECT p.adapter_id, any_value(p.model) AS model, any_value(a.training_set) AS training_set, "
            "count(*) AS n, avg(p.predicted) AS positive_share, avg(p.true_label) AS label_share "
            "FROM predictions p JOIN adapters a ON a.id = p.adapter_id GROUP BY p.adapter_id "
            "HAVING count(*) >= ? AND avg(p.true_label) BETWEEN ? AND ? "
            "AND greatest(avg(p.predicted), 1 - avg(p.predicted)) >= ? ORDER BY p.adapter_id",
            [COLLAPSE_MIN_EMAILS, low, high, COLLAPSED_SHARE])

    def scores(self, scorer: str) -> pd.DataFrame:
        """Every score one scorer (adapter or reference id) gave: corpus, email id, score, true label."""
        return self.query("SELECT corpus, email_id, score, true_label FROM predictions WHERE adapter_id = ? "
                          "ORDER BY corpus, email_id", [scorer])

    def paired_verdicts(self, scorer_a: str, scorer_b: str) -> pd.DataFrame:
        """The emails both scorers (adapter or reference ids) scored: corpus, true label and each verdict."""
        return self.query("SELECT a.corpus, a.email_id, a.true_label, a.predicted AS verdict_a, b.predicted AS verdict_b "
                          "FROM predictions a JOIN predictions b ON b.email_id = a.email_id AND b.adapter_id = ? "
                          "WHERE a.adapter_id = ? ORDER BY a.corpus, a.email_id", [scorer_b, scorer_a])

    # ------------------------------------------------------------ inbox
    def inbox(self, adapter_id: str | None = None, corpora: list[str] | None = None, label: int | None = None,
              outcome: str = "all", min_confidence: float = 0.0, text: str | None = None,
              limit: int = 50, offset: int = 0) -> tuple[pd.DataFrame, int]:
        """One page of emails matching the filters, and how many match in all.

        With an adapter: only emails it scored, its score and verdict, sorted by how wrong
        it was (the logit difference against the true label). outcome: all, wrong, fp, fn,
        correct. min_confidence filters on |score|. text: case-insensitive match on
        sender, subject or body.
        """
        where, params = ["1 = 1"], []
        if corpora:
            where.append("e.corpus IN (SELECT unnest(?))")
            params.append(list(corpora))
        if label is not None:
            where.append("e.label = ?")
            params.append(int(label))
        if text:
            where.append("(e.subject ILIKE ? ESCAPE '\\' OR e.body ILIKE ? ESCAPE '\\' OR e.sender ILIKE ? ESCAPE '\\')")
            pattern = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            params += [pattern] * 3
        if adapter_id:
            source = "emails e JOIN predictions p ON p.email_id = e.id AND p.adapter_id = ?"
            params.insert(0, adapter_id)
            conditions = {"all": "1 = 1", "wrong": "p.predicted <> e.label", "correct": "p.predicted = e.label",
                          "fp": "p.predicted = 1 AND e.label = 0", "fn": "p.predicted = 0 AND e.label = 1"}
            if outcome not in conditions:
                raise ValueError(f"outcome must be one of {sorted(conditions)}")
            where += [conditions[outcome], "abs(p.score) >= ?"]
            params.append(float(min_confidence))
            columns = ("p.score, p.predicted, CASE WHEN e.label = 1 THEN -p.score ELSE p.score END AS wrongness, "
                       "p.truncated_tokens")
            order = "wrongness DESC, e.id"
        else:
            if outcome != "all":
                raise ValueError("pick an adapter to filter by false positives / negatives")
            source = "emails e"
            columns = ("NULL::DOUBLE AS score, NULL::TINYINT AS predicted, NULL::DOUBLE AS wrongness, "
                       "NULL::INTEGER AS truncated_tokens")
            order = "e.corpus, e.id"
        body = f"FROM {source} WHERE {' AND '.join(where)}"
        with self.connection() as con:
            total = con.execute(f"SELECT count(*) {body}", params).fetchall()[0][0]
            # The page first, then how many scorers got each of its (at most `limit`) emails wrong:
            # counting per email over the whole predictions table would cost a pass over all of it.
            page = con.execute(
                f"WITH page AS (SELECT e.id, e.corpus, e.sender, e.subject, e.date, e.label, {columns} "
                f"{body} ORDER BY {order} LIMIT ? OFFSET ?), "
                f"tally AS (SELECT email_id, count(*) FILTER (predicted <> true_label) AS adapters_wrong, "
                f"count(*) AS adapters_scored FROM predictions WHERE email_id IN (SELECT id FROM page) GROUP BY email_id) "
                f"SELECT page.*, coalesce(t.adapters_wrong, 0) AS adapters_wrong, "
                f"coalesce(t.adapters_scored, 0) AS adapters_scored FROM page LEFT JOIN tally t ON t.email_id = page.id "
                f"ORDER BY {order.replace('e.', 'page.')}", [*params, int(limit), int(offset)]).df()
        return page, total

    def email(self, email_id: str) -> Email | None:
        found = self.emails_by_ids([email_id])
        return found[0] if found else None

    def verdicts(self, email_id: str) -> pd.DataFrame:
        """Every stored prediction for one email, with the adapter's training set."""
        return self.query(
            f"SELECT p.adapter_id, p.model, coalesce(a.training_set, '{ZERO_SHOT}') AS training_set, p.score, "
            "p.predicted, p.true_label, p.truncated_tokens, p.run_id FROM predictions p LEFT JOIN scorers a ON a.id = p.adapter_id "
            "WHERE p.email_id = ? ORDER BY p.model, training_set", [email_id])

    # ------------------------------------------------------------ explanations
    def add_explanation(self, explanation: Explanation, corpus: str,
                        features: list[tuple[str, float]] | None = None) -> None:
        """Cache an explanation (replacing one with the same key) and its features, if given."""
        record = self.explanation_record(explanation, corpus, features or [])
        key = [record["adapter_id"], record["email_id"], record["method"], record["params"]]
        with self.transaction() as con:
            con.execute("DELETE FROM explanations WHERE adapter_id = ? AND email_id = ? AND method = ? AND params = ?", key)
            con.execute("INSERT INTO explanations VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                        [record[c] for c in EXPLANATION_COLUMNS] + [_now()])
            if features is not None:
                con.execute("DELETE FROM attribution_features WHERE adapter_id = ? AND email_id = ? AND method = ? "
                            "AND params = ?", key)
                rows = pd.DataFrame({"adapter_id": record["adapter_id"], "method": record["method"],
                                     "params": record["params"], "email_id": record["email_id"], "corpus": corpus,
                                     "feature": [f["feature"] for f in record["features"]],
                                     "value": [f["value"] for f in record["features"]]})
                if len(rows):
                    with self._frames(con, new_features=rows):
                        con.execute("INSERT INTO attribution_features BY NAME SELECT * FROM new_features")

    @staticmethod
    def explanation_record(explanation: Explanation, corpus: str, features: list[tuple[str, float]]) -> dict:
        """One explanation and its features as a flat record: a row of an explanation shard
        (Parquet, written by distributed workers; see add_explanation_shards)."""
        e, f = explanation, explanation.faithfulness
        return {"adapter_id": e.adapter_id, "email_id": e.email_id, "method": e.method, "params": e.params,
                "corpus": corpus, "level": e.level, "score": e.score, "base_value": e.base_value,
                "evaluations": e.evaluations, "seconds": e.seconds,
                "deletion_area": f.deletion_area if f else None, "insertion_area": f.insertion_area if f else None,
                "random_deletion_area": f.random_deletion_area if f else None, "payload": json.dumps(asdict(e)),
                "features": [{"feature": name, "value": float(value)} for name, value in features]}

    def add_explanation_shards(self, paths: Sequence[Path]) -> int:
        """Ingest Parquet shards of explanation records, replacing explanations with the same
        key (adapter, email, method, params) and their features: ingesting twice changes nothing."""
        if not paths:
            return 0
        files = [str(p) for p in paths]
        same = ("t.adapter_id = s.adapter_id AND t.email_id = s.email_id AND t.method = s.method "
                "AND t.params = s.params")
        with self.transaction() as con:  # a failure rolls back the temporary table too
            con.execute("CREATE TEMP TABLE shard AS SELECT * FROM read_parquet(?)", [files])
            con.execute(f"DELETE FROM explanations t USING shard s WHERE {same}")
            con.execute(f"DELETE FROM attribution_features t USING shard s WHERE {same}")
            con.execute(f"INSERT INTO explanations SELECT {', '.join(EXPLANATION_COLUMNS)}, now() FROM shard")
            con.execute("INSERT INTO attribution_features SELECT adapter_id, method, params, email_id, corpus, "
                        "f.feature, f.value FROM (SELECT *, unnest(features) AS f FROM shard)")
            count = con.execute("SELECT count(*) FROM shard").fetchone()[0]
            con.execute("DROP TABLE shard")
        return count

    def explanation(self, adapter_id: str, email_id: str, method: str, params: str) -> Explanation | None:
        found = self.rows("SELECT payload FROM explanations WHERE adapter_id = ? AND email_id = ? AND method = ? "
                          "AND params = ?", [adapter_id, email_id, method, params])
        return _explanation_from_json(found[0][0]) if found else None

    def explained_email_ids(self, adapter_id: str, method: str, params: str) -> set[str]:
        rows = self.rows("SELECT DISTINCT email_id FROM attribution_features WHERE adapter_id = ? AND method = ? "
                         "AND params = ?", [adapter_id, method, params])
        return {r[0] for r in rows}

    def explanation_sweeps(self) -> pd.DataFrame:
        """Which (adapter, method, params, corpus) have corpus-level features, and for how many emails."""
        return self.query(
            f"SELECT f.adapter_id, coalesce(a.training_set, '{ZERO_SHOT}') AS training_set, f.method, f.params, "
            "f.corpus, count(DISTINCT f.email_id) AS emails FROM attribution_features f "
            "LEFT JOIN adapters a ON a.id = f.adapter_id GROUP BY ALL ORDER BY training_set, f.corpus")

    def drivers(self, adapter_id: str, method: str, params: str, corpora: list[str] | None = None) -> pd.DataFrame:
        """Per feature over the explained emails: in how many it occurs, its mean and total value.

        A feature's value in one email is the sum over its occurrences there.
        """
        where, args = "adapter_id = ? AND method = ? AND params = ?", [adapter_id, method, params]
        if corpora:
            where += " AND corpus IN (SELECT unnest(?))"
            args.append(list(corpora))
        return self.query(
            f"WITH per_email AS (SELECT feature, email_id, sum(value) AS value FROM attribution_features "
            f"WHERE {where} GROUP BY feature, email_id), "
            f"n AS (SELECT count(DISTINCT email_id) AS n FROM attribution_features WHERE {where}) "
            f"SELECT feature, count(*) AS emails, sum(value) / any_value(n.n) AS mean_value, sum(value) AS total, "
            f"avg(value) AS mean_when_present FROM per_email, n GROUP BY feature ORDER BY abs(sum(value)) DESC",
            args + args)

    def feature_document_frequency(self, features: list[str], sample_per_corpus: int = 2000,
                                   seed: int = 0) -> pd.DataFrame:
        """Share of each corpus' emails (any label; a seeded sample) whose text contains each feature.

        Words are split on whitespace, a URL becomes its host, and leading/trailing
        non-alphanumerics are stripped, as diagnostics.drivers.feature_of does.
        """
        if not features:
            return pd.DataFrame(columns=["corpus", "feature", "share"])
        return self.query(
            "WITH sample AS (SELECT id, corpus, lower(coalesce(sender, '') || ' ' || subject || ' ' || body) AS text "
            "  FROM emails QUALIFY row_number() OVER (PARTITION BY corpus ORDER BY hash(id || ?)) <= ?), "
            "sizes AS (SELECT corpus, count(*) AS n FROM sample GROUP BY corpus), "
            "words AS (SELECT DISTINCT corpus, id, regexp_replace(CASE WHEN regexp_matches(u, '^(https?://|www\\.)') "
            "  THEN regexp_extract(u, '^(?:https?://)?(?:[^/@\\s]*@)?([^/:?#\\s]*)', 1) ELSE w END, "
            "  '^[^a-z0-9]+|[^a-z0-9]+$', '', 'g') AS feature "
            "  FROM (SELECT corpus, id, w, ltrim(w, '(<[') AS u "
            "        FROM (SELECT corpus, id, unnest(string_split_regex(text, '\\s+')) AS w FROM sample))) "
            "SELECT s.corpus, f.feature, coalesce(count(w.id), 0) / any_value(s.n) AS share "
            "FROM sizes s CROSS JOIN (SELECT unnest(?) AS feature) f "
            "LEFT JOIN words w ON w.corpus = s.corpus AND w.feature = f.feature "
            "GROUP BY s.corpus, f.feature ORDER BY f.feature, s.corpus",
            [str(seed), int(sample_per_corpus), list(features)])

    def disagreements(self, corpus: str, adapter_ids: list[str], limit: int = 50) -> pd.DataFrame:
        """Emails of a corpus that every given adapter scored and on which their verdicts differ,
        widest score spread first."""
        return self.query(
            "SELECT e.id, e.subject, e.label, sum(p.predicted) AS say_phishing, count(*) AS adapters, "
            "max(p.score) - min(p.score) AS spread FROM predictions p JOIN emails e ON e.id = p.email_id "
            "WHERE e.corpus = ? AND p.adapter_id IN (SELECT unnest(?)) GROUP BY e.id, e.subject, e.label "
            "HAVING count(*) = ? AND min(p.predicted) <> max(p.predicted) ORDER BY spread DESC, e.id LIMIT ?",
            [corpus, list(adapter_ids), len(adapter_ids), int(limit)])

    def curated_examples(self, per_corpus: int = 2, user_limit: int = 6) -> pd.DataFrame:
        """Emails worth showing live: per corpus, those most adapters got wrong (most wrong
        first) and the clearest correct phishing; and the user's own saved emails."""
        return self.query(
            "WITH verdicts AS (SELECT p.email_id, avg(CASE WHEN p.true_label = 1 THEN -p.score ELSE p.score END) "
            "  AS wrongness, sum((p.predicted <> p.true_label)::INTEGER) AS wrong, count(*) AS adapters "
            "  FROM predictions p GROUP BY p.email_id), "
            "ranked AS (SELECT e.id, e.corpus, e.subject, e.label, v.wrong, v.adapters, v.wrongness, "
            "  CASE WHEN v.wrong > 0 THEN 'most adapters wrong' ELSE 'clear phishing, all right' END AS why, "
            "  row_number() OVER (PARTITION BY e.corpus, v.wrong > 0 ORDER BY v.wrong DESC, "
            "    v.wrongness * (CASE WHEN v.wrong > 0 THEN 1 ELSE -1 END) DESC, e.id) AS rank "
            "  FROM emails e JOIN verdicts v ON v.email_id = e.id WHERE e.corpus <> 'user' "
            "    AND (v.wrong > 0 OR e.label = 1)) "
            "SELECT id, corpus, subject, label, wrong, adapters, why FROM ranked WHERE rank <= ? "
            "UNION ALL (SELECT e.id, e.corpus, e.subject, e.label, NULL, NULL, 'saved by you' FROM emails e "
            "  WHERE e.corpus = 'user' ORDER BY e.id LIMIT ?) ORDER BY corpus, why, id",
            [int(per_corpus), int(user_limit)])

    # ------------------------------------------------------------ head sweeps
    def add_head_sweep(self, run_id: str, corpus: str, params: str, sweep) -> None:
        """Store a data.records.HeadSweep, replacing one with the same adapter and params."""
        effects = sweep.effects.assign(run_id=run_id, adapter_id=sweep.adapter_id, corpus=corpus, params=params,
                                       ablation=sweep.ablation, n_emails=sweep.n_emails)
        lens = sweep.lens.assign(run_id=run_id, adapter_id=sweep.adapter_id, corpus=corpus, params=params,
                                 n_emails=sweep.n_emails)
        key = [sweep.adapter_id, params]
        with self.transaction() as con, self._frames(con, new_effects=effects, new_lens=lens):
            con.execute("DELETE FROM head_effects WHERE adapter_id = ? AND params = ?", key)
            con.execute("DELETE FROM logit_lens WHERE adapter_id = ? AND params = ?", key)
            con.execute("INSERT INTO head_effects BY NAME SELECT * FROM new_effects")
            con.execute("INSERT INTO logit_lens BY NAME SELECT * FROM new_lens")

    def has_head_sweep(self, adapter_id: str, params: str) -> bool:
        return bool(self.scalar("SELECT count(*) FROM head_effects WHERE adapter_id = ? AND params = ?",
                                [adapter_id, params]))

    def head_sweeps(self) -> pd.DataFrame:
        """One row per stored head sweep: adapter, corpus, ablation, emails, heads checked exactly."""
        return self.query(
            f"SELECT h.adapter_id, coalesce(a.training_set, '{ZERO_SHOT}') AS training_set, h.corpus, h.ablation, "
            "h.params, any_value(h.n_emails) AS n_emails, count(*) FILTER (h.method = 'exact') AS exact_heads, "
            "any_value(h.run_id) AS run_id FROM head_effects h LEFT JOIN adapters a ON a.id = h.adapter_id "
            "GROUP BY ALL ORDER BY training_set, h.corpus, h.ablation")

    def head_effects(self, adapter_id: str, params: str) -> pd.DataFrame:
        """Per head of one sweep: the attribution estimate and, where checked, the exact effect."""
        return self.query(
            "SELECT layer, head, "
            "any_value(delta_logit) FILTER (method = 'attribution') AS estimated_delta_logit, "
            "any_value(delta_f1) FILTER (method = 'attribution') AS estimated_delta_f1, "
            "any_value(delta_logit) FILTER (method = 'exact') AS exact_delta_logit, "
            "any_value(delta_f1) FILTER (method = 'exact') AS exact_delta_f1, "
            "coalesce(exact_delta_logit, estimated_delta_logit) AS delta_logit, "
            "coalesce(exact_delta_f1, estimated_delta_f1) AS delta_f1 "
            "FROM head_effects WHERE adapter_id = ? AND params = ? GROUP BY layer, head ORDER BY layer, head",
            [adapter_id, params])

    def add_head_values(self, run_id: str, diagnostic: str, corpus: str, params: str, adapter_id: str,
                        values: pd.DataFrame) -> None:
        """Store a per-head diagnostic's rows (layer, head, value, spread, n_emails), replacing a
        result with the same diagnostic, adapter and params."""
        self._replace_result("head_values", [diagnostic, adapter_id, params],
                             values.assign(run_id=run_id, diagnostic=diagnostic, adapter_id=adapter_id, corpus=corpus,
                                           params=params))

    def has_head_values(self, diagnostic: str, adapter_id: str, params: str) -> bool:
        return self._has_result("head_values", diagnostic, adapter_id, params)

    # The two diagnostic result tables (head_values, diagnostic_values) are keyed alike.
    def _replace_result(self, table: str, key: list[str], rows: pd.DataFrame) -> None:
        """Write one result's rows, replacing what was stored under its (diagnostic, adapter, params) key."""
        with self.transaction() as con, self._frames(con, new_rows=rows):
            con.execute(f"DELETE FROM {table} WHERE diagnostic = ? AND adapter_id = ? AND params = ?", key)
            con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM new_rows")

    def _has_result(self, table: str, diagnostic: str, adapter_id: str, params: str) -> bool:
        return bool(self.scalar(f"SELECT count(*) FROM {table} WHERE diagnostic = ? AND adapter_id = ? AND params = ?",
                                [diagnostic, adapter_id, params]))

    def head_value_results(self, diagnostic: str) -> pd.DataFrame:
        """One row per stored result of a per-head diagnostic: adapter, training set, corpus, emails."""
        return self.query(
            f"SELECT v.adapter_id, coalesce(a.training_set, '{ZERO_SHOT}') AS training_set, v.corpus, v.params, "
            "any_value(v.n_emails) AS n_emails, any_value(v.run_id) AS run_id FROM head_values v "
            "LEFT JOIN adapters a ON a.id = v.adapter_id WHERE v.diagnostic = ? GROUP BY ALL "
            "ORDER BY training_set, v.corpus", [diagnostic])

    def head_values(self, diagnostic: str, adapter_id: str, params: str) -> pd.DataFrame:
        """Per head (and the remainder row, layer -1) of one stored result."""
        return self.query("SELECT layer, head, value, spread, n_emails FROM head_values WHERE diagnostic = ? "
                          "AND adapter_id = ? AND params = ? ORDER BY layer, head", [diagnostic, adapter_id, params])

    def add_diagnostic_values(self, run_id: str, diagnostic: str, corpus: str, params: str, adapter_id: str,
                              grid: pd.DataFrame) -> None:
        """Store a sample diagnostic's grid (row, column, value, low, high, n), replacing a result
        with the same diagnostic, scorer and params."""
        self._replace_result("diagnostic_values", [diagnostic, adapter_id, params],
                             grid.assign(run_id=run_id, diagnostic=diagnostic, adapter_id=adapter_id, corpus=corpus,
                                         params=params, position=range(len(grid))))

    def has_diagnostic_values(self, diagnostic: str, adapter_id: str, params: str) -> bool:
        return self._has_result("diagnostic_values", diagnostic, adapter_id, params)

    def diagnostic_results(self, diagnostic: str) -> pd.DataFrame:
        """One row per stored result of a sample diagnostic: scorer, training set, corpus, params, run."""
        return self.query(
            f"SELECT v.adapter_id, coalesce(any_value(s.training_set), '{ZERO_SHOT}') AS training_set, v.corpus, "
            "v.params, max(v.n) AS n, any_value(v.run_id) AS run_id FROM diagnostic_values v "
            "LEFT JOIN scorers s ON s.id = v.adapter_id WHERE v.diagnostic = ? "
            "GROUP BY v.adapter_id, v.corpus, v.params ORDER BY training_set, v.corpus", [diagnostic])

    def diagnostic_values(self, diagnostic: str, adapter_id: str, params: str) -> pd.DataFrame:
        """One stored grid: row, column, value, low, high, n."""
        return self.query('SELECT "row", "column", value, low, high, n FROM diagnostic_values WHERE diagnostic = ? '
                          'AND adapter_id = ? AND params = ? ORDER BY position', [diagnostic, adapter_id, params])

    def add_training_vectors(self, adapter_id: str, training_set: str, email_ids: Sequence[str],
                             scores: Sequence[float], vectors) -> None:
        """Index training emails for nearest-neighbour search (rows already there are kept)."""
        frame = pd.DataFrame({"adapter_id": adapter_id, "training_set": training_set, "email_id": list(email_ids),
                              "score": [float(s) for s in scores], "vector": [list(map(float, v)) for v in vectors]})
        with self.transaction() as con, self._frames(con, new_vectors=frame):
            con.execute("INSERT INTO training_vectors SELECT adapter_id, training_set, email_id, score, "
                        "vector::FLOAT[] FROM new_vectors ON CONFLICT DO NOTHING")

    def indexed_email_ids(self, adapter_id: str, training_set: str) -> set[str]:
        return set(self.query("SELECT email_id FROM training_vectors WHERE adapter_id = ? AND training_set = ?",
                              [adapter_id, training_set])["email_id"])

    def nearest_training_emails(self, adapter_id: str, training_set: str, vector, k: int = 5) -> pd.DataFrame:
        """The k indexed training emails most similar (cosine) to a unit-length vector."""
        return self.query(
            "SELECT e.id AS email_id, list_cosine_similarity(v.vector, ?::FLOAT[]) AS similarity, e.label, e.corpus, "
            "e.subject, v.score FROM training_vectors v JOIN emails e ON e.id = v.email_id "
            "WHERE v.adapter_id = ? AND v.training_set = ? ORDER BY similarity DESC, e.id LIMIT ?",
            [list(map(float, vector)), adapter_id, training_set, k])

    def neighbour_indexes(self) -> pd.DataFrame:
        """Which (adapter, training set) have a nearest-training-email index, and how many emails it holds."""
        return self.query("SELECT adapter_id, training_set, count(*) AS emails FROM training_vectors "
                          "GROUP BY ALL ORDER BY training_set")

    def logit_lens(self, adapter_ids: list[str] | None = None) -> pd.DataFrame:
        """Stored dataset-averaged logit lens curves (one per adapter and sweep)."""
        where, args = ("WHERE l.adapter_id IN (SELECT unnest(?))", [adapter_ids]) if adapter_ids else ("", [])
        return self.query(
            f"SELECT l.adapter_id, coalesce(a.training_set, '{ZERO_SHOT}') AS training_set, l.corpus, l.params, "
            f"l.layer, l.mean_score, l.std_score, l.n_emails FROM logit_lens l LEFT JOIN adapters a "
            f"ON a.id = l.adapter_id {where} ORDER BY l.adapter_id, l.params, l.layer", args)

    def is_empty(self) -> bool:
        """True until the store holds at least one prediction (the Overview's input)."""
        return not self.scalar("SELECT count(*) FROM predictions")


def _explanation_from_json(payload: str) -> Explanation:
    raw = json.loads(payload)
    curves = raw.pop("faithfulness")
    raw["spans"] = tuple(tuple(span) for span in raw["spans"])
    for name in ("fields", "values"):
        raw[name] = tuple(raw[name])
    if curves:
        curves = Faithfulness(**{k: tuple(v) if isinstance(v, list) else v for k, v in curves.items()})
    return Explanation(**raw, faithfulness=curves)


def _email_from_row(row: dict) -> Email:
    return Email(
        id=row["id"], corpus=row["corpus"], subject=row["subject"], body=row["body"],
        label=int(row["label"]), sender=row["sender"] or "", receiver=row["receiver"] or "",
        date=row["date"] or "", urls=tuple(row["urls"] if row["urls"] is not None else ()),
        source_ref=row["source_ref"] or "", normalisation=row["normalisation"],
        truncated=bool(row["truncated"]),
    )
