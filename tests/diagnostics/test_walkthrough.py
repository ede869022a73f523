"""The Live demo's walk-through: it picks the specialist's worst out-of-domain corpus and its most
confident mistake there from the stored matrix, and its steps store what each page step shows
(once: a second run computes nothing)."""

from pathlib import Path

import pytest

from data.store import Store
from diagnostics.runners.local import LocalExecutor
from diagnostics.analyses.walkthrough import plan_walkthrough, walkthrough_steps


def test_the_walkthrough_is_the_specialists_largest_drop_and_its_worst_mistake(evaluated_settings):
    with Store.open(evaluated_settings.store_path, read_only=True) as store:
        walk = plan_walkthrough(store)
        metrics = store.metrics()
        wrong = store.query("SELECT email_id, abs(score) AS confidence FROM predictions WHERE adapter_id = ? "
                            "AND corpus = ? AND predicted <> true_label", [walk.adapter_id, walk.failing_corpus])
    mine = metrics[metrics["adapter_id"] == walk.adapter_id].set_index("corpus")
    assert walk.training_set == "specialist-synthetic-corporate" and walk.home_corpus == "synthetic-corporate"
    assert bool(mine.loc[walk.home_corpus, "in_domain"]) and not mine.loc[walk.failing_corpus, "in_domain"]
    assert walk.failing_f1 == pytest.approx(mine.loc[~mine["in_domain"], "f1"].min())
    assert walk.drop == pytest.approx(mine.loc[walk.home_corpus, "f1"] - walk.failing_f1)
    assert walk.failing_n == mine.loc[walk.failing_corpus, "n"]
    if len(wrong):
        assert walk.mistake_id in set(wrong[wrong["confidence"] == wrong["confidence"].max()]["email_id"])
    else:
        assert walk.mistake_id is None
    assert walk.generalist and walk.generalist[0] == "generalist" and Path(walk.generalist[1]).exists()


def test_no_walkthrough_without_an_evaluated_specialist(synthetic_store_path):
    with Store.open(synthetic_store_path, read_only=True) as store:
        assert plan_walkthrough(store) is None


def test_the_steps_store_each_page_step_once(evaluated_copy):
    settings = evaluated_copy
    here = LocalExecutor(settings.models_dir, "cpu")
    with Store.open(settings.store_path) as store:
        walk = plan_walkthrough(store)
        steps = walkthrough_steps(store, walk, settings.model, here, settings.models_dir, 4, 64, 0)
        computed = [name for name, run in steps if run()]
        again = [name for name, run in walkthrough_steps(store, walk, settings.model, here, settings.models_dir,
                                                          4, 64, 0) if run()]
        corpora = store.corpus_names()
        sweeps = store.explanation_sweeps()
        reliance = store.diagnostic_results("field-counterfactuals")
        heads = store.head_value_results("direct-logit-attribution")
        fingerprints = store.diagnostic_results("corpus-fingerprint")
        indexed = store.indexed_email_ids(walk.adapter_id, walk.training_set)
    assert computed == [name for name, _ in steps] and again == []
    assert set(sweeps[sweeps["adapter_id"] == walk.adapter_id]["corpus"]) == set(corpora)
    assert sorted(zip(reliance["training_set"], reliance["corpus"])) == sorted(
        (ts, c) for ts in (walk.training_set, "generalist") for c in corpora)
    assert list(heads["corpus"]) == [walk.failing_corpus] and len(fingerprints) == 1
    assert len(indexed) == 32  # the specialist's whole training set
