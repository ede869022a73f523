"""Nearest training emails: a training email's nearest neighbour is itself (similarity 1) with the
adapter's own score on it; the index is stored once, resumes, and refuses the zero-shot base;
the Explain, Inbox and Analyze pages show the neighbours with a link to explain each."""

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from data.records import DiagnosticRequest, EvaluationTarget
from data.store import Store
from tests.conftest import open_app_page


def _index(settings, training_set: str = "generalist") -> dict:
    from cli import app

    result = CliRunner().invoke(app, ["--home", str(settings.home), "--store", str(settings.store_path), "--model",
                                      settings.model, "--device", "cpu", "diagnose", "nearest-training-emails",
                                      "--training-set", training_set, "--max-tokens", "96"])
    assert result.exit_code == 0, result.output
    with Store.open(settings.store_path, read_only=True) as store:
        return store.adapters().set_index("training_set").loc[training_set].to_dict() | {"training_set": training_set}


def test_a_training_email_is_its_own_nearest_neighbour(evaluated_copy):
    from diagnostics.analyses.neighbours import nearest_training_emails
    from models.loading import load_model
    from models.scoring import score_emails

    settings = evaluated_copy
    adapter = _index(settings)
    with Store.open(settings.store_path) as store:
        assert len(store.indexed_email_ids(adapter["id"], "generalist")) == store.training_set("generalist")["size"]
        mail = store.training_set_emails("generalist")[3]
        loaded = load_model(settings.model, Path(adapter["path"]), settings.models_dir, "cpu")
        nearest = nearest_training_emails(store, loaded, mail, "generalist", 96, k=4)
    assert len(nearest) == 4 and nearest["email_id"].iloc[0] == mail.id
    assert nearest["similarity"].iloc[0] == pytest.approx(1.0, abs=1e-5)
    assert nearest["similarity"].is_monotonic_decreasing
    assert nearest["score"].iloc[0] == pytest.approx(float(score_emails(loaded, [mail], 96)[0]), abs=1e-3)


def test_the_index_is_built_once_and_the_base_model_is_refused(evaluated_copy):
    from diagnostics.runners.local import LocalExecutor, run_job
    from diagnostics.contracts.registry import diagnostic

    settings = evaluated_copy
    _index(settings)
    entry = diagnostic("nearest-training-emails")
    with Store.open(settings.store_path) as store:
        folder = store.adapters().set_index("training_set").loc["generalist", "path"]
        request = DiagnosticRequest(EvaluationTarget(settings.model, Path(folder)), "", max_tokens=96)
        assert run_job(store, entry.make_job(request, settings.models_dir), LocalExecutor(settings.models_dir),
                       progress=False).run_id is None
        with pytest.raises(ValueError, match="zero-shot base model has no training set"):
            run_job(store, entry.make_job(DiagnosticRequest(EvaluationTarget(settings.model), ""), settings.models_dir),
                    LocalExecutor(settings.models_dir), progress=False)


def test_explain_inbox_and_analyze_pages_show_the_nearest_training_emails(monkeypatch, evaluated_copy):
    settings = evaluated_copy
    adapter = _index(settings)
    with Store.open(settings.store_path, read_only=True) as store:
        mail = store.training_set_emails("generalist")[0]
    at = open_app_page(monkeypatch, settings, "pages/explain.py", max_tokens=96, email=mail.id, adapters="generalist",
                       method="gradxinput")
    assert not at.exception, at.exception
    captions = " ".join(c.value for c in at.caption)
    assert "similarity 1.000" in captions and "Closest of" in captions

    at = open_app_page(monkeypatch, settings, "pages/inbox.py", max_tokens=96, adapter=adapter["id"], email=mail.id)
    assert not at.exception, at.exception
    assert "similarity 1.000" in " ".join(c.value for c in at.caption)

    at = open_app_page(monkeypatch, settings, "pages/analyze.py", max_tokens=96)
    at.text_area(key="analyze_text").set_value(f"Subject: {mail.subject}\n\n{mail.body}").run()
    assert not at.exception and not at.dataframe  # nothing scored until Analyze is pressed
    at.button(key="analyze_go").click().run()
    assert not at.exception, at.exception
    assert any("Closest of" in c.value for c in at.caption)
    np.testing.assert_equal(len([b for b in at.button if b.key == "analyze_explain"]), 1)
