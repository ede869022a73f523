"""Field counterfactuals on constructed cases with known answers: a scorer that reads only the
sender flips on sender counterfactuals and never on body ones; the intervals match scipy's; the
stored job runs from the CLI on the tiny model and the Drivers page draws it."""

from dataclasses import replace

import numpy as np
import pytest
import scipy.stats
from typer.testing import CliRunner

from data.synthetic import generate_synthetic_corpora
from diagnostics.analyses.field_counterfactuals import (COUNTERFACTUALS, counterfactual_scores, detokenised, donors,
                                               reliance_grid, tokenised)
from diagnostics.analyses.sample_grid import mean_interval, wilson_interval


@pytest.fixture(scope="module")
def planted_emails():
    """20 synthetic webmail emails: every phishing sender at zorbmail.test, every legitimate one not."""
    _, emails = generate_synthetic_corpora(per_corpus=20, seed=5)[1]
    return [replace(m, sender=f"user{i}@zorbmail.test" if m.label else f"user{i}@mail.example")
            for i, m in enumerate(emails)]


def _sender_shortcut(batch):
    """A planted scorer: phishing exactly when the sender is at zorbmail.test."""
    return np.array([4.0 if "zorbmail" in m.sender else -4.0 for m in batch])


def test_a_sender_shortcut_is_found_and_the_body_is_not_blamed(planted_emails):
    grid = reliance_grid(counterfactual_scores(_sender_shortcut, planted_emails,
                                               donors(planted_emails, seed=1))).set_index(["row", "column"])
    flips = grid.xs("flip rate", level="column")["value"]
    assert flips["swap sender"] == 1.0  # every email takes the other label's sender
    assert flips["remove sender"] == pytest.approx(0.5)  # the phishing half loses its zorbmail sender
    for name in ("remove body", "swap body", "remove subject", "swap subject", "remove URLs",
                 "remove last line of body"):
        assert flips[name] == 0.0, name
    assert set(flips.sort_values(ascending=False).index[:2]) == {"swap sender", "remove sender"}
    change = grid.xs("mean score change", level="column")
    assert change.loc["remove sender", "value"] == pytest.approx(-4.0)  # half lose 8, half lose nothing
    assert grid.loc[("remove sender", "flip rate"), "n"] == len(planted_emails)


def test_counterfactuals_that_change_nothing_are_not_counted(planted_emails):
    no_subject = [replace(m, subject="") for m in planted_emails]
    scores = counterfactual_scores(_sender_shortcut, no_subject, donors(no_subject, seed=1))
    assert np.isnan(scores["remove subject"]).all()
    grid = reliance_grid(scores).set_index(["row", "column"])
    assert grid.loc[("remove subject", "flip rate"), "n"] == 0 and np.isnan(grid.loc[("remove subject", "flip rate"),
                                                                                       "value"])


def test_donors_come_from_the_other_label_when_there_is_one(planted_emails):
    for mail, donor in zip(planted_emails, donors(planted_emails, seed=3)):
        assert donor.label != mail.label
    one_class = [m for m in planted_emails if m.label == 1]
    assert all(d is not m for m, d in zip(one_class, donors(one_class, seed=3)))


def test_intervals_agree_with_an_independent_computation():
    for successes, n in [(0, 20), (7, 20), (20, 20), (3, 150)]:
        expected = scipy.stats.binomtest(successes, n).proportion_ci(method="wilson")
        assert wilson_interval(successes, n) == pytest.approx((expected.low, expected.high), abs=1e-9)
    values = np.random.default_rng(0).normal(1.0, 2.0, 400)
    mean, low, high = mean_interval(values)
    expected = scipy.stats.norm.interval(0.95, loc=values.mean(), scale=scipy.stats.sem(values))
    assert (low, high) == pytest.approx(expected, rel=1e-3) and mean == pytest.approx(values.mean())


def test_corpus_forms_are_rewritten_both_ways():
    assert tokenised("Click HERE: http://x.test, now!") == "click here : http : / / x . test , now !"
    assert detokenised("hello , world . see you !") == "hello, world. see you!"
    assert "lower-case and tokenise" in COUNTERFACTUALS and "de-tokenise spacing" in COUNTERFACTUALS


def test_the_job_is_stored_and_the_drivers_page_draws_it(monkeypatch, evaluated_copy):
    from cli import app
    from data.store import Store
    from tests.conftest import open_app_page

    settings = evaluated_copy
    base = ["--home", str(settings.home), "--store", str(settings.store_path), "--model", settings.model,
            "--device", "cpu", "diagnose", "field-counterfactuals", "--max-tokens", "96", "--sample-size", "8"]
    for training_set in ("generalist", "specialist-synthetic-corporate"):
        result = CliRunner().invoke(app, base + ["--corpus", "synthetic-webmail", "--training-set", training_set])
        assert result.exit_code == 0 and "stored (run" in result.output, result.output
    missing = CliRunner().invoke(app, base)
    assert missing.exit_code == 1 and "give --corpus" in missing.output
    with Store.open(settings.store_path, read_only=True) as store:
        results = store.diagnostic_results("field-counterfactuals")
        assert set(results["training_set"]) == {"generalist", "specialist-synthetic-corporate"}
        grid = store.diagnostic_values("field-counterfactuals", results["adapter_id"][0], results["params"][0])
    assert list(dict.fromkeys(grid["row"])) == list(COUNTERFACTUALS)  # stored in the diagnostic's own order
    rates = grid[(grid["column"] == "flip rate") & (grid["n"] > 0)]
    assert ((rates["value"] >= rates["low"] - 1e-12) & (rates["value"] <= rates["high"] + 1e-12)).all()

    at = open_app_page(monkeypatch, settings, "pages/drivers.py")
    assert not at.exception, at.exception
    import json

    titles = [json.loads(c.proto.spec)["layout"].get("title", {}).get("text", "") for c in at.get("plotly_chart")]
    assert "Field reliance: flip rate" in titles
