"""A cross-architecture study as one reproducible object: a small TOML spec in, every missing
adapter trained and every missing prediction made, and a report out.

The spec names base models, the training sets (one specialist per corpus and/or the
generalist), LoRA settings, LoRA seeds, and sample sizes. Data choices (splits, training
sets, test samples) use the settings' seed, so every model and every LoRA seed sees the
same emails; the spec's seeds vary LoRA's initialisation and the training order. Running a
spec again does only what the store does not hold yet: adapters are keyed by model,
training set and hyperparameters (seed included), predictions by (adapter, email).
"""

from __future__ import annotations

import tomllib
from dataclasses import fields, replace
from pathlib import Path

import pandas as pd

from data.records import ZERO_SHOT, LoraSettings, StudyPlan, StudySpec  # noqa: F401 (re-exported)
from data.settings import Settings
from data.splits import build_generalist, build_specialist, fticl_name, specialist_name
from data.store import Store
from diagnostics.analyses.evaluate import evaluate_as_configured, evaluate_reference, evaluation_targets
from diagnostics.analyses.matrix import cell_scope, with_f1_intervals
from models.finetune import adapter_id
from models.loading import zero_shot_id
from models.registry import resolve_model

SPEC_KEYS = {"name", "models", "specialists", "generalist", "fticl_examples", "test_corpora", "held_out", "seeds",
             "train_size", "eval_size", "reference", "lora"}
LORA_KEYS = {f.name for f in fields(LoraSettings)} - {"seed", "context_examples"}


class SpecError(ValueError):
    """A study spec that cannot run; the message names the field and what is allowed."""


def _names(value, key: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
        raise SpecError(f"{key} must be a non-empty list of names, got {value!r}")
    return tuple(value)


def _lora_settings(table: dict, where: str) -> LoraSettings:
    """LoraSettings from one [lora] table's fields, or a SpecError naming the table."""
    bad = set(table) - LORA_KEYS
    if bad:
        raise SpecError(f"unknown {where} field(s) {sorted(bad)}; allowed: {sorted(LORA_KEYS)} "
                        f"(the LoRA seed comes from `seeds`)")
    if "target_modules" in table:
        table = {**table, "target_modules": tuple(_names(table["target_modules"], f"{where} target_modules"))}
    try:
        return LoraSettings(**table)
    except TypeError as exc:
        raise SpecError(f"{where}: {exc}") from exc


def parse_spec(raw: dict) -> StudySpec:
    """A StudySpec from a parsed TOML table, with a clear error for anything off."""
    unknown = set(raw) - SPEC_KEYS
    if unknown:
        raise SpecError(f"unknown field(s) {sorted(unknown)}; allowed: {sorted(SPEC_KEYS)}")
    if "name" not in raw or not isinstance(raw["name"], str) or not raw["name"].strip():
        raise SpecError("name must be a non-empty string")
    if "models" not in raw:
        raise SpecError("models is required, e.g. models = [\"smollm2-135m\", \"gemma3-270m\"]")
    seeds = raw.get("seeds", [13])
    if not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) and not isinstance(s, bool)
                                                           for s in seeds) or len(set(seeds)) != len(seeds):
        raise SpecError(f"seeds must be a non-empty list of distinct integers, got {seeds!r}")
    sizes = {}
    for key, default, allow_all in (("train_size", 256, False), ("eval_size", 100, True)):
        value = raw.get(key, default)
        if allow_all and value == "all":
            value = None
        elif not isinstance(value, int) or isinstance(value, bool) or value < 2:
            choices = 'an integer ≥ 2 or "all"' if allow_all else "an integer ≥ 2"
            raise SpecError(f"{key} must be {choices}, got {value!r}")
        sizes[key] = value
    lora_raw = raw.get("lora", {})
    if not isinstance(lora_raw, dict):
        raise SpecError("[lora] must be a table")
    models = _names(raw["models"], "models")
    per_model = {k: v for k, v in lora_raw.items() if isinstance(v, dict)}
    strays = sorted(set(per_model) - set(models))
    if strays:
        raise SpecError(f"[lora.{strays[0]}] names no model of this spec; models: {', '.join(models)}")
    # A [lora.<model>] table changes only the fields it names; the rest come from [lora].
    shared_raw = {k: v for k, v in lora_raw.items() if k not in per_model}
    shared = _lora_settings(shared_raw, "[lora]")
    lora_by_model = tuple((model, _lora_settings({**shared_raw, **table}, f"[lora.{model}]"))
                          for model, table in per_model.items())
    for key in ("generalist", "reference"):
        if not isinstance(raw.get(key, True), bool):
            raise SpecError(f"{key} must be true or false")
    fticl = raw.get("fticl_examples", 0)
    if not isinstance(fticl, int) or isinstance(fticl, bool) or not 0 <= fticl <= 16:
        raise SpecError(f"fticl_examples must be an integer from 0 (no FTICL) to 16, got {fticl!r}")
    # Absent: every corpus with both labels. An empty list is refused by _names, so a spec always trains something.
    specialists = _names(raw["specialists"], "specialists") if "specialists" in raw else None
    held_out = _names(raw["held_out"], "held_out") if "held_out" in raw else ()
    both = sorted(set(held_out) & set(specialists or ()))
    if both:
        raise SpecError(f"{', '.join(both)} cannot be both a specialist and held out")
    return StudySpec(name=raw["name"].strip(), models=models, specialists=specialists,
                     generalist=raw.get("generalist", True), fticl_examples=fticl,
                     test_corpora=_names(raw["test_corpora"], "test_corpora") if raw.get("test_corpora") else None,
                     held_out=held_out,
                     seeds=tuple(seeds), train_size=sizes["train_size"], eval_size=sizes["eval_size"],
                     reference=raw.get("reference", True), lora=shared, lora_by_model=lora_by_model)


def load_spec(path: Path) -> StudySpec:
    """Read and validate a TOML study spec."""
    try:
        raw = tomllib.loads(Path(path).read_text())
    except FileNotFoundError as exc:
        raise SpecError(f"no study spec at {path}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"{path} is not valid TOML: {exc}") from exc
    return parse_spec(raw)


def training_lora(spec: StudySpec, model: str, training_set: str, seed: int) -> LoraSettings:
    """The spec's LoRA settings for one model, training set and seed (FTICL sets add in-context examples)."""
    k = spec.fticl_examples if training_set.startswith("fticl-") else 0
    return replace(spec.lora_for(model), seed=seed, context_examples=k)


def plan_study(store: Store, spec: StudySpec) -> StudyPlan:
    """Check the spec against the store's corpora and name everything the study needs."""
    corpora = store.corpus_names()
    if not corpora:
        raise SpecError("the store holds no corpora yet: give the study --data ../shared/data (or set "
                        "PHISHLENS_DATA), or run `cli.py ingest --data DIR` first")
    for name in (spec.specialists or ()) + (spec.test_corpora or ()) + spec.held_out:
        if name not in corpora:
            raise SpecError(f"corpus {name!r} is not in the store; known: {', '.join(corpora) or 'none'}")
    held_out = set(store.held_out_corpora())
    not_held = sorted(set(spec.held_out) - held_out)
    if not_held:
        raise SpecError(f"{', '.join(not_held)} is in the store as a training corpus, not held out; run the study "
                        f"with --data on a fresh store (--store) so it is ingested for evaluation only")
    trains_on = sorted(set(spec.specialists or ()) & held_out)
    if trains_on:
        raise SpecError(f"{', '.join(trains_on)} is held out for evaluation only: it cannot be a specialist")
    specialists = spec.specialists if spec.specialists is not None else tuple(store.two_class_corpora())
    training_sets = tuple(specialist_name(c) for c in specialists) + (("generalist",) if spec.generalist else ()) \
        + (tuple(fticl_name(c) for c in specialists) if spec.fticl_examples else ())
    for name in training_sets:
        existing = store.training_set(name)
        if existing is not None and existing["size"] != spec.train_size:
            raise SpecError(f"training set {name!r} in this store holds {existing['size']} emails but the spec "
                            f"asks for train_size = {spec.train_size}; use that size or a fresh store (--store)")
    adapters = tuple((model, training_set, seed,
                      adapter_id(resolve_model(model).name, training_set, training_lora(spec, model, training_set, seed)))
                     for model in spec.models for training_set in training_sets for seed in spec.seeds)
    return StudyPlan(training_sets, tuple(spec.test_corpora or corpora), adapters)


def reference_sets(plan: StudyPlan) -> tuple[str, ...]:
    """Training sets the bag-of-words reference trains on: an FTICL set holds a specialist's emails,
    and a bag of words has no context to put examples in."""
    return tuple(t for t in plan.training_sets if not t.startswith("fticl-"))


def run_study(store: Store, settings: Settings, spec: StudySpec, progress: bool = True) -> StudyPlan:
    """Build, train and evaluate whatever the spec needs and the store lacks."""
    from diagnostics.runners.pipeline import train_training_set

    plan = plan_study(store, spec)
    for name in plan.training_sets:
        kind, _, corpus = name.partition("-")
        if kind in ("specialist", "fticl") and store.training_set(name) is None:
            build_specialist(store, corpus, spec.train_size, settings.seed, kind=kind)
    if spec.generalist and store.training_set("generalist") is None:
        build_generalist(store, store.training_corpora(), spec.train_size, settings.seed)
    for model in spec.models:
        model_settings = settings.with_overrides(model=model)
        folders = [train_training_set(store, model_settings, training_set,
                                      training_lora(spec, model, training_set, seed), progress)
                   for training_set in plan.training_sets for seed in spec.seeds]
        evaluate_as_configured(store, settings, evaluation_targets(model, folders, settings.quantize),
                               plan.test_corpora, spec.eval_size, spec.lora_for(model).max_tokens, progress=progress)
    if spec.reference:
        evaluate_reference(store, reference_sets(plan), plan.test_corpora, spec.eval_size, settings.seed)
    return plan


def remaining_work(store: Store, spec: StudySpec, plan: StudyPlan, data_seed: int) -> pd.DataFrame:
    """Per model: adapters still to train and test emails still to score (its adapters and zero-shot),
    with the seconds this store's history says each takes (NaN where it has none yet): training
    seconds per email and epoch from the stored adapters, scoring seconds per email from the
    finished evaluate runs."""
    from diagnostics.analyses.evaluate import evaluation_samples

    samples = {i for ids in evaluation_samples(store, plan.test_corpora, spec.eval_size, data_seed).values()
               for i in ids}
    trained = set(store.adapters()["id"])
    train_rate = dict(store.rows(
        "SELECT model, median(seconds / (n_train * CAST(hyperparameters->>'epochs' AS DOUBLE))) FROM adapters "
        "WHERE seconds > 0 AND n_train > 0 GROUP BY model"))
    score_rate = dict(store.rows(
        "WITH per_run AS (SELECT run_id, model, count(*) AS n FROM predictions GROUP BY ALL) "
        "SELECT p.model, sum(epoch(r.finished_at) - epoch(r.started_at)) / sum(p.n) FROM per_run p "
        "JOIN runs r ON r.id = p.run_id WHERE r.kind = 'evaluate' AND r.status = 'done' GROUP BY p.model"))
    rows = []
    for model in spec.models:
        name = resolve_model(model).name
        ids = [a for m, _, _, a in plan.adapters if m == model]
        to_train = [a for a in ids if a not in trained]
        scorers = ids + [zero_shot_id(name)]
        to_score = sum(len(samples - store.predicted_email_ids(a)) for a in scorers)
        train_each = train_rate.get(name, float("nan")) * spec.train_size * spec.lora_for(model).epochs
        rows.append({"model": name, "adapters_to_train": len(to_train), "emails_to_score": to_score,
                     "train_seconds": len(to_train) * train_each,
                     "score_seconds": to_score * score_rate.get(name, float("nan"))})
    return pd.DataFrame(rows)


def cell_power(store: Store, spec: StudySpec, plan: StudyPlan, f1: float = 0.85,
               target_half_width: float = 0.04) -> pd.DataFrame:
    """Per test corpus: the emails a cell is scored on (eval_size or the whole test split, if
    smaller), their share of phishing, and the expected 95% half-width of F1 there for a scorer near
    `f1` — a corpus with few phishing test emails stays wide however large eval_size is."""
    from diagnostics.analyses.paired import f1_half_width

    counts = store.split_counts()
    rows = []
    for corpus in plan.test_corpora:
        test = counts[(counts["corpus"] == corpus) & (counts["split"] == "test")]
        available = int(test["n"].sum())
        if not available:
            continue
        n = min(spec.eval_size or available, available)
        positives = int(test.loc[test["label"] == 1, "n"].sum()) / available
        width = f1_half_width(n, f1, positives)
        rows.append({"corpus": corpus, "test_emails": n, "phishing_share": round(positives, 3),
                     "f1_half_width": round(width, 3), "enough": width <= target_half_width})
    return pd.DataFrame(rows)


def eta_sentence(work: pd.DataFrame) -> str:
    """What is left of a study and about how long it takes, from the store's measured rates."""
    adapters, emails = int(work["adapters_to_train"].sum()), int(work["emails_to_score"].sum())
    if not adapters and not emails:
        return "to do: nothing; every adapter is trained and every test email scored"
    said = f"to do: {adapters} adapters to train, {emails:,} test-email scorings"
    seconds = work.loc[work["adapters_to_train"] > 0, "train_seconds"].tolist() + \
        work.loc[work["emails_to_score"] > 0, "score_seconds"].tolist()
    unknown = sorted(set(work.loc[work["train_seconds"].isna() & (work["adapters_to_train"] > 0), "model"])
                     | set(work.loc[work["score_seconds"].isna() & (work["emails_to_score"] > 0), "model"]))
    known = sum(s for s in seconds if not pd.isna(s))
    if known:
        said += f"; about {known / 3600:.1f} h at this store's measured rates"
    if unknown:
        said += (f"{' plus' if known else ';'} an unknown time for {', '.join(unknown)} (no training or scoring "
                 "measured in this store yet)")
    return said


def study_results(store: Store, spec: StudySpec, plan: StudyPlan, data_seed: int,
                  view: str = "original") -> pd.DataFrame:
    """One row per (model, training set, seed, corpus) the study covers, with F1 intervals, over one
    of data.schema.LABEL_VIEWS (the corpora's labels, corrected ones, without suspects, ...).

    Zero-shot and reference rows have seed NaN; the reference's model is 'tfidf-lr'. `collapsed`
    marks an adapter that gave one verdict to nearly every test email (Store.collapsed_scorers).
    """
    from models.bag_of_words import reference_id

    seeds = {adapter: seed for _, _, seed, adapter in plan.adapters}
    wanted = set(seeds) | {zero_shot_id(resolve_model(m).name) for m in spec.models}
    if spec.reference:
        wanted |= {reference_id(t, data_seed) for t in reference_sets(plan)}
    metrics = store.metrics(view)
    rows = metrics[metrics["adapter_id"].isin(wanted) & metrics["corpus"].isin(plan.test_corpora)]
    collapsed = set(store.collapsed_scorers()["adapter_id"])
    return with_f1_intervals(rows).assign(seed=lambda f: f["adapter_id"].map(seeds),
                                          collapsed=lambda f: f["adapter_id"].isin(collapsed))


STUDY_SCOPES = {"in_domain_f1": "in_domain", "out_of_domain_f1": "out_domain", "held_out_f1": "held_out"}


def summarize_study(results: pd.DataFrame) -> pd.DataFrame:
    """Per model and paradigm: mean F1 in domain, out of domain and on held-out corpora (over seeds
    and corpora with an F1), their standard deviation over seeds, and the in- minus out-of-domain gap."""
    scored = results.dropna(subset=["f1"])
    scored = scored.assign(scope=cell_scope(scored).map(STUDY_SCOPES), seed=scored["seed"].fillna(-1))
    per_seed = scored.groupby(["model", "paradigm", "seed", "scope"])["f1"].mean().reset_index()
    summary = (per_seed.groupby(["model", "paradigm", "scope"])["f1"]
               .agg(mean="mean", std="std", seeds="count").reset_index())
    wide = summary.pivot_table(index=["model", "paradigm"], columns="scope", values=["mean", "std"])
    wide.columns = [f"{scope}_f1_{stat}" for stat, scope in wide.columns]
    wide = wide.reset_index()
    for scope in STUDY_SCOPES.values():
        if f"{scope}_f1_mean" not in wide:
            wide[f"{scope}_f1_mean"] = float("nan")
    wide["gap"] = wide["in_domain_f1_mean"] - wide["out_domain_f1_mean"]
    return wide.merge(noise_sources(results), on=["model", "paradigm"], how="left") \
        .merge(collapse_counts(results), on=["model", "paradigm"], how="left") \
        .merge(budget_cuts(results), on=["model", "paradigm"], how="left")


def budget_cuts(results: pd.DataFrame) -> pd.DataFrame:
    """Per model and paradigm: the share of its scored test emails that the token budget cut
    (cut_share, over every cell), and the corpus cut most with its share and median tokens cut.
    Rows whose truncation was not recorded are left out."""
    columns = ["model", "paradigm", "cut_share", "most_cut_corpus", "most_cut_share", "most_cut_median_tokens"]
    known = results.dropna(subset=["cut_share"]) if "cut_share" in results else results.iloc[0:0]
    if known.empty:
        return pd.DataFrame(columns=columns)
    known = known.assign(cut=known["cut_share"] * known["n"])
    per_corpus = (known.groupby(["model", "paradigm", "corpus"])
                  .agg(cut=("cut", "sum"), n=("n", "sum"), median_cut_tokens=("median_cut_tokens", "median"))
                  .reset_index())
    per_corpus["share"] = per_corpus["cut"] / per_corpus["n"]
    most = (per_corpus.sort_values(["share", "corpus"], ascending=[False, True])
            .drop_duplicates(["model", "paradigm"])
            .rename(columns={"corpus": "most_cut_corpus", "share": "most_cut_share",
                             "median_cut_tokens": "most_cut_median_tokens"}))
    per = per_corpus.groupby(["model", "paradigm"])[["cut", "n"]].sum().reset_index()
    per["cut_share"] = per["cut"] / per["n"]
    return per.merge(most[["model", "paradigm", "most_cut_corpus", "most_cut_share", "most_cut_median_tokens"]],
                     on=["model", "paradigm"])[columns]


def collapse_counts(results: pd.DataFrame) -> pd.DataFrame:
    """Per model and paradigm: how many LoRA adapters it has and how many collapsed (zero-shot and
    the bag of words are not judged)."""
    marked = results.dropna(subset=["seed"])
    marked = marked if "collapsed" in marked else marked.assign(collapsed=False)
    per = marked.groupby(["model", "paradigm", "adapter_id"])["collapsed"].any().reset_index()
    return per.groupby(["model", "paradigm"]).agg(adapters=("adapter_id", "nunique"),
                                                  collapsed=("collapsed", "sum")).reset_index()


# A source of noise dominates when its standard deviation is this many times the other's.
DOMINANCE_RATIO = 1.5


def noise_sources(results: pd.DataFrame) -> pd.DataFrame:
    """Per model and paradigm trained with two or more LoRA seeds: the median over its cells
    (training set × corpus) of F1's standard deviation across seeds (seed_sd) beside the median bootstrap standard error
    of one cell's F1 from its test sample (sample_se: the 95% interval's half-width / 1.96), and
    which of the two dominates (`noise`): more seeds narrow the first, more test emails the second."""
    seeded = results.dropna(subset=["f1", "seed"])
    columns = ["model", "paradigm", "seed_sd", "sample_se", "noise"]
    if seeded.empty:
        return pd.DataFrame(columns=columns)
    # A cell is one training set on one corpus: the specialists of one paradigm differ by design,
    # and only their seeds' spread is noise.
    cells = (seeded.assign(se=(seeded["f1_high"] - seeded["f1_low"]) / (2 * 1.96))
             .groupby(["model", "paradigm", "training_set", "corpus"])
             .agg(seed_sd=("f1", "std"), sample_se=("se", "mean"), seeds=("seed", "nunique")).reset_index())
    cells = cells[cells["seeds"] >= 2]
    per = cells.groupby(["model", "paradigm"])[["seed_sd", "sample_se"]].median().reset_index()

    def dominant(row) -> str:
        if row.seed_sd > DOMINANCE_RATIO * row.sample_se:
            return "LoRA seeds"
        if row.sample_se > DOMINANCE_RATIO * row.seed_sd:
            return "test sample"
        return "comparable"

    per["noise"] = [dominant(r) for r in per.itertuples()] if len(per) else []
    return per[columns]


def study_findings(summary: pd.DataFrame) -> list[str]:
    """Plain-language sentences: which family generalizes under which paradigm."""
    from models.bag_of_words import REFERENCE_MODEL

    reference = bool((summary["model"] == REFERENCE_MODEL).any())
    lines = []
    for model, rows in summary.groupby("model"):
        by = rows.set_index("paradigm")
        parts = []
        held = by["held_out_f1_mean"].dropna() if "held_out_f1_mean" in by else pd.Series(dtype=float)
        if len(held):  # mail from outside every training corpus: the result a deployment meets first
            parts.append("on the held-out corpora (no adapter trained on them) " + ", ".join(
                f"{paradigm} {value:.2f}" for paradigm, value in held.items()) + " F1")
        if "specialist" in by.index:
            spec = by.loc["specialist"]
            parts.append(f"specialists reach {spec['in_domain_f1_mean']:.2f} F1 in domain and "
                         f"{spec['out_domain_f1_mean']:.2f} out of domain (gap {spec['gap']:+.2f})")
        if "generalist" in by.index:
            gen = by.loc["generalist"]
            score = gen["in_domain_f1_mean"]
            parts.append(f"the generalist reaches {score:.2f} on the corpora it was trained on")
        if "fticl" in by.index:
            icl = by.loc["fticl"]
            sentence = (f"with in-context examples (FTICL) the same specialist data reaches "
                        f"{icl['in_domain_f1_mean']:.2f} in domain and {icl['out_domain_f1_mean']:.2f} out of domain "
                        f"(gap {icl['gap']:+.2f})")
            if "specialist" in by.index and not pd.isna(icl["gap"]) and not pd.isna(by.loc["specialist", "gap"]):
                # Say which side moved: a gap can narrow because out-of-domain F1 rose or in-domain F1 fell.
                plain = by.loc["specialist"]
                change = icl["gap"] - plain["gap"]
                sentence += (f": {icl['in_domain_f1_mean'] - plain['in_domain_f1_mean']:+.2f} in domain and "
                             f"{icl['out_domain_f1_mean'] - plain['out_domain_f1_mean']:+.2f} out of domain against "
                             f"plain fine-tuning, so the gap {'narrows' if change < 0 else 'widens'} by {abs(change):.2f}")
            parts.append(sentence)
        if ZERO_SHOT in by.index:
            zero = by.loc[ZERO_SHOT]
            parts.append(f"{ZERO_SHOT} {zero['out_domain_f1_mean']:.2f}")
        lines.append(f"{model}: " + "; ".join(parts) + ".")
        if "collapsed" in by and by["collapsed"].fillna(0).sum():
            lines.append(f"{model}: " + "; ".join(
                f"{int(row.collapsed)} of {int(row.adapters)} {paradigm} adapters collapsed to one verdict"
                for paradigm, row in by[by["collapsed"].fillna(0) > 0].iterrows())
                + " (their cells measure the label mix, not the detector, and pull the means above down): "
                  f"retrain with a lower learning rate, e.g. a [lora.{model}] table with lr = 1e-3 in the spec.")
        cut = _budget_sentence(by, reference)
        if cut:
            lines.append(f"{model}: {cut}")
        if "noise" in by and by["noise"].notna().any():
            lines.append(f"{model}: " + "; ".join(_noise_sentence(paradigm, row)
                                                  for paradigm, row in by.dropna(subset=["noise"]).iterrows()) + ".")
    return lines


def _budget_sentence(by: pd.DataFrame, reference: bool) -> str:
    """How much of its test emails a model read, where its token budget cut any (else "")."""
    rows = by[by["cut_share"].fillna(0) > 0] if "cut_share" in by else by.iloc[0:0]
    if rows.empty:
        return ""
    worst = rows.loc[rows["most_cut_share"].idxmax()]
    low, high = rows["cut_share"].min(), rows["cut_share"].max()
    share = f"{high:.0%}" if round(low, 2) == round(high, 2) else f"{low:.0%}–{high:.0%}"
    said = (f"its token budget cut {share} of the test emails it scored ({worst['most_cut_corpus']} most: "
            f"{worst['most_cut_share']:.0%}, a median of {worst['most_cut_median_tokens']:.0f} tokens cut from each), "
            "so it read only their opening")
    if not reference:
        return said + "; a larger max_tokens in the spec's [lora] table measures what the rest would change."
    return (said + "; the bag of words reads every token, so part of a gap to it can be the budget: a larger "
            "max_tokens in the spec's [lora] table measures how much.")


def _noise_sentence(paradigm: str, row: pd.Series) -> str:
    said = (f"{paradigm} F1 varies by {row['seed_sd']:.3f} (sd) across LoRA seeds against a test-sample "
            f"standard error of {row['sample_se']:.3f} per cell")
    return said + {"LoRA seeds": ": the seeds dominate, so train more seeds before comparing",
                   "test sample": ": the test sample dominates, so test on more emails before comparing",
                   "comparable": ": the two are comparable"}[row["noise"]]
