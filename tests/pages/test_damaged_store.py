"""A store damaged inside its data blocks (or cut short) shows a message on every page, never a
DuckDB traceback, and is not modified by being shown."""

import pytest

from data.settings import load_settings
from tests.conftest import damage_store, open_app_page

PAGES = ["overview", "inbox", "explain", "compare", "drivers", "study", "heads", "demo", "corpora", "runs"]


@pytest.mark.parametrize("how", ["blocks", "truncated"])
def test_pages_on_a_damaged_store_say_what_to_do(monkeypatch, synthetic_store_path, tmp_path, how):
    path = damage_store(synthetic_store_path, tmp_path / "store.duckdb", how)
    before = path.read_bytes()
    settings = load_settings(home=tmp_path, store_path=path, device="cpu")
    told = []
    for page in PAGES:
        at = open_app_page(monkeypatch, settings, f"pages/{page}.py")
        assert not at.exception, f"{page}: {[e.message for e in at.exception]}"
        told += [m.value for m in [*at.error, *at.warning] if "damaged" in m.value]
    assert told, "no page said the store is damaged"
    assert all("move it aside" in m for m in told)
    assert path.read_bytes() == before
