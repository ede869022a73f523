"""AppTest: the Overview page renders a store built in the test and shows SQL's numbers."""

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from data.store import Store

APP = str(Path(__file__).resolve().parents[2] / "app.py")


def _app(monkeypatch, settings) -> AppTest:
    monkeypatch.setenv("PHISHLENS_STORE", str(settings.store_path))
    monkeypatch.setenv("PHISHLENS_HOME", str(settings.home))
    return AppTest.from_file(APP, default_timeout=60)


def test_overview_shows_f1_from_predictions(monkeypatch, evaluated_settings):
    at = _app(monkeypatch, evaluated_settings).run()
    assert not at.exception
    table = next(d.value for d in at.dataframe if "f1" in d.value.columns and "tp" in d.value.columns)
    with Store.open(evaluated_settings.store_path, read_only=True) as store:
        expected = store.query(
            "SELECT CASE WHEN r.id IS NOT NULL THEN 'bag of words · ' || r.training_set "
            "       ELSE coalesce(ts.name, 'zero-shot') END AS training_set, p.corpus, "
            "2.0 * count(*) FILTER (p.true_label = 1 AND p.predicted = 1) / "
            "(2 * count(*) FILTER (p.true_label = 1 AND p.predicted = 1) "
            " + count(*) FILTER (p.true_label <> p.predicted)) AS f1 "
            "FROM predictions p LEFT JOIN adapters a ON a.id = p.adapter_id "
            "LEFT JOIN reference_models r ON r.id = p.adapter_id "
            "LEFT JOIN training_sets ts ON ts.name = a.training_set GROUP BY ALL")
    shown = table.set_index(["training_set", "corpus"])["f1"]
    # zero-shot + 2 adapters, and the bag-of-words reference on the same 2 training sets, × 3 corpora
    assert len(shown) == len(expected) == 15
    for row in expected.itertuples():
        assert shown.loc[(row.training_set, row.corpus)] == pytest.approx(row.f1)
    assert any("Synthetic data" in w.value for w in at.warning)
    assert len(at.get("plotly_chart")) >= 2


def test_overview_with_empty_store_says_how_to_build(monkeypatch, settings):
    Store.open(settings.store_path).close()
    at = _app(monkeypatch, settings).run()
    assert not at.exception
    assert any("cli.py demo" in i.value for i in at.info)


def test_overview_with_corrupt_store_explains(monkeypatch, settings):
    settings.store_path.write_bytes(b"garbage" * 1000)
    at = _app(monkeypatch, settings).run()
    assert not at.exception
    assert any("not a readable DuckDB store" in w.value for w in at.warning)


def test_corpora_page_renders(monkeypatch, evaluated_settings):
    at = _app(monkeypatch, evaluated_settings).run()
    at.switch_page("pages/corpora.py").run()
    assert not at.exception
    corpora = at.dataframe[0].value
    assert set(corpora["name"]) == {"synthetic-corporate", "synthetic-listdump", "synthetic-webmail"}
    assert corpora["synthetic"].all()


def test_overview_shows_new_results_without_restart(monkeypatch, evaluated_settings, tmp_path):
    import shutil

    home = tmp_path / "fresh"
    shutil.copytree(evaluated_settings.home, home)
    settings = evaluated_settings.with_overrides(home=home, store_path=home / "store.duckdb")
    at = _app(monkeypatch, settings).run()
    before = len(next(d.value for d in at.dataframe if "tp" in d.value.columns))
    with Store.open(settings.store_path) as store:  # a job writes while the page is open
        store.execute("DELETE FROM predictions WHERE adapter_id LIKE 'zero-shot:%'")
    at.run()
    after = len(next(d.value for d in at.dataframe if "tp" in d.value.columns))
    assert (before, after) == (15, 12)  # 3 corpora × (zero-shot, 2 adapters, 2 bag-of-words references)


def test_difference_view_compares_two_scorers_on_the_same_emails(monkeypatch, evaluated_settings):
    from data.store import Store
    from diagnostics.analyses.paired import compare_scorers
    from tests.conftest import open_app_page

    at = open_app_page(monkeypatch, evaluated_settings, "pages/overview.py")
    assert not at.exception
    first, second = at.selectbox(key="overview_pair_a"), at.selectbox(key="overview_pair_b")
    assert first.value != second.value
    table = next(d.value for d in at.dataframe if "McNemar p" in d.value.columns)
    sentences = [t.value for t in at.text if "ΔF1" in t.value or "undefined" in t.value]
    assert len(sentences) == len(table) > 0
    # The page's figures are those of an independent recomputation on the same emails.
    metrics = Store.open(evaluated_settings.store_path, read_only=True).metrics()
    ids = {f"{r.training_set} · {'bag of words' if r.model == 'tfidf-lr' else r.model}": r.adapter_id
           for r in metrics.drop_duplicates("adapter_id").itertuples()}
    pairs = Store.open(evaluated_settings.store_path, read_only=True).paired_verdicts(ids[first.value], ids[second.value])
    row = table.iloc[0]
    rows = pairs[pairs["corpus"] == row["corpus"]]
    expected = compare_scorers(rows["true_label"], rows["verdict_a"], rows["verdict_b"])
    assert row["n"] == expected.n and row["McNemar p"] == expected.mcnemar_p


def test_a_collapsed_adapter_is_named_with_what_to_change_on_every_page(monkeypatch, evaluated_copy):
    from tests.conftest import open_app_page

    with Store.open(evaluated_copy.store_path) as store:
        collapsed_one, answering = store.query("SELECT id FROM adapters ORDER BY id")["id"]
        # One step of training leaves the tiny random-weight adapters calling everything phishing.
        assert set(store.collapsed_scorers()["adapter_id"]) == {collapsed_one, answering}
        assert store.scalar("SELECT min(predicted) FROM predictions WHERE adapter_id LIKE 'zero-shot:%'") == 1
        store.execute("UPDATE predictions SET predicted = true_label WHERE adapter_id = ?", [answering])
        collapsed = store.collapsed_scorers()
        n, labels = store.query("SELECT count(*), avg(true_label) FROM predictions WHERE adapter_id = ?",
                                [collapsed_one]).iloc[0]
    assert list(collapsed["adapter_id"]) == [collapsed_one]  # zero-shot is never judged: it was not trained
    expected = f"calls 100% of its {int(n)} test emails phishing, though {labels:.0%} of them are phishing"
    for page in ("pages/overview.py", "pages/explain.py", "pages/heads.py", "pages/inbox.py", "pages/runs.py"):
        at = open_app_page(monkeypatch, evaluated_copy, page)
        assert not at.exception, page
        said = " ".join(w.value for w in at.warning).replace("\\", "")
        assert "Collapsed adapters" in said and expected in said and "lower learning rate" in said, page
        assert answering not in said, page
