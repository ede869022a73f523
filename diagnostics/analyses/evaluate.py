"""Score adapters (and the zero-shot base model) on corpora' test splits → predictions: the
evaluate job (plan → run → ingest, diagnostics.runners.local) and the bag-of-words reference.

Metrics are not computed here: F1, precision, recall and accuracy come from SQL over
the predictions table (data.store.METRICS_SQL). Evaluation is resumable: emails an
adapter has already scored are skipped, and each (adapter, corpus) is written in one
transaction.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from tqdm import tqdm

from data.records import DiagnosticRequest, Email, EvaluationTarget, Prediction, ScorerRef, verdict
from data.settings import Settings
from data.splits import sample_stratified, test_sample
from data.store import Store
from diagnostics.contracts.job import EmailBatch, Executor, Plan, Progress, WorkerEnv
from diagnostics.runners.local import LocalExecutor, run_job
from models.classifier import Classifier
from models.loading import LoadedModel, load_model, pick_device, scorer_id, scorer_ref, zero_shot_id
from models.precision import (PrecisionCheck, at_precision, check_precision, compare_with_fp32, describe_precision,
                              merge_adapter)
from models.scoring import compiled_for_scoring, default_batch_size, prompt_builder, score_prompts

# torch.compile costs ~30–90 s once per process and saves ~15% of scoring time on CPU: on by
# default ("auto") for a target with at least this many emails to score.
AUTO_COMPILE_EMAILS = 2000
# int8 (SmoothQuant) measures activation ranges on this many training emails per corpus.
CALIBRATION_EMAILS_PER_CORPUS = 8
# A bf16 or int8 run scores this many other training emails per corpus in fp32 and in its own
# precision too, and records how far its precision moved the scores (~5 s for SmolLM2 on CPU).
PRECISION_CHECK_EMAILS_PER_CORPUS = 8


def score_to_predictions(loaded: LoadedModel, emails: Sequence[Email], run_id: str, corpus: str, max_tokens: int,
                         batch_size: int, on_batch: Callable[[int], None] | None = None) -> list[Prediction]:
    """Score emails with one loaded model (no store needed: Ray workers call this too);
    threshold at logit difference 0."""
    builder = prompt_builder(loaded, max_tokens)
    prompts = [builder.build(m) for m in emails]
    scores = score_prompts(loaded, [p.input_ids for p in prompts], batch_size, on_batch)
    return [
        Prediction(run_id=run_id, adapter_id=loaded.adapter_id, model=loaded.spec.name, email_id=m.id,
                   corpus=corpus, score=float(s), predicted=verdict(s), true_label=m.label,
                   truncated_tokens=p.truncated_tokens)
        for m, p, s in zip(emails, prompts, scores)
    ]


def evaluation_samples(store: Store, corpora: Sequence[str], sample_size: int | None, seed: int) -> dict[str, list[str]]:
    """Each corpus' seeded, stratified test sample: every scorer is evaluated on the same emails."""
    samples = {c: test_sample(store, c, sample_size, seed) for c in corpora}
    if not any(samples.values()):
        raise ValueError(f"no test emails to score in {', '.join(corpora) or 'this store'}: ingest corpora first "
                         "(`cli.py ingest --data DIR`, or `cli.py demo`)")
    return samples


def score_one(loaded: Classifier, mail: Email, max_tokens: int) -> dict:
    """One email scored by one classifier: the row a page's verdict table shows (true label unknown: -1)."""
    prompt = prompt_builder(loaded, max_tokens).build(mail)
    score = float(score_prompts(loaded, [prompt.input_ids])[0])
    return {"model": loaded.spec.name, "adapter_id": loaded.adapter_id, "score": score, "predicted": verdict(score),
            "true_label": -1, "truncated_tokens": prompt.truncated_tokens}


def training_sample(store: Store, corpora: Sequence[str], seed: int, per_corpus: int,
                    exclude: frozenset[str] = frozenset()) -> list[Email]:
    """A seeded, stratified sample of each corpus' training split (never the test emails scored),
    leaving out the ids in `exclude`."""
    sample = []
    for corpus in corpora:
        train = store.split_ids(corpus, "train")
        sample += store.emails_by_ids(sample_stratified(train[~train["id"].isin(exclude)], per_corpus, seed))
    return sample


def calibration_emails(store: Store, corpora: Sequence[str], seed: int,
                       per_corpus: int = CALIBRATION_EMAILS_PER_CORPUS) -> list[Email]:
    """The training emails int8 is calibrated on."""
    return training_sample(store, corpora, seed, per_corpus)


def precision_check_emails(store: Store, corpora: Sequence[str], seed: int,
                           calibration: Sequence[Email]) -> list[Email]:
    """Training emails, none of them a calibration email, to compare a precision with fp32 on."""
    return training_sample(store, corpora, seed, PRECISION_CHECK_EMAILS_PER_CORPUS,
                           frozenset(m.id for m in calibration))


def check_against_fp32(fp32: LoadedModel, scorer: LoadedModel, precision: str, emails: Sequence[Email],
                       max_tokens: int, batch_size: int = 8) -> PrecisionCheck:
    """Score `emails` with the fp32 model and with its lower-precision copy, and compare."""
    prompts = [prompt_builder(fp32, max_tokens).build(m).input_ids for m in emails]
    return compare_with_fp32(precision, score_prompts(fp32, prompts, batch_size),
                             score_prompts(scorer, prompts, batch_size))


def scoring_model(loaded: LoadedModel, precision: str, calibration: Sequence[Email], max_tokens: int) -> LoadedModel:
    """The loaded scorer, its adapter merged, at the scoring precision (int8 is calibrated on
    `calibration`). The merge changes `loaded` in place: pass `merge_adapter(loaded)` to keep
    using it; bf16 and int8 return a copy, so that merged fp32 model still scores as before."""
    loaded = merge_adapter(loaded)
    if precision != "int8":
        return at_precision(loaded, precision)
    builder = prompt_builder(loaded, max_tokens)
    return at_precision(loaded, precision, [builder.build(m).input_ids for m in calibration])


def unscored(store: Store, adapter_id: str, samples: dict[str, list[str]]) -> dict[str, list[str]]:
    """Each corpus' sampled emails that the scorer has no prediction for yet (resumption)."""
    done = store.predicted_email_ids(adapter_id)
    return {corpus: [i for i in ids if i not in done] for corpus, ids in samples.items()}


def already_scored_note(adapter_id: str, precision: str) -> str:
    """What to say when a target has nothing left to score. Resumption is by (scorer, email)
    whatever the precision, so a store scored in fp32 is not rescored in int8."""
    return (f"{adapter_id}: every sampled test email already has a prediction in this store; nothing "
            f"scored{'' if precision == 'fp32' else f' in {precision}'}. To compare precisions, evaluate "
            "into another store (PHISHLENS_STORE=...).")


def check_compile_mode(compile_mode: str) -> None:
    """A clear error for a PHISHLENS_COMPILE value that is not auto, on or off."""
    if compile_mode not in ("auto", "on", "off"):
        raise ValueError(f"PHISHLENS_COMPILE must be auto, on or off, not {compile_mode!r}")


def compiles(compile_mode: str, emails: int, precision: str) -> bool:
    """Whether a scorer with this many emails to score is compiled: "auto" compiles long jobs and
    int8 (eager int8 spends its time quantizing activations; only compiled, fused, does it pay)."""
    return compile_mode == "on" or compile_mode == "auto" and (emails >= AUTO_COMPILE_EMAILS or precision == "int8")


def evaluation_params(targets: Sequence[EvaluationTarget], corpora: Sequence[str], sample_size: int | None,
                      max_tokens: int, seed: int, precision: str) -> dict:
    """What an evaluation run records (its executor adds where it ran)."""
    return {"targets": [str(t.adapter_dir or zero_shot_id(t.model)) for t in targets], "corpora": list(corpora),
            "sample_size": sample_size, "max_tokens": max_tokens, "seed": seed, "precision": precision,
            "precision_detail": describe_precision(precision)}


@dataclass(frozen=True)
class ScoreBatch(EmailBatch):
    """Work item: score these test emails of one corpus with one scorer."""

    max_tokens: int
    batch_size: int


@dataclass(frozen=True)
class CheckBatch:
    """Work item: the precision-check emails scored by one of the two scorers compared (the
    fp32 original or its bf16/int8 copy); the check is recorded once both are in."""

    scorer: ScorerRef
    checked: str  # the adapter id whose precision is checked
    emails: tuple[Email, ...]
    max_tokens: int
    batch_size: int
    size: int = 0  # not test emails: the progress bar counts those only


@dataclass
class EvaluateJob:
    """Every target on every corpus' seeded test sample → predictions (diagnostics.runners.local's shape)."""

    targets: Sequence[EvaluationTarget]
    corpora: Sequence[str]
    sample_size: int | None
    max_tokens: int
    seed: int = 13
    device: str = "auto"
    batch_size: int | None = None
    compile_mode: str = "auto"
    precision: str = "fp32"
    emails_per_item: int | None = None  # None: one item per (target, corpus), one transaction each
    progress: bool = True
    name = "evaluate"
    description = "evaluate"

    def plan(self, store: Store) -> Plan:
        check_compile_mode(self.compile_mode)
        scoring_device = pick_device(self.device)[0]
        check_precision(self.precision, scoring_device)
        batch_size = self.batch_size or default_batch_size(scoring_device)
        corpora = list(self.corpora) or store.corpus_names()  # none named: every corpus
        samples = evaluation_samples(store, corpora, self.sample_size, self.seed)
        calibration = tuple(calibration_emails(store, corpora, self.seed)) if self.precision == "int8" else ()
        check_emails = tuple(precision_check_emails(store, corpora, self.seed, calibration)) \
            if self.precision != "fp32" else ()
        plan = Plan([], evaluation_params(self.targets, corpora, self.sample_size, self.max_tokens, self.seed,
                                          self.precision), {"check_scores": {}})
        for target in self.targets:
            adapter_id = scorer_id(target.model, target.adapter_dir)
            todo = unscored(store, adapter_id, samples)
            total = sum(len(v) for v in todo.values())
            if not total:  # known before loading the model
                plan.run_params.setdefault("already_scored", {})[adapter_id] = True  # an object: merge patches replace lists
                plan.notes.append(already_scored_note(adapter_id, self.precision))
                continue
            scorer = scorer_ref(target, self._options(self.precision, compiles(self.compile_mode, total, self.precision),
                                                      calibration))
            if check_emails:  # the scorer that scores the run, against its fp32 original
                original = scorer_ref(target, self._options("fp32", False, ()))
                plan.items += [CheckBatch(ref, adapter_id, check_emails, self.max_tokens, batch_size)
                               for ref in (original, scorer)]
            step = self.emails_per_item or max(total, 1)
            for corpus, ids in todo.items():
                for start in range(0, len(ids), step):
                    emails = tuple(store.emails_by_ids(ids[start:start + step]))
                    plan.items.append(ScoreBatch(scorer, corpus, emails, self.max_tokens, batch_size))
        return plan

    def _options(self, precision: str, compile: bool, calibration: tuple[Email, ...]) -> tuple:
        return (("precision", precision), ("compile", compile), ("calibration", calibration),
                ("max_tokens", self.max_tokens))

    def open(self, scorer: ScorerRef, adapter_dir: Path | None, env: WorkerEnv) -> LoadedModel:
        """The evaluation scorer: adapter merged, at the item's precision, compiled if it asks."""
        loaded = load_model(scorer.model, adapter_dir, Path(env.models_dir), env.device, scorer.quantize)
        model = scoring_model(loaded, scorer.option("precision"), scorer.option("calibration"),
                              scorer.option("max_tokens"))
        return compiled_for_scoring(model) if scorer.option("compile") else model

    def run(self, item: ScoreBatch | CheckBatch, model: LoadedModel, on_progress: Progress | None = None):
        if isinstance(item, CheckBatch):
            prompts = [prompt_builder(model, item.max_tokens).build(m).input_ids for m in item.emails]
            return score_prompts(model, prompts, item.batch_size)
        return score_to_predictions(model, item.emails, "", item.corpus, item.max_tokens, item.batch_size,
                                    on_progress)

    def shard_rows(self, item, records, run_id: str) -> list[dict] | None:
        if isinstance(item, CheckBatch):
            return None
        return [asdict(replace(p, run_id=run_id)) for p in records]

    def ingest_shard(self, store: Store, run_id: str, plan: Plan, item, path: Path) -> list:
        store.add_prediction_shards([path])
        return []

    def ingest(self, store: Store, run_id: str, plan: Plan, item, records) -> list:
        if isinstance(item, ScoreBatch):
            store.add_predictions([replace(p, run_id=run_id) for p in records])
            return []
        scores = plan.state["check_scores"].setdefault(item.checked, {})
        scores[item.scorer.option("precision")] = records
        if len(scores) == 2:
            check = compare_with_fp32(self.precision, scores["fp32"], scores[self.precision])
            store.add_run_params(run_id, {"precision_checks": {item.checked: asdict(check)}})
            if self.progress:
                tqdm.write(f"{item.checked}: {check.summary()}")
        return []


def evaluate(store: Store, targets: Sequence[EvaluationTarget], corpora: Sequence[str], models_dir: Path,
             sample_size: int | None, max_tokens: int, seed: int = 13, device: str = "auto",
             batch_size: int | None = None, progress: bool = True, compile_mode: str = "auto",
             precision: str = "fp32", executor: Executor | None = None,
             emails_per_item: int | None = None) -> str:
    """Evaluate every target on every corpus' (sampled) test split; returns the run id.

    compile_mode: "on", "off", or "auto" (torch.compile when a target has AUTO_COMPILE_EMAILS or more
    emails to score, or in int8). batch_size: emails per forward pass (default: models.scoring.
    default_batch_size for the device). precision: fp32, bf16 or int8 (models.precision); the run's params record it
    and, for bf16 and int8, each target's precision check (held-out training emails scored in fp32 too).
    executor: where the work runs (default: this process); emails_per_item: emails per work item
    (default: the executor's).
    """
    executor = executor or LocalExecutor(models_dir, device)
    job = EvaluateJob(targets, corpora, sample_size, max_tokens, seed, device, batch_size, compile_mode, precision,
                      emails_per_item or executor.part_size("evaluate"), progress)
    return run_job(store, job, executor, progress).run_id


def evaluation_targets(model: str, adapter_dirs: Sequence[Path], quantize: str = "none",
                       zero_shot: bool = True) -> list[EvaluationTarget]:
    """The zero-shot base model (unless zero_shot is False) and each adapter of `model`."""
    return ([EvaluationTarget(model, None, quantize)] if zero_shot else []) + \
        [EvaluationTarget(model, Path(folder), quantize) for folder in adapter_dirs]


def evaluate_as_configured(store: Store, settings: Settings, targets: Sequence[EvaluationTarget],
                           corpora: Sequence[str], sample_size: int | None, max_tokens: int,
                           batch_size: int | None = None, progress: bool = True) -> str:
    """`evaluate` with the settings' seed, device, compilation, precision and executor."""
    from diagnostics.runners.ray import executor_for

    return evaluate(store, targets, corpora, settings.models_dir, sample_size, max_tokens, settings.seed,
                    settings.device, batch_size, progress, settings.compile, settings.precision,
                    executor_for(settings))


def evaluate_reference(store: Store, training_sets: Sequence[str], corpora: Sequence[str], sample_size: int | None,
                       seed: int = 13) -> str:
    """Train the TF-IDF + logistic regression reference on each training set and score the same
    test samples the LLMs are scored on (seconds each; skips what the store already has)."""
    from models.bag_of_words import HYPERPARAMETERS, REFERENCE_MODEL, fit_reference, reference_id, score_reference

    samples = evaluation_samples(store, corpora, sample_size, seed)
    params = {"reference": REFERENCE_MODEL, "training_sets": list(training_sets), "corpora": list(corpora),
              "sample_size": sample_size, "seed": seed}
    with store.run("evaluate", params) as run_id:
        for training_set in training_sets:
            model_id = reference_id(training_set, seed)
            done = store.predicted_email_ids(model_id)
            todo = {c: [i for i in ids if i not in done] for c, ids in samples.items()}
            if not any(todo.values()):
                continue
            emails = store.training_set_emails(training_set)
            if not emails:
                raise ValueError(f"training set {training_set!r} is not in the store; build it first")
            started = time.perf_counter()
            pipeline = fit_reference(emails, seed)
            store.add_reference_model(model_id, REFERENCE_MODEL, training_set, HYPERPARAMETERS, seed, len(emails),
                                      time.perf_counter() - started)
            for corpus, ids in todo.items():
                test = store.emails_by_ids(ids)
                scores = score_reference(pipeline, test)
                store.add_predictions([
                    Prediction(run_id=run_id, adapter_id=model_id, model=REFERENCE_MODEL, email_id=m.id, corpus=corpus,
                               score=float(s), predicted=verdict(s), true_label=m.label)
                    for m, s in zip(test, scores)])
    return run_id


def job_for_request(request: DiagnosticRequest, models_dir: Path, emails_per_item: int | None = None) -> EvaluateJob:
    """The registry's way in (`cli.py diagnose evaluate`): one scorer on one corpus' sampled test
    split, or on every corpus when the request names none."""
    return EvaluateJob([request.target], [request.corpus] if request.corpus else [], request.sample_size,
                       request.max_tokens, request.seed, batch_size=request.batch_size, emails_per_item=emails_per_item)
