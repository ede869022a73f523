"""Every registered diagnostic on an imported classification-head adapter (models.imported), from the CLI:
each one that reads a model runs on it and stores its result; those that need the adapter's training
emails (which a detector trained elsewhere did not bring) refuse with a message saying so; a score file
is refused where a model is needed."""

from __future__ import annotations

import shutil

import pytest
from typer.testing import CliRunner

from data.store import Store
from diagnostics.contracts.registry import DIAGNOSTICS

NEEDS_TRAINING_EMAILS = {"source-threshold", "nearest-training-emails"}
STORE_AUDITS = {d.name for d in DIAGNOSTICS.values() if d.scorers == 0} | {"evaluate"}


@pytest.fixture(scope="module")
def byod_copy(byod_settings, tmp_path_factory):
    home = tmp_path_factory.mktemp("byod-diagnostics")
    shutil.copytree(byod_settings.home, home, dirs_exist_ok=True)
    settings = byod_settings.with_overrides(home=home, store_path=home / "store.duckdb")
    with Store.open(settings.store_path) as store:
        store.execute("UPDATE adapters SET path = replace(path, ?, ?)", [str(byod_settings.home), str(home)])
        scorers = store.scorer_catalogue()
    head = scorers[scorers["readout"] == "classification-head"]["id"].iloc[0]
    return settings, head


def _diagnose(settings, *args):
    from cli import app

    return CliRunner().invoke(app, ["--home", str(settings.home), "--store", str(settings.store_path), "--model",
                                    settings.model, "--device", "cpu", "diagnose", *args])


@pytest.mark.parametrize("name", sorted(name for name in DIAGNOSTICS if name not in STORE_AUDITS))
def test_every_diagnostic_runs_on_an_imported_head_or_says_why_not(byod_copy, name):
    settings, head = byod_copy
    extra = ["--against", "scores--spam-words-filter"] if name == "paired-comparison" else []
    result = _diagnose(settings, name, "--scorer", head, "--corpus", "LingSpam", "--sample-size", "4",
                       "--max-tokens", "96", *extra)
    if name in NEEDS_TRAINING_EMAILS:
        assert result.exit_code == 1 and "imported" in result.output and "training emails" in result.output, result.output
    else:
        assert result.exit_code == 0, result.output
        assert "error" not in result.output.lower(), result.output


def test_a_score_file_is_refused_where_a_model_is_needed(byod_copy):
    settings, _ = byod_copy
    result = _diagnose(settings, "direct-logit-attribution", "--scorer", "scores--spam-words-filter", "--corpus",
                       "LingSpam", "--sample-size", "4")
    assert result.exit_code == 1 and "score file" in result.output and "no model to look inside" in result.output
