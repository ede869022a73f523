"""shap's default text explainer (shap.maskers.Text), the baseline benchmarks/bench_explain.py
measures PhishLens' explainer against. Benchmark-only: the product never uses it."""

from __future__ import annotations

import time

import numpy as np

from data.records import Explanation
from diagnostics.analyses.explainers import params_key
from diagnostics.analyses.layout import EmailLayout, owning_word


def explain_shap_text(loaded, layout: EmailLayout, email_id: str, max_tokens: int, max_evals: int = 500,
                      seed: int = 0, batch_size: int = 16) -> tuple[Explanation, np.ndarray]:
    """shap's default for text, as a reference: PartitionExplainer with shap.maskers.Text.

    Masked tokens become "..." (collapsed), every masked text is tokenized and scored
    whole. Returns the token-level explanation and its values summed per word of `layout`.
    """
    import shap

    from models.scoring import score_prompts

    started = time.perf_counter()
    tokenizer = loaded.tokenizer
    budget = len(layout.email_ids)
    evaluations = 0

    def model(texts) -> np.ndarray:
        nonlocal evaluations
        prompts = [layout.head + tokenizer(str(t), add_special_tokens=False).input_ids[:budget] + layout.tail
                   for t in texts]
        evaluations += len(prompts)
        return score_prompts(loaded, prompts, batch_size=batch_size)

    # Explain exactly the text the model read: the email cut at the token budget.
    encoded = tokenizer(layout.text, add_special_tokens=False, return_offsets_mapping=True)
    end = encoded["offset_mapping"][budget - 1][1] if budget else 0
    text = layout.text[:end]
    explainer = shap.Explainer(model, shap.maskers.Text(tokenizer))
    np.random.seed(seed)
    result = explainer([text], max_evals=max_evals, batch_size=batch_size, silent=True)
    values = np.asarray(result.values[0], dtype=float)
    offsets = tokenizer(text, return_offsets_mapping=True)["offset_mapping"]
    if len(offsets) != len(values):
        raise RuntimeError(f"shap returned {len(values)} values for {len(offsets)} tokens")
    spans = tuple((int(s), int(e)) for s, e in offsets)
    starts = [w.start for w in layout.words]
    per_word = np.zeros(len(layout.words))
    for span, v in zip(spans, values):
        at = owning_word(layout.words, starts, text, span)
        if at is not None:
            per_word[at] += v
    fields = tuple("body" for _ in spans)
    explanation = Explanation(
        adapter_id=loaded.adapter_id, email_id=email_id, method="shap-text", level="token",
        params=params_key("shap-text", "token", max_tokens, max_evals=max_evals, seed=seed), text=layout.text,
        spans=spans, fields=fields, values=tuple(map(float, values)),
        base_value=float(np.ravel(result.base_values)[0]), score=float(model([text])[0]), evaluations=evaluations,
        seconds=time.perf_counter() - started)
    return explanation, per_word
