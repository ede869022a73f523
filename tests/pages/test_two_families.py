"""Every page on a store of two model families, two seeds of one training set, specialists, a
generalist and both zero-shot bases: each scorer is listed once under a name of its own, a page's
URL reopens the same scorers, and a job started from a page runs on the scorer picked."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from data.records import JobRequest
from data.store import Store
from tests.conftest import open_app_page


@pytest.fixture(scope="module")
def catalogue(two_family_settings):
    with Store.open(two_family_settings.store_path, read_only=True) as store:
        return store.scorer_catalogue([two_family_settings.model])


def test_the_catalogue_names_every_scorer_once(catalogue, two_family_settings):
    kinds = catalogue["kind"].value_counts().to_dict()
    assert kinds == {"adapter": 5, "zero-shot": 2, "bag-of-words": 2}
    assert catalogue["name"].is_unique and catalogue["long_name"].is_unique and catalogue["id"].is_unique
    seeds = catalogue[(catalogue["training_set"] == "generalist") & (catalogue["kind"] == "adapter")]
    assert sorted(seeds["seed"].dropna().astype(int)) == [13, 13, 14]  # two Llama seeds and Gemma's
    assert any("(seed 14)" in n for n in seeds["name"]) and all("tiny-gemma3" in n or "seed" in n
                                                                for n in seeds["name"])


PICKERS = [  # page, picker key, the kinds of scorer it offers
    ("explain", "explain_adapters", {"adapter", "zero-shot"}),
    ("compare", "compare_picked", {"adapter", "zero-shot"}),
    ("analyze", "analyze_adapters", {"adapter", "zero-shot"}),
    ("heads", "heads_adapter", {"adapter", "zero-shot"}),
    ("demo", "demo_adapters", {"adapter", "zero-shot"}),
    ("runs", "runs_scorer", {"adapter", "zero-shot"}),
    ("inbox", "inbox_adapter", {"adapter", "zero-shot", "bag-of-words"}),
    ("overview", "overview_pair_a", {"adapter", "zero-shot", "bag-of-words"}),
    ("overview", "overview_threshold_scorer", {"adapter", "zero-shot", "bag-of-words"}),
]


@pytest.mark.parametrize("page, key, kinds", PICKERS, ids=[f"{p}:{k}" for p, k, _ in PICKERS])
def test_every_picker_lists_each_scorer_once_under_its_own_name(monkeypatch, two_family_settings, catalogue, page,
                                                                key, kinds):
    at = open_app_page(monkeypatch, two_family_settings, f"pages/{page}.py", max_tokens=96)
    assert not at.exception, at.exception
    widget = next(w for w in [*at.selectbox, *at.multiselect] if w.key == key)
    options = [o for o in widget.options if not o.startswith("(none")]
    assert len(options) == len(set(options)) == int(catalogue["kind"].isin(kinds).sum()), options
    names = set(catalogue["name"]) | set(catalogue["long_name"])
    assert set(options) <= names, set(options) - names


def test_explain_and_heads_urls_reopen_the_same_scorers(monkeypatch, two_family_settings, catalogue):
    second_seed = catalogue[catalogue["name"].str.contains(r"\(seed 14\)")]["id"].iloc[0]
    gemma_zero_shot = catalogue[(catalogue["kind"] == "zero-shot") & catalogue["model"].str.contains("gemma")]["id"].iloc[0]
    at = open_app_page(monkeypatch, two_family_settings, "pages/explain.py", max_tokens=96, method="gradxinput")
    at.multiselect(key="explain_adapters").set_value([second_seed, gemma_zero_shot]).run()
    assert not at.exception, at.exception
    shared = {k: at.query_params.get_all(k) if hasattr(at.query_params, "get_all") else v
              for k, v in dict(at.query_params).items()}
    again = open_app_page(monkeypatch, two_family_settings, "pages/explain.py", max_tokens=96, **shared)
    assert not again.exception, again.exception
    assert again.multiselect(key="explain_adapters").value == [second_seed, gemma_zero_shot]
    subheaders = [s.value for s in again.subheader]
    assert any("(seed 14)" in s for s in subheaders) and any("zero-shot" in s and "gemma" in s for s in subheaders)

    heads = open_app_page(monkeypatch, two_family_settings, "pages/heads.py", max_tokens=96)
    heads.selectbox(key="heads_adapter").set_value(second_seed).run()
    assert not heads.exception, heads.exception
    reopened = open_app_page(monkeypatch, two_family_settings, "pages/heads.py", max_tokens=96,
                             adapter=heads.query_params["adapter"])
    assert reopened.selectbox(key="heads_adapter").value == second_seed


def test_a_job_started_from_a_page_runs_on_the_scorer_picked(monkeypatch, two_family_settings, catalogue, tmp_path):
    """Heads' direct logit attribution form, on the Gemma generalist: the request carries its id, and
    the `cli.py` call it makes stores the result under that adapter, not the first 'generalist'."""
    import shutil

    from cli import app

    home = tmp_path / "home"
    shutil.copytree(two_family_settings.home, home)
    settings = two_family_settings.with_overrides(home=home, store_path=home / "store.duckdb")
    gemma_generalist = catalogue[(catalogue["kind"] == "adapter") & (catalogue["training_set"] == "generalist")
                                 & catalogue["model"].str.contains("gemma")]["id"].iloc[0]
    started: list[JobRequest] = []
    monkeypatch.setattr("pages._kinds.start_job", lambda s, request: started.append(request) or _job())
    at = open_app_page(monkeypatch, settings, "pages/heads.py", max_tokens=96, tab="Direct logit attribution")
    at.selectbox(key="heads_direct-logit-attribution_set").set_value(gemma_generalist)
    at.number_input(key="heads_direct-logit-attribution_size").set_value(2)
    submit = next(b for b in at.button if "direct-logit-attribution" in str(b.proto.form_id))
    submit.click().run()
    assert not at.exception, at.exception
    assert [r.scorer for r in started] == [gemma_generalist]
    arguments = started[0].arguments()
    assert arguments[arguments.index("--scorer") + 1] == gemma_generalist
    result = CliRunner().invoke(app, ["--home", str(home), "--store", str(settings.store_path), "--model",
                                      settings.model, "--device", "cpu", *arguments, "--max-tokens", "96"])
    assert result.exit_code == 0, result.output
    with Store.open(settings.store_path, read_only=True) as store:
        stored = store.head_value_results("direct-logit-attribution")
    assert list(stored["adapter_id"]) == [gemma_generalist]


def _job():
    from pathlib import Path

    from data.records import BackgroundJob

    return BackgroundJob("job-1", "cli.py", 0.0, 1, Path("/dev/null"), "queued", None, "")


def test_overview_url_reopens_the_same_pair_and_architectures(monkeypatch, two_family_settings, catalogue):
    at = open_app_page(monkeypatch, two_family_settings, "pages/overview.py")
    assert not at.exception, at.exception
    options = at.selectbox(key="overview_pair_a").options
    at.selectbox(key="overview_pair_a").set_value(options[-1]).run()
    at.selectbox(key="overview_arch_b").set_value(at.selectbox(key="overview_arch_b").options[-1]).run()
    assert not at.exception, at.exception
    picked = {k: at.selectbox(key=k).value for k in ("overview_pair_a", "overview_pair_b", "overview_arch_a",
                                                      "overview_arch_b", "overview_arch_set")}
    # Overview is the default page: open_app_page's first run would already give its widgets their
    # defaults, so the link is opened the way a browser does, with the query in the first request.
    from streamlit.testing.v1 import AppTest

    from tests.conftest import APP

    again = AppTest.from_file(APP, default_timeout=300)
    for name in ("pair_a", "pair_b", "arch_a", "arch_b", "arch_set"):
        again.query_params[name] = at.query_params[name]
    again.run()
    assert not again.exception, again.exception
    assert {k: again.selectbox(key=k).value for k in picked} == picked
    pairs = next(d.value for d in again.dataframe if "ΔF1 (A − B)" in d.value.columns and "A" in d.value.columns)
    assert len(pairs) > 0 and set(pairs["A"]) <= set(catalogue["long_name"])
