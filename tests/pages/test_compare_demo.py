"""AppTest: Compare shows two adapters' maps on one email with their agreement; the live
demo lists curated examples with one-click explain links."""

import pytest

from data.store import Store
from diagnostics.analyses.walkthrough import WALKTHROUGH_METHOD, plan_walkthrough
from tests.conftest import open_app_page


def test_compare_aligns_two_adapters_and_reports_agreement(monkeypatch, evaluated_settings):
    with Store.open(evaluated_settings.store_path, read_only=True) as store:
        adapters = store.adapters()
        email_id = store.split_ids("synthetic-listdump", "test")["id"].iloc[1]
    names = [f"{r.training_set} · {r.model}" for r in adapters.itertuples()][:2]
    at = open_app_page(monkeypatch, evaluated_settings, "pages/compare.py", max_tokens=128, email=email_id,
                       compare=names, method="gradxinput")
    assert not at.exception, at.exception
    verdicts = next(d.value for d in at.dataframe if "model / adapter" in d.value.columns)
    assert list(verdicts["model / adapter"]) == names
    maps = [str(e.proto.body) for e in at.get("html") if "title=" in str(e.proto.body)]
    assert len(maps) == 2
    assert len(at.get("plotly_chart")) == 1  # the agreement heatmap
    assert at.selectbox(key="compare_corpus").value is not None


def test_demo_page_links_curated_examples_to_explain(monkeypatch, evaluated_settings):
    at = open_app_page(monkeypatch, evaluated_settings, "pages/demo.py")
    assert not at.exception, at.exception
    with Store.open(evaluated_settings.store_path, read_only=True) as store:
        curated = store.curated_examples()
    assert len(curated) >= 3 and set(curated["why"]) >= {"most adapters wrong", "clear phishing, all right"}
    links = at.get("page_link")
    assert len(links) == len(curated)
    assert all("explain" in str(link.proto.page) for link in links)


def test_demo_page_walks_a_presenter_through_the_failure_in_six_clicks(monkeypatch, evaluated_settings):
    at = open_app_page(monkeypatch, evaluated_settings, "pages/demo.py")
    assert not at.exception, at.exception
    steps = [b for b in at.button if b.key.startswith("demo_step_")]
    assert [b.label.split(" · ")[0] for b in steps] == ["1", "2", "3", "4", "5", "6"]
    with Store.open(evaluated_settings.store_path, read_only=True) as store:
        walk = plan_walkthrough(store)
    from pages._safe import md

    assert any(md(walk.training_set) in m.value and md(walk.failing_corpus) in m.value for m in at.markdown)
    steps[2].click().run()  # one mistake, word by word: lands on Explain with that email
    assert not at.exception, at.exception
    assert at.query_params.get("email") == walk.mistake_id and at.query_params.get("method") == WALKTHROUGH_METHOD
    assert set(at.query_params["adapters"]) == {walk.training_set, "generalist"}


@pytest.mark.parametrize("step, tab, extra", [(3, "Field reliance", "corpus"), (4, "Direct logit attribution", "adapter")])
def test_walkthrough_steps_open_their_tab(monkeypatch, evaluated_settings, step, tab, extra):
    at = open_app_page(monkeypatch, evaluated_settings, "pages/demo.py")
    at.button(key=f"demo_step_{step}").click().run()
    assert not at.exception, at.exception
    assert at.query_params.get("tab") == tab and at.query_params.get(extra)
    assert tab in _default_tabs(at)  # the page opens on that tab


def _default_tabs(at) -> list[str]:
    """The default tab label of every st.tabs on the rendered page."""
    found = []

    def walk(node) -> None:
        proto = getattr(node, "proto", None)
        if proto is not None and "tab_container" in type(proto).DESCRIPTOR.fields_by_name \
                and proto.HasField("tab_container"):
            container = proto.tab_container
            labels = [child.label for child in node.children.values() if getattr(child, "type", "") == "tab"]
            found.append(container.default_tab_label or labels[container.default_tab_index])
        for child in getattr(node, "children", {}).values():
            walk(child)

    walk(at._tree)
    return found


def test_the_last_step_opens_a_suspected_label_error_in_the_inbox(monkeypatch, evaluated_copy):
    """Step 6, "or is it the label?": with the label audit stored, the Inbox opens on a suspect the
    specialist scored, with the evidence."""
    from diagnostics.contracts.registry import diagnostic
    from diagnostics.runners.local import LocalExecutor, run_job

    with Store.open(evaluated_copy.store_path) as store:  # plant three label errors, then audit
        store.execute("UPDATE emails SET label = 1 - label WHERE source_ref IN (SELECT unnest(?))",
                      [[f"synthetic-listdump#{i}" for i in (7, 32, 57)]])
        run_job(store, diagnostic("label-audit").make_job(None, evaluated_copy.models_dir),
                LocalExecutor(evaluated_copy.models_dir), progress=False)
        walk = plan_walkthrough(store)
        suspects = store.flagged_ids("label-audit")
    assert walk.suspect_id in suspects
    at = open_app_page(monkeypatch, evaluated_copy, "pages/demo.py")
    at.button(key="demo_step_5").click().run()
    assert not at.exception, at.exception
    assert at.query_params.get("suspects") == "1" and at.query_params.get("email") == walk.suspect_id
    assert any("Suspected label error" in w.value for w in at.warning)
