"""Is an explanation faithful? Deletion and insertion curves: the score as the top-attributed
units are removed (added), against a random order of the same units."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from data.records import Explanation, Faithfulness
from diagnostics.analyses.coalitions import CoalitionScorer
from diagnostics.analyses.layout import Units, fixed_tokens, spans_and_fields, unit_keeps


def faithfulness(scorer: CoalitionScorer, values: Sequence[float], unit_tokens: list[np.ndarray] | None = None,
                 steps: int = 10, seed: int = 0, random_orders: int = 2) -> Faithfulness:
    """Deletion and insertion curves over units ranked by attribution, and a random-order reference.

    Units default to the layout's words (values then given per word).
    """
    layout = scorer.layout
    if unit_tokens is None:
        unit_tokens = [np.array(w.tokens) for w in layout.words]
    fixed = fixed_tokens(len(layout.email_ids), unit_tokens)
    n = len(unit_tokens)
    sign = 1.0 if scorer.score >= 0 else -1.0
    order = np.argsort(-sign * np.asarray(values), kind="stable")
    fractions = np.linspace(0.0, 1.0, steps + 1)
    counts = np.round(fractions * n).astype(int)

    def curve(ranking: np.ndarray, insert: bool) -> np.ndarray:
        masks = np.zeros((len(counts), n), dtype=bool)
        for row, k in enumerate(counts):
            masks[row, ranking[:k]] = True
        if not insert:
            masks = ~masks
        return sign * scorer.scores(unit_keeps(masks, unit_tokens, fixed))

    rng = np.random.default_rng(seed)
    deletion, insertion = curve(order, False), curve(order, True)
    random_deletion = np.mean([curve(rng.permutation(n), False) for _ in range(random_orders)], axis=0)
    area = lambda ys: float(np.trapezoid(ys, fractions))  # noqa: E731
    return Faithfulness(tuple(fractions), tuple(deletion), tuple(insertion), tuple(random_deletion),
                        area(deletion), area(insertion), area(random_deletion))


def with_faithfulness_curves(scorer: CoalitionScorer, explanation: Explanation, seed: int = 0) -> Explanation:
    """The explanation with its deletion/insertion curves, over its own units."""
    started, evaluations = time.perf_counter(), scorer.evaluations
    units = Units.of(scorer.layout, explanation.level)
    spans, _ = spans_and_fields(scorer.layout, units.words)
    if spans != explanation.spans:
        raise ValueError("the explanation was made on another layout of this email")
    curves = faithfulness(scorer, explanation.values, units.tokens, seed=seed)
    return replace(explanation, faithfulness=curves, seconds=explanation.seconds + time.perf_counter() - started,
                   evaluations=explanation.evaluations + scorer.evaluations - evaluations)
