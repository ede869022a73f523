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
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path

import duckdb
import pandas as pd

from data.processes import ProcessIdentity, is_gone, rerun_command, this_process
from data.records import ZERO_SHOT, AdapterInfo, CorpusInfo, Email, IngestReport
from data.schema import LABEL_AUDIT, METRICS_SQL, MIGRATIONS, SCHEMA_VERSION  # noqa: F401 (SCHEMA_VERSION: re-exported)
from data.results import (EXPLANATION_COLUMNS, EmailFlagResults, HeadGridResults, MatrixResults, NeighbourResults,  # noqa: F401
                          SampleGridResults, TokenMapResults, _email_from_row, _now)
from data.scorers import SCORES, ZERO_SHOT_PREFIX, catalogue, model_of_zero_shot

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


class Store(MatrixResults, TokenMapResults, HeadGridResults, SampleGridResults, NeighbourResults, EmailFlagResults):
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

    @staticmethod
    def _insert_corpus(con: duckdb.DuckDBPyConnection, info: CorpusInfo, report: IngestReport) -> None:
        """A corpus' row with its ingest counts (and its held-out mark), on the caller's transaction."""
        con.execute("INSERT INTO corpora VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    [info.name, info.source, info.format, info.label_meaning, info.label_convention, info.synthetic,
                     report.normalisation, report.parsed, report.parse_errors, report.duplicates_within,
                     report.label_conflicts, report.duplicates_across, report.kept, _now()])
        if info.eval_only:
            con.execute("INSERT INTO held_out_corpora VALUES (?)", [info.name])

    def add_corpus(self, info: CorpusInfo, report: IngestReport, emails: list[Email]) -> None:
        """Write a corpus, its emails and its ingest errors in one transaction."""
        errors = pd.DataFrame([(info.name, ref, message) for ref, message in report.errors],
                              columns=["corpus", "source_ref", "error"])
        with self.transaction() as con, self._frames(con, new_errors=errors):
            self._insert_corpus(con, info, report)
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
                        self._insert_corpus(con, info, report)
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

    # ------------------------------------------------------------ analysts' label corrections
    def correct_label(self, email_id: str, label: int, note: str) -> None:
        """Record an analyst's label for an email beside the corpus' own (which is never changed);
        a later correction supersedes this one, and undo_label_correction takes it back."""
        if label not in (0, 1):
            raise ValueError(f"a label is 0 (legitimate) or 1 (phishing), not {label!r}")
        if not note.strip():
            raise ValueError("say why the label is wrong (the note is kept with the correction)")
        with self.transaction() as con:
            if not con.execute("SELECT count(*) FROM emails WHERE id = ?", [email_id]).fetchone()[0]:
                raise ValueError(f"no email {email_id!r} in the store")
            now = _now()
            con.execute("UPDATE label_corrections SET undone_at = ? WHERE email_id = ? AND undone_at IS NULL",
                        [now, email_id])
            con.execute("INSERT INTO label_corrections VALUES (?, ?, ?, ?, NULL)", [email_id, label, note.strip(), now])

    def undo_label_correction(self, email_id: str) -> bool:
        """Take back the email's current correction (kept in the history); False if it had none."""
        with self.transaction() as con:
            active = con.execute("SELECT count(*) FROM label_corrections WHERE email_id = ? AND undone_at IS NULL",
                                 [email_id]).fetchone()[0]
            con.execute("UPDATE label_corrections SET undone_at = ? WHERE email_id = ? AND undone_at IS NULL",
                        [_now(), email_id])
        return bool(active)

    def label_corrections(self, history: bool = False) -> pd.DataFrame:
        """Current corrections (email_id, corpus, original_label, label, note, corrected_at), or with
        history=True every correction ever made, undone ones with their undone_at."""
        return self.query(
            "SELECT c.email_id, e.corpus, e.label AS original_label, c.label, c.note, c.corrected_at, c.undone_at "
            "FROM label_corrections c JOIN emails e ON e.id = c.email_id "
            + ("" if history else "WHERE c.undone_at IS NULL ") + "ORDER BY c.corrected_at DESC, c.email_id")

    def label_status(self, email_id: str) -> dict:
        """What is known about one email's label: the corpus' own, the analysts' current correction
        and note (None: none), and the label audit's evidence if it suspects the label (None: not flagged)."""
        with self.connection() as con:
            original = con.execute("SELECT label FROM emails WHERE id = ?", [email_id]).fetchone()
            correction = con.execute("SELECT label, note, corrected_at FROM label_corrections WHERE email_id = ? "
                                     "AND undone_at IS NULL", [email_id]).fetchone()
            suspect = con.execute("SELECT evidence FROM email_flags WHERE diagnostic = ? AND email_id = ?",
                                  [LABEL_AUDIT, email_id]).fetchone()
        return {"original": None if original is None else int(original[0]),
                "corrected": None if correction is None else int(correction[0]),
                "note": None if correction is None else correction[1],
                "corrected_at": None if correction is None else correction[2],
                "suspect": None if suspect is None else json.loads(suspect[0])}

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
        return catalogue(self.adapters(), self.reference_models(), [*zero_shot, *extra_models], self.imported_scorers())

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

    def add_imported_scores(self, matched, source: str, skip_bad_rows: bool = False) -> str:
        """Store a checked score file (data.imported_scores.MatchedScores) as a scores-only scorer, in one
        transaction: its predictions (replacing an earlier import under the same name), its record, and
        the rows it left out. A file with refused rows is stored only when told to skip them."""
        if matched.blocked and not skip_bad_rows:
            raise StoreError(f"{len(matched.problems)} rows of {Path(source).name} could not be used; nothing was "
                             f"imported (fix them, or skip them explicitly)")
        if matched.predictions.empty:
            raise StoreError(f"no row of {Path(source).name} scores a test email; nothing was imported")
        predictions = matched.predictions.assign(adapter_id=matched.scorer_id, model=SCORES)
        problems = pd.concat([matched.problems.assign(skipped=True), matched.left_out.assign(skipped=False)])
        problems = problems.assign(scorer_id=matched.scorer_id, value=problems["value"].astype(str))
        params = {"name": matched.name, "source": str(source), "rows": len(predictions),
                  "skipped": len(matched.problems), "left_out": len(matched.left_out)}
        with self.run("import-scores", params) as run_id:
            with self.transaction() as con, self._frames(con, new_predictions=predictions.assign(run_id=run_id),
                                                         new_problems=problems):
                if matched.new_emails:
                    self._add_scored_corpus(con, matched.new_corpus, list(matched.new_emails))
                con.execute("DELETE FROM predictions WHERE adapter_id = ?", [matched.scorer_id])
                con.execute("DELETE FROM imported_scorers WHERE id = ?", [matched.scorer_id])
                con.execute("DELETE FROM score_import_problems WHERE scorer_id = ?", [matched.scorer_id])
                con.execute("INSERT INTO predictions (run_id, adapter_id, model, email_id, corpus, score, predicted, "
                            "true_label) SELECT run_id, adapter_id, model, email_id, corpus, score, predicted, "
                            "true_label FROM new_predictions")
                con.execute("INSERT INTO imported_scorers VALUES (?,?,?,?,?,?,?)",
                            [matched.scorer_id, matched.name, str(source), matched.score_column, matched.threshold,
                             len(predictions), _now()])
                con.execute('INSERT INTO score_import_problems SELECT scorer_id, "row", value, problem, skipped '
                            "FROM new_problems")
        return run_id

    def _add_scored_corpus(self, con: duckdb.DuckDBPyConnection, info: CorpusInfo, emails: list[Email]) -> None:
        """A score file's raw messages the store lacked, as a held-out corpus (every email a test email), on
        the caller's transaction; an existing corpus of that name must be held out (it grows)."""
        held_out = con.execute("SELECT name IN (SELECT name FROM held_out_corpora) FROM corpora WHERE name = ?",
                               [info.name]).fetchall()
        if held_out and not held_out[0][0]:
            raise StoreError(f"corpus {info.name!r} is a training corpus; name a new corpus for the score file's emails")
        if not held_out:
            n = len(emails)
            self._insert_corpus(con, info, IngestReport(info.name, n, 0, 0, 0, 0, n, emails[0].normalisation))
        self.insert_emails(con, emails)
        with self._frames(con, new_split_ids=pd.DataFrame({"email_id": [m.id for m in emails]})):
            con.execute("INSERT INTO splits SELECT email_id, ?, 'test', 0 FROM new_split_ids", [info.name])

    def imported_scorers(self) -> pd.DataFrame:
        """Every imported score file (scores-only scorers): id, name, source, column, threshold, rows."""
        return self.query("SELECT * FROM imported_scorers ORDER BY id")

    def score_import_problems(self, scorer_id: str | None = None) -> pd.DataFrame:
        """The rows imports could not use (skipped) or left out of the matrix (no test split)."""
        where = " WHERE scorer_id = ?" if scorer_id else ""
        return self.query('SELECT scorer_id, "row", value, problem, skipped FROM score_import_problems'
                          f'{where} ORDER BY scorer_id, "row"', [scorer_id] if scorer_id else [])

    def test_emails(self) -> pd.DataFrame:
        """Every email (id, corpus, label) and whether it is in a test split."""
        return self.query("SELECT e.id, e.corpus, e.label, coalesce(s.split = 'test', false) AS test FROM emails e "
                          "LEFT JOIN splits s ON s.email_id = e.id")

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

    def is_empty(self) -> bool:
        """True until the store holds at least one prediction (the Overview's input)."""
        return not self.scalar("SELECT count(*) FROM predictions")


