"""Why an adapter scored an email as it did: the explainers, by stable name.

SHAP ("shap"): shap's Partition explainer computes Owen values over the email's field →
sentence → word tree (diagnostics.analyses.layout), so its evaluation budget goes to coalitions a
reader can name ("the signature line", "the second URL") instead of to arbitrary token runs,
and a coarse (field or sentence) map comes first and cheaply; coalitions are scored by
diagnostics.analyses.coalitions. SHAP values are additive: base_value + sum(values) == score.
Integrated gradients ("integrated-gradients", captum) averages the gradient along the straight
path from zeroed word embeddings to the email's and multiplies by the difference: its values
sum to the score minus the blanked prompt's, up to the path integral's error, and it costs
IG_STEPS backward passes. Gradient × input ("gradxinput") is the one-pass, non-additive
baseline, and its signs can mislead: on the demo's 24 corporate phishing emails it gives the
planted link domain a push toward *legitimate* on all 24, where removing the domain lowers the
score by 22.9 logits on average; 8-step integrated gradients gets the sign right on 23
(benchmarks/README.md).

A new explainer is one function `(classifier, layout, email_id, max_tokens, seed) ->
Explanation` and one line in EXPLAINERS.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from data.records import Email, Explanation
from diagnostics.analyses.coalitions import CoalitionScorer
from diagnostics.analyses.faithfulness import with_faithfulness_curves
from diagnostics.analyses.layout import EmailLayout, Units, layout_email, linkage, spans_and_fields
from models.classifier import Classifier
from models.scoring import label_token_ids, prompt_builder

# Budgets (model evaluations, shap's max_evals) per level, chosen with benchmarks/bench_explain.py.
# Each finer pass first re-walks the coarser pass's coalitions, which are memoised.
DEFAULT_MAX_EVALS = {"field": 8, "sentence": 24, "word": 120}
# shap's fixed_context=1: each group is expanded with the rest of the email present, so a
# coalition removes one subtree (half the evaluations of the default, each sharing the
# cached prefix up to that subtree); it gave better deletion curves on real emails.
DEFAULT_FIXED_CONTEXT = 1


def params_key(method: str, level: str, max_tokens: int, **extra) -> str:
    """Canonical JSON of what determines an explanation (with adapter and email: the cache key)."""
    return json.dumps({"method": method, "level": level, "max_tokens": max_tokens, **extra}, sort_keys=True)


class _UnitMasker:
    """A shap masker whose "masked input" is the unit mask itself; the model maps it to tokens."""

    def __init__(self, clustering: np.ndarray, n_units: int):
        self.clustering = clustering
        self.shape = (1, n_units)

    def __call__(self, mask, x):
        return np.asarray(mask, dtype=bool).reshape(1, -1).copy()


def explain_shap(scorer: CoalitionScorer, email_id: str, adapter_id: str, max_tokens: int,
                 level: str = "word", max_evals: int | None = None, seed: int = 0,
                 fixed_context: int | None = DEFAULT_FIXED_CONTEXT) -> Explanation:
    """Owen values (shap.PartitionExplainer) over the email's field → sentence → word tree.

    fixed_context=1 expands each group only with the rest of the email present (shap's
    fast text setting): half the evaluations, each sharing a longer cached prefix.
    """
    import shap

    layout = scorer.layout
    max_evals = max_evals or DEFAULT_MAX_EVALS[level]
    units = Units.of(layout, level)
    n = len(units.words)
    if n == 0:
        raise ValueError("the email has no words to explain")
    started, evaluations_before = time.perf_counter(), scorer.evaluations

    def model(unit_masks: np.ndarray) -> np.ndarray:
        return scorer.scores(units.keeps(unit_masks))

    if n == 1:
        base = float(model(np.zeros((1, 1), dtype=bool))[0])
        values = np.array([scorer.score - base])
    else:
        explainer = shap.explainers.PartitionExplainer(model, _UnitMasker(linkage(units.tree, n), n))
        np.random.seed(seed)  # shap breaks priority ties at random
        result = explainer(np.ones((1, n)), max_evals=max(max_evals, 4), batch_size=32, silent=True,
                           fixed_context=fixed_context)
        values, base = np.asarray(result.values[0], dtype=float), float(np.ravel(result.base_values)[0])
    spans, fields = spans_and_fields(layout, units.words)
    return Explanation(
        adapter_id=adapter_id, email_id=email_id, method="shap", level=level,
        params=params_key("shap", level, max_tokens, max_evals=max_evals, seed=seed, fixed_context=fixed_context),
        text=layout.text, spans=spans, fields=fields, values=tuple(map(float, values)), base_value=float(base),
        score=float(scorer.score), evaluations=scorer.evaluations - evaluations_before,
        seconds=time.perf_counter() - started)


def _prompt_embeddings(loaded: Classifier, layout: EmailLayout) -> torch.Tensor:
    """The full prompt's input embeddings (1, tokens, d), detached: the gradient explainers' input."""
    ids = torch.tensor([layout.head + layout.email_ids + layout.tail], device=loaded.device)
    return loaded.model.get_input_embeddings()(ids).detach()


def _score_of_embeddings(loaded: Classifier) -> Callable[[torch.Tensor], torch.Tensor]:
    """embeddings (batch, tokens, d) -> the score (logit phishing − logit legitimate) per row."""
    negative, positive = label_token_ids(loaded.tokenizer, loaded.spec)

    def score(embeddings: torch.Tensor) -> torch.Tensor:
        logits = loaded.model(inputs_embeds=embeddings, logits_to_keep=1, use_cache=False).logits[:, -1].float()
        return logits[:, positive] - logits[:, negative]
    return score


def _word_explanation(loaded: Classifier, layout: EmailLayout, email_id: str, method: str, params: str,
                      per_prompt_token: torch.Tensor, score: float, evaluations: int, started: float) -> Explanation:
    """A word-level Explanation from one attribution per prompt token: the email's tokens summed per
    word; base_value is the score minus their sum."""
    per_token = per_prompt_token.detach().float().cpu().numpy()[len(layout.head): len(layout.head)
                                                                 + len(layout.email_ids)]
    values = [float(per_token[w.tokens].sum()) for w in layout.words]
    spans, fields = spans_and_fields(layout, [[i] for i in range(len(layout.words))])
    return Explanation(
        adapter_id=loaded.adapter_id, email_id=email_id, method=method, level="word", params=params,
        text=layout.text, spans=spans, fields=fields, values=tuple(values), base_value=score - float(np.sum(values)),
        score=score, evaluations=evaluations, seconds=time.perf_counter() - started)


def explain_gradient(loaded: Classifier, layout: EmailLayout, email_id: str, max_tokens: int) -> Explanation:
    """Gradient × input of the score w.r.t. the input embeddings, summed per word (one backward)."""
    started = time.perf_counter()
    with torch.enable_grad():
        embeddings = _prompt_embeddings(loaded, layout).requires_grad_(True)
        score = _score_of_embeddings(loaded)(embeddings)[0]
        score.backward()
    return _word_explanation(loaded, layout, email_id, "gradxinput", params_key("gradxinput", "word", max_tokens),
                             (embeddings.grad * embeddings).sum(-1)[0], float(score.detach()), 1, started)


# 8 steps gave the demo's planted link domain the right sign on 23 of 24 emails (benchmarks/README.md);
# 4 got 1 of 6 wrong in a first trial (with an all-zero baseline).
IG_STEPS = 8


def explain_integrated_gradients(loaded: Classifier, layout: EmailLayout, email_id: str, max_tokens: int,
                                 steps: int = IG_STEPS) -> Explanation:
    """Integrated gradients of the score w.r.t. the email's input embeddings (captum; baseline:
    the words' embeddings zeroed), summed per word. base_value is the score minus their sum: the
    baseline's score, up to the integration error."""
    from captum.attr import IntegratedGradients

    started = time.perf_counter()
    score = _score_of_embeddings(loaded)
    # The baseline is the prompt with its words' embeddings zeroed: the instruction, the question
    # and the whitespace between words stay, so the words' attributions alone add up to the
    # difference (completeness, up to the integration error).
    word_positions = [len(layout.head) + t for w in layout.words for t in w.tokens]
    with torch.enable_grad():
        embeddings = _prompt_embeddings(loaded, layout)
        baseline = embeddings.clone()
        baseline[:, word_positions] = 0
        attributions = IntegratedGradients(score).attribute(embeddings, baselines=baseline, n_steps=steps,
                                                            internal_batch_size=steps)
        with torch.no_grad():
            score_value = float(score(embeddings)[0])
    return _word_explanation(loaded, layout, email_id, "integrated-gradients",
                             params_key("integrated-gradients", "word", max_tokens, steps=steps),
                             attributions.sum(-1)[0], score_value, steps, started)


# ---------------------------------------------------------------- the registry

WordExplainer = Callable[[Classifier, EmailLayout, str, int, int], Explanation]


@dataclass(frozen=True)
class ExplainerEntry:
    """One explainer: how it explains an email at word level, and the key its results are stored under."""

    name: str
    title: str
    short_title: str
    explain: WordExplainer  # (classifier, layout, email_id, max_tokens, seed) -> word-level Explanation
    params: Callable[[int, int], str]  # (max_tokens, seed) -> the params key of that explanation
    additive: bool  # base_value + sum(values) == score
    progressive: bool = False  # refines field → sentence → word (SHAP); otherwise one word-level pass


def _shap_words(classifier: Classifier, layout: EmailLayout, email_id: str, max_tokens: int,
                seed: int = 0) -> Explanation:
    return explain_shap(CoalitionScorer(classifier, layout), email_id, classifier.adapter_id, max_tokens, "word",
                        seed=seed)


def _gradient_words(classifier: Classifier, layout: EmailLayout, email_id: str, max_tokens: int,
                    seed: int = 0) -> Explanation:
    return explain_gradient(classifier, layout, email_id, max_tokens)


def _integrated_gradient_words(classifier: Classifier, layout: EmailLayout, email_id: str, max_tokens: int,
                               seed: int = 0) -> Explanation:
    return explain_integrated_gradients(classifier, layout, email_id, max_tokens)


EXPLAINERS = {
    "shap": ExplainerEntry(
        "shap", "SHAP (fields → sentences → words)", "SHAP", _shap_words,
        lambda max_tokens, seed: params_key("shap", "word", max_tokens, max_evals=DEFAULT_MAX_EVALS["word"],
                                            seed=seed, fixed_context=DEFAULT_FIXED_CONTEXT), additive=True,
        progressive=True),
    "integrated-gradients": ExplainerEntry(
        "integrated-gradients", f"Integrated gradients ({IG_STEPS} steps; seconds, additive up to its error)",
        "Integrated gradients", _integrated_gradient_words,
        lambda max_tokens, seed: params_key("integrated-gradients", "word", max_tokens, steps=IG_STEPS),
        additive=False),
    "gradxinput": ExplainerEntry(
        "gradxinput", "Gradient × input (fast, not additive)", "Gradient × input", _gradient_words,
        lambda max_tokens, seed: params_key("gradxinput", "word", max_tokens), additive=False),
}
METHODS = tuple(EXPLAINERS)


def explainer(method: str) -> WordExplainer:
    """The word-level explainer registered under `method`."""
    if method not in EXPLAINERS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, not {method!r}")
    return EXPLAINERS[method].explain


def method_params(method: str, max_tokens: int, seed: int = 0) -> str:
    """The params key of a final (word-level) explanation by `method` with default budgets."""
    if method not in EXPLAINERS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, not {method!r}")
    return EXPLAINERS[method].params(max_tokens, seed)


class NothingToExplain(ValueError):
    """The email has no words (empty sender, subject and body)."""


def explanation_passes(loaded: Classifier, mail: Email, method: str, max_tokens: int, seed: int = 0,
                       cached: Explanation | None = None) -> Iterator[Explanation]:
    """One email's explanation as it refines: SHAP by fields, sentences, then words; gradient ×
    input at once. The last one carries its faithfulness curves. A `cached` word-level
    explanation (from a corpus sweep) only gets its curves."""
    layout = layout_email(prompt_builder(loaded, max_tokens), mail)
    if not layout.words:
        raise NothingToExplain("this email has no words (empty sender, subject and body)")
    if cached is not None:
        yield with_faithfulness_curves(CoalitionScorer(loaded, layout), cached, seed)
    elif method not in EXPLAINERS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, not {method!r}")
    elif EXPLAINERS[method].progressive:
        yield from explain_progressively(loaded, mail, max_tokens, seed=seed)
    else:
        first = EXPLAINERS[method].explain(loaded, layout, mail.id, max_tokens, seed)
        yield first
        yield with_faithfulness_curves(CoalitionScorer(loaded, layout), first, seed)


def explain_progressively(loaded: Classifier, mail: Email, max_tokens: int, levels: Sequence[str] = ("field", "sentence", "word"),
                          with_faithfulness: bool = True, seed: int = 0) -> Iterator[Explanation]:
    """Ever finer SHAP explanations of one email; they share one scorer, so each level
    reuses the coarser levels' evaluations. The last one carries its faithfulness curves."""
    builder = prompt_builder(loaded, max_tokens)
    scorer = CoalitionScorer(loaded, layout_email(builder, mail))
    for i, level in enumerate(levels):
        explanation = explain_shap(scorer, mail.id, loaded.adapter_id, max_tokens, level, seed=seed)
        if with_faithfulness and i == len(levels) - 1:
            explanation = with_faithfulness_curves(scorer, explanation, seed)
        yield explanation


def warm_up() -> None:
    """Import shap and compile its numba helpers on a toy four-word game (several seconds,
    once per process), so that the first explanation a user asks for does not pay it."""
    import shap

    masker = _UnitMasker(linkage([[0, 1], [2, 3]], 4), 4)
    explainer = shap.explainers.PartitionExplainer(lambda masks: masks.sum(axis=1).astype(float), masker)
    explainer(np.ones((1, 4)), max_evals=10, silent=True, fixed_context=DEFAULT_FIXED_CONTEXT)
