"""Seeded stratified splits per corpus, and named specialist / generalist training sets.

Emails are deduplicated by content hash across the whole store before splitting, so
no test email can share a hash with a training email of any training set;
`Store.leaked_test_emails` checks it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from data.store import Store


class SplitError(ValueError):
    """A split or training set that cannot be built as asked."""


def stratified_split(frame: pd.DataFrame, test_fraction: float, seed: int) -> dict[str, str]:
    """Assign each id ('id', 'label' columns) to 'train' or 'test', per label, seeded."""
    if not 0 < test_fraction < 1:
        raise SplitError(f"test fraction must be between 0 and 1, got {test_fraction}")
    rng = np.random.default_rng(seed)
    assignments: dict[str, str] = {}
    for _, group in frame.groupby("label", sort=True):
        ids = group["id"].to_numpy()
        order = rng.permutation(len(ids))
        n_test = int(round(len(ids) * test_fraction))
        if len(ids) >= 2:
            n_test = min(max(n_test, 1), len(ids) - 1)
        for rank, index in enumerate(order):
            assignments[ids[index]] = "test" if rank < n_test else "train"
    return assignments


def split_corpus(store: Store, corpus: str, test_fraction: float = 0.2, seed: int = 13) -> dict[str, int]:
    """Split a stored corpus; returns the number of train and test emails. A held-out corpus
    (ingested for evaluation only) is all test."""
    frame = store.emails_of_corpus(corpus)
    if frame.empty:
        raise SplitError(f"corpus {corpus!r} has no emails in the store")
    if corpus in store.held_out_corpora():
        assignments = {email_id: "test" for email_id in frame["id"]}
    else:
        assignments = stratified_split(frame, test_fraction, seed)
    store.add_splits(corpus, assignments, seed)
    values = list(assignments.values())
    return {"train": values.count("train"), "test": values.count("test")}


def sample_stratified(frame: pd.DataFrame, size: int | None, seed: int) -> list[str]:
    """A seeded sample of ids keeping the label proportions; all ids if size is None or larger."""
    if size is None or size >= len(frame):
        return sorted(frame["id"])
    rng = np.random.default_rng(seed)
    chosen: list[str] = []
    counts = frame["label"].value_counts().sort_index()
    quotas = (counts / counts.sum() * size).round().astype(int)
    quotas.iloc[-1] = size - quotas.iloc[:-1].sum()
    for label, quota in quotas.items():
        ids = frame.loc[frame["label"] == label, "id"].to_numpy()
        chosen.extend(ids[rng.permutation(len(ids))[: max(0, min(quota, len(ids)))]])
    return sorted(chosen)


def _refuse_held_out(store: Store, corpora: list[str]) -> None:
    held_out = sorted(set(corpora) & set(store.held_out_corpora()))
    if held_out:
        raise SplitError(f"{', '.join(held_out)} {'is' if len(held_out) == 1 else 'are'} held out for evaluation "
                         f"only (ingested with --eval-only): no training set may draw on it")


def specialist_name(corpus: str) -> str:
    return f"specialist-{corpus}"


def fticl_name(corpus: str) -> str:
    return f"fticl-{corpus}"


def build_specialist(store: Store, corpus: str, size: int | None = None, seed: int = 13,
                     name: str | None = None, kind: str = "specialist", exclude: frozenset = frozenset()) -> str:
    """A specialist set: (a stratified sample of) one corpus' training split.

    kind="fticl" names the same emails as the FTICL paradigm's set (fticl-<corpus>): trained
    with in-context examples, it is its own row in every matrix. `exclude`: email ids never to
    draw (e.g. near-duplicates of other corpora's test emails).
    """
    _refuse_held_out(store, [corpus])
    train = store.split_ids(corpus, "train")
    if train.empty:
        raise SplitError(f"corpus {corpus!r} has no training split; ingest it first")
    if train["label"].nunique() < 2:
        raise SplitError(f"corpus {corpus!r} holds one class only; a specialist needs both labels. "
                         f"Use it in a generalist mix or as a test corpus.")
    name = name or (fticl_name(corpus) if kind == "fticl" else specialist_name(corpus))
    ids = sample_stratified(train[~train["id"].isin(exclude)], size, seed)
    store.add_training_set(name, kind, [corpus], ids, seed)
    return name


def build_generalist(store: Store, corpora: list[str], size: int, seed: int = 13,
                     name: str = "generalist", exclude: frozenset = frozenset()) -> str:
    """A label-balanced mix of training splits: size/2 per label, spread evenly over corpora;
    `exclude`: email ids never to draw."""
    _refuse_held_out(store, corpora)
    if len(corpora) < 2:
        raise SplitError("a generalist set mixes at least two corpora")
    rng = np.random.default_rng(seed)
    pools: dict[int, dict[str, list[str]]] = {0: {}, 1: {}}
    for corpus in corpora:
        train = store.split_ids(corpus, "train")
        train = train[~train["id"].isin(exclude)]
        for label in (0, 1):
            ids = train.loc[train["label"] == label, "id"].to_numpy()
            if len(ids):
                pools[label][corpus] = list(ids[rng.permutation(len(ids))])
    chosen: list[str] = []
    for label, target in ((0, size // 2), (1, size - size // 2)):
        pool = pools[label]
        available = sum(len(v) for v in pool.values())
        if available < target:
            raise SplitError(f"only {available} training emails with label {label} in {corpora}; "
                             f"cannot build a generalist set of {size}")
        # Round-robin over corpora so each contributes evenly until it runs out.
        cursors = {c: 0 for c in pool}
        taken = 0
        while taken < target:
            for corpus in sorted(pool):
                if taken == target:
                    break
                if cursors[corpus] < len(pool[corpus]):
                    chosen.append(pool[corpus][cursors[corpus]])
                    cursors[corpus] += 1
                    taken += 1
    store.add_training_set(name, "generalist", sorted(corpora), sorted(chosen), seed)
    return name


def test_sample(store: Store, corpus: str, size: int | None, seed: int = 13) -> list[str]:
    """A seeded, stratified sample of a corpus' test split (the whole split if size is None)."""
    return sample_stratified(store.split_ids(corpus, "test"), size, seed)
