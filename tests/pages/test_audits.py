"""The label and leakage audits on the pages, on the store of two model families and two seeds: the
Corpora page starts them and draws what they stored, the Inbox filters and marks the suspects and
records (and undoes) a corrected label, and Overview's matrix is shown in every label view."""

from __future__ import annotations

import shutil

import pytest
from typer.testing import CliRunner

from data.records import JobRequest
from data.store import Store
from tests.conftest import open_app_page


PLANTED = [f"synthetic-listdump#{i}" for i in (7, 32, 57)]


@pytest.fixture(scope="module")
def audited(two_family_settings, tmp_path_factory):
    """A copy of the two-family store with both audits run as `cli.py diagnose` runs them."""
    from cli import app

    home = tmp_path_factory.mktemp("audited")
    shutil.copytree(two_family_settings.home, home, dirs_exist_ok=True)
    settings = two_family_settings.with_overrides(home=home, store_path=home / "store.duckdb")
    with Store.open(settings.store_path) as store:  # plant label errors where the generator would (its every 25th)
        store.execute("UPDATE emails SET label = 1 - label WHERE source_ref IN (SELECT unnest(?))", [PLANTED])
        store.execute("UPDATE predictions SET true_label = 1 - true_label WHERE email_id IN "
                      "(SELECT id FROM emails WHERE source_ref IN (SELECT unnest(?)))", [PLANTED])
    for name in ("label-audit", "near-duplicates"):
        arguments = JobRequest("diagnose", (name,)).arguments()
        result = CliRunner().invoke(app, ["--home", str(home), "--store", str(settings.store_path), *arguments])
        assert result.exit_code == 0, result.output
        assert "synthetic-listdump" in result.output  # the per-corpus summary is printed
    return settings


def test_corpora_page_starts_the_audits_and_draws_them(monkeypatch, two_family_settings, audited):
    from tests.pages.test_two_families import _job

    started: list[JobRequest] = []
    monkeypatch.setattr("pages._kinds.start_job", lambda s, request: started.append(request) or _job())
    fresh = open_app_page(monkeypatch, two_family_settings, "pages/corpora.py")
    assert not fresh.exception, fresh.exception
    assert any("Nothing stored yet" in i.value for i in fresh.info)
    fresh.button(key="flags_label-audit_start").click().run()
    assert [r.arguments()[:2] for r in started] == [["diagnose", "label-audit"]]

    at = open_app_page(monkeypatch, audited, "pages/corpora.py")
    assert not at.exception, at.exception
    with Store.open(audited.store_path, read_only=True) as store:
        summaries = {name: store.flag_summaries(name) for name in ("label-audit", "near-duplicates")}
        suspects = store.flagged_ids("label-audit")
    summary = next(f.value for f in at.dataframe if "flagged" in f.value.columns and "candidates" in f.value.columns)
    assert set(summary["corpus"]) == set(summaries["label-audit"]["corpus"])
    assert suspects
    flagged = next(f.value for f in at.dataframe if "p_given_label" in f.value.columns)
    assert set(flagged["email_id"]) == suspects  # all of them (fewer than the 200 shown)
    with Store.open(audited.store_path, read_only=True) as store:
        planted = set(store.query("SELECT id FROM emails WHERE source_ref IN (SELECT unnest(?))", [PLANTED])["id"])
    assert suspects & planted  # the planted errors are among the suspects
    pairs = next(f.value for f in at.dataframe if "jaccard" in f.value.columns)
    assert (pairs["jaccard"] >= 0.7).all() and (pairs["partner_id"] != "").all()
    assert len(at.get("plotly_chart")) >= 2


def test_inbox_filters_marks_and_corrects_a_suspected_label(monkeypatch, audited):
    with Store.open(audited.store_path, read_only=True) as store:
        suspects = sorted(store.flagged_ids("label-audit"))
        original = store.label_status(suspects[0])["original"]
    at = open_app_page(monkeypatch, audited, "pages/inbox.py", suspects="1", adapter="(none: browse all emails)",
                       email=suspects[0])
    assert not at.exception, at.exception
    table = at.dataframe(key="inbox_table").value
    assert len(table) == len(suspects) and table["mark"].str.contains("suspected label error").all()
    assert any("Suspected label error" in w.value for w in at.warning)
    at.radio(key="inbox_label_editor_label").set_value(1 - original)
    at.text_input(key="inbox_label_editor_note").set_value("the lure is a real newsletter")
    next(b for b in at.button if "inbox_label_editor_form" in str(b.proto.form_id)).click().run()
    assert not at.exception, at.exception
    with Store.open(audited.store_path, read_only=True) as store:
        assert store.label_status(suspects[0])["corrected"] == 1 - original
    table = at.dataframe(key="inbox_table").value.set_index("id")
    assert "corrected" in table.loc[suspects[0], "mark"]
    headers = next(f.value for f in at.dataframe if "field" in f.value.columns).set_index("field")
    assert "corrected by an analyst" in headers.loc["True label", "value"]
    at.button(key="inbox_label_editor_undo").click().run()
    with Store.open(audited.store_path, read_only=True) as store:
        assert store.label_status(suspects[0])["corrected"] is None
        assert len(store.label_corrections(history=True)) == 1  # undone, not forgotten


@pytest.mark.parametrize("view", ["original", "corrected", "without suspects", "without near-duplicates"])
def test_overview_shows_the_matrix_in_every_label_view(monkeypatch, audited, view):
    at = open_app_page(monkeypatch, audited, "pages/overview.py")
    at.radio(key="overview_labels").set_value(view).run()
    assert not at.exception, at.exception
    assert at.query_params["labels"] == view  # a link reopens the view
    if view == "without suspects":
        with Store.open(audited.store_path, read_only=True) as store:
            scored_suspects = store.query("SELECT count(*) AS n FROM predictions WHERE email_id IN "
                                          "(SELECT email_id FROM email_flags WHERE diagnostic = 'label-audit')")["n"][0]
        moves = [f.value for f in at.dataframe if "emails_left_out" in f.value.columns]
        if scored_suspects:
            assert moves and moves[0]["emails_left_out"].sum() == scored_suspects
        else:
            assert any("No cell changes" in i.value for i in at.info)


def test_explain_shows_the_label_as_corrected_and_suspected(monkeypatch, audited):
    with Store.open(audited.store_path) as store:
        suspect = sorted(store.flagged_ids("label-audit"))[0]
        original = store.label_status(suspect)["original"]
        store.correct_label(suspect, 1 - original, "checked by hand")
    try:
        at = open_app_page(monkeypatch, audited, "pages/explain.py", max_tokens=96, email=suspect, method="gradxinput")
        assert not at.exception, at.exception
        label = next(t.value for t in at.text if t.value.startswith("Label: "))
        assert "corrected by an analyst" in label and "checked by hand" in label and "suspected label error" in label
    finally:
        with Store.open(audited.store_path) as store:
            store.undo_label_correction(suspect)


def test_the_study_page_reports_over_a_label_view(monkeypatch, audited, tmp_path):
    from tests.conftest import study_toml, tiny_study

    studies = tmp_path / "studies"
    studies.mkdir()
    (studies / "tiny.toml").write_text(study_toml(tiny_study(audited.model, name="tiny")))
    monkeypatch.setenv("PHISHLENS_STUDIES", str(studies))
    at = open_app_page(monkeypatch, audited, "pages/study.py", spec="tiny")
    assert not at.exception, at.exception
    at.radio(key="study_labels").set_value("without suspects").run()
    assert not at.exception, at.exception
    assert at.query_params["labels"] == "without suspects"
    assert any("without suspected label errors" in c.value for c in at.caption)
    from diagnostics.analyses.study import load_spec, plan_study, study_results

    spec = load_spec(studies / "tiny.toml")
    with Store.open(audited.store_path, read_only=True) as store:
        suspects = store.flagged_ids("label-audit")
        plan = plan_study(store, spec)
        original = study_results(store, spec, plan, audited.seed)
        viewed = study_results(store, spec, plan, audited.seed, "without suspects")
        scored = store.query("SELECT adapter_id, count(*) AS n FROM predictions WHERE email_id IN (SELECT unnest(?)) "
                             "GROUP BY adapter_id", [sorted(suspects)]).set_index("adapter_id")["n"]
    moved = original.set_index(["adapter_id", "corpus"])["n"].groupby("adapter_id").sum() - \
        viewed.set_index(["adapter_id", "corpus"])["n"].groupby("adapter_id").sum()
    for adapter, n in moved.items():
        assert n == scored.get(adapter, 0)  # each run loses exactly its scored suspects
