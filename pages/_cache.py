"""All Streamlit caching. Results are keyed by the store file's path and modification
time, so a page shows new results as soon as a job has written them. Every store read goes
through `stored` (one cached reader, one page-stopping error message); models are cached
resources."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import streamlit as st

from data.results import read_result as read_kind_result
from data.results import read_results as read_kind_results
from data.store import Store, StoreError
from diagnostics.analyses.matrix import generalization_gap, matrix_in_view, with_f1_intervals, with_seed_labels
from pages._safe import md


def _stops_page_on_store_error(show=st.error):
    """Decorates a page's store read: when the store is missing, busy or damaged, `show` says so
    (what to do, escaped) and the page stops instead of showing a traceback."""
    def decorate(read):
        @functools.wraps(read)
        def guarded(*args, **kwargs):
            try:
                return read(*args, **kwargs)
            except StoreError as exc:
                show(md(exc, 2000))
                st.stop()
        return guarded
    return decorate


def _stamp(path: Path) -> float:
    """Changes whenever a job commits: DuckDB writes commits to the .wal file first."""
    files = [path, path.with_name(path.name + ".wal")]
    return max((f.stat().st_mtime_ns for f in files if f.exists()), default=0) / 1e9


def _open(path: str) -> Store:
    return Store.open(Path(path), read_only=True, busy_timeout=15)


@st.cache_data(show_spinner=False, max_entries=512)
def _stored(path: str, stamp: float, reader_name: str, args: tuple, kwargs: tuple, _reader: Callable):
    return _reader(_open(path), *args, **dict(kwargs))  # `_reader` is not hashed: `reader_name` keys it


def _hashable(value):
    return tuple(value) if isinstance(value, list) else value


@_stops_page_on_store_error()
def stored(path: Path, reader: Callable, *args, **kwargs):
    """`reader(store, *args, **kwargs)` for a Store method (e.g. `Store.inbox`) or any function of an
    open store, cached until the store changes; a store error stops the page with what to do."""
    return _stored(str(path), _stamp(path), reader.__qualname__, tuple(map(_hashable, args)),
                   tuple(sorted((k, _hashable(v)) for k, v in kwargs.items())), _reader=reader)


def kind_results(path: Path, kind: str, diagnostic: str) -> pd.DataFrame:
    """The stored results of a registered diagnostic, read by its kind (data.results.read_results)."""
    return stored(path, read_kind_results, kind, diagnostic)


def kind_result(path: Path, kind: str, diagnostic: str, adapter_id: str, params: str) -> pd.DataFrame:
    """One stored result of a registered diagnostic: its values (data.results.read_result)."""
    return stored(path, read_kind_result, kind, diagnostic, adapter_id, params)


# ---------------------------------------------------------------- page-sized reads

@st.cache_data(show_spinner=False)
def _read(path: str, stamp: float, what: str, model: str) -> dict[str, pd.DataFrame]:
    store = _open(path)
    with store.connection():  # one connection for all of the page's reads
        if what in ("overview", "scorers"):  # pages that name a scorer: the catalogue, with the sidebar model's base
            scorers = store.scorer_catalogue([model] if model else [])
        if what == "overview":
            adapters = store.adapters()
            metrics = with_seed_labels(with_f1_intervals(store.metrics()), adapters)
            return {"metrics": metrics, "gap": generalization_gap(metrics), "corpora": _corpus_list(store),
                    "runs": store.runs(), "adapters": _adapter_list(adapters), "collapsed": store.collapsed_scorers(),
                    "scorers": scorers}
        if what == "scorers":  # what pages that pick an adapter need: no metrics, no intervals
            return {"corpora": _corpus_list(store), "adapters": _adapter_list(store.adapters()),
                    "scorers": scorers, "evaluated": store.evaluated_scorers(), "collapsed": store.collapsed_scorers()}
        if what == "corpora":
            return {"corpora": store.corpora(), "splits": store.split_counts(),
                    "training_sets": store.training_set_composition(), "errors": store.ingest_error_summary()}
    raise ValueError(what)


def _corpus_list(store: Store) -> pd.DataFrame:
    return store.corpora()[["name", "label_meaning", "synthetic", "held_out"]]


def _adapter_list(adapters: pd.DataFrame) -> pd.DataFrame:
    return adapters[["id", "model", "training_set", "path", "n_train", "seconds", "train_loss"]]


def read_results(path: Path, what: str, model: str = "") -> dict[str, pd.DataFrame]:
    """Frames for one page from the store (raises data.store.StoreError for a missing or busy store);
    `model`: the sidebar's base model, whose zero-shot scorer is listed even before it is evaluated."""
    return _read(str(path), _stamp(path), what, model)


@_stops_page_on_store_error(st.warning)  # no store yet is the usual case on a fresh machine: a warning
def results_or_stop(path: Path, what: str, model: str = "") -> dict[str, pd.DataFrame]:
    """The page's frames ("overview", "scorers" or "corpora"), or a warning saying why the store
    cannot be read (and stop the page)."""
    return read_results(path, what, model)


# ---------------------------------------------------------------- one-reader reads

def inbox_page(path: Path, filters: dict, limit: int, offset: int) -> tuple[pd.DataFrame, int]:
    """One page of the inbox (Store.inbox)."""
    return stored(path, Store.inbox, **filters, limit=limit, offset=offset)


def email_with_verdicts(path: Path, email_id: str):
    """(Email or None, its verdicts) from the store."""
    return stored(path, Store.email, email_id), stored(path, Store.verdicts, email_id)


def stored_explanation(path: Path, adapter_id: str, email_id: str, method: str, params: str):
    """A cached explanation from the store, or None."""
    return stored(path, Store.explanation, adapter_id, email_id, method, params) if path.exists() else None


def misclassified_examples(path: Path, adapter_id: str | None, limit: int = 40) -> pd.DataFrame:
    """The emails an adapter got most wrong (any emails without an adapter)."""
    return stored(path, Store.inbox, adapter_id=adapter_id, outcome="wrong" if adapter_id else "all", limit=limit)[0]


def matrix_view(path: Path, view: str) -> pd.DataFrame:
    """The matrix's metrics over a label view (data.schema.LABEL_VIEWS: corrected labels, without suspects, ...)."""
    return stored(path, matrix_in_view, view)


def head_sweeps_and_lens(path: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Stored head sweeps and their dataset-averaged logit lens curves."""
    return stored(path, Store.head_sweeps), stored(path, Store.logit_lens)


def source_threshold(path: Path, scorer: str):
    """(threshold, per-corpus F1 at it) of a stored source-threshold result of the scorer, or None."""
    from diagnostics.analyses.source_threshold import source_threshold_columns

    results = kind_results(path, "sample_grid", "source-threshold")
    mine = results[results["adapter_id"] == scorer]
    if mine.empty:
        return None
    return source_threshold_columns(kind_result(path, "sample_grid", "source-threshold", scorer, mine["params"].iloc[-1]))


# ---------------------------------------------------------------- reads that compute

@st.cache_data(show_spinner=False, max_entries=32)
def _analysis(path: str, stamp: float, name: str, scorer_ids: tuple[str, ...]) -> pd.DataFrame:
    from diagnostics.contracts.registry import diagnostic

    store = _open(path)
    with store.connection():
        return diagnostic(name).run_analysis(store, scorer_ids)


@_stops_page_on_store_error()
def analysis(path: Path, name: str, scorer_ids: list[str]) -> pd.DataFrame:
    """A registered analysis of stored results (a registry entry with `compute`) for these scorers,
    cached until the store changes."""
    return _analysis(str(path), _stamp(path), name, tuple(scorer_ids))


@st.cache_data(show_spinner=False, max_entries=32)
def _drivers(path: str, stamp: float, adapter_id: str, method: str, params: str, corpora: tuple[str, ...],
             top: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    from diagnostics.analyses.drivers import ShortcutRule, shortcut_candidates

    store = _open(path)
    with store.connection():
        drivers = store.drivers(adapter_id, method, params, list(corpora) or None)
        shares = store.feature_document_frequency(list(drivers["feature"].head(top)))
    return drivers, shortcut_candidates(drivers, shares, ShortcutRule(top=top))


@_stops_page_on_store_error()
def drivers_and_shortcuts(path: Path, adapter_id: str, method: str, params: str, corpora: list[str],
                          top: int = 40) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Corpus-level drivers of one adapter and its shortcut candidates (cached until the store changes)."""
    return _drivers(str(path), _stamp(path), adapter_id, method, params, tuple(sorted(corpora)), top)


@st.cache_data(show_spinner=False, max_entries=16)
def _threshold(path: str, stamp: float, scorer: str):
    from diagnostics.analyses.calibration import (
        reliability_by_corpus,
        threshold_transfer,
    )

    scores = _open(path).scores(scorer)
    return threshold_transfer(scores), reliability_by_corpus(scores)


@_stops_page_on_store_error()
def threshold_and_calibration(path: Path, scorer: str):
    """One scorer's threshold transfer table and reliability curves per corpus (cached until the store changes)."""
    return _threshold(str(path), _stamp(path), scorer)


@st.cache_data(show_spinner=False, max_entries=8)
def _walkthrough(path: str, stamp: float):
    from diagnostics.analyses.walkthrough import plan_walkthrough

    return plan_walkthrough(_open(path))


@_stops_page_on_store_error()
def walkthrough(path: Path):
    """The Live demo's walk-through (diagnostics.analyses.walkthrough.Walkthrough), or None without a specialist."""
    return _walkthrough(str(path), _stamp(path))


@st.cache_data(show_spinner=False, max_entries=32)
def _paired(path: str, stamp: float, scorer_a: str, scorer_b: str):
    from diagnostics.analyses.paired import compare_on_corpora

    return compare_on_corpora(_open(path).paired_verdicts(scorer_a, scorer_b))


@_stops_page_on_store_error()
def paired_comparisons(path: Path, scorer_a: str, scorer_b: str) -> dict:
    """corpus → PairedComparison of two scorers on the test emails both scored (cached)."""
    return _paired(str(path), _stamp(path), scorer_a, scorer_b)


@st.cache_data(show_spinner=False, max_entries=8)
def _study(path: str, stamp: float, spec_path: str, spec_stamp: float, data_seed: int, view: str):
    from diagnostics.analyses.study import (
        cell_power,
        eta_sentence,
        load_spec,
        plan_study,
        remaining_work,
        study_findings,
        study_results,
        summarize_study,
    )

    spec = load_spec(Path(spec_path))
    store = _open(path)
    with store.connection():
        plan = plan_study(store, spec)
        results = study_results(store, spec, plan, data_seed, view)
        to_do = eta_sentence(remaining_work(store, spec, plan, data_seed))
        power = cell_power(store, spec, plan)
    summary = summarize_study(results) if len(results) else pd.DataFrame()
    return spec, plan, results, summary, study_findings(summary) if len(summary) else [], to_do, power


def study_report(path: Path, spec_path: Path, data_seed: int, view: str = "original"):
    """(spec, plan, results, summary, findings, what is left to do, per-corpus power) of a study spec
    against the store, its matrix over a label view (data.schema.LABEL_VIEWS).

    Raises diagnostics.analyses.study.SpecError for a bad spec, data.store.StoreError for an unreadable store.
    """
    return _study(str(path), _stamp(path), str(spec_path), spec_path.stat().st_mtime, data_seed, view)


def save_explanation(path: Path, explanation, corpus: str) -> str | None:
    """Keep an explanation in the store; the error message instead if the store is busy."""
    try:
        with Store.open(path, busy_timeout=5) as store:
            store.add_explanation(explanation, corpus)
    except StoreError as exc:
        return str(exc)
    return None


# ---------------------------------------------------------------- models and machine facts

@st.cache_resource(show_spinner=False)
def explainer_warm_up():
    """shap's import and numba compilation, started in the background once per server."""
    import threading

    from diagnostics.analyses.explainers import warm_up

    thread = threading.Thread(target=warm_up, name="shap-warm-up", daemon=True)
    thread.start()
    return thread


@st.cache_resource
def model_lock():
    """One model computation at a time per server: they share the cached models (and peft's adapter switch)."""
    import threading

    return threading.Lock()


@st.cache_resource(show_spinner="Loading model…", max_entries=4)
def classifier(model: str, adapter_path: str | None, models_dir: str, device: str):
    """A loaded model (with its adapter), kept across reruns. Keyed on everything that changes it."""
    from models.loading import load_model

    return load_model(model, Path(adapter_path) if adapter_path else None, Path(models_dir), device)


@st.cache_resource(show_spinner="Booting the model in TransformerLens…", max_entries=2)
def head_model(model: str, adapter_path: str | None, models_dir: str, device: str):
    """A diagnostics.analyses.bridge.HeadModel (its own copy of the weights, adapter merged), kept across reruns."""
    from diagnostics.analyses.bridge import load_head_model

    return load_head_model(model, Path(adapter_path) if adapter_path else None, Path(models_dir), device)


@st.cache_data(show_spinner=False, max_entries=8)
def _attention(model: str, adapter_path: str | None, models_dir: str, device: str, max_tokens: int, mail):
    from diagnostics.analyses.bridge import attention_patterns, email_prompt
    from models.scoring import prompt_builder

    hm = head_model(model, adapter_path, models_dir, device)
    with model_lock():
        return attention_patterns(hm, *email_prompt(prompt_builder(hm, max_tokens), mail))


@st.cache_data(show_spinner=False, max_entries=64)
def neighbour_query(model: str, adapter_path: str, models_dir: str, device: str, max_tokens: int,
                    mail) -> tuple[float, ...]:
    """An email's nearest-neighbour query vector under one adapter (one forward pass, cached per
    adapter and email, so a page's reruns do not repeat it)."""
    from diagnostics.analyses.neighbours import query_vector

    loaded = classifier(model, adapter_path, models_dir, device)
    with model_lock():
        return tuple(float(v) for v in query_vector(loaded, mail, max_tokens))


def attention_view(model: str, adapter_path: str | None, settings, mail):
    """Attention patterns and logit lens of one email (cached per adapter and email)."""
    return _attention(model, adapter_path, str(settings.models_dir), settings.device, settings.max_tokens, mail)


@st.cache_data(show_spinner=False, max_entries=8)
def lora_norms(adapter_path: str, model: str, models_dir: str) -> pd.DataFrame:
    """Per-head LoRA update norms of an adapter (read from its files; no model is loaded)."""
    from diagnostics.analyses.lora_heads import adapter_head_norms

    return adapter_head_norms(Path(adapter_path), model, Path(models_dir))


@st.cache_resource(show_spinner="Measuring this CPU's matmul rates…")
def matmul_rates_here(models_dir: Path):
    """This machine's fp32 / bf16 / int8 matmul rates (models.precision.matmul_rates: cached on disk)."""
    from models.precision import matmul_rates

    return matmul_rates(models_dir)


@st.cache_resource(show_spinner=False)
def device_in_use(requested: str) -> str:
    """What 'auto' resolves to here (imports torch once per server process)."""
    import torch

    if requested == "auto":
        return f"cuda ({torch.cuda.get_device_name(0)}, bf16)" if torch.cuda.is_available() else "cpu (fp32)"
    return requested
