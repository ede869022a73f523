import duckdb
import pytest

from data.store import SCHEMA_VERSION, Store, StoreError


def test_new_store_has_current_schema(settings):
    with Store.open(settings.store_path) as store:
        assert store.schema_version() == SCHEMA_VERSION
        assert store.is_empty()
    with Store.open(settings.store_path, read_only=True) as store:  # reopen: no migration needed
        assert store.schema_version() == SCHEMA_VERSION


def test_read_only_open_of_missing_store_says_how_to_build(tmp_path):
    with pytest.raises(StoreError, match="cli.py demo"):
        Store.open(tmp_path / "none.duckdb", read_only=True)


def test_newer_schema_is_refused_and_file_untouched(tmp_path):
    path = tmp_path / "future.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE schema_version (version INTEGER, applied_at TIMESTAMP)")
    con.execute("INSERT INTO schema_version VALUES (?, now())", [SCHEMA_VERSION + 1])
    con.close()
    before = path.read_bytes()
    with pytest.raises(StoreError, match="newer than this PhishLens"):
        Store.open(path)
    assert path.read_bytes() == before


def test_corrupt_file_is_a_clear_error_and_untouched(tmp_path):
    path = tmp_path / "corrupt.duckdb"
    path.write_bytes(b"this is not a duckdb file" * 100)
    before = path.read_bytes()
    with pytest.raises(StoreError, match="not a readable DuckDB store"):
        Store.open(path)
    assert path.read_bytes() == before


def test_version_zero_store_is_migrated_forward(tmp_path):
    path = tmp_path / "old.duckdb"
    duckdb.connect(str(path)).close()  # an empty database: schema version 0
    with Store.open(path) as store:
        assert store.schema_version() == SCHEMA_VERSION
        assert store.corpus_names() == []


def test_failed_transaction_leaves_no_rows(store):
    with pytest.raises(RuntimeError):
        with store.transaction() as con:
            con.execute("INSERT INTO runs VALUES ('r', 'x', 'running', NULL, now(), NULL, NULL)")
            raise RuntimeError("boom")
    assert store.query("SELECT count(*) AS n FROM runs")["n"][0] == 0


def test_failed_run_is_recorded_with_its_error(store):
    with pytest.raises(ValueError):
        with store.run("train", {"x": 1}):
            raise ValueError("bad input")
    row = store.query("SELECT status, error FROM runs").iloc[0]
    assert row["status"] == "failed" and "bad input" in row["error"]


def test_run_params_merge_what_a_run_learns_while_running(store):
    with store.run("evaluate", {"precision": "int8", "targets": ["a", "b"]}) as run_id:
        store.add_run_params(run_id, {"precision_checks": {"a": {"verdicts_flipped": 0}}})
        store.add_run_params(run_id, {"precision_checks": {"b": {"verdicts_flipped": 2}}})
    assert store.run_params(run_id) == {"precision": "int8", "targets": ["a", "b"], "precision_checks": {
        "a": {"verdicts_flipped": 0}, "b": {"verdicts_flipped": 2}}}
    assert store.run_params("no-such-run") == {}


def test_migration_backs_up_the_store_first(tmp_path, monkeypatch):
    import data.store as store_module

    path = tmp_path / "store.duckdb"
    with Store.open(path) as store:
        store.execute("INSERT INTO runs VALUES ('r1', 'x', 'done', NULL, now(), NULL, NULL)")
    monkeypatch.setattr(store_module, "SCHEMA_VERSION", SCHEMA_VERSION + 1)
    monkeypatch.setattr(store_module, "MIGRATIONS", [*store_module.MIGRATIONS, "CREATE TABLE extra (a INTEGER)"])
    with Store.open(path) as store:
        assert store.schema_version() == SCHEMA_VERSION + 1
        assert store.scalar("SELECT count(*) FROM runs") == 1
    backup = tmp_path / f"store.duckdb.v{SCHEMA_VERSION}.bak"
    assert backup.exists()
    monkeypatch.setattr(store_module, "SCHEMA_VERSION", SCHEMA_VERSION)
    with pytest.raises(StoreError, match="newer"):
        Store.open(path)  # the migrated file is refused by the old code ...
    with Store.open(backup, read_only=True) as old:  # ... while the backup still opens
        assert old.schema_version() == SCHEMA_VERSION


# ------------------------------------------------------------------ damage inside data blocks

@pytest.mark.parametrize("how", ["truncated", "blocks"])
def test_damaged_store_reads_are_store_errors_and_the_file_is_untouched(synthetic_store_path, tmp_path, how):
    from tests.conftest import damage_store

    path = damage_store(synthetic_store_path, tmp_path / f"{how}.duckdb", how)
    before = path.read_bytes()
    with pytest.raises(StoreError, match="damaged"):
        store = Store.open(path, read_only=True)
        store.query("SELECT * FROM emails")  # every email body: reads the damaged blocks
    with pytest.raises(StoreError, match="damaged"):
        Store.open(path).query("SELECT * FROM emails")  # read-write open as well
    assert path.read_bytes() == before


def test_full_read_names_the_damaged_tables(synthetic_store_path, tmp_path):
    from tests.conftest import damage_store

    assert Store.open(synthetic_store_path, read_only=True).damaged_tables() == {}
    path = damage_store(synthetic_store_path, tmp_path / "blocks.duckdb", "blocks")
    store = Store.open(path, read_only=True)  # the header is intact: opening works
    damaged = store.damaged_tables()
    assert "emails" in damaged and all("checksum" in error for error in damaged.values())


def test_a_query_error_is_not_reported_as_damage(store):
    with pytest.raises(duckdb.BinderException):
        store.query("SELECT no_such_column FROM emails")
