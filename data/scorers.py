"""Every scorer of a store under its one id, and the names people read, derived here only.

A scorer is anything that scores emails: a LoRA adapter (id: models.finetune.adapter_id), a base
model zero-shot (`zero-shot:<model>`) or the bag-of-words reference (`tfidf-lr--<set>--s<seed>`).
Code, stored rows, job requests and CLI arguments carry the id. Pages show `name`, which is unique
in the store and as short as the store allows: the training set, then the seed where a model has
several on one set, the model where the store holds several, the precision or layer range where
those are what differ. `long_name` always names the model. `resolve` turns what a person typed
(id, name, long name, or a training set that has one scorer) back into the id.
"""

from __future__ import annotations

import json
from collections import Counter

import pandas as pd

from data.records import CLASSIFICATION_HEAD, LABEL_WORDS, ZERO_SHOT

ZERO_SHOT_PREFIX = f"{ZERO_SHOT}:"
REFERENCE_MODEL = "tfidf-lr"  # models.bag_of_words trains it; its rows carry this model name
REFERENCE_LABEL = "bag of words"
# A score file's scorer (data.imported_scores): its kind, the `model` of its predictions, and its readout (scores
# nothing can explain or open, as the bag of words' are).
SCORES = "scores"
SCORES_ONLY = "scores only"  # how its name is marked
KINDS = ("adapter", "zero-shot", "bag-of-words", SCORES)
COLUMNS = ["id", "kind", "model", "training_set", "seed", "precision", "from_layer", "path", "readout", "name",
           "long_name"]


IMPORTED_SET_PREFIX = "imported:"  # the training set of an adapter trained elsewhere (models.imported)


def training_set_missing(training_set: str, what: str) -> str:
    """Why a diagnostic that needs an adapter's training emails cannot run: an imported adapter brought none."""
    if training_set.startswith(IMPORTED_SET_PREFIX):
        return (f"the adapter of {training_set!r} was trained elsewhere: its training emails are not in the store, and {what} "
                "needs them")
    return f"training set {training_set!r} is not in the store"


class ScorerNotFound(ValueError):
    """A scorer named on a command line or in a URL that the store does not hold (or holds twice)."""


def zero_shot_id(model: str) -> str:
    """The id under which a base model's own (zero-shot) predictions are stored."""
    return f"{ZERO_SHOT_PREFIX}{model}"


def is_zero_shot(scorer_id: str) -> bool:
    return scorer_id.startswith(ZERO_SHOT_PREFIX)


def model_of_zero_shot(scorer_id: str) -> str:
    return scorer_id[len(ZERO_SHOT_PREFIX):]


def catalogue(adapters: pd.DataFrame, references: pd.DataFrame, zero_shot_models: list[str],
              imported: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per scorer (COLUMNS): adapters, then each model's zero-shot base, then references, then
    imported score files."""
    rows = []
    for r in adapters.to_dict("records"):
        hyper = r.get("hyperparameters") or {}
        hyper = json.loads(hyper) if isinstance(hyper, str) else hyper
        readout = CLASSIFICATION_HEAD if hyper.get("task_type") == "SEQ_CLS" else LABEL_WORDS
        rows.append({"id": r["id"], "kind": "adapter", "model": r["model"], "training_set": r["training_set"],
                     "seed": _int(r.get("seed")), "precision": hyper.get("precision", "fp32"),
                     "from_layer": int(hyper.get("from_layer") or 0), "path": r.get("path"), "readout": readout})
    models = list(dict.fromkeys([*adapters.get("model", []), *zero_shot_models]))
    rows += [{"id": zero_shot_id(m), "kind": "zero-shot", "model": m, "training_set": ZERO_SHOT, "seed": None,
              "precision": "fp32", "from_layer": 0, "path": None, "readout": LABEL_WORDS} for m in models]
    rows += [{"id": r["id"], "kind": "bag-of-words", "model": REFERENCE_MODEL, "training_set": r["training_set"],
              "seed": _int(r.get("seed")), "precision": "fp32", "from_layer": 0, "path": None, "readout": SCORES}
             for r in references.to_dict("records")]
    rows += [{"id": r["id"], "kind": SCORES, "model": SCORES, "training_set": r["name"], "seed": None,
              "precision": "fp32", "from_layer": 0, "path": None, "readout": SCORES}
             for r in (imported if imported is not None else pd.DataFrame()).to_dict("records")]
    frame = pd.DataFrame(rows, columns=COLUMNS[:-2])
    if frame.empty:
        return pd.DataFrame(columns=COLUMNS)
    frame["seed"] = frame["seed"].astype("Int64")
    names, long_names = _names(frame)
    return frame.assign(name=names, long_name=long_names)


def _int(value):
    return None if value is None or pd.isna(value) else int(value)


def _names(frame: pd.DataFrame) -> tuple[list[str], list[str]]:
    llm_models = frame.loc[frame["kind"].isin(["adapter", "zero-shot"]), "model"].unique()
    several_models = len(llm_models) > 1
    per_set = frame.groupby(["kind", "model", "training_set"])["seed"].transform("nunique")
    names, long_names = [], []
    for row, seeds in zip(frame.itertuples(), per_set):
        short = ZERO_SHOT if row.kind == "zero-shot" else row.training_set
        if seeds > 1 and not pd.isna(row.seed):
            short += f" (seed {row.seed})"
        if row.kind == "bag-of-words":  # named like its row of every F1 matrix
            names.append(f"{REFERENCE_LABEL} · {short}")
            long_names.append(f"{short} · {REFERENCE_LABEL}")
        elif row.kind == SCORES:  # the name it was imported under, marked as what it is
            names.append(f"{short} ({SCORES_ONLY})")
            long_names.append(f"{short} ({SCORES_ONLY}, imported)")
        else:
            names.append(f"{short} · {short_model(row.model)}" if several_models else short)
            long_names.append(f"{short} · {row.model}")
    return _disambiguate(frame, names), _disambiguate(frame, long_names)


def short_model(model: str) -> str:
    """A model as a name shows it: a registry name as is, a hub id or folder by its last part."""
    return model.rstrip("/").rsplit("/", 1)[-1]


def _disambiguate(frame: pd.DataFrame, names: list[str]) -> list[str]:
    """Where two scorers still share a name, add what differs: precision, layer range, then the id's hash."""
    counts = Counter(names)
    out = []
    for name, row in zip(names, frame.itertuples()):
        if counts[name] > 1:
            twins = frame[[n == name for n in names]]
            extra = []
            if twins["precision"].nunique() > 1:
                extra.append(row.precision)
            if twins["from_layer"].nunique() > 1:
                extra.append(f"layers {row.from_layer}+" if row.from_layer else "all layers")
            name += f" [{', '.join(extra)}]" if extra else ""
        out.append(name)
    counts = Counter(out)
    return [f"{n} [{row.id.rsplit('-', 1)[-1]}]" if counts[n] > 1 else n for n, row in zip(out, frame.itertuples())]


def resolve(scorers: pd.DataFrame, wanted: str) -> str:
    """The id of the scorer `wanted` names: an id, a name, a long name, or a training set (or
    "zero-shot") that names exactly one scorer; ScorerNotFound says what it could mean."""
    for column in ("id", "name", "long_name"):
        hit = scorers.loc[scorers[column] == wanted, "id"]
        if len(hit) == 1:
            return str(hit.iloc[0])
    hit = scorers.loc[(scorers["training_set"] == wanted) & (scorers["kind"] != "bag-of-words"), "id"]
    if len(hit) == 1:
        return str(hit.iloc[0])
    if len(hit) > 1:
        names = scorers.set_index("id").loc[list(hit), "name"]
        raise ScorerNotFound(f"{wanted!r} names {len(hit)} scorers: " + "; ".join(
            f"{n} (id {i})" for i, n in names.items()) + ". Name one by its id")
    known = ", ".join(scorers["name"]) or "none"
    raise ScorerNotFound(f"no scorer {wanted!r} in the store; known: {known}")


def resolve_all(scorers: pd.DataFrame, wanted: list[str]) -> list[str]:
    """The ids of every entry of `wanted` that names one scorer, in order, without repeats (a URL
    can hold stale names: they are skipped, not fatal)."""
    ids = []
    for value in wanted:
        try:
            ids.append(resolve(scorers, value))
        except ScorerNotFound:
            continue
    return list(dict.fromkeys(ids))


def names_by_id(scorers: pd.DataFrame) -> dict[str, str]:
    return dict(zip(scorers["id"], scorers["name"]))
