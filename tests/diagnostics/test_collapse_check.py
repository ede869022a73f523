"""`train` says at once whether the new adapter answers both ways, on training emails it never saw."""

from __future__ import annotations

import re

import numpy as np
from typer.testing import CliRunner

from data.store import Store
from diagnostics.analyses.collapse_check import HELD_BACK_PER_LABEL, CollapseCheck, held_back_emails


def test_a_check_is_collapsed_only_when_one_verdict_covers_both_labels():
    assert CollapseCheck("a", 8, 8, called_phishing=16, correct=8, held_back=True).collapsed
    assert CollapseCheck("a", 8, 8, called_phishing=0, correct=8, held_back=True).collapsed
    answering = CollapseCheck("a", 8, 8, called_phishing=9, correct=15, held_back=True)
    assert not answering.collapsed and "answers both ways" in answering.sentence()
    assert not CollapseCheck("a", 8, 0, called_phishing=8, correct=8, held_back=True).collapsed  # one label: no verdict
    said = CollapseCheck("a", 8, 8, called_phishing=0, correct=8, held_back=True).sentence()
    assert "calls all 16 held-back training emails legitimate" in said and "--lr" in said


def test_held_back_emails_are_of_both_labels_and_outside_the_training_set(evaluated_settings):
    with Store.open(evaluated_settings.store_path, read_only=True) as store:
        emails, held_back = held_back_emails(store, "generalist")
        members = set(store.query("SELECT email_id FROM training_set_emails WHERE training_set = 'generalist'")["email_id"])
        train_split = set()
        for corpus in store.training_set("generalist")["corpora"]:
            train_split |= set(store.split_ids(corpus, "train")["id"])
    assert held_back and {m.label for m in emails} == {0, 1}
    assert sum(m.label for m in emails) == HELD_BACK_PER_LABEL and len(emails) == 2 * HELD_BACK_PER_LABEL
    assert not {m.id for m in emails} & members and {m.id for m in emails} <= train_split


def test_train_reports_the_check_with_counts_an_independent_scoring_reproduces(evaluated_copy):
    from cli import app
    from models.loading import load_with_adapter
    from models.scoring import score_emails

    settings = evaluated_copy
    result = CliRunner().invoke(app, ["--home", str(settings.home), "--store", str(settings.store_path), "--model",
                                      settings.model, "--device", "cpu", "train", "generalist", "--seed", "21", "--r",
                                      "4", "--alpha", "8", "--lr", "5e-3", "--max-tokens", "96"])
    assert result.exit_code == 0, result.output
    folder = re.search(r"adapter saved at (\S+)", result.output).group(1)
    with Store.open(settings.store_path, read_only=True) as store:
        emails, _ = held_back_emails(store, "generalist", seed=settings.seed)
    scores = score_emails(load_with_adapter(folder, settings.models_dir, "cpu"), emails, 96)
    phishing = int((np.asarray(scores) > 0).sum())
    if phishing in (0, len(emails)):
        answer = "phishing" if phishing else "legitimate"
        assert f"collapsed: it calls all {len(emails)} held-back training emails {answer}" in result.output
        assert "--lr" in result.output
    else:
        correct = sum(int(s > 0) == m.label for s, m in zip(scores, emails))
        assert f"check: {correct} of {len(emails)} held-back training emails right" in result.output
