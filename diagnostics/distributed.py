"""Evaluation on Ray: the same scoring code as the local executor, as tasks per (scorer,
corpus, batch of emails), each writing its predictions as a Parquet shard that the store
ingests idempotently.

Only the driver touches the DuckDB store (one writer). Each task carries its emails' text
and the adapter's files (a few MB, put in Ray's object store once per adapter), so workers
need no access to the store or the adapters folder. Workers load the base model from their
own models folder (`PHISHLENS_MODELS`; the offline models convert there on first use, a hub
model must be in each node's cache) and keep it between tasks. Shards go to `shard_dir`,
which on a multi-node cluster must be storage every node and the driver can reach.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from data.records import Email
from data.settings import PROJECT_ROOT, Settings
from data.store import Store
from diagnostics.evaluate import (EvaluationTarget, calibration_emails, check_compile_mode, compiles, evaluation_params,
                                  evaluation_samples, note_already_scored, precision_check_emails, unscored)
from models.loading import pick_device, read_adapter_info, scorer_id
from models.precision import check_precision
from models.registry import resolve_model
from models.scoring import default_batch_size

EXECUTORS = ("local", "ray")


@dataclass(frozen=True)
class ShardTask:
    """One unit of distributed work: score these emails with this scorer, write one shard."""

    model: str
    adapter_id: str
    corpus: str
    emails: tuple[Email, ...]
    max_tokens: int
    batch_size: int
    run_id: str
    shard_path: str
    precision: str = "fp32"
    calibration: tuple[Email, ...] = ()  # int8's SmoothQuant calibration emails (same for every task)
    compile: bool = False  # torch.compile the scorer (once per worker; diagnostics.evaluate.compiles)


def adapter_files(folder: Path) -> dict[str, bytes]:
    """An adapter folder's files, to ship to workers that cannot see the driver's disk."""
    return {p.name: p.read_bytes() for p in Path(folder).iterdir() if p.is_file()}


def write_shard(records: list[dict], path: Path) -> None:
    """Records as one Parquet file, written under a temporary name and renamed: a reader never
    sees half a shard."""
    import pandas as pd

    frame = pd.DataFrame(records)
    tmp = path.with_name(path.name + ".partial")
    frame.to_parquet(tmp, index=False)
    os.replace(tmp, path)


_WORKER_MODEL: dict[tuple, object] = {}  # per worker process: the scorer it loaded last


def _load_on_worker(model: str, files: dict[str, bytes] | None, models_dir: str, device: str):
    """The base model with the shipped adapter's files (written to a temporary folder) applied."""
    from models.loading import load_model

    folder = None
    if files is not None:
        folder = Path(tempfile.mkdtemp(prefix="phishlens-adapter-"))
        for name, content in files.items():
            (folder / name).write_bytes(content)
    try:
        return load_model(model, folder, Path(models_dir), device)
    finally:
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)


def _scorer_from(loaded, precision: str, calibration: Sequence[Email], max_tokens: int, compile: bool):
    """The evaluation scorer made from a loaded model: adapter merged, at the precision, compiled if asked."""
    from diagnostics.evaluate import scoring_model
    from models.scoring import compiled_for_scoring

    scorer = scoring_model(loaded, precision, calibration, max_tokens)
    return compiled_for_scoring(scorer) if compile else scorer


def _keep_on_worker(key: tuple, loaded) -> None:
    _WORKER_MODEL.clear()  # one model per worker, so memory stays that of one scorer
    _WORKER_MODEL[key] = loaded


def worker_model(model: str, adapter_id: str, files: dict[str, bytes] | None, models_dir: str, device: str,
                 threads: int, precision: str | None = None, calibration: Sequence[Email] = (), max_tokens: int = 0,
                 compile: bool = False):
    """On a worker: the model for adapter_id, loaded once and kept for the worker's next tasks.
    With a precision it is the evaluation scorer (adapter merged, at that precision, compiled if
    asked); without, the adapter stays a PEFT model (explain)."""
    import torch

    torch.set_num_threads(threads)
    key = (adapter_id, precision, compile)
    loaded = _WORKER_MODEL.get(key)
    if loaded is None:
        loaded = _load_on_worker(model, files, models_dir, device)
        if precision is not None:
            loaded = _scorer_from(loaded, precision, calibration, max_tokens, compile)
        _keep_on_worker(key, loaded)
    return loaded


def check_shard_precision(task: ShardTask, emails: Sequence[Email], files: dict[str, bytes] | None,
                          models_dir: str, device: str, threads: int):
    """Run on a worker: the task's scorer (bf16 or int8, compiled if the task is) against the fp32
    model it is made from, on `emails` (models.precision.PrecisionCheck). The worker keeps the
    scorer for its next shards."""
    import torch

    from diagnostics.evaluate import check_against_fp32
    from models.precision import merge_adapter

    torch.set_num_threads(threads)
    fp32 = merge_adapter(_load_on_worker(task.model, files, models_dir, device))
    # bf16 and int8 scorers are copies, so the merged fp32 model still scores as before.
    scorer = _scorer_from(fp32, task.precision, task.calibration, task.max_tokens, task.compile)
    check = check_against_fp32(fp32, scorer, task.precision, emails, task.max_tokens, task.batch_size)
    _keep_on_worker((task.adapter_id, task.precision, task.compile), scorer)
    return check


def score_shard(task: ShardTask, files: dict[str, bytes] | None, models_dir: str, device: str,
                threads: int) -> tuple[str, int]:
    """Run on a worker: score the task's emails and write its shard; returns the shard's path
    and how many emails it holds."""
    from diagnostics.evaluate import score_to_predictions

    loaded = worker_model(task.model, task.adapter_id, files, models_dir, device, threads, task.precision,
                          task.calibration, task.max_tokens, task.compile)
    rows = score_to_predictions(loaded, task.emails, task.run_id, task.corpus, task.max_tokens, task.batch_size)
    write_shard([asdict(r) for r in rows], Path(task.shard_path))
    return task.shard_path, len(rows)


@dataclass(frozen=True)
class ExplainTask:
    """Explain these emails with this scorer and method; write one shard of explanation records."""

    model: str
    adapter_id: str
    corpus: str
    emails: tuple[Email, ...]
    method: str
    max_tokens: int
    seed: int
    shard_path: str


def explain_shard(task: ExplainTask, files: dict[str, bytes] | None, models_dir: str, device: str,
                  threads: int) -> tuple[str, int]:
    """Run on a worker: explain the task's emails (word level) and write their records."""
    from diagnostics.drivers import explain_one, features

    loaded = worker_model(task.model, task.adapter_id, files, models_dir, device, threads)
    records = []
    for mail in task.emails:
        explanation = explain_one(loaded, mail, task.method, task.max_tokens, task.seed)
        records.append(Store.explanation_record(explanation, task.corpus, features(explanation)))
    write_shard(records, Path(task.shard_path))
    return task.shard_path, len(records)


def connect_ray(address: str | None, workers: int | None):
    """Join the cluster at `address`, or start a local Ray instance with `workers` CPUs."""
    import ray

    if ray.is_initialized():
        return ray
    if address:
        # Ship the code (not the venv, models or results) to the cluster's workers.
        excludes = [".venv", ".phishlens", "test-artifacts", ".git", "**/__pycache__"]
        ray.init(address=address, runtime_env={"working_dir": str(PROJECT_ROOT), "excludes": excludes},
                 log_to_driver=False)
    else:
        ray.init(num_cpus=workers or os.cpu_count(), include_dashboard=False, log_to_driver=False,
                 runtime_env={"env_vars": {"PYTHONPATH": str(PROJECT_ROOT)}})
    return ray


def shipped_scorer(ray, model: str, adapter_dir: Path | None) -> tuple[str, object]:
    """A scorer's id and its adapter's files in Ray's object store (None: the zero-shot base)."""
    return scorer_id(model, adapter_dir), ray.put(adapter_files(adapter_dir)) if adapter_dir else None


def remote_task(ray, function, device: str, threads: int):
    """`function` as a Ray task using `threads` CPUs (and one GPU on CUDA), retried twice if a worker dies."""
    return ray.remote(num_cpus=threads, num_gpus=1 if device == "cuda" else 0, max_retries=2)(function)


def as_finished(ray, refs: list):
    """Each task's result as soon as it finishes (in finishing order)."""
    waiting = list(refs)
    while waiting:
        ready, waiting = ray.wait(waiting, num_returns=1)
        yield ray.get(ready[0])


def shard_name(adapter_id: str, corpus: str, index: int) -> str:
    return f"{adapter_id.replace('/', '_').replace(':', '_')}--{corpus}--{index:05d}.parquet"


def evaluate_on_ray(store: Store, targets: Sequence[EvaluationTarget], corpora: Sequence[str], models_dir: Path,
                    sample_size: int | None, max_tokens: int, seed: int, device: str, shard_dir: Path,
                    batch_size: int | None = None, emails_per_task: int = 64, address: str | None = None,
                    workers: int | None = None, threads_per_worker: int = 1, progress: bool = True,
                    precision: str = "fp32", compile_mode: str = "auto") -> str:
    """Evaluate every target on every corpus' test sample on Ray; returns the run id.

    Skips (adapter, email) pairs the store holds; each finished shard is ingested as it
    arrives, so an interrupted run keeps what finished and a rerun does only the rest. In bf16
    and int8, one task per target runs the precision check (as `evaluate` does) next to the shards.
    compile_mode as for `evaluate`, decided per target from its emails to score.
    """
    check_compile_mode(compile_mode)
    driver_device = pick_device(device)[0]
    check_precision(precision, driver_device)  # before Ray starts
    batch_size = batch_size or default_batch_size(driver_device)
    samples = evaluation_samples(store, corpora, sample_size, seed)
    ray = connect_ray(address, workers)
    remote = remote_task(ray, score_shard, device, threads_per_worker)
    remote_check = remote_task(ray, check_shard_precision, device, threads_per_worker)
    calibration = tuple(calibration_emails(store, corpora, seed)) if precision == "int8" else ()
    check_emails = tuple(precision_check_emails(store, corpora, seed, calibration)) if precision != "fp32" else ()
    params = {**evaluation_params(targets, corpora, sample_size, max_tokens, seed, precision),
              "executor": "ray", "address": address}
    with store.run("evaluate", params) as run_id:
        shards = Path(shard_dir) / run_id
        shards.mkdir(parents=True, exist_ok=True)
        pending, checks, total = [], {}, 0
        for target in targets:
            adapter_id, files = shipped_scorer(ray, target.model, target.adapter_dir)
            todo = unscored(store, adapter_id, samples)
            emails_to_score = sum(len(ids) for ids in todo.values())
            if not emails_to_score:
                note_already_scored(store, run_id, adapter_id, precision, progress)
                continue
            compile = compiles(compile_mode, emails_to_score, precision)
            tasks = []
            for corpus, ids in todo.items():
                for start in range(0, len(ids), emails_per_task):
                    emails = tuple(store.emails_by_ids(ids[start: start + emails_per_task]))
                    shard = str(shards / shard_name(adapter_id, corpus, start // emails_per_task))
                    tasks.append(ShardTask(target.model, adapter_id, corpus, emails, max_tokens, batch_size, run_id,
                                           shard, precision, calibration, compile))
            if check_emails:
                checks[adapter_id] = remote_check.remote(tasks[0], check_emails, files, str(models_dir), device,
                                                         threads_per_worker)
            pending += [remote.remote(task, files, str(models_dir), device, threads_per_worker) for task in tasks]
            total += emails_to_score
        with tqdm(total=total, desc="evaluate on ray", unit=" mails", disable=not progress) as bar:
            for path, scored in as_finished(ray, pending):
                store.add_prediction_shards([Path(path)])
                bar.update(scored)
        for adapter_id, ref in checks.items():
            check = ray.get(ref)
            store.add_run_params(run_id, {"precision_checks": {adapter_id: asdict(check)}})
            if progress:
                tqdm.write(f"{adapter_id}: {check.summary()}")
    return run_id


def check_executor(settings: Settings) -> None:
    """A clear error for an unknown executor, or for Ray when it is not installed."""
    if settings.executor not in EXECUTORS:
        raise ValueError(f"executor must be one of {', '.join(EXECUTORS)}, not {settings.executor!r}")
    if settings.executor == "ray" and importlib.util.find_spec("ray") is None:
        raise ValueError("the ray executor needs Ray: `pip install ray==2.60.0`")


def evaluate_with(settings: Settings, store: Store, targets: Sequence[EvaluationTarget], corpora: Sequence[str],
                  sample_size: int | None, max_tokens: int, batch_size: int | None = None,
                  progress: bool = True) -> str:
    """Evaluate on the executor the settings name: in this process (local) or on Ray."""
    check_executor(settings)
    if settings.executor == "local":
        from diagnostics.evaluate import evaluate

        return evaluate(store, targets, corpora, settings.models_dir, sample_size, max_tokens, settings.seed,
                        settings.device, batch_size, progress, settings.compile, settings.precision)
    return evaluate_on_ray(store, targets, corpora, settings.models_dir, sample_size, max_tokens, settings.seed,
                           settings.device, settings.shards_path, batch_size, address=settings.ray_address,
                           workers=settings.ray_workers, progress=progress, precision=settings.precision,
                           compile_mode=settings.compile)


def explain_on_ray(store: Store, model: str, adapter_dir: Path | None, corpus: str, size: int, method: str,
                   max_tokens: int, seed: int, device: str, models_dir: Path, shard_dir: Path,
                   emails_per_task: int = 4, address: str | None = None, workers: int | None = None,
                   threads_per_worker: int = 1, progress: bool = True) -> int:
    """Explain the same test sample as diagnostics.drivers.explain_sample, on Ray: tasks of a few
    emails each, every shard ingested as it finishes. Returns how many emails were explained now."""
    from diagnostics.attribution import method_params
    from diagnostics.drivers import sample_test_emails

    ray = connect_ray(address, workers)
    remote = remote_task(ray, explain_shard, device, threads_per_worker)
    adapter_id, files = shipped_scorer(ray, model, adapter_dir)
    params = method_params(method, max_tokens, seed)
    explained = store.explained_email_ids(adapter_id, method, params)
    todo = [i for i in sample_test_emails(store, corpus, size, seed) if i not in explained]
    run_params = {"corpus": corpus, "adapter": adapter_id, "sample": size, "method": method, "max_tokens": max_tokens,
                  "executor": "ray", "address": address}
    with store.run("explain", run_params) as run_id:
        shards = Path(shard_dir) / run_id
        shards.mkdir(parents=True, exist_ok=True)
        pending = []
        for start in range(0, len(todo), emails_per_task):
            emails = tuple(store.emails_by_ids(todo[start: start + emails_per_task]))
            task = ExplainTask(model, adapter_id, corpus, emails, method, max_tokens, seed,
                               str(shards / shard_name(adapter_id, corpus, start // emails_per_task)))
            pending.append(remote.remote(task, files, str(models_dir), device, threads_per_worker))
        with tqdm(total=len(todo), desc=f"explain {corpus} on ray", unit=" mails", disable=not progress) as bar:
            for path, explained_now in as_finished(ray, pending):
                store.add_explanation_shards([Path(path)])
                bar.update(explained_now)
    return len(todo)


# ---------------------------------------------------------------- head sweeps (ablation)

_WORKER_BRIDGE: dict[str, object] = {}


def worker_bridge(model: str, adapter_id: str, files: dict[str, bytes] | None, models_dir: str, device: str,
                  threads: int):
    """On a worker: the model booted in a TransformerBridge (adapter merged), kept between tasks."""
    from diagnostics.heads import boot_bridge

    hm = _WORKER_BRIDGE.get(adapter_id)
    if hm is None:
        _WORKER_BRIDGE.clear()
        hm = boot_bridge(worker_model(model, adapter_id, files, models_dir, device, threads))
        _WORKER_MODEL.clear()  # the bridge took that model over
        _WORKER_BRIDGE[adapter_id] = hm
    return hm


def attribution_part(model: str, adapter_id: str, files, models_dir: str, device: str, threads: int,
                     prompts: list[list[int]], batch_size: int):
    """Run on a worker: attribution patching over a part of the sweep's prompts."""
    from diagnostics.heads import attribution_patching

    return attribution_patching(worker_bridge(model, adapter_id, files, models_dir, device, threads), prompts,
                                batch_size)


def ablation_part(model: str, adapter_id: str, files, models_dir: str, device: str, threads: int,
                  prompts: list[list[int]], heads: list[tuple[int, int]], means, batch_size: int):
    """Run on a worker: exact ablation of the given heads over a part of the prompts."""
    from diagnostics.heads import ablate_heads_exact

    return ablate_heads_exact(worker_bridge(model, adapter_id, files, models_dir, device, threads), prompts, heads,
                              means, batch_size)


def sweep_heads_on_ray(store: Store, model: str, adapter_dir: Path | None, corpus: str, sample_size: int,
                       max_tokens: int, seed: int, device: str, models_dir: Path, ablation: str = "mean",
                       top_k: int = 10, batch_size: int = 4, emails_per_task: int = 16, address: str | None = None,
                       workers: int | None = None, threads_per_worker: int = 1, progress: bool = True):
    """The head sweep of diagnostics.head_sweep.sweep_corpus on Ray, in two rounds of tasks per
    part of the emails: attribution patching (every head's estimate; the parts' head sums give
    the mean-ablation values), then exact ablation of the top_k heads. A sweep is a mean over the
    emails, so the parts come back through Ray's object store and the driver stores the sweep
    once. Returns the HeadSweep, or None if the store already holds it."""
    from diagnostics.drivers import sample_test_emails
    from diagnostics.heads import AttributionPass, assemble_sweep, email_prompt, heads_to_check, sweep_params
    from models.loading import load_tokenizer, prepare_model
    from models.scoring import adapter_prompt_builder

    params = sweep_params(corpus, sample_size, max_tokens, seed, ablation, top_k)
    if store.has_head_sweep(scorer_id(model, adapter_dir), params):
        return None
    ray = connect_ray(address, workers)
    adapter_id, files = shipped_scorer(ray, model, adapter_dir)
    emails = store.emails_by_ids(sample_test_emails(store, corpus, sample_size, seed))
    # Prompts are built here (tokenizer only) so every worker reads exactly the same tokens.
    spec = resolve_model(model)
    builder = adapter_prompt_builder(load_tokenizer(prepare_model(spec, models_dir)), spec,
                                     read_adapter_info(adapter_dir) if adapter_dir else None, max_tokens)
    prompts = [email_prompt(builder, mail)[0] for mail in emails]
    parts = [prompts[i: i + emails_per_task] for i in range(0, len(prompts), emails_per_task)]
    common = (model, adapter_id, files, str(models_dir), device, threads_per_worker)
    run_params = {"adapter": adapter_id, "corpus": corpus, "sample": sample_size, "ablation": ablation, "top_k": top_k,
                  "executor": "ray", "address": address}
    with store.run("heads", run_params) as run_id:
        seconds = {}
        started = time.perf_counter()
        remote = remote_task(ray, attribution_part, device, threads_per_worker)
        patched = AttributionPass.concatenate(_gather(ray, [remote.remote(*common, part, batch_size) for part in parts],
                                                      "attribution patching", len(parts), progress))
        seconds["attribution"] = time.perf_counter() - started
        n_layers, n_heads = patched.z_dot_grad.shape[1:]
        checked = heads_to_check(n_layers, n_heads, patched, ablation, "attribution", top_k)
        means = patched.means if ablation == "mean" else None
        started = time.perf_counter()
        remote = remote_task(ray, ablation_part, device, threads_per_worker)
        results = _gather(ray, [remote.remote(*common, part, checked, means, batch_size) for part in parts],
                          f"exact ablation of {len(checked)} heads", len(parts), progress)
        seconds["exact"] = time.perf_counter() - started
        clean = np.concatenate([c for c, _ in results])
        ablated = np.concatenate([a for _, a in results])
        sweep = assemble_sweep(adapter_id, n_layers, n_heads, ablation, "attribution", [m.label for m in emails],
                               patched, checked, clean, ablated, seconds)
        store.add_head_sweep(run_id, corpus, params, sweep)
    return sweep


def _gather(ray, refs: list, stage: str, total: int, progress: bool) -> list:
    """Results of refs in submission order, with a progress bar as they finish."""
    with tqdm(total=total, desc=stage, unit=" parts", disable=not progress) as bar:
        for _ in as_finished(ray, refs):
            bar.update(1)
    return ray.get(refs)
