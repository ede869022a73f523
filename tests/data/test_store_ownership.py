"""The store is PhishLens's own or refused: another program's database, a SQLite file, a FIFO or
a folder is never written to; a store on a read-only mount is read by reading commands and
refused, with the right advice, by writing ones."""

import hashlib
import os
import shutil
import sqlite3
import subprocess
import sys
import threading
import time

import duckdb
import pytest

from data.settings import PROJECT_ROOT
from data.store import NO_EXTENSIONS, Store, StoreError


def _digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_another_programs_duckdb_database_is_refused_untouched(tmp_path):
    path = tmp_path / "crm.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE customers (id INTEGER, name VARCHAR)")
    con.execute("INSERT INTO customers VALUES (1, 'a')")
    con.close()
    before = _digest(path)
    for read_only in (False, True):
        with pytest.raises(StoreError, match="not a PhishLens store.*customers"):
            Store.open(path, read_only=read_only)
    assert _digest(path) == before
    tables = duckdb.connect(str(path), read_only=True).execute("SELECT table_name FROM information_schema.tables").fetchall()
    assert tables == [("customers",)]


def test_cli_status_on_a_foreign_database_adds_no_table(tmp_path):
    path = tmp_path / "crm.duckdb"
    duckdb.connect(str(path)).execute("CREATE TABLE orders (id INTEGER)").close()
    before = _digest(path)
    done = subprocess.run([sys.executable, "cli.py", "--store", str(path), "status"], cwd=PROJECT_ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert "not a PhishLens store" in done.stderr + done.stdout
    assert _digest(path) == before


def test_a_sqlite_file_is_refused_before_duckdb_reads_it(tmp_path):
    path = tmp_path / "store.duckdb"
    sqlite3.connect(path).execute("CREATE TABLE t (a)").connection.commit()
    before = _digest(path)
    started = time.perf_counter()
    with pytest.raises(StoreError, match="SQLite database"):
        Store.open(path)
    assert time.perf_counter() - started < 1  # no extension download attempted
    assert _digest(path) == before


def test_connections_never_install_or_load_extensions(store):
    with store.connection() as con:
        settings = dict(con.execute("SELECT name, value FROM duckdb_settings() WHERE name IN "
                                    "('autoinstall_known_extensions', 'autoload_known_extensions')").fetchall())
    assert settings == {name: "false" for name in NO_EXTENSIONS}


@pytest.mark.parametrize("kind", ["fifo", "folder"])
def test_a_store_path_that_is_not_a_regular_file_is_refused_without_blocking(tmp_path, kind):
    path = tmp_path / "store.duckdb"
    os.mkfifo(path) if kind == "fifo" else path.mkdir()
    outcome = {}

    def open_it():
        try:
            Store.open(path)
        except StoreError as exc:
            outcome["error"] = str(exc)

    opener = threading.Thread(target=open_it, daemon=True)
    opener.start()
    opener.join(5)
    assert not opener.is_alive(), "opening the store blocked"
    assert ("a FIFO" if kind == "fifo" else "a folder") in outcome["error"]


def _read_only_mount_works() -> bool:
    if shutil.which("unshare") is None:
        return False
    return subprocess.run(["unshare", "-rm", "true"], capture_output=True).returncode == 0


@pytest.mark.skipif(not _read_only_mount_works(), reason="needs `unshare -rm` (user and mount namespaces) "
                                                         "to make a read-only bind mount")
def test_store_on_a_read_only_mount(tmp_path, synthetic_store_path):
    source, mount = tmp_path / "source", tmp_path / "mnt"
    source.mkdir()
    mount.mkdir()
    shutil.copy(synthetic_store_path, source / "store.duckdb")
    before = _digest(source / "store.duckdb")
    store = mount / "store.duckdb"
    script = (f"mount --bind {source} {mount} && mount -o remount,bind,ro {mount} && "
              f"{sys.executable} cli.py --store {store} status; echo status-rc=$?; "
              f"{sys.executable} cli.py --store {store} ingest --data {source}; echo ingest-rc=$?")
    done = subprocess.run(["unshare", "-rm", "sh", "-c", script], cwd=PROJECT_ROOT, capture_output=True, text=True,
                          timeout=300)
    output = done.stdout + done.stderr
    assert "status-rc=0" in output and "synthetic-corporate" in output, output
    assert "ingest-rc=1" in output and "is read-only" in output, output
    assert "move it aside and rebuild" not in output.lower()
    assert _digest(source / "store.duckdb") == before
