"""Jobs that build results into the store: ingest, training sets, training, evaluation,
and the end-to-end protocol behind `demo` (specialist + generalist, every corpus).

Every step skips what the store already has, so running it again retrains nothing.
No Streamlit here: pages only read what these jobs wrote.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from data.corpora import discover_corpora, ingest_emails, ingest_source
from data.records import IngestReport, LoraSettings
from data.settings import Settings
from data.splits import build_generalist, build_specialist, specialist_name, split_corpus
from data.store import Store
from data.synthetic import generate_synthetic_corpora
from diagnostics.analyses.collapse_check import CollapseCheck, check_collapse, held_back_emails
from diagnostics.analyses.evaluate import evaluate_as_configured, evaluate_reference, evaluation_targets
from models.finetune import adapter_id, finetune_adapter
from models.loading import load_base, prepare_model
from models.registry import resolve_model


@dataclass(frozen=True)
class ProtocolPlan:
    """The specialist-vs-generalist protocol: what to train and how much to evaluate."""

    specialists: tuple[str, ...] | None = None  # None: every corpus that has both labels
    train_size: int = 256
    eval_size: int | None = 100  # per corpus test split; None = all
    lora: LoraSettings = field(default_factory=LoraSettings)
    test_fraction: float = 0.2
    held_out: tuple[str, ...] = ()  # corpora of the data folder ingested for evaluation only
    # Test emails per corpus for the Live demo walk-through's stored diagnostics
    # (diagnostics.analyses.walkthrough); None: leave them to the user.
    walkthrough_sample: int | None = None


# The first-run demo: two epochs, so the generalist learns all three corpora (after one it is still
# at 0.55-0.80 F1) while the specialist learns its corpus' planted link domain; then the
# walk-through's diagnostics, so every step of it opens a result. About 10 minutes on 2 CPU cores.
DEMO_PLAN = ProtocolPlan(specialists=("synthetic-corporate",), train_size=160, eval_size=None,
                         lora=LoraSettings(max_tokens=128, epochs=2), walkthrough_sample=16)


def ingest_folder(store: Store, settings: Settings, data_dir: Path, progress: bool = True,
                  test_fraction: float = 0.2, held_out: Sequence[str] = ()) -> list[IngestReport]:
    """Ingest every corpus found in data_dir not yet in the store, and split each one; those
    named in held_out are ingested for evaluation only (all test, never trained on)."""
    sources = discover_corpora(data_dir)
    check_held_out(store, held_out, [s.name for s in sources])
    reports = []
    for source in sources:
        if store.has_corpus(source.name):
            continue
        report = ingest_source(store, source, settings.lowercase, settings.parse_limits, progress=progress,
                               eval_only=source.name in held_out)
        split_corpus(store, source.name, test_fraction, settings.seed)
        reports.append(report)
    return reports


def check_held_out(store: Store, held_out: Sequence[str], found: Sequence[str]) -> None:
    """Refuse to hold out a corpus the folder lacks, or one already stored as a training corpus."""
    missing = sorted(set(held_out) - set(found))
    if missing:
        raise ValueError(f"cannot hold out {', '.join(missing)}: no such corpus in the folder; "
                         f"found {', '.join(found) or 'none'}")
    trained_on = sorted(set(held_out) & set(store.training_corpora()))
    if trained_on:
        raise ValueError(f"{', '.join(trained_on)} is already in the store as a training corpus; hold it out "
                         f"in a fresh store (another PHISHLENS_HOME or --store)")


def ingest_synthetic(store: Store, settings: Settings, per_corpus: int = 240,
                     test_fraction: float = 0.2, mistakes: bool = True) -> list[IngestReport]:
    """Generate and ingest the synthetic demo corpora (skipping those already stored), with their
    planted label flips and near-duplicates unless mistakes=False (data.synthetic.synthetic_truth)."""
    reports = []
    for info, emails in generate_synthetic_corpora(per_corpus, settings.seed, settings.lowercase, mistakes=mistakes):
        if store.has_corpus(info.name):
            continue
        reports.append(ingest_emails(store, info, emails, settings.lowercase))
        split_corpus(store, info.name, test_fraction, settings.seed)
    return reports


def build_training_sets(store: Store, plan: ProtocolPlan, seed: int) -> list[str]:
    """One specialist per chosen corpus and one generalist over all corpora, same size."""
    specialists = list(plan.specialists or store.two_class_corpora())
    names = []
    for corpus in specialists:
        name = specialist_name(corpus)
        if store.training_set(name) is None:
            build_specialist(store, corpus, plan.train_size, seed)
        names.append(name)
    if store.training_set("generalist") is None:
        build_generalist(store, store.training_corpora(), plan.train_size, seed)
    names.append("generalist")
    return names


def train_training_set(store: Store, settings: Settings, training_set: str, lora: LoraSettings,
                       progress: bool = True) -> Path:
    """Train (or reuse) the adapter of `settings.model` on a stored training set."""
    spec = resolve_model(settings.model)
    wanted = adapter_id(spec.name, training_set, lora)
    folder = settings.adapters_dir / wanted
    if wanted in set(store.adapters()["id"]) and folder.exists():
        return folder
    record = store.training_set(training_set)
    if record is None:
        raise ValueError(f"training set {training_set!r} is not in the store; build it first")
    # The paradigm label comes from the training set's kind: keep it true to how the adapter was trained.
    if (record["kind"] == "fticl") != (lora.context_examples > 0):
        raise ValueError(f"training set {training_set!r} is a {record['kind']} set: "
                         + ("train it with in-context examples (context_examples > 0)" if record["kind"] == "fticl"
                            else "in-context examples (FTICL) train on an fticl-<corpus> set"))
    emails = store.training_set_emails(training_set)
    with store.run("train", {"model": spec.name, "training_set": training_set, "lora": lora.__dict__}):
        base = load_base(spec, settings.models_dir, settings.device, settings.quantize)
        info = finetune_adapter(base, emails, training_set, lora, settings.adapters_dir, progress)
        store.add_adapter(info)
    return Path(info.path)


def check_trained_adapter(store: Store, settings: Settings, training_set: str, folder: Path,
                          max_tokens: int) -> CollapseCheck:
    """The new adapter's verdicts on a few held-back emails of each label (diagnostics.analyses.collapse_check)."""
    from models.loading import load_with_adapter

    emails, held_back = held_back_emails(store, training_set, seed=settings.seed)
    loaded = load_with_adapter(folder, settings.models_dir, settings.device)
    return check_collapse(loaded, emails, max_tokens, held_back)


def run_protocol(store: Store, settings: Settings, plan: ProtocolPlan, progress: bool = True) -> str:
    """Train every adapter of the plan and evaluate them and the base model on every corpus."""
    prepare_model(resolve_model(settings.model), settings.models_dir)
    training_sets = build_training_sets(store, plan, settings.seed)
    leaked = store.leaked_test_emails()
    if leaked:
        raise RuntimeError(f"{leaked} test emails are also in a training set; the splits are broken")
    folders = [train_training_set(store, settings, name, plan.lora, progress) for name in training_sets]
    targets = evaluation_targets(settings.model, folders, settings.quantize)
    run_id = evaluate_as_configured(store, settings.with_overrides(executor="local"), targets, store.corpus_names(),
                                    plan.eval_size, plan.lora.max_tokens, progress=progress)
    # The bag-of-words reference on the same training sets and test samples: seconds, every matrix has it.
    evaluate_reference(store, training_sets, store.corpus_names(), plan.eval_size, settings.seed)
    if plan.walkthrough_sample:
        prepare_walkthrough(store, settings, plan, progress)
    return run_id


def prepare_walkthrough(store: Store, settings: Settings, plan: ProtocolPlan, progress: bool = True) -> None:
    """Store the diagnostics the Live demo's walk-through opens, for its largest specialist failure."""
    from tqdm.auto import tqdm

    from diagnostics.runners.local import LocalExecutor
    from diagnostics.analyses.walkthrough import plan_walkthrough, walkthrough_steps

    walk = plan_walkthrough(store, resolve_model(settings.model).name)
    if walk is None:
        return
    steps = walkthrough_steps(store, walk, settings.model, LocalExecutor(settings.models_dir, settings.device),
                              settings.models_dir, plan.walkthrough_sample, plan.lora.max_tokens, settings.seed)
    bar = tqdm(steps, desc="walk-through", unit="step", disable=not progress)
    for name, run in bar:
        bar.set_postfix_str(name)
        run()


def build_demo(settings: Settings, data_dir: Path | None = None, plan: ProtocolPlan | None = None,
               progress: bool = True) -> str:
    """Ingest real corpora from data_dir (or the synthetic demo), then run the protocol."""
    with Store.open(settings.store_path) as store:
        if data_dir:
            ingest_folder(store, settings, data_dir, progress, held_out=plan.held_out if plan else ())
            plan = plan or ProtocolPlan()
        else:
            ingest_synthetic(store, settings)
            plan = plan or DEMO_PLAN
        return run_protocol(store, settings, plan, progress)


def import_trained_adapter(store: Store, settings: Settings, request, evaluate: bool = True,
                           sample_size: int | None = None, progress: bool = True) -> tuple:
    """Import an adapter trained elsewhere (models.imported.ImportRequest), record it in the store, and
    evaluate it on every corpus' test split (sample_size per corpus) unless told not to.
    Returns (AdapterInfo, the evaluation's run id or None)."""
    from models.imported import import_adapter

    info = import_adapter(request, settings.models_dir, settings.adapters_dir)
    store.add_adapter(info)
    if not evaluate:
        return info, None
    targets = evaluation_targets(info.model, [Path(info.path)], settings.quantize, zero_shot=False)
    run_id = evaluate_as_configured(store, settings, targets, store.corpus_names(), sample_size,
                                    settings.max_tokens, progress=progress)
    return info, run_id
