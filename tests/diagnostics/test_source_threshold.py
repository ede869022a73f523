"""The threshold tuned at the source: validation emails are the training corpora's training-split
emails outside the training set; the tuned threshold is the F1-best cut there, applied unchanged
to each test corpus (checked against scikit-learn's F1), stored as a grid and shown on Overview."""

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import f1_score

from diagnostics.analyses.source_threshold import SOURCE_ROW, source_threshold_columns, source_threshold_grid, validation_ids


def test_a_threshold_tuned_on_shifted_source_scores_carries_to_a_target_shifted_alike():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 400)
    # The scorer's scores sit 3 above where they should: at 0 it calls most legitimate email phishing.
    source = labels * 2.0 - 1 + rng.normal(0, 0.8, 400) + 3.0
    target_labels = rng.integers(0, 2, 300)
    target = pd.DataFrame({"corpus": "T", "score": target_labels * 2.0 - 1 + rng.normal(0, 0.8, 300) + 3.0,
                           "true_label": target_labels})
    grid = source_threshold_grid(source, labels, target)
    threshold, by_corpus = source_threshold_columns(grid)
    assert 2.0 < threshold < 4.0  # the shift is found at the source
    at_source = by_corpus.set_index("corpus").loc["T"]
    assert at_source["source_f1"] == pytest.approx(f1_score(target_labels, target["score"] > threshold))
    at_zero = grid[(grid["row"] == "T") & (grid["column"] == "F1 at 0")]["value"].iloc[0]
    assert at_zero == pytest.approx(f1_score(target_labels, target["score"] > 0))
    assert at_source["source_f1"] > at_zero + 0.1
    assert at_source["source_f1_low"] < at_source["source_f1"] < at_source["source_f1_high"]
    oracle = grid[(grid["row"] == "T") & (grid["column"] == "oracle F1")]["value"].iloc[0]
    assert oracle >= at_source["source_f1"]  # the oracle is tuned on the very emails: an upper bound
    assert grid[grid["row"] == SOURCE_ROW]["n"].eq(400).all()


def test_a_corpus_of_one_class_gets_no_f1_and_no_interval():
    labels = np.array([0, 1] * 50)
    phishing_only = pd.DataFrame({"corpus": "P", "score": np.linspace(-1, 3, 30), "true_label": 1})
    grid = source_threshold_grid(labels * 2.0 - 1, labels, phishing_only)
    cells = grid[grid["row"] == "P"]
    assert cells[["value", "low", "high"]].isna().all().all()  # F1 is undefined without legitimate email


def test_validation_emails_are_training_split_emails_never_trained_on(evaluated_copy):
    from data.store import Store

    with Store.open(evaluated_copy.store_path, read_only=True) as store:
        ids = validation_ids(store, "generalist", 10, 1)
        trained = {m.id for m in store.training_set_emails("generalist")}
        corpora = store.training_set("generalist")["corpora"]
        train = {i for c in corpora for i in store.split_ids(c, "train")["id"]}
        assert ids and not set(ids) & trained and set(ids) <= train
        assert len(ids) == 10 * len(corpora)  # a stratified sample of 10 per training corpus
        with pytest.raises(ValueError, match="not in the store"):
            validation_ids(store, "specialist-nowhere", 10, 1)


def test_the_job_stores_the_grid_and_overview_shows_f1_at_the_source_threshold(monkeypatch, evaluated_copy):
    from data.records import DiagnosticRequest, EvaluationTarget
    from data.store import Store
    from diagnostics.runners.local import LocalExecutor, run_job
    from diagnostics.contracts.registry import diagnostic
    from tests.conftest import open_app_page

    entry = diagnostic("source-threshold")
    with Store.open(evaluated_copy.store_path) as store:
        folder = store.adapters().set_index("training_set").loc["specialist-synthetic-corporate", "path"]
        request = DiagnosticRequest(EvaluationTarget(evaluated_copy.model, folder), "", 12, 96, 1, 8)
        assert run_job(store, entry.make_job(request, evaluated_copy.models_dir),
                       LocalExecutor(evaluated_copy.models_dir, "cpu"), progress=False).run_id
        result = store.diagnostic_results(entry.name).iloc[0]
        grid = store.diagnostic_values(entry.name, result["adapter_id"], result["params"])
        tested = set(store.scores(result["adapter_id"])["corpus"])
        with pytest.raises(ValueError, match="the zero-shot base has none"):
            zero = DiagnosticRequest(EvaluationTarget(evaluated_copy.model, None), "", 12, 96, 1, 8)
            run_job(store, entry.make_job(zero, evaluated_copy.models_dir),
                    LocalExecutor(evaluated_copy.models_dir, "cpu"), progress=False)
    assert set(grid["row"]) == tested | {SOURCE_ROW}
    assert grid.loc[grid["row"] == SOURCE_ROW, "n"].iloc[0] == 12  # one training corpus, 12 validation emails

    at = open_app_page(monkeypatch, evaluated_copy, "pages/overview.py")
    at = at.selectbox(key="overview_threshold_scorer").select(
        "specialist-synthetic-corporate · " + evaluated_copy.model).run()
    assert not at.exception
    table = next(d.value for d in at.dataframe if "oracle_f1" in d.value.columns)
    assert "source_f1" in table.columns and table["source_f1"].notna().all()
    assert any("at the threshold tuned at the source" in t.value for t in at.text)
