"""AppTest: the Heads page on the test store (tiny model, its adapters): one email's attention
and logit lens, a stored sweep as a heatmap, two sweeps side by side, the adapter's update norms."""

import json

from typer.testing import CliRunner

from data.store import Store
from tests.conftest import open_app_page


def _sweep(settings, training_set: str, corpus: str = "synthetic-corporate") -> None:
    from cli import app

    result = CliRunner().invoke(app, ["--home", str(settings.home), "--store", str(settings.store_path),
                                      "--model", settings.model, "--device", "cpu", "heads", "--corpus", corpus,
                                      "--training-set", training_set, "--sample-size", "6", "--top-k", "2",
                                      "--max-tokens", "96"])
    assert result.exit_code == 0, result.output


def _figures(at) -> list[dict]:
    return [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")]


def test_heads_page_shows_attention_effects_lens_and_updates(monkeypatch, evaluated_settings):
    _sweep(evaluated_settings, "generalist")
    _sweep(evaluated_settings, "specialist-synthetic-corporate")
    with Store.open(evaluated_settings.store_path, read_only=True) as store:
        email_id = store.split_ids("synthetic-webmail", "test")["id"].iloc[0]
    at = open_app_page(monkeypatch, evaluated_settings, "pages/heads.py", max_tokens=96, email=email_id,
                       adapter="generalist")
    assert not at.exception, at.exception
    titles = [fig["layout"].get("title", {}).get("text", "") for fig in _figures(at)]
    assert any("Share of the answer position" in t for t in titles)
    assert any(t.startswith("Layer 1: attention from the answer position") for t in titles)
    assert any("Logit lens" == t for t in titles)
    assert any("LoRA update" in t for t in titles)
    assert any("Update size vs ablation effect" in t for t in titles)
    effects = [t for t in titles if t.startswith("generalist · synthetic-corporate")]
    assert effects, titles
    top = next(d.value for d in at.dataframe if "token" in d.value.columns)
    assert len(top) == 5 * 4  # 5 tokens for each of the tiny model's 4 heads

    # Two sweeps: side by side and their difference.
    labels = at.multiselect(key="heads_sweeps").options
    at.multiselect(key="heads_sweeps").set_value(labels[:2]).run()
    assert not at.exception, at.exception
    titles = [fig["layout"].get("title", {}).get("text", "") for fig in _figures(at)]
    assert any(t.startswith("Difference:") for t in titles)


def test_heads_page_on_an_empty_sweep_table_offers_a_job(monkeypatch, tmp_path, evaluated_settings):
    import shutil

    copy = evaluated_settings.with_overrides(store_path=tmp_path / "store.duckdb")
    shutil.copy(evaluated_settings.store_path, copy.store_path)
    with Store.open(copy.store_path) as store:
        store.execute("DELETE FROM head_effects")
        store.execute("DELETE FROM logit_lens")
    at = open_app_page(monkeypatch, copy, "pages/heads.py", max_tokens=96, adapter="zero-shot")
    assert not at.exception, at.exception
    assert any("No head sweep stored yet" in i.value for i in at.info)
    assert any("has no adapter" in i.value for i in at.info)


def test_heads_page_lists_registered_per_head_diagnostics_and_draws_a_stored_one(monkeypatch, evaluated_copy):
    """Direct logit attribution is one module and one registry line: the page finds it there,
    offers to compute it, and draws what `cli.py diagnose` stored."""
    from cli import app

    settings = evaluated_copy
    at = open_app_page(monkeypatch, settings, "pages/heads.py", max_tokens=96, adapter="generalist")
    assert not at.exception, at.exception
    assert any("diagnose direct-logit-attribution" in i.value for i in at.info)  # nothing stored yet
    result = CliRunner().invoke(app, ["--home", str(settings.home), "--store", str(settings.store_path),
                                      "--model", settings.model, "--device", "cpu", "diagnose",
                                      "direct-logit-attribution", "--corpus", "synthetic-corporate",
                                      "--training-set", "generalist", "--sample-size", "4", "--max-tokens", "96"])
    assert result.exit_code == 0, result.output
    at = open_app_page(monkeypatch, settings, "pages/heads.py", max_tokens=96, adapter="generalist")
    assert not at.exception, at.exception
    titles = [fig["layout"].get("title", {}).get("text", "") for fig in _figures(at)]
    assert any(t.startswith("Direct logit attribution: generalist · synthetic-corporate · 4 emails") for t in titles)
    assert any("everything else (embedding, MLPs)" in c.value for c in at.caption)
