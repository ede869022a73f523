"""An analyst's corrected label: kept beside the corpus' own (never overwriting it), shown as
corrected wherever the label appears (Inbox, label status, the corrected matrix), surviving a
restart, and undoable."""

from __future__ import annotations

import pytest

from data.store import Store


def _scored_test_email(store: Store) -> tuple[str, int, str]:
    row = store.query("SELECT email_id, true_label, adapter_id FROM predictions WHERE adapter_id NOT LIKE 'zero-shot%' "
                      "ORDER BY email_id LIMIT 1").iloc[0]
    return row["email_id"], int(row["true_label"]), row["adapter_id"]


def test_a_correction_survives_a_restart_is_shown_everywhere_and_can_be_undone(evaluated_copy):
    path = evaluated_copy.store_path
    with Store.open(path) as store:
        email_id, original, scorer = _scored_test_email(store)
        before = store.metrics().set_index(["adapter_id", "corpus"])
        store.correct_label(email_id, 1 - original, "sender confirmed by phone")
    with Store.open(path, read_only=True) as store:  # a restart: a new connection to the file
        status = store.label_status(email_id)
        assert status["original"] == original and status["corrected"] == 1 - original
        assert status["note"] == "sender confirmed by phone"
        assert store.email(email_id).label == original  # the corpus' label is never overwritten
        page, _ = store.inbox(adapter_id=scorer, limit=1000)
        row = page.set_index("id").loc[email_id]
        assert row["label"] == 1 - original and row["original_label"] == original and row["corrected"]
        corrected = store.metrics("corrected").set_index(["adapter_id", "corpus"])
        corpus = store.email(email_id).corpus
        moved = int((corrected["tp"] + corrected["fn"]).loc[(scorer, corpus)] - (before["tp"] + before["fn"]).loc[(scorer, corpus)])
        assert moved == (1 if original == 0 else -1)
        assert (store.metrics().set_index(["adapter_id", "corpus"])["f1"].fillna(-1) == before["f1"].fillna(-1)).all()
    with Store.open(path) as store:
        store.correct_label(email_id, original, "no: the phone number was the attacker's")  # supersedes
        assert store.label_status(email_id)["corrected"] == original
        assert store.undo_label_correction(email_id)
        assert not store.undo_label_correction(email_id)  # nothing left to undo
        assert store.label_status(email_id)["corrected"] is None
        history = store.label_corrections(history=True)
        assert len(history) == 2 and history["undone_at"].notna().all()
        assert (history["original_label"] == original).all()
        assert store.label_corrections().empty
        restored = store.metrics("corrected").set_index(["adapter_id", "corpus"])
        assert (restored["f1"].fillna(-1) == before["f1"].fillna(-1)).all()


def test_bad_corrections_are_refused_with_a_reason(evaluated_copy):
    with Store.open(evaluated_copy.store_path) as store:
        email_id, original, _ = _scored_test_email(store)
        with pytest.raises(ValueError, match="say why"):
            store.correct_label(email_id, 1 - original, "  ")
        with pytest.raises(ValueError, match="0 .legitimate. or 1"):
            store.correct_label(email_id, 2, "typo")
        with pytest.raises(ValueError, match="no email"):
            store.correct_label("not-an-id", 1, "typo")
        assert store.label_corrections(history=True).empty


def test_the_cli_records_and_undoes_a_correction(evaluated_copy, monkeypatch):
    from typer.testing import CliRunner

    from cli import app

    with Store.open(evaluated_copy.store_path, read_only=True) as store:
        email_id, original, _ = _scored_test_email(store)
    runner = CliRunner()
    home = ["--home", str(evaluated_copy.home)]
    monkeypatch.setenv("PHISHLENS_STORE", str(evaluated_copy.store_path))
    label = "legitimate" if original else "phishing"
    result = runner.invoke(app, [*home, "correct-label", email_id, label, "--note", "checked the headers"])
    assert result.exit_code == 0 and "recorded" in result.output, result.output
    with Store.open(evaluated_copy.store_path, read_only=True) as store:
        assert store.label_status(email_id)["corrected"] == 1 - original
    assert runner.invoke(app, [*home, "correct-label", email_id, "maybe"]).exit_code == 1
    shown = runner.invoke(app, [*home, "status", "--labels", "corrected"])
    assert shown.exit_code == 0 and "labels: corrected" in shown.output, shown.output
    assert runner.invoke(app, [*home, "status", "--labels", "mine"]).exit_code == 1
    result = runner.invoke(app, [*home, "correct-label", email_id, "--undo"])
    assert result.exit_code == 0 and "undone" in result.output
