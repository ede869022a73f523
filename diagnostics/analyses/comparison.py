"""Comparing explanations: per-field totals, adapter minus base (what fine-tuning changed), and
the agreement of two explanations of the same email."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace

import numpy as np

from data.defang import defang
from data.records import Explanation
from models.classifier import Classifier


def field_totals(explanation: Explanation) -> list[tuple[str, float]]:
    """Per-field sums (sender, subject, body, then each URL, defanged) in reading order."""
    totals: dict[str, float] = {}
    for (s, e), kind, value in zip(explanation.spans, explanation.fields, explanation.values):
        name = f"url {defang(explanation.text[s:e])}" if kind == "url" else kind
        totals[name] = totals.get(name, 0.0) + value
    return list(totals.items())


def lora_delta(adapted: Explanation, base: Explanation) -> Explanation:
    """Adapter minus base model, unit by unit: what fine-tuning changed (same units required)."""
    if adapted.spans != base.spans:
        raise ValueError("the two explanations cover different units; explain both at the same level")
    values = tuple(a - b for a, b in zip(adapted.values, base.values))
    return replace(adapted, method=f"{adapted.method}-delta", values=values,
                   base_value=adapted.base_value - base.base_value, score=adapted.score - base.score,
                   evaluations=adapted.evaluations + base.evaluations, seconds=adapted.seconds + base.seconds,
                   faithfulness=None)


@contextmanager
def adapter_disabled(loaded: Classifier) -> Iterator[object]:
    """The same model with its LoRA adapter switched off (peft), as a zero-shot LoadedModel."""
    if loaded.adapter is None:
        yield loaded
        return
    with loaded.model.disable_adapter():
        yield replace(loaded, adapter=None)


def character_values(explanation: Explanation) -> np.ndarray:
    """Per character of the text: its span's value spread evenly over the span; 0 outside spans.

    Explanations from different tokenizers or levels become comparable on the same characters.
    """
    values = np.zeros(len(explanation.text))
    for (start, end), value in zip(explanation.spans, explanation.values):
        if end > start:
            values[start:end] += value / (end - start)
    return values


def agreement(first: Explanation, second: Explanation) -> float:
    """Spearman rank correlation of two explanations' character values of the same email,
    over the characters either of them attributes (NaN when nothing varies)."""
    from scipy.stats import spearmanr

    if first.text != second.text:
        raise ValueError("agreement compares explanations of the same email text")
    a, b = character_values(first), character_values(second)
    covered = (a != 0) | (b != 0)
    if covered.sum() < 3 or np.ptp(a[covered]) == 0 or np.ptp(b[covered]) == 0:
        return float("nan")
    return float(spearmanr(a[covered], b[covered]).statistic)
