"""PhishLens command line: `python cli.py --help`.

Every command reads its defaults from PHISHLENS_* environment variables (data/settings.py);
the global options below override them. One function per command, each a thin call into one
job's entry point (diagnostics/); the module is long because typer declares every option with
its help text in the signature, and it holds nothing but that and the printing of results.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Optional

import typer

from data.records import LoraSettings
from data.settings import PROJECT_ROOT, Settings, load_settings

app = typer.Typer(help="PhishLens: why do fine-tuned LLM phishing detectors fail to generalize?",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
trainset_app = typer.Typer(help="Build named training sets (specialist: one corpus; generalist: a mix).",
                           no_args_is_help=True)
app.add_typer(trainset_app, name="trainset")


# Options shared by the commands that sample a corpus' test split with one scorer.
CorpusOption = Annotated[str, typer.Option("--corpus", help="Corpus whose test split is sampled")]
AdapterOption = Annotated[Optional[str], typer.Option(
    "--training-set", help="The --model adapter trained on this set (several seeds: use --scorer)")]
ScorerOption = Annotated[Optional[str], typer.Option(
    "--scorer", help="A scorer's id or name (`status` lists them), e.g. zero-shot:smollm2-135m; "
                     "default: the --model base zero-shot")]
MaxTokensOption = Annotated[Optional[int], typer.Option(help="Token budget per email [env PHISHLENS_MAX_TOKENS]")]
ExecutorOption = Annotated[Optional[str], typer.Option(help="local, or ray [env PHISHLENS_EXECUTOR]")]
RayAddressOption = Annotated[Optional[str], typer.Option(
    "--address", help="Ray cluster address, e.g. ray://head:10001 (default: a local Ray instance) [env PHISHLENS_RAY_ADDRESS]")]
RayWorkersOption = Annotated[Optional[int], typer.Option(
    "--workers", help="CPUs of a local Ray instance (default: all) [env PHISHLENS_RAY_WORKERS]")]


def _settings(ctx: typer.Context) -> Settings:
    return ctx.obj


def _fail(message: str) -> None:
    typer.secho(f"error: {message}", fg="red", err=True)
    raise typer.Exit(1)


@contextmanager
def _clear_errors():
    """Turn the errors PhishLens raises for bad input into one red line and exit code 1."""
    from data.corpora import IngestError
    from data.parse import ParseError
    from data.splits import SplitError
    from data.store import StoreError
    from models.loading import ModelError

    try:
        yield
    except (IngestError, ParseError, SplitError, StoreError, ModelError, ValueError) as exc:
        _fail(str(exc))
    except BrokenPipeError:
        raise
    except OSError as exc:  # a full disk or a vanished folder part-way: a line saying so, not a traceback
        _fail(f"{exc.strerror or exc} ({exc.filename or 'a file PhishLens was writing'}); nothing half-written "
              f"was kept: fix that and rerun the command")


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived. It unwinds like Ctrl-C, so a run in progress records that it ended (failed,
    with this reason) instead of staying 'running' forever."""


def _raise_terminated(signum, frame):
    raise Terminated("SIGTERM: the process was asked to stop")


@app.callback()
def main(
    ctx: typer.Context,
    store: Annotated[Optional[Path], typer.Option(help="DuckDB results file [env PHISHLENS_STORE]")] = None,
    home: Annotated[Optional[Path], typer.Option(help="Working folder for models and adapters [env PHISHLENS_HOME]")] = None,
    model: Annotated[Optional[str], typer.Option(help="Base model: registry name, HF hub id or local folder [env PHISHLENS_MODEL]")] = None,
    device: Annotated[Optional[str], typer.Option(help="auto, cpu or cuda [env PHISHLENS_DEVICE]")] = None,
):
    """Global options; see each command's --help."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _raise_terminated)
    settings = load_settings(model=model, device=device)
    if home:
        # A new home moves the store and adapters; converted models stay shared unless PHISHLENS_MODELS says otherwise.
        settings = settings.with_overrides(home=home.resolve(), store_path=(home / "store.duckdb").resolve())
    if store:
        settings = settings.with_overrides(store_path=store.resolve())
    ctx.obj = settings


@app.command("prepare-model")
def prepare_model_command(ctx: typer.Context):
    """Convert the base model to a local safetensors folder once (the offline default ships as GGUF)."""
    from models.loading import prepare_model
    from models.registry import resolve_model

    settings = _settings(ctx)
    with _clear_errors():
        path = prepare_model(resolve_model(settings.model), settings.models_dir)
    typer.echo(f"model {settings.model} ready at {path}")


@app.command()
def ingest(
    ctx: typer.Context,
    paths: Annotated[Optional[list[Path]], typer.Argument(help="CSV / mbox files or folders of .eml / mbox files")] = None,
    data: Annotated[Optional[Path], typer.Option(help="Ingest every corpus found in this folder [env PHISHLENS_DATA]")] = None,
    synthetic: Annotated[bool, typer.Option(help="Ingest the generated synthetic demo corpora")] = False,
    lowercase: Annotated[Optional[bool], typer.Option(help="Lower-case all text (recorded as the normalisation) [env PHISHLENS_LOWERCASE]")] = None,
    label_meaning: Annotated[Optional[str], typer.Option(help="What label 1 means for PATHS: 'phishing' or 'spam' (default: phishing for Nazario, spam otherwise)")] = None,
    test_fraction: Annotated[float, typer.Option(help="Share of each corpus held out for testing")] = 0.2,
    eval_only: Annotated[bool, typer.Option("--eval-only", help="PATHS are held out: every email a test email, never in a training set")] = False,
    held_out: Annotated[Optional[list[str]], typer.Option(help="A corpus of --data to ingest for evaluation only (repeatable)")] = None,
):
    """Parse, normalise, deduplicate and split corpora into the store."""
    from data.corpora import ingest_source, source_for_path
    from data.splits import split_corpus
    from data.store import Store
    from diagnostics.runners.pipeline import ingest_folder, ingest_synthetic

    settings = _settings(ctx).with_overrides(lowercase=lowercase)
    data = data or settings.data_dir
    if not paths and not data and not synthetic:
        _fail("give corpus PATHS, --data DIR or --synthetic")
    with _clear_errors():
        with Store.open(settings.store_path) as store:
            reports = []
            if synthetic:
                reports += ingest_synthetic(store, settings, test_fraction=test_fraction)
            if data:
                reports += ingest_folder(store, settings, data, test_fraction=test_fraction, held_out=held_out or ())
            elif held_out:
                _fail("--held-out names corpora of --data DIR; for corpus PATHS use --eval-only")
            for path in paths or []:
                source = source_for_path(path)
                reports.append(ingest_source(store, source, settings.lowercase, settings.parse_limits, label_meaning,
                                             eval_only=eval_only))
                split_corpus(store, source.name, test_fraction, settings.seed)
            held = set(store.held_out_corpora())
    if not reports:
        typer.echo("nothing new to ingest: every corpus found is already in the store")
    for r in reports:
        typer.echo(f"{r.corpus}: parsed {r.parsed}, errors {r.parse_errors}, duplicates within {r.duplicates_within}, "
                   f"label conflicts dropped {r.label_conflicts}, duplicates of other corpora {r.duplicates_across}, "
                   f"kept {r.kept} ({r.normalisation}){'; held out: evaluation only' if r.corpus in held else ''}")
        for ref, error in r.errors[:5]:
            typer.echo(f"  not parsed: {ref}: {error}")
        if r.parse_errors > 5:
            typer.echo(f"  … and {r.parse_errors - 5} more (`status` and the Corpora page list them)")


def _left_out(store, corpora: list[str], without_near_duplicates: bool) -> frozenset:
    """With --without-near-duplicates: the training emails of `corpora` that near-duplicate another
    corpus' test email (the near-duplicate audit must have run); said, with how many."""
    from data.schema import NEAR_DUPLICATES
    from diagnostics.analyses.near_duplicates import near_duplicates_of_test_emails

    if not without_near_duplicates:
        return frozenset()
    if store.flag_summaries(NEAR_DUPLICATES).empty:
        _fail("--without-near-duplicates needs the near-duplicate audit: run `python cli.py diagnose near-duplicates`")
    left_out = frozenset(near_duplicates_of_test_emails(store, corpora))
    typer.echo(f"left out {len(left_out)} training email(s) that near-duplicate another corpus' test emails")
    return left_out


WithoutNearDuplicates = Annotated[bool, typer.Option(
    "--without-near-duplicates", help="Leave out training emails that near-duplicate another corpus' test emails "
                                      "(needs `diagnose near-duplicates` first)")]


def _build_one_corpus_set(ctx: typer.Context, corpus: str, size: int | None, seed: int | None, kind: str,
                          without_near_duplicates: bool = False) -> None:
    from data.splits import build_specialist
    from data.store import Store

    settings = _settings(ctx)
    with _clear_errors():
        with Store.open(settings.store_path) as store:
            name = build_specialist(store, corpus, size, seed if seed is not None else settings.seed, kind=kind,
                                    exclude=_left_out(store, [corpus], without_near_duplicates))
            typer.echo(f"training set {name}: {store.training_set(name)['size']} emails")


TrainingCorpus = Annotated[str, typer.Argument(help="Corpus whose training split to use")]
SetSize = Annotated[Optional[int], typer.Option(help="Stratified sample of this many emails (default: all)")]
SamplingSeed = Annotated[Optional[int], typer.Option(help="Sampling seed [env PHISHLENS_SEED]")]


@trainset_app.command("specialist")
def trainset_specialist(ctx: typer.Context, corpus: TrainingCorpus, size: SetSize = None, seed: SamplingSeed = None,
                        without_near_duplicates: WithoutNearDuplicates = False):
    """A specialist set: one corpus' training split, named specialist-CORPUS."""
    _build_one_corpus_set(ctx, corpus, size, seed, "specialist", without_near_duplicates)


@trainset_app.command("fticl")
def trainset_fticl(ctx: typer.Context, corpus: TrainingCorpus, size: SetSize = None, seed: SamplingSeed = None):
    """An FTICL set: the same emails as specialist-CORPUS, named fticl-CORPUS; train it with --context-examples K."""
    _build_one_corpus_set(ctx, corpus, size, seed, "fticl")


@trainset_app.command("generalist")
def trainset_generalist(
    ctx: typer.Context,
    size: Annotated[int, typer.Option(help="Total emails, half per label")],
    corpora: Annotated[Optional[list[str]], typer.Option("--corpus", help="Corpora to mix (repeat; default: all)")] = None,
    name: Annotated[str, typer.Option(help="Name of the set")] = "generalist",
    seed: SamplingSeed = None,
    without_near_duplicates: WithoutNearDuplicates = False,
):
    """A generalist set: a label-balanced mix of several corpora' training splits."""
    from data.splits import build_generalist
    from data.store import Store

    settings = _settings(ctx)
    with _clear_errors():
        with Store.open(settings.store_path) as store:
            corpora = corpora or store.training_corpora()
            build_generalist(store, corpora, size, seed if seed is not None else settings.seed, name,
                             exclude=_left_out(store, corpora, without_near_duplicates))
            typer.echo(f"training set {name}: {store.training_set(name)['size']} emails")


def _echo_memory_estimate(settings: Settings, model: str, lora: LoraSettings) -> None:
    """Print how much memory training `model` should need on the chosen device, before loading it."""
    from transformers import AutoConfig

    from models.loading import ModelError, pick_device, prepare_model
    from models.memory import estimate_memory, prompt_tokens
    from models.registry import resolve_model

    try:
        device, dtype = pick_device(settings.device)
        config = AutoConfig.from_pretrained(prepare_model(resolve_model(model), settings.models_dir))
    except (OSError, ModelError) as exc:
        typer.echo(f"memory estimate for {model}: unavailable ({exc})")
        return
    precision = "4bit" if settings.quantize == "4bit" else "bf16" if device.type == "cuda" else "fp32"
    estimate = estimate_memory(config, precision, lora, lora.batch_size, prompt_tokens(lora))
    typer.echo(f"memory estimate for training {model} on {device.type} ({precision}): {estimate.describe()}")


@app.command()
def train(
    ctx: typer.Context,
    training_set: Annotated[str, typer.Argument(help="Name of a stored training set, e.g. specialist-EnronSpam")],
    r: Annotated[int, typer.Option(help="LoRA rank")] = LoraSettings.r,
    alpha: Annotated[int, typer.Option(help="LoRA alpha")] = LoraSettings.alpha,
    dropout: Annotated[float, typer.Option(help="LoRA dropout")] = LoraSettings.dropout,
    target_modules: Annotated[Optional[list[str]], typer.Option("--target-module", help="Module names to adapt (repeat; default: the family's)")] = None,
    epochs: Annotated[int, typer.Option(help="Passes over the training set")] = LoraSettings.epochs,
    lr: Annotated[Optional[float], typer.Option(help="Peak learning rate [default: the family's: 1e-3 for Gemma, else 3e-3]")] = None,
    batch_size: Annotated[int, typer.Option(help="Emails per step")] = LoraSettings.batch_size,
    max_tokens: Annotated[int, typer.Option(help="Token budget per training prompt")] = LoraSettings.max_tokens,
    seed: Annotated[int, typer.Option(help="Training seed")] = LoraSettings.seed,
    context_examples: Annotated[int, typer.Option(help="FTICL: labelled training emails in each prompt (an fticl-CORPUS set needs > 0)")] = LoraSettings.context_examples,
    context_tokens: Annotated[int, typer.Option(help="FTICL: token budget per in-context example")] = LoraSettings.context_tokens,
    precision: Annotated[str, typer.Option(help="fp32, or bf16 (autocast; CPUs with AMX or AVX-512 BF16): 1.7× faster on such a CPU, a different adapter id")] = LoraSettings.precision,
    from_layer: Annotated[int, typer.Option(help="LoRA on this layer and up only; the frozen layers below run once per training set and every epoch and seed reuses them (0: every layer; a different adapter id)")] = LoraSettings.from_layer,
):
    """LoRA fine-tune the base model on a training set; saves safetensors + metadata."""
    from data.store import Store
    from diagnostics.runners.pipeline import check_trained_adapter, train_training_set

    settings = _settings(ctx)
    if lr is None:
        from models.registry import default_lora_lr

        lr = default_lora_lr(settings.model)
    lora = LoraSettings(r=r, alpha=alpha, dropout=dropout, target_modules=tuple(target_modules) if target_modules else None,
                        epochs=epochs, lr=lr, batch_size=batch_size, max_tokens=max_tokens, seed=seed,
                        context_examples=context_examples, context_tokens=context_tokens, precision=precision,
                        from_layer=from_layer)
    with _clear_errors():
        from models.finetune import check_training_precision
        from models.loading import pick_device

        check_training_precision(precision, pick_device(settings.device)[0], settings.models_dir)
        _echo_memory_estimate(settings, settings.model, lora)
        with Store.open(settings.store_path) as store:
            folder = train_training_set(store, settings, training_set, lora)
            typer.echo(f"adapter saved at {folder}")
            check = check_trained_adapter(store, settings, training_set, folder, lora.max_tokens)
    if check.collapsed:
        typer.secho(f"warning: {check.sentence()}", fg="yellow", err=True)
    else:
        typer.echo(check.sentence())


@app.command()
def evaluate(
    ctx: typer.Context,
    adapters: Annotated[Optional[list[Path]], typer.Option("--adapter", help="Adapter folder (repeat; default: every adapter of --model in the store)")] = None,
    zero_shot: Annotated[bool, typer.Option(help="Also evaluate the base model without adapter")] = True,
    corpora: Annotated[Optional[list[str]], typer.Option("--corpus", help="Corpus to test on (repeat; default: all)")] = None,
    sample_size: Annotated[Optional[int], typer.Option(help="Seeded stratified sample per test split (default: all)")] = None,
    max_tokens: MaxTokensOption = None,
    batch_size: Annotated[Optional[int], typer.Option(help="Emails per forward pass (default: 8 on CPU, 64 on CUDA)")] = None,
    reference: Annotated[bool, typer.Option(help="Also train and score the TF-IDF + logistic regression reference on every training set")] = True,
    executor: ExecutorOption = None,
    address: RayAddressOption = None,
    workers: RayWorkersOption = None,
    precision: Annotated[Optional[str], typer.Option(help="fp32, bf16, or int8 (SmoothQuant, CPU) for scoring; see benchmarks/README.md [env PHISHLENS_PRECISION]")] = None,
):
    """Score adapters (and the zero-shot base) on every corpus' test split into the predictions table."""
    from data.store import Store
    from diagnostics.analyses.evaluate import evaluate_as_configured, evaluate_reference, evaluation_targets

    settings = _settings(ctx).with_overrides(max_tokens=max_tokens, executor=executor, ray_address=address,
                                             ray_workers=workers, precision=precision)
    _executor(settings)  # a bad executor fails before anything is loaded
    _warn_if_slower_than_fp32(settings)
    with _clear_errors():
        with Store.open(settings.store_path) as store:
            folders = adapters or [Path(p) for p in store.adapters(settings.model)["path"]]
            targets = evaluation_targets(settings.model, folders, settings.quantize, zero_shot)
            if not targets:
                _fail("nothing to evaluate: train an adapter or keep --zero-shot")
            corpora = corpora or store.corpus_names()
            run_id = evaluate_as_configured(store, settings, targets, corpora, sample_size, settings.max_tokens,
                                            batch_size)
            if reference and not store.training_sets().empty:
                evaluate_reference(store, list(store.training_sets()["name"]), corpora, sample_size, settings.seed)
            typer.echo(f"run {run_id}")
            # cut_share: the test emails the token budget cut (the bag of words reads them whole)
            typer.echo(_matrix_rows(store.metrics().round({"f1": 3, "recall": 3, "accuracy": 3, "cut_share": 2}),
                                    store.scorer_catalogue(), ["accuracy", "cut_share"]).to_string(index=False))


@app.command("import-adapter")
def import_adapter_command(
    ctx: typer.Context,
    folder: Annotated[Path, typer.Argument(help="A LoRA adapter folder saved by peft (adapter_config.json + adapter_model.safetensors)")],
    model: Annotated[str, typer.Option("--model", help="The base model it was trained on: a registry name or a local folder")],
    name: Annotated[Optional[str], typer.Option(help="What pages call it (default: the folder's name)")] = None,
    prompt_template: Annotated[Optional[str], typer.Option(help="The text the adapter was trained on, {email} where the email goes (or phishlens_import.json)")] = None,
    negative_word: Annotated[Optional[str], typer.Option(help="Causal-LM adapters: the label word for legitimate, spaces included, e.g. ' no'")] = None,
    positive_word: Annotated[Optional[str], typer.Option(help="Causal-LM adapters: the label word for phishing/spam, e.g. ' yes'")] = None,
    positive_label: Annotated[Optional[int], typer.Option(help="Classification heads: the head's label index of phishing/spam (default 1)")] = None,
    seed: Annotated[int, typer.Option(help="The seed it was trained with (names it apart from its other seeds)")] = 0,
    evaluate: Annotated[bool, typer.Option(help="Evaluate it on every corpus' test split once imported")] = True,
    sample_size: Annotated[Optional[int], typer.Option(help="Seeded stratified sample per test split (default: all; use the sample your other scorers were evaluated on)")] = None,
    max_tokens: MaxTokensOption = None,
):
    """Import a LoRA adapter trained elsewhere (plain peft: causal LM or sequence classification): checked
    against the base model, copied under the store's adapters, evaluated into the matrix."""
    from data.store import Store
    from data.records import CLASSIFICATION_HEAD
    from diagnostics.runners.pipeline import import_trained_adapter
    from models.imported import ImportRequest

    words = None
    if negative_word is not None or positive_word is not None:
        words = (negative_word or "", positive_word or "")
    request = ImportRequest(folder, model, prompt_template, words, positive_label, name, seed)
    settings = _settings(ctx).with_overrides(max_tokens=max_tokens)
    with _clear_errors(), Store.open(settings.store_path) as store:
        info, run_id = import_trained_adapter(store, settings, request, evaluate, sample_size)
        how = ("its classification head's logit difference" if info.readout == CLASSIFICATION_HEAD
               else f"logit({info.label_words[1]!r}) − logit({info.label_words[0]!r})")
        typer.echo(f"imported {info.id} (read as {how}) into {info.path}")
        if info.hyperparameters.get("warning"):
            typer.secho(f"warning: {info.hyperparameters['warning']}", fg="yellow", err=True)
        if run_id:
            typer.echo(f"evaluated: run {run_id}")
            _echo_scorer_rows(store, info.id)


@app.command("import-scores")
def import_scores_command(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="CSV or Parquet: email_id (or subject and body, or raw_message) and score or probability")],
    name: Annotated[str, typer.Option("--name", help="What pages call this detector (its id is scores--NAME)")],
    threshold: Annotated[Optional[float], typer.Option(help="Verdict above this (default: 0 for score, 0.5 for probability)")] = None,
    skip_bad_rows: Annotated[bool, typer.Option("--skip-bad-rows", help="Import the usable rows and record the others (default: a file with any bad row is refused whole)")] = False,
    report: Annotated[Optional[Path], typer.Option(help="Write every row not used (row, value, problem) to this CSV")] = None,
    new_corpus: Annotated[Optional[str], typer.Option("--corpus", help="Add raw messages the store lacks (with a label column) to this held-out corpus")] = None,
):
    """Store another detector's scores (an API model, a mail filter) as a scores-only scorer: in every
    matrix, paired comparison, calibration view and the Inbox; nothing explains it."""
    import pandas as pd

    from data.imported_scores import ScoreFileError, match_scores, read_score_file
    from data.store import Store

    settings = _settings(ctx)
    with _clear_errors(), Store.open(settings.store_path) as store:
        try:
            frame = read_score_file(file)
            emails = store.test_emails()
            matched = match_scores(frame, emails, set(emails.loc[emails["test"], "id"]), name, threshold, new_corpus,
                                   settings.lowercase, str(file))
        except ScoreFileError as exc:
            _fail(str(exc))
        unused = pd.concat([matched.problems.assign(used="refused"), matched.left_out.assign(used="left out")])
        if report is not None:
            unused.to_csv(report, index=False)
        if matched.blocked and not skip_bad_rows:
            typer.secho(f"{len(matched.problems)} of {len(frame)} rows could not be used; nothing was imported:",
                        fg="red", err=True)
            typer.echo(matched.problems.head(20).to_string(index=False), err=True)
            if len(matched.problems) > 20:
                typer.echo(f"... and {len(matched.problems) - 20} more" + ("" if report else " (--report FILE lists all)"),
                           err=True)
            typer.echo("fix those rows, or import the others with --skip-bad-rows", err=True)
            raise typer.Exit(1)
        run_id = store.add_imported_scores(matched, str(file), skip_bad_rows)
        typer.echo(f"imported {len(matched.predictions)} scores as {matched.scorer_id} (run {run_id}); "
                   f"{len(matched.problems)} rows skipped, {len(matched.left_out)} outside every test split"
                   + (f"; {len(matched.new_emails)} new emails in the held-out corpus {new_corpus}"
                      if matched.new_emails else ""))
        if not unused.empty:
            typer.echo(unused.head(10).to_string(index=False))
        _echo_scorer_rows(store, matched.scorer_id)


def _echo_scorer_rows(store, scorer_id: str) -> None:
    """One scorer's rows of the F1 matrix, as `evaluate` prints them."""
    metrics = store.metrics()
    typer.echo(_matrix_rows(metrics[metrics["adapter_id"] == scorer_id].round({"f1": 3, "recall": 3}),
                            store.scorer_catalogue()).to_string(index=False))


def _matrix_rows(metrics, scorers, extra: list[str] | None = None):
    """F1 matrix rows that name their scorer: the base model for adapters and zero-shot, "bag of
    words" for the TF-IDF + logistic regression reference trained on the same training set, the
    seed where the scorer has one (data.scorers: the catalogue), then the training set."""
    from models.bag_of_words import REFERENCE_MODEL

    scorer = metrics["model"].where(metrics["model"] != REFERENCE_MODEL, "bag of words (TF-IDF + LR)")
    seed = metrics["adapter_id"].map(scorers.set_index("id")["seed"]).astype("Int64")
    rows = metrics.assign(scorer=scorer, seed=seed).sort_values(["scorer", "training_set", "seed", "corpus"])
    return rows[["scorer", "seed", "training_set", "corpus", "n", "f1", "recall", *(extra or []), "in_domain"]]


def _warn_if_slower_than_fp32(settings: Settings) -> None:
    """Before a long scoring run: say so when the precision asked for is slower than fp32 here."""
    from models.loading import pick_device
    from models.precision import precision_warning

    with _clear_errors():
        warning = precision_warning(settings.precision, pick_device(settings.device)[0], settings.models_dir)
    if warning:
        typer.secho(f"warning: {warning}. Continuing in {settings.precision} as asked.", fg="yellow", err=True)


def _executor(settings: Settings):
    """The executor the settings name (diagnostics.runners.ray.executor_for), or a clear error."""
    from diagnostics.runners.ray import executor_for

    with _clear_errors():
        return executor_for(settings)


def _sample_target(store, settings: Settings, corpus: str | None, scorer: str | None, training_set: str | None):
    """For a command that samples a corpus' test split with one scorer: check the corpus exists (None:
    every corpus is sampled) and return what to load (data.records.EvaluationTarget): the scorer
    `--scorer` names, else the `--model` adapter on `--training-set`, else the `--model` base."""
    from data.records import EvaluationTarget
    from data.scorers import SCORES, resolve, zero_shot_id
    from models.registry import resolve_model

    if corpus is not None and not store.has_corpus(corpus):
        _fail(f"no corpus {corpus!r} in the store; known: {', '.join(store.corpus_names()) or 'none'}")
    model = resolve_model(settings.model).name
    scorers = store.scorer_catalogue([model])
    if scorer and training_set:
        _fail("give --scorer or --training-set, not both")
    if training_set:
        found = scorers[(scorers["kind"] == "adapter") & (scorers["model"] == model)
                        & (scorers["training_set"] == training_set)]
        if found.empty:
            _fail(f"no adapter of {model} trained on {training_set!r}; see `status`")
        if len(found) > 1:
            _fail(f"{len(found)} adapters of {model} are trained on {training_set!r}: "
                  + "; ".join(f"{r.name} (--scorer {r.id})" for r in found.itertuples()) + ". Name one with --scorer")
        scorer = str(found["id"].iloc[0])
    row = scorers.set_index("id").loc[resolve(scorers, scorer or zero_shot_id(model))]
    if row["kind"] == "bag-of-words":
        _fail(f"{row['name']} is the bag-of-words reference: it has no model to look inside; pick an adapter or a "
              "zero-shot base")
    if row["kind"] == SCORES:
        _fail(f"{row['name']} was imported from a score file: a detector PhishLens does not run, so it has no model "
              "to look inside; pick an adapter or a zero-shot base")
    return EvaluationTarget(row["model"], Path(row["path"]) if row["kind"] == "adapter" else None, settings.quantize)


@contextmanager
def _on_a_sample(ctx: typer.Context, corpus: str, scorer: str | None, training_set: str | None, **overrides):
    """(settings, executor, open store, target) for a command that samples a corpus' test split with
    one scorer; bad input ends the command with one red line."""
    from data.store import Store

    settings = _settings(ctx).with_overrides(**overrides)
    run_on = _executor(settings)
    with _clear_errors(), Store.open(settings.store_path) as store:
        yield settings, run_on, store, _sample_target(store, settings, corpus, scorer, training_set)


@app.command()
def explain(
    ctx: typer.Context,
    corpus: CorpusOption,
    scorer: ScorerOption = None,
    training_set: AdapterOption = None,
    sample_size: Annotated[int, typer.Option(help="Seeded sample of the test split")] = 200,
    method: Annotated[str, typer.Option(help="shap (Owen values over fields → sentences → words) or gradxinput (fast, not additive)")] = "shap",
    max_tokens: MaxTokensOption = None,
    executor: ExecutorOption = None,
    address: RayAddressOption = None,
    workers: RayWorkersOption = None,
):
    """Explain a sample of a corpus' test split with one adapter: the Drivers page's input (resumable)."""
    from data.splits import test_sample
    from diagnostics.analyses.drivers import METHODS, explain_sample

    if method not in METHODS:
        _fail(f"--method must be one of {', '.join(METHODS)}")
    with _on_a_sample(ctx, corpus, scorer, training_set, max_tokens=max_tokens, executor=executor, ray_address=address,
                      ray_workers=workers) as (settings, run_on, store, target):
        fresh = explain_sample(store, target, corpus, sample_size, method, settings.max_tokens, settings.seed, run_on,
                               progress=True)
        sampled = len(test_sample(store, corpus, sample_size, settings.seed))
    typer.echo(f"explained {fresh} emails of {corpus} ({method}, {run_on.name}); {sampled - fresh} were cached")


@app.command()
def heads(
    ctx: typer.Context,
    corpus: CorpusOption,
    scorer: ScorerOption = None,
    training_set: AdapterOption = None,
    sample_size: Annotated[int, typer.Option(help="Seeded sample of the test split")] = 200,
    ablation: Annotated[str, typer.Option(help="mean (replace a head's output by its average) or zero")] = "mean",
    top_k: Annotated[int, typer.Option(help="Heads whose attribution-patching estimate is checked by exact ablation")] = 10,
    batch_size: Annotated[int, typer.Option(help="Emails per forward/backward pass")] = 4,
    max_tokens: MaxTokensOption = None,
    executor: ExecutorOption = None,
    address: RayAddressOption = None,
    workers: RayWorkersOption = None,
):
    """Every attention head's effect on the score and F1 over a corpus sample: the Heads page's sweep (cached)."""
    from diagnostics.analyses.head_sweep import sweep_corpus
    from diagnostics.analyses.heads import ABLATIONS

    if ablation not in ABLATIONS:
        _fail(f"--ablation must be one of {', '.join(ABLATIONS)}")
    with _on_a_sample(ctx, corpus, scorer, training_set, max_tokens=max_tokens, executor=executor, ray_address=address,
                      ray_workers=workers) as (settings, run_on, store, target):
        sweep = sweep_corpus(store, target, corpus, sample_size, settings.max_tokens, settings.seed, ablation, top_k,
                             batch_size, run_on, progress=True)
    if sweep is None:
        typer.echo(f"this sweep on {corpus} is already stored; nothing to do")
        return
    exact = sweep.effects[sweep.effects["method"] == "exact"].sort_values("delta_logit", key=abs, ascending=False)
    top = ", ".join(f"L{r.layer}H{r.head} {r.delta_logit:+.2f}" for r in exact.head(5).itertuples())
    heads = int((sweep.effects["method"] == "attribution").sum())
    typer.echo(f"swept {heads} heads of {sweep.adapter_id} over {sweep.n_emails} emails of {corpus} ({ablation} "
               f"ablation, {run_on.name}) in {sum(sweep.seconds.values()):.0f} s; largest exact effects on the mean "
               f"score: {top}")


@app.command()
def diagnose(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="A diagnostic of diagnostics/contracts/registry.py, e.g. "
                                             "direct-logit-attribution; `list` lists them")],
    corpus: Annotated[Optional[str], typer.Option(help="Corpus whose test split is sampled (store-wide diagnostics sample every corpus)")] = None,
    scorer: ScorerOption = None,
    training_set: AdapterOption = None,
    against: Annotated[Optional[str], typer.Option(help="The second scorer of an analysis that compares two")] = None,
    sample_size: Annotated[int, typer.Option(help="Seeded stratified sample of the test split")] = 100,
    batch_size: Annotated[int, typer.Option(help="Emails per forward pass")] = 4,
    max_tokens: MaxTokensOption = None,
    executor: ExecutorOption = None,
    address: RayAddressOption = None,
    workers: RayWorkersOption = None,
):
    """Run any registered diagnostic (`diagnose list` lists them): a job over a corpus sample with one
    scorer, stored and skipped if stored; or an analysis of stored results, printed."""
    from data.records import DiagnosticRequest
    from diagnostics.contracts.registry import DIAGNOSTICS, diagnostic
    from diagnostics.runners.local import run_job

    if name == "list":
        for entry in DIAGNOSTICS.values():
            how = "job, stored" if entry.job else "analysis of stored results"
            typer.echo(f"{entry.name:26} {entry.kind:12} {entry.page:9} {how}: {entry.question}")
        return
    with _clear_errors():
        entry = diagnostic(name)
    if entry.compute:
        _print_analysis(ctx, entry, [s for s in (scorer, against) if s])
        return
    if entry.scorers == 0:  # an audit of the store's emails: no scorer, no model
        from data.store import Store
        from diagnostics.runners.local import LocalExecutor

        settings = _settings(ctx)  # it needs every email at once: it runs here, whatever --executor says
        with _clear_errors(), Store.open(settings.store_path) as store:
            outcome = run_job(store, entry.make_job(None, settings.models_dir), LocalExecutor(settings.models_dir))
            summary = store.flag_summaries(name)
        said = "already stored for these emails; nothing to do" if outcome.run_id is None else f"run {outcome.run_id}"
        typer.echo(f"{entry.title} ({said}):")
        typer.echo(summary.drop(columns=["params", "run_id"]).dropna(axis=1, how="all").round(4).to_string(index=False))
        _echo_audit_details(settings, name)
        return
    if entry.scope == "corpus" and not corpus:
        _fail(f"{name} samples one corpus: give --corpus")
    with _on_a_sample(ctx, corpus, scorer, training_set, max_tokens=max_tokens, executor=executor, ray_address=address,
                      ray_workers=workers) as (settings, run_on, store, target):
        request = DiagnosticRequest(target, corpus or "", sample_size, settings.max_tokens, settings.seed, batch_size)
        outcome = run_job(store, entry.make_job(request, settings.models_dir, run_on.part_size(name)), run_on)
    typer.echo(f"{name} of {corpus or 'every corpus'}: " + ("already stored; nothing to do" if outcome.run_id is None else
                                           f"stored (run {outcome.run_id})"))


@app.command("correct-label")
def correct_label(
    ctx: typer.Context,
    email_id: Annotated[str, typer.Argument(help="The email's id (the Inbox and `diagnose label-audit` list them)")],
    label: Annotated[Optional[str], typer.Argument(help="phishing or legitimate")] = None,
    note: Annotated[str, typer.Option(help="Why the label is wrong (kept with the correction)")] = "",
    undo: Annotated[bool, typer.Option("--undo", help="Take back the email's current correction")] = False,
):
    """Record an analyst's label for an email beside the corpus' own (never overwritten), or undo it."""
    from data.store import Store

    labels = {"phishing": 1, "spam": 1, "legitimate": 0, "ham": 0}
    if not undo and (label or "").lower() not in labels:
        _fail("give the correct label: phishing or legitimate (or --undo)")
    with _clear_errors(), Store.open(_settings(ctx).store_path) as store:
        if undo:
            typer.echo("correction undone" if store.undo_label_correction(email_id) else "that email had no correction")
        else:
            store.correct_label(email_id, labels[label.lower()], note)
            typer.echo(f"recorded: {email_id} is {label.lower()} (the corpus' own label is kept)")


def _echo_audit_details(settings: Settings, name: str, top: int = 8) -> None:
    """After an audit of the emails: the top suspects with why, or what near-duplicates do to each matrix cell."""
    import json

    from data.schema import LABEL_AUDIT
    from data.store import Store
    from diagnostics.analyses.near_duplicates import leakage_by_cell

    with Store.open_to_read(settings.store_path) as store, store.connection():
        if name == LABEL_AUDIT:
            flags = store.flagged_emails(name, limit=top)
            if len(flags):
                typer.echo(f"top {len(flags)} suspects (P(label) out of sample; adapters and nearest emails "
                           "against it):")
            for r in flags.to_dict("records"):
                e = json.loads(r["evidence"])
                typer.echo(f"  {r['email_id']}  {r['corpus']}  label {e['given_label']}  "
                           f"P(label) {e['p_given_label']:.3f}  "
                           f"adapters {e['adapters_against_label']}/{len(e['adapters'])}  "
                           f"nearest {e['neighbours_against_label']}/{len(e['neighbours'])}  {r['subject'][:60]!r}")
            return
        cells = leakage_by_cell(store)
        if cells.empty:
            return
        names = dict(zip(*store.scorer_catalogue()[["id", "name"]].to_numpy().T))
    cells = cells.assign(scorer=cells["adapter_id"].map(names).fillna(cells["adapter_id"]))
    typer.echo("per matrix cell: test emails that near-duplicate an email of the scorer's training set, F1 without them")
    typer.echo(cells[["scorer", "corpus", "n", "near_duplicates", "share", "f1", "f1_without", "delta_f1"]]
               .round(3).to_string(index=False))


def _print_analysis(ctx: typer.Context, entry, wanted: list[str]) -> None:
    """An analysis of stored results (a registry entry with `compute`) for the scorers named, as a table."""
    from data.scorers import resolve
    from data.store import Store

    if len(wanted) != entry.scorers:
        _fail(f"{entry.name} takes {entry.scorers} scorer(s): --scorer" + (" and --against" if entry.scorers == 2 else ""))
    with _clear_errors(), Store.open_to_read(_settings(ctx).store_path) as store, store.connection():
        scorers = store.scorer_catalogue()
        ids = tuple(resolve(scorers, w) for w in wanted)
        grid = entry.run_analysis(store, ids)
    names = dict(zip(scorers["id"], scorers["long_name"]))
    typer.echo(f"{entry.title}: " + " vs ".join(names[i] for i in ids))
    if grid.empty:
        typer.echo("  nothing stored to analyse: evaluate the scorer(s) first")
        return
    if entry.kind == "curve":  # series × x → y with its interval: one line per series' point
        typer.echo(grid.round(3).to_string(index=False))
        return
    typer.echo(grid.pivot(index="row", columns="column", values="value").round(3).to_string())


@app.command()
def study(
    ctx: typer.Context,
    spec: Annotated[Path, typer.Argument(help="A study spec (TOML), e.g. studies/default.toml")],
    report_only: Annotated[bool, typer.Option("--report-only", help="Print the report of what is stored; run nothing")] = False,
    html: Annotated[Optional[Path], typer.Option(help="Also write the report as one self-contained HTML file here")] = None,
    data: Annotated[Optional[Path], typer.Option(help="Ingest the corpora of this folder the store lacks first [env PHISHLENS_DATA]")] = None,
):
    """Run a cross-architecture study: train and evaluate whatever the spec needs and the store lacks, then report."""
    from dataclasses import replace

    from data.store import Store
    from diagnostics.analyses.study import (SpecError, load_spec, plan_study, run_study, study_findings, study_results,
                                   summarize_study)

    settings = _settings(ctx)
    try:
        parsed = load_spec(spec)
    except SpecError as exc:
        _fail(str(exc))
    from diagnostics.analyses.paired import power_note

    typer.echo(f"power: {power_note(parsed.eval_size)}")
    with _clear_errors():
        if not report_only:
            for model in parsed.models:  # for the longest prompts: FTICL's, when the spec has it
                _echo_memory_estimate(settings, model, replace(parsed.lora_for(model),
                                                                     context_examples=parsed.fticl_examples))
        with Store.open(settings.store_path) as store:
            data = data or settings.data_dir
            if data and not report_only:
                from diagnostics.runners.pipeline import ingest_folder

                ingest_folder(store, settings, data, held_out=parsed.held_out)  # stored corpora are skipped
            try:
                if not report_only:
                    from diagnostics.analyses.study import cell_power, eta_sentence, remaining_work

                    planned = plan_study(store, parsed)
                    power = cell_power(store, parsed, planned)
                    typer.echo("per test corpus, the expected 95% half-width of F1 at ≈ 0.85:\n"
                               + power.to_string(index=False))
                    typer.echo(eta_sentence(remaining_work(store, parsed, planned, settings.seed)))
                plan = plan_study(store, parsed) if report_only else run_study(store, settings, parsed)
            except SpecError as exc:
                _fail(str(exc))
            results = study_results(store, parsed, plan, settings.seed)
            summary = summarize_study(results)
    typer.echo(f"study {parsed.name}: {len(plan.adapters)} adapters, {len(plan.test_corpora)} test corpora")
    typer.echo(summary.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    findings = study_findings(summary)
    for line in findings:
        typer.echo(line)
    if html:
        from diagnostics.analyses.study_report import study_figures, study_html

        html.write_text(study_html(parsed, summary, findings, study_figures(results, summary)))
        typer.echo(f"report written to {html}")


@app.command()
def demo(
    ctx: typer.Context,
    data: Annotated[Optional[Path], typer.Option(help="Use the real corpora in this folder instead of the synthetic demo [env PHISHLENS_DATA]")] = None,
    train_size: Annotated[Optional[int], typer.Option(help="Emails per training set")] = None,
    eval_size: Annotated[Optional[int], typer.Option(help="Test emails per corpus")] = None,
    if_empty: Annotated[bool, typer.Option("--if-empty", help="Do nothing when the store already has results")] = False,
    held_out: Annotated[Optional[list[str]], typer.Option(help="A corpus of --data ingested for evaluation only: never trained on (repeatable)")] = None,
):
    """Build results end to end: ingest, a specialist and a generalist adapter, evaluation on every corpus."""
    from dataclasses import replace

    from data.store import Store
    from diagnostics.runners.pipeline import DEMO_PLAN, ProtocolPlan, build_demo

    settings = _settings(ctx)
    data = data or settings.data_dir
    if if_empty and settings.store_path.exists():
        with Store.open(settings.store_path) as store:
            if not store.is_empty():
                typer.echo(f"results found in {settings.store_path}; nothing to build")
                return
    plan = ProtocolPlan() if data else DEMO_PLAN
    plan = replace(plan, **{k: v for k, v in {"train_size": train_size, "eval_size": eval_size,
                                              "held_out": tuple(held_out or ())}.items() if v})
    if plan.held_out and not data:
        _fail("--held-out names corpora of --data DIR")
    typer.echo(f"building {'results from ' + str(data) if data else 'the synthetic demo'} into {settings.store_path}")
    with _clear_errors():
        build_demo(settings, data, plan)
    ctx.invoke(status, ctx)


# Streamlit runs a folder named pages/ as a legacy multipage app (each file its own
# entry point, app.py skipped) until the first run of app.py reaches st.navigation, so a
# deep link opened first on a fresh server would bypass app.py. Declaring up front that
# the app does not use the pages/ directory makes app.py the entry point for every URL.
STREAMLIT_LAUNCHER = (
    "import streamlit.runtime.pages_manager as pm; pm.PagesManager.uses_pages_directory = False; "
    # No look-up of this machine's addresses over the network (server.py says why).
    "import streamlit.net_util as nu; nu.get_external_ip = lambda: None; nu.get_internal_ip = lambda: None; "
    "from streamlit.web import cli; cli.main()"
)


@app.command()
def serve(
    ctx: typer.Context,
    port: Annotated[Optional[int], typer.Option(help="Port [env PHISHLENS_PORT]")] = None,
    host: Annotated[Optional[str], typer.Option(help="Address to bind; localhost by default [env PHISHLENS_HOST]")] = None,
    allowed_host: Annotated[Optional[list[str]], typer.Option(
        help="A host name the dashboard may be opened by, besides localhost and IP addresses (repeatable) "
             "[env PHISHLENS_ALLOWED_HOSTS, comma-separated]")] = None,
    allowed_origin: Annotated[Optional[list[str]], typer.Option(
        help="An origin (scheme://host:port) whose pages may open the dashboard's connection besides its own, "
             "e.g. behind a reverse proxy (repeatable) [env PHISHLENS_ALLOWED_ORIGINS, comma-separated]")] = None,
):
    """Launch the dashboard (bound to localhost unless --host says otherwise).

    Requests whose Host header is not localhost, an IP address or an allowed name are refused
    (DNS rebinding), and so are WebSocket upgrades and writes from another origin (see
    pages/_host_guard.py)."""
    settings = _settings(ctx).with_overrides(port=port, host=host)
    allowed = ",".join(filter(None, [os.environ.get("PHISHLENS_ALLOWED_HOSTS", ""), *(allowed_host or [])]))
    origins = ",".join(filter(None, [os.environ.get("PHISHLENS_ALLOWED_ORIGINS", ""), *(allowed_origin or [])]))
    env = {**os.environ, "PHISHLENS_STORE": str(settings.store_path), "PHISHLENS_HOME": str(settings.home),
           "PHISHLENS_HOST": settings.host, "PHISHLENS_ALLOWED_HOSTS": allowed,
           "PHISHLENS_ALLOWED_ORIGINS": origins}
    url = f"http://{settings.host}:{settings.port}"
    typer.secho(f"PhishLens dashboard: {url}", fg="green", bold=True)
    # 32 MB uploads: the parser reads at most PHISHLENS_MAX_MESSAGE_BYTES of a message anyway.
    command = [sys.executable, "-c", STREAMLIT_LAUNCHER, "run", str(PROJECT_ROOT / "server.py"),
               "--server.maxUploadSize", "32",
               "--server.address", settings.host, "--server.port", str(settings.port),
               "--server.headless", "true", "--browser.gatherUsageStats", "false",
               "--server.fileWatcherType", "none", "--server.runOnSave", "false",
               "--client.toolbarMode", "minimal"]
    raise typer.Exit(subprocess.call(command, env=env))


@app.command()
def compare(
    ctx: typer.Context,
    a: Annotated[str, typer.Argument(help="A base model (architecture) of the store, or one scorer's id or name")],
    b: Annotated[str, typer.Argument(help="Another base model, or scorer")],
    training_set: Annotated[Optional[str], typer.Option(
        "--training-set", help="For two models: their adapters of this set (default: generalist, else one both have)")] = None,
):
    """Is the difference between two architectures (or two scorers) real? Paired per corpus on the test
    emails both scored: ΔF1 with its paired-bootstrap 95% interval and McNemar's exact test; two models'
    adapters are paired seed with seed."""
    import pandas as pd

    from data.scorers import ScorerNotFound, resolve
    from data.store import Store
    from diagnostics.analyses.architectures import architectures, comparison_rows, seed_pairs, shared_training_sets
    from diagnostics.analyses.paired import compare_on_corpora, difference_sentence

    settings = _settings(ctx)
    with _clear_errors(), Store.open_to_read(settings.store_path) as store, store.connection():
        scorers = store.scorer_catalogue()
        models = architectures(scorers)
        if a in models and b in models:
            shared = shared_training_sets(scorers, a, b)
            chosen = training_set or (shared[0] if shared else None)
            if chosen is None or chosen not in shared:
                _fail(f"{a} and {b} have no adapter of {training_set or 'one training set'} both; "
                      f"shared: {', '.join(shared) or 'none'}")
            pairs = seed_pairs(scorers, a, b, chosen)
        else:
            try:
                pairs = [(resolve(scorers, a), resolve(scorers, b))]
            except ScorerNotFound as exc:
                _fail(f"{exc}; or name two base models: {', '.join(models) or 'none'}")
        names = dict(zip(scorers["id"], scorers["long_name"]))
        for first, second in pairs:
            compared = compare_on_corpora(store.paired_verdicts(first, second))
            typer.echo(f"\nA = {names[first]} ({first})\nB = {names[second]} ({second})")
            if not compared:
                typer.echo("  they share no scored test email: evaluate both on the same corpora first")
                continue
            table = pd.DataFrame(comparison_rows("A", "B", compared)).drop(columns=["A", "B"]).round(3)
            typer.echo(table.to_string(index=False))
            for corpus, result in compared.items():
                typer.echo("  " + difference_sentence("A", "B", corpus, result))


@app.command()
def status(
    ctx: typer.Context,
    labels: Annotated[str, typer.Option(help="The matrix's labels: original, corrected (analysts' corrections), "
                                             "'without suspects' (the label audit's) or 'without near-duplicates' "
                                             "(of each scorer's training emails)")] = "original",
):
    """What the store holds: corpora, training sets, adapters, runs, the F1 matrix."""
    from data.schema import LABEL_VIEWS
    from data.store import Store

    if labels not in LABEL_VIEWS:
        _fail(f"--labels must be one of: {', '.join(LABEL_VIEWS)}")
    settings = _settings(ctx)
    with _clear_errors():
        with Store.open_to_read(settings.store_path) as store, store.connection():
            typer.echo(f"store {settings.store_path} (schema {store.schema_version()})")
            metrics = store.metrics(labels).round({"f1": 3, "recall": 3})
            for title, frame in [
                ("corpora", store.corpora()[["name", "label_meaning", "synthetic", "parsed", "duplicates_within",
                                             "duplicates_across", "kept"]]),
                ("training sets", store.training_sets()[["name", "kind", "size"]]),
                ("scorers (an id or a name names one in --scorer and `compare`)",
                 store.scorer_catalogue()[["id", "name"]]),
                ("adapters", store.adapters()[["id", "model", "training_set", "seed", "n_train", "seconds"]]
                 .round({"seconds": 0})),
                ("runs", store.runs()[["id", "status", "error"]].head(10)),
                (f"F1 matrix per scorer (recall where a test sample has one class), labels: {labels}",
                 _matrix_rows(metrics, store.scorer_catalogue())),
            ]:
                typer.echo(f"\n{title}:\n" + (frame.to_string(index=False) if len(frame) else "  (none)"))
            from data.metrics import collapse_sentence

            for row in store.collapsed_scorers().itertuples():
                typer.secho("\n" + collapse_sentence(row.training_set, row.adapter_id, int(row.n), row.positive_share,
                                                     row.label_share), fg="yellow")
            typer.echo("\n(status reads what it shows; `python cli.py doctor` reads every table to find damage)")


@app.command()
def doctor(ctx: typer.Context):
    """Check the environment (versions, device, model cache, store integrity) and say what to fix."""
    from diagnostics.runners.doctor import FAIL, OK, run_checks

    checks = run_checks(_settings(ctx))
    colours = {OK: "green", FAIL: "red"}
    for check in checks:
        typer.secho(f"{check.status:>4}  {check.name:<22} {check.detail}", fg=colours.get(check.status, "yellow"))
    if any(c.status == FAIL for c in checks):
        raise typer.Exit(1)


if __name__ == "__main__":
    app()
