"""Every job through the one executor interface: on a local Ray instance with 2 CPUs, the same
predictions, explanations and head sweeps as the local executor, shards ingested idempotently,
a rerun doing nothing."""

import numpy as np
import pytest

from data.records import EvaluationTarget
from data.store import Store
from diagnostics.runners.ray import RayExecutor
from diagnostics.analyses.evaluate import evaluate
from diagnostics.runners.local import LocalExecutor

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def local_ray():
    from diagnostics.runners.ray import connect_ray

    connect_ray(None, workers=2)
    yield
    ray.shutdown()


def test_ray_evaluation_matches_the_local_executor_and_ingests_idempotently(local_ray, evaluated_copy, tmp_path):
    settings = evaluated_copy
    with Store.open(settings.store_path) as store:
        adapter = store.adapters().iloc[0]
        local = store.query("SELECT adapter_id, email_id, score, predicted FROM predictions WHERE adapter_id IN (?, ?)",
                            [adapter["id"], f"zero-shot:{settings.model}"])
        assert len(local) > 40
        store.execute("DELETE FROM predictions WHERE adapter_id IN (?, ?)", [adapter["id"], f"zero-shot:{settings.model}"])
        targets = [EvaluationTarget(settings.model, None), EvaluationTarget(settings.model, adapter["path"])]
        # Compiled on the workers (once each): the scores stay the eager local ones.
        evaluate(store, targets, store.corpus_names(), settings.models_dir, 20, 96, settings.seed, "cpu",
                 progress=False, compile_mode="on", executor=RayExecutor(tmp_path / "shards", settings.models_dir, "cpu"),
                 emails_per_item=8)
        remote = store.query("SELECT adapter_id, email_id, score, predicted FROM predictions "
                             "WHERE adapter_id IN (?, ?)", [adapter["id"], f"zero-shot:{settings.model}"])
        merged = local.merge(remote, on=["adapter_id", "email_id"], suffixes=("_local", "_ray"))
        assert len(merged) == len(local) == len(remote)  # the same emails, each once
        np.testing.assert_allclose(merged["score_ray"], merged["score_local"], atol=1e-4)
        assert (merged["predicted_ray"] == merged["predicted_local"]).all()

        shards = sorted((tmp_path / "shards").rglob("*.parquet"))
        assert len(shards) >= 2 * 3 * 2 and not list((tmp_path / "shards").rglob("*.partial"))
        assert store.add_prediction_shards(shards) == 0  # ingesting again adds nothing
        runs_before = store.scalar("SELECT count(*) FROM runs")
        evaluate(store, targets, store.corpus_names(), settings.models_dir, 20, 96, settings.seed, "cpu",
                 progress=False, executor=RayExecutor(tmp_path / "shards2", settings.models_dir, "cpu"))
        assert store.scalar("SELECT count(*) FROM runs") == runs_before + 1
        assert not list((tmp_path / "shards2").rglob("*.parquet"))  # nothing left to score: no task ran


def test_ray_evaluation_in_int8_matches_the_local_int8_scorer(local_ray, evaluated_copy, tmp_path):
    """Workers build the same SmoothQuant scorer from the calibration emails the task carries, and
    the run records the same precision check as a local one."""
    import json

    settings = evaluated_copy
    zero_shot = f"zero-shot:{settings.model}"
    target = [EvaluationTarget(settings.model, None)]
    query = "SELECT email_id, score FROM predictions WHERE adapter_id = ? ORDER BY email_id"
    with Store.open(settings.store_path) as store:
        store.execute("DELETE FROM predictions WHERE adapter_id = ?", [zero_shot])
        local_run = evaluate(store, target, store.corpus_names(), settings.models_dir, 20, 96, settings.seed, "cpu",
                             progress=False, compile_mode="off", precision="int8")
        local = store.query(query, [zero_shot])
        local_check = store.run_params(local_run)["precision_checks"][zero_shot]
        store.execute("DELETE FROM predictions WHERE adapter_id = ?", [zero_shot])
        run_id = evaluate(store, target, store.corpus_names(), settings.models_dir, 20, 96, settings.seed, "cpu",
                          progress=False, precision="int8", compile_mode="off",
                          executor=RayExecutor(tmp_path / "shards", settings.models_dir, "cpu"), emails_per_item=12)
        remote = store.query(query, [zero_shot])
        params = json.loads(store.scalar("SELECT params FROM runs WHERE id = ?", [run_id]))
    assert params["precision"] == "int8" and list(remote["email_id"]) == list(local["email_id"])
    ray_check = params["precision_checks"][zero_shot]
    assert ray_check["emails"] == local_check["emails"] == 8 * 3
    assert ray_check["mean_abs_score_change"] == pytest.approx(local_check["mean_abs_score_change"], abs=0.05)
    # 1 thread per worker against 2 locally: float sums differ in order, so an activation can round
    # to the neighbouring int8 step; the scores still agree closely.
    np.testing.assert_allclose(remote["score"], local["score"], atol=0.05)


def test_evaluate_command_runs_on_ray_and_names_a_bad_executor(local_ray, evaluated_copy):
    from typer.testing import CliRunner

    from cli import app

    home = evaluated_copy.home
    base = ["--home", str(home), "--model", evaluated_copy.model, "--device", "cpu", "evaluate", "--no-reference",
            "--no-zero-shot", "--sample-size", "12", "--max-tokens", "96"]
    with Store.open(home / "store.duckdb") as store:
        store.execute("DELETE FROM predictions")
    result = CliRunner().invoke(app, base + ["--executor", "ray", "--workers", "2"])
    assert result.exit_code == 0, result.output
    assert any("training_set" in line and "cut_share" in line for line in result.output.splitlines())  # how much it read
    with Store.open(home / "store.duckdb", read_only=True) as store:
        assert store.scalar("SELECT count(DISTINCT adapter_id) FROM predictions") == len(store.adapters())
        assert store.scalar("SELECT count(*) FROM predictions") == len(store.adapters()) * 3 * 12
    assert list((home / "shards").rglob("*.parquet"))
    result = CliRunner().invoke(app, base + ["--executor", "spark"])
    assert result.exit_code == 1 and "executor must be one of local, ray" in result.output


def test_ray_explanations_equal_local_ones_and_feed_the_drivers(local_ray, evaluated_copy, tmp_path):
    from diagnostics.analyses.drivers import explain_sample
    from diagnostics.analyses.explainers import method_params

    settings = evaluated_copy
    params = method_params("gradxinput", 96, 1)
    with Store.open(settings.store_path) as store:
        adapter = store.adapters().iloc[0]
        target = EvaluationTarget(settings.model, adapter["path"])
        on_ray = RayExecutor(tmp_path / "shards", settings.models_dir, "cpu", part_sizes={"explain": 2})
        fresh = explain_sample(store, target, "synthetic-listdump", 5, "gradxinput", 96, 1, on_ray)
        assert fresh == 5
        remote = store.drivers(adapter["id"], "gradxinput", params).set_index("feature")
        shards = sorted((tmp_path / "shards").rglob("*.parquet"))
        assert len(shards) == 3 and store.add_explanation_shards(shards) == 5  # re-ingested: replaced, not added
        assert store.scalar("SELECT count(*) FROM explanations WHERE adapter_id = ?", [adapter["id"]]) == 5
        assert store.drivers(adapter["id"], "gradxinput", params).set_index("feature").equals(remote)

        store.execute("DELETE FROM explanations")
        store.execute("DELETE FROM attribution_features")
        local_executor = LocalExecutor(settings.models_dir, "cpu")
        assert explain_sample(store, target, "synthetic-listdump", 5, "gradxinput", 96, 1, local_executor) == 5
        local = store.drivers(adapter["id"], "gradxinput", params).set_index("feature")
    assert set(local.index) == set(remote.index)
    np.testing.assert_allclose(remote.loc[local.index, "total"], local["total"], atol=1e-4)


def test_ray_head_sweep_equals_the_local_sweep(local_ray, evaluated_copy, tmp_path):
    from diagnostics.analyses.head_sweep import sweep_corpus

    settings = evaluated_copy
    with Store.open(settings.store_path) as store:
        target = EvaluationTarget(settings.model, store.adapters().iloc[0]["path"])
        on_ray = RayExecutor(tmp_path / "shards", settings.models_dir, "cpu", part_sizes={"heads": 4})
        remote = sweep_corpus(store, target, "synthetic-corporate", 10, 96, 1, top_k=3, batch_size=2, executor=on_ray)
        assert sweep_corpus(store, target, "synthetic-corporate", 10, 96, 1, top_k=3,
                            executor=on_ray) is None  # stored: nothing to do
        store.execute("DELETE FROM head_effects")
        store.execute("DELETE FROM logit_lens")
        local = sweep_corpus(store, target, "synthetic-corporate", 10, 96, 1, "mean", 3, 2,
                             LocalExecutor(settings.models_dir, "cpu"))
    key = ["method", "layer", "head"]
    a, b = (s.effects.sort_values(key).reset_index(drop=True) for s in (remote, local))
    assert a[key].equals(b[key]) and (a["method"] == "exact").sum() == 3
    np.testing.assert_allclose(a["delta_logit"], b["delta_logit"], atol=1e-4)
    np.testing.assert_allclose(a["delta_f1"], b["delta_f1"], atol=1e-9)
    np.testing.assert_allclose(remote.lens["mean_score"], local.lens["mean_score"], atol=1e-4)
    assert remote.n_emails == local.n_emails == 10 and remote.clean_f1 == pytest.approx(local.clean_f1)


def test_worker_keeps_one_scorer_compiled_when_its_task_asks(evaluated_copy):
    """A worker compiles the scorer once and reuses it for its next tasks; a different
    (scorer, precision, compile) replaces it, so a worker holds one model."""
    import torch

    from diagnostics.runners.ray import WORKER_SLOT, open_on_worker
    from diagnostics.analyses.evaluate import EvaluateJob
    from diagnostics.contracts.job import WorkerEnv
    from models.loading import scorer_ref

    settings = evaluated_copy
    job = EvaluateJob([], [], 20, 96)
    env = WorkerEnv(str(settings.models_dir), "cpu")

    def scorer(compile: bool):
        return scorer_ref(EvaluationTarget(settings.model), job._options("fp32", compile, ()))

    compiled = open_on_worker(job, scorer(True), None, env)
    assert isinstance(compiled.model, torch._dynamo.eval_frame.OptimizedModule)
    assert open_on_worker(job, scorer(True), None, env) is compiled
    eager = open_on_worker(job, scorer(False), None, env)
    assert not isinstance(eager.model, torch._dynamo.eval_frame.OptimizedModule)
    assert WORKER_SLOT.key == ("evaluate", scorer(False)) and WORKER_SLOT.model is eager
