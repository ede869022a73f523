"""Direct logit attribution per head (a registered per-head diagnostic): its values add up to the
product's own score, a head whose output projection is zeroed writes exactly nothing, and the
stored job resumes, runs from the CLI and equals itself on Ray."""

from dataclasses import replace

import numpy as np
import pytest
from typer.testing import CliRunner

from data.records import DiagnosticRequest, EvaluationTarget
from data.store import Store
from diagnostics.analyses.bridge import boot_bridge, email_prompt
from diagnostics.analyses.direct_logit_attribution import DirectLogitAttribution
from diagnostics.runners.local import LocalExecutor, run_job
from diagnostics.contracts.registry import diagnostic
from models.loading import load_base
from models.scoring import prompt_builder, score_prompts


@pytest.fixture(scope="module")
def prompts(tiny_model_dir, real_emails, tmp_path_factory):
    loaded = load_base(str(tiny_model_dir), tmp_path_factory.mktemp("dla-models"), "cpu")
    builder = prompt_builder(loaded, 96)
    return [email_prompt(builder, mail)[0] for mail in real_emails[:5]], loaded


def _compat_bridge(loaded):
    hm = boot_bridge(loaded)
    hm.bridge.enable_compatibility_mode()
    return hm


def test_heads_and_remainder_add_up_to_the_products_score(prompts, tiny_model_dir, tmp_path):
    prompt_ids, loaded = prompts
    expected = score_prompts(loaded, prompt_ids, batch_size=1)
    fresh = load_base(str(tiny_model_dir), tmp_path, "cpu")  # the bridge takes its model over
    dla = DirectLogitAttribution(DiagnosticRequest(EvaluationTarget(str(tiny_model_dir)), "any"), tmp_path)
    values = dla.values(_compat_bridge(fresh), prompt_ids, batch_size=1)
    assert values.per_head.shape == (len(prompt_ids), 2, 4)
    np.testing.assert_allclose(values.per_head.sum((1, 2)) + values.remainder, expected, atol=1e-4)
    assert np.abs(values.per_head).max() > 1e-6  # the heads do write something


def test_a_head_with_a_zeroed_output_projection_writes_nothing(prompts, tiny_model_dir, tmp_path):
    prompt_ids, _ = prompts
    planted = load_base(str(tiny_model_dir), tmp_path, "cpu")
    d_head = planted.model.config.hidden_size // planted.model.config.num_attention_heads
    o_proj = planted.model.model.layers[1].self_attn.o_proj
    o_proj.weight.data[:, 2 * d_head:3 * d_head] = 0.0  # layer 1, head 2 can no longer write
    dla = DirectLogitAttribution(DiagnosticRequest(EvaluationTarget(str(tiny_model_dir)), "any"), tmp_path)
    values = dla.values(_compat_bridge(planted), prompt_ids, batch_size=1)
    assert np.abs(values.per_head[:, 1, 2]).max() < 1e-6
    others = np.delete(values.per_head.reshape(len(prompt_ids), -1), 1 * 4 + 2, axis=1)
    assert np.abs(others).max() > 1e-4


def test_the_diagnostic_is_stored_once_and_runs_from_the_cli(evaluated_copy):
    from cli import app

    settings = evaluated_copy
    args = ["--home", str(settings.home), "--store", str(settings.store_path), "--model", settings.model,
            "--device", "cpu", "diagnose", "direct-logit-attribution", "--corpus", "synthetic-corporate",
            "--training-set", "generalist", "--sample-size", "6", "--max-tokens", "96"]
    first = CliRunner().invoke(app, args)
    assert first.exit_code == 0 and "stored (run" in first.output, first.output
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 0 and "already stored" in again.output
    with Store.open(settings.store_path, read_only=True) as store:
        results = store.head_value_results("direct-logit-attribution")
        assert list(results["training_set"]) == ["generalist"] and list(results["n_emails"]) == [6]
        values = store.head_values("direct-logit-attribution", results["adapter_id"][0], results["params"][0])
    assert len(values) == 2 * 4 + 1 and (values["spread"] >= 0).all()
    wrong = CliRunner().invoke(app, args[:8] + ["diagnose", "no-such", "--corpus", "synthetic-corporate"])
    assert wrong.exit_code == 1 and "known: evaluate" in wrong.output


def test_the_registry_builds_the_job_and_ray_computes_the_same_values(evaluated_copy, tmp_path):
    pytest.importorskip("ray")
    from diagnostics.runners.ray import RayExecutor, connect_ray

    settings = evaluated_copy
    request = DiagnosticRequest(EvaluationTarget(settings.model), "synthetic-webmail", 6, 96, 3)
    entry = diagnostic("direct-logit-attribution")
    with Store.open(settings.store_path) as store:
        local = LocalExecutor(settings.models_dir, "cpu")
        assert run_job(store, entry.make_job(request, settings.models_dir), local, progress=False).run_id
        job = entry.make_job(request, settings.models_dir)
        adapter_id = f"zero-shot:{settings.model}"
        here = store.head_values(entry.name, adapter_id, job.params())
        store.execute("DELETE FROM head_values")
        ray = connect_ray(None, workers=2)
        try:
            on_ray = RayExecutor(tmp_path / "shards", settings.models_dir, "cpu")
            assert run_job(store, entry.make_job(replace(request), settings.models_dir, 2), on_ray,
                           progress=False).run_id
        finally:
            ray.shutdown()
        there = store.head_values(entry.name, adapter_id, job.params())
    np.testing.assert_allclose(there["value"], here["value"], atol=1e-5)
    np.testing.assert_allclose(there["spread"], here["spread"], atol=1e-5)
