"""The corpus-fingerprint audit on constructed cases: two corpora drawn from one distribution probe
at chance within the interval, a corpus with a planted signature is recognised and the signature
named among its top fingerprint features, and the stored job probes every layer of the tiny model."""

import random
from dataclasses import replace

import numpy as np
import pytest

from data.synthetic import generate_synthetic_corpora
from diagnostics.analyses.fingerprint import fingerprint_grid


@pytest.fixture(scope="module")
def webmail():
    return generate_synthetic_corpora(per_corpus=160, seed=8, planted=False)[1][1]


def test_two_halves_of_one_corpus_probe_at_chance(webmail):
    rng = random.Random(4)
    halves = [replace(m, corpus=rng.choice(["half-a", "half-b"])) for m in webmail]
    noise = np.random.default_rng(0).normal(size=(len(halves), 3, 16)).astype(np.float32)
    grid = fingerprint_grid(halves, noise, seed=0).set_index("row")
    chance = grid.loc["chance (largest corpus)", "value"]
    for probe in ("text (TF-IDF + LR)", "text and form", "embedding", "layer 0", "layer 1"):
        low, high = grid.loc[probe, ["low", "high"]]
        assert low <= 0.5 <= high and low <= chance, (probe, low, high)


def test_a_planted_signature_is_recognised_and_named(webmail):
    signed = [replace(m, corpus="signed", body=m.body + "\nSent via ZorbMail Mobile") for m in webmail[:80]]
    plain = [replace(m, corpus="plain") for m in webmail[80:]]
    grid = fingerprint_grid(signed + plain, None, seed=0)
    accuracy = grid.set_index("row").loc["text (TF-IDF + LR)"]
    assert accuracy["value"] >= 0.95 and accuracy["low"] > 0.85
    top = grid[grid["row"] == "fingerprint of signed"]["column"].str.lower()
    assert {"zorbmail", "mobile", "via", "sent"} & set(top)


def test_a_corpus_that_differs_only_in_form_is_named_by_its_form(webmail):
    from diagnostics.analyses.field_counterfactuals import tokenised
    from diagnostics.analyses.fingerprint import FORM_FEATURES

    dumped = [replace(m, corpus="dump", subject=tokenised(m.subject), body=tokenised(m.body)) for m in webmail[:80]]
    raw = [replace(m, corpus="raw") for m in webmail[80:]]
    grid = fingerprint_grid(dumped + raw, None, seed=0).set_index("row")
    assert grid.loc["text and form", "low"] > 0.9
    top = list(grid.loc["fingerprint of dump", "column"])
    assert top[0] == "form: punctuation set off by spaces", top
    assert set(FORM_FEATURES) >= {f for f in top if f.startswith("form:")}


def test_the_stored_job_probes_every_layer_of_the_scorer(evaluated_copy, monkeypatch):
    from data.records import DiagnosticRequest, EvaluationTarget
    from data.store import Store
    from diagnostics.runners.local import LocalExecutor, run_job
    from diagnostics.contracts.registry import diagnostic

    settings = evaluated_copy
    entry = diagnostic("corpus-fingerprint")
    request = DiagnosticRequest(EvaluationTarget(settings.model), "", 10, 96, 2)
    with Store.open(settings.store_path) as store:
        outcome = run_job(store, entry.make_job(request, settings.models_dir), LocalExecutor(settings.models_dir, "cpu"),
                          progress=False)
        assert outcome.run_id
        assert run_job(store, entry.make_job(request, settings.models_dir), LocalExecutor(settings.models_dir, "cpu"),
                       progress=False).run_id is None  # stored: nothing to do
        results = store.diagnostic_results(entry.name)
        grid = store.diagnostic_values(entry.name, results["adapter_id"][0], results["params"][0])
    accuracy = grid[grid["column"] == "accuracy"].set_index("row")
    assert list(accuracy.index[:4]) == ["chance (largest corpus)", "text (TF-IDF + LR)", "text and form", "embedding"]
    assert len(accuracy) == 3 + 1 + 2  # chance, two text probes, embedding + the tiny model's 2 layers
    assert accuracy.loc["chance (largest corpus)", "value"] == pytest.approx(1 / 3)
    assert (accuracy["n"] == 30).all() and set(results["corpus"]) == {"all corpora"}

    import json

    from tests.conftest import open_app_page

    at = open_app_page(monkeypatch, settings, "pages/drivers.py")
    assert not at.exception, at.exception
    titles = [json.loads(c.proto.spec)["layout"].get("title", {}).get("text", "") for c in at.get("plotly_chart")]
    assert "Corpus fingerprints: accuracy" in titles
    features = next(d.value for d in at.dataframe  # other tabs' tables come first when the store has sweeps
                    if "row" in d.value.columns and d.value["row"].astype(str).str.startswith("fingerprint of").any())
    assert len(features) == 3 * 5  # five per corpus
