"""AppTest: detectors brought from elsewhere on the pages. An imported score file is a row beside the LLM
rows on Overview, compared with one of them on the same emails, its unused rows listed; the Inbox shows
its verdicts as scores only; an imported classification-head adapter opens on Explain and Heads, which
say how it is read."""

import json

from data.store import Store
from diagnostics.analyses.paired import compare_scorers
from tests.conftest import open_app_page

FILTER = "spam-words filter (scores only)"


def _head_adapter(settings) -> dict:
    with Store.open_to_read(settings.store_path) as store:
        scorers = store.scorer_catalogue()
    return scorers[scorers["readout"] == "classification-head"].iloc[0].to_dict()


def test_overview_shows_the_score_file_beside_the_llm_rows_and_compares_them(monkeypatch, byod_settings):
    at = open_app_page(monkeypatch, byod_settings, "pages/overview.py")
    assert not at.exception, at.exception
    figures = next(d.value for d in at.dataframe if "tp" in d.value.columns)  # the matrix's cells, as a table
    rows = set(zip(figures["training_set"], figures["corpus"]))
    assert {(FILTER, "LingSpam"), ("generalist", "LingSpam")} <= rows, rows
    assert not any(t == FILTER and c != "LingSpam" for t, c in rows)
    files = next(d.value for d in at.dataframe if "rows_not_matched" in d.value.columns)
    assert files[["name", "rows_not_matched", "rows_outside_test_splits"]].values.tolist() == [["spam-words filter", 4, 3]]
    unused = next(d.value for d in at.dataframe if "problem" in d.value.columns)
    assert len(unused) == 7 and unused["problem"].str.contains("no such email").sum() == 2

    names = at.selectbox(key="overview_pair_a").options
    filter_name = next(n for n in names if n.startswith("spam-words filter"))
    llm_name = next(n for n in names if n.startswith("generalist"))
    at.selectbox(key="overview_pair_a").set_value(filter_name).run()
    at.selectbox(key="overview_pair_b").set_value(llm_name).run()
    assert not at.exception, at.exception
    table = next(d.value for d in at.dataframe if "McNemar p" in d.value.columns)
    assert table["corpus"].tolist() == ["LingSpam"]  # the only corpus both scored
    with Store.open_to_read(byod_settings.store_path) as store:
        catalogue = store.scorer_catalogue().set_index("long_name")
        pairs = store.paired_verdicts(catalogue.loc[filter_name, "id"], catalogue.loc[llm_name, "id"])
    expected = compare_scorers(pairs["true_label"], pairs["verdict_a"], pairs["verdict_b"])
    assert table["n"].iloc[0] == expected.n == 20 and table["McNemar p"].iloc[0] == expected.mcnemar_p


def test_inbox_shows_the_score_files_verdicts_as_scores_only(monkeypatch, byod_settings):
    at = open_app_page(monkeypatch, byod_settings, "pages/inbox.py")
    assert not at.exception, at.exception
    picker = next(s for s in at.selectbox if FILTER in s.options)
    picker.set_value(FILTER).run()
    assert not at.exception, at.exception
    table = next(d.value for d in at.dataframe if "subject" in d.value.columns)
    assert len(table) > 0


def test_explain_and_heads_open_an_imported_classification_head(monkeypatch, byod_settings):
    head = _head_adapter(byod_settings)
    with Store.open_to_read(byod_settings.store_path) as store:
        email_id = store.split_ids("LingSpam", "test")["id"].iloc[0]
    at = open_app_page(monkeypatch, byod_settings, "pages/explain.py", max_tokens=96, email=email_id,
                       adapters=head["name"], method="gradxinput", delta="1")
    assert not at.exception, at.exception
    captions = " ".join(c.value for c in at.caption)
    assert "classification head's logit difference" in captions and "No LoRA delta" in captions
    assert any("background:rgba(" in str(h.proto.body) for h in at.get("html"))

    at = open_app_page(monkeypatch, byod_settings, "pages/heads.py", max_tokens=96, email=email_id,
                       adapter=head["name"])
    assert not at.exception, at.exception
    assert "head's difference direction" in " ".join(c.value for c in at.caption)
    titles = [json.loads(c.proto.spec)["layout"].get("title", {}).get("text", "") for c in at.get("plotly_chart")]
    assert "Logit lens" in titles


def test_runs_page_imports_a_causal_adapter_with_its_own_prompt_and_evaluates_it(monkeypatch, evaluated_settings,
                                                                                 tmp_path):
    import shutil
    import time
    from pathlib import Path

    from diagnostics.runners.background import list_jobs
    from tests.conftest import FOREIGN_TEMPLATE, FOREIGN_WORDS, plain_peft_adapter

    home = tmp_path / "home"
    shutil.copytree(evaluated_settings.home, home)
    settings = evaluated_settings.with_overrides(home=home, store_path=home / "store.duckdb")
    folder = plain_peft_adapter(Path(settings.model), tmp_path / "yes-no", "CAUSAL_LM", seed=3)
    at = open_app_page(monkeypatch, settings, "pages/runs.py")
    assert not at.exception, at.exception
    at.text_input(key="runs_import_folder").set_value(str(folder))
    at.text_input(key="runs_import_name").set_value("yes-no detector")
    at.text_area(key="runs_import_template").set_value(FOREIGN_TEMPLATE)
    at.text_input(key="runs_import_negative").set_value(FOREIGN_WORDS[0])
    at.text_input(key="runs_import_positive").set_value(FOREIGN_WORDS[1])
    at.number_input(key="runs_import_sample").set_value(5)
    next(b for b in at.button if b.proto.label == "Import and evaluate").click().run()
    assert any("Started" in s.value and "import-adapter" in s.value for s in at.success), [s.value for s in at.success]
    deadline = time.time() + 240
    while list_jobs(settings)[0].status in ("running", "queued") and time.time() < deadline:
        time.sleep(0.5)
    assert list_jobs(settings)[0].status == "done", list_jobs(settings)[0].last_line
    with Store.open_to_read(settings.store_path) as store:
        adapter = store.adapters().query("training_set == 'imported:yes-no detector'").iloc[0]
        assert store.scalar("SELECT count(DISTINCT corpus) FROM predictions WHERE adapter_id = ?", [adapter["id"]]) == 3
    info = json.loads((Path(adapter["path"]) / "phishlens_adapter.json").read_text())
    assert info["prompt_template"] == FOREIGN_TEMPLATE and info["label_words"] == list(FOREIGN_WORDS)
