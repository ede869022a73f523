"""AppTest: Inbox filters and email view; Analyze scores pasted mail and saves it."""

import json
from pathlib import Path

from streamlit.testing.v1 import AppTest

from data.store import Store
from tests.conftest import HOSTILE_EMAIL as HOSTILE
from tests.conftest import open_app_page

APP = str(Path(__file__).resolve().parents[2] / "app.py")


def _frame_with(at, column: str):
    """The first dataframe on the page that has `column` (AppTest keeps no keys for plain tables)."""
    return next(d.value for d in at.dataframe if column in d.value.columns)


def test_inbox_lists_misclassified_first_and_opens_an_email(monkeypatch, evaluated_settings):
    at = open_app_page(monkeypatch, evaluated_settings, "pages/inbox.py")
    assert not at.exception
    adapter = at.selectbox(key="inbox_adapter").value
    table = at.dataframe[0].value
    with Store.open(evaluated_settings.store_path, read_only=True) as store:
        wrong = store.scalar("SELECT count(*) FROM predictions WHERE adapter_id = ? AND predicted <> true_label",
                             [adapter])
    if wrong == 0:
        assert any("No email matches" in i.value for i in at.info)
        return
    assert len(table) == min(wrong, 50)
    assert (table["wrongness"] > 0).all() and table["wrongness"].is_monotonic_decreasing
    at.query_params["email"] = table.iloc[0]["id"]
    at.run()
    assert not at.exception
    assert table.iloc[0]["subject"] in _frame_with(at, "field")["value"].tolist()


def test_inbox_text_search_and_fn_filter(monkeypatch, evaluated_settings):
    at = open_app_page(monkeypatch, evaluated_settings, "pages/inbox.py")
    at.selectbox(key="inbox_outcome").set_value("all").run()
    at.text_input(key="inbox_text").set_value("invoice").run()
    assert not at.exception
    table = at.dataframe[0].value
    assert len(table) > 0 and table["subject"].str.lower().str.contains("invoice").all()
    at.selectbox(key="inbox_outcome").set_value("fn").run()
    fn = at.dataframe[0].value if len(at.dataframe) else None
    if fn is not None and len(fn):
        assert (fn["label"] == "phishing/spam").all() and (fn["verdict"] == "legitimate").all()


def test_analyze_scores_hostile_paste_as_text_and_saves_it(monkeypatch, evaluated_settings, tmp_path):
    import shutil

    home = tmp_path / "copy"
    shutil.copytree(evaluated_settings.home, home)
    settings = evaluated_settings.with_overrides(home=home, store_path=home / "store.duckdb")
    at = open_app_page(monkeypatch, settings, "pages/analyze.py")
    at.text_area(key="analyze_text").set_value(HOSTILE).run()
    at.button(key="analyze_go").click().run()
    assert not at.exception
    verdicts = _frame_with(at, "verdict")
    assert len(verdicts) == 3  # zero-shot + two adapters
    body = at.code[0].value
    assert "Verify **now**" in body and "alert" not in body  # visible text only, script dropped
    markdown = " ".join(m.value for m in at.markdown)
    assert "<script>" not in markdown and "tracker.test" not in markdown
    urls = _frame_with(at, "url")["url"].tolist()
    assert "hxxp://phish[.]test/login" in urls and "hxxp://tracker[.]test/p.gif" in urls
    at.button(key="analyze_save").click().run()
    assert any("Saved" in s.value for s in at.success)
    with Store.open(settings.store_path, read_only=True) as store:
        assert store.scalar("SELECT count(*) FROM emails WHERE corpus = 'user'") == 1
        assert store.scalar("SELECT split FROM splits s JOIN emails e ON e.id = s.email_id WHERE e.corpus = 'user'") == "test"


def test_runs_page_starts_a_job_and_shows_history(monkeypatch, evaluated_settings, tmp_path):
    import shutil
    import time

    home = tmp_path / "runs"
    shutil.copytree(evaluated_settings.home, home)
    settings = evaluated_settings.with_overrides(home=home, store_path=home / "store.duckdb")
    at = open_app_page(monkeypatch, settings, "pages/runs.py")
    assert not at.exception
    history = _frame_with(at, "kind")
    assert {"train", "evaluate"} <= set(history["kind"])
    # The newest run's params are shown; picking another run shows its own.
    evaluation = history.loc[history["kind"] == "evaluate", "id"].iloc[0]
    at.selectbox(key="runs_detail").set_value(evaluation).run()
    with Store.open(settings.store_path, read_only=True) as store:
        assert json.loads(at.json[0].value) == store.run_params(evaluation) != {}
    at.selectbox(key="runs_kind").set_value("train")
    at.selectbox(key="runs_precision").set_value("int8")
    at.button[0].click().run()
    assert any("int8 is a scoring precision" in e.value for e in at.error) and not at.success
    at.selectbox(key="runs_kind").set_value("evaluate")
    at.selectbox(key="runs_precision").set_value("bf16")
    at.number_input(key="runs_sample").set_value(5)
    at.button[0].click().run()
    assert any("Started" in s.value and "--precision bf16" in s.value for s in at.success)
    from diagnostics.runners.background import list_jobs

    deadline = time.time() + 120
    while list_jobs(settings)[0].status == "running" and time.time() < deadline:
        time.sleep(0.5)
    assert list_jobs(settings)[0].status == "done", list_jobs(settings)[0].last_line
    with Store.open(settings.store_path, read_only=True) as store:
        # The job's model evaluation (its reference-model evaluation, which has no precision, ran after it).
        newest = next(p for p in map(store.run_params, store.runs()["id"]) if "targets" in p)
        # Every sampled email was scored when the fixture store was built: the run says so.
        assert newest["precision"] == "bf16" and len(newest["already_scored"]) == len(newest["targets"])


def test_inbox_view_round_trips_through_the_url(monkeypatch, evaluated_settings):
    at = open_app_page(monkeypatch, evaluated_settings, "pages/inbox.py")
    at.selectbox(key="inbox_outcome").set_value("all").run()
    at.multiselect(key="inbox_corpora").set_value(["synthetic-webmail"]).run()
    at.text_input(key="inbox_text").set_value("zorbmail").run()
    shared = {k: v if isinstance(v, list) else [v] for k, v in dict(at.query_params).items()}
    assert shared["show"] == ["all"] and shared["corpus"] == ["synthetic-webmail"] and shared["q"] == ["zorbmail"]
    # A fresh session opened with that URL shows the same view.
    monkeypatch.setenv("PHISHLENS_STORE", str(evaluated_settings.store_path))
    fresh = AppTest.from_file(APP, default_timeout=120)
    for name, values in shared.items():
        fresh.query_params[name] = values
    fresh.run()
    fresh.switch_page("pages/inbox.py").run()
    assert fresh.multiselect(key="inbox_corpora").value == ["synthetic-webmail"]
    assert fresh.text_input(key="inbox_text").value == "zorbmail"
    table = fresh.dataframe[0].value
    assert len(table) > 0 and (table["corpus"] == "synthetic-webmail").all()


def test_analyze_warns_when_the_token_budget_cuts_the_email(monkeypatch, evaluated_settings):
    monkeypatch.setenv("PHISHLENS_MAX_TOKENS", "64")
    at = open_app_page(monkeypatch, evaluated_settings, "pages/analyze.py")
    at.text_area(key="analyze_text").set_value("Please verify your account now. " * 200).run()
    at.button(key="analyze_go").click().run()
    assert not at.exception
    assert (_frame_with(at, "verdict")["truncated_tokens"] > 0).all()
    assert any("truncated email" in w.value for w in at.warning)


def test_analyze_caps_the_paste_box_and_says_how_to_send_more(monkeypatch, evaluated_settings):
    from pages._safe import MAX_PASTE_CHARS

    at = open_app_page(monkeypatch, evaluated_settings, "pages/analyze.py")
    box = at.text_area(key="analyze_text")
    assert box.max_chars == MAX_PASTE_CHARS and "upload" in box.help
    box.set_value("Subject: big\n\n" + "x" * MAX_PASTE_CHARS).run()  # past the cap: kept cut at it
    assert not at.exception
    assert len(at.text_area(key="analyze_text").value) == MAX_PASTE_CHARS
    assert any("upload a larger message" in w.value for w in at.warning)


def test_analyze_names_the_host_a_browser_opens_and_flags_look_alikes(monkeypatch, evaluated_settings):
    at = open_app_page(monkeypatch, evaluated_settings, "pages/analyze.py")
    lure = ("From: it@corp.test\nSubject: verify\n\nLog in at http://evil.test\\@paypal.com/ or "
            "http://p\u0430ypal.com/login or http://pay\u200bpal.com/x today.\n")
    at.text_area(key="analyze_text").set_value(lure).run()
    at.button(key="analyze_go").click().run()
    assert not at.exception
    links = _frame_with(at, "host a browser opens")
    hosts = links["host a browser opens"].tolist()
    assert "evil[.]test" in hosts and "xn--pypal-4ve[.]com" in hosts
    assert not any("paypal[.]com" == h for h in hosts[:2])
    assert any("mixed scripts" in w for w in links["look twice"])
    assert any("⟦U+200B⟧" in u for u in links["url"])
