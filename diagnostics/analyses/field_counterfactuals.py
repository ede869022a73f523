"""Field counterfactuals: which part of an email a scorer's verdict rests on. Each email of a
corpus sample is scored as it is and again with one field removed, swapped with an email of the
other label, or rewritten in another corpus' form (lower-cased and punctuation-tokenised like
Enron-Spam / Ling-Spam, or the reverse); per counterfactual the share of verdicts that flip and
the mean score change, each with its 95% interval, over the emails it changes.

A scorer that flips when the sender or the last line of the body (signatures, list footers) is
removed, but not when the body is, leans on corpus furniture rather than content.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Sequence
from dataclasses import replace

import numpy as np
import pandas as pd

from data.parse import URL_PATTERN, extract_urls
from data.records import Email, verdict
from diagnostics.contracts.job import Progress
from diagnostics.analyses.sample_grid import GRID_COLUMNS, SamplePart, SampleDiagnostic, mean_interval, wilson_interval
from models.loading import LoadedModel
from models.scoring import score_emails

_TOKENISED_PUNCTUATION = re.compile(r"\s*([.,:;!?'$#/()-])\s*")
_SPACED_PUNCTUATION = re.compile(r"\s+([.,:;!?)])")


def _lines(body: str) -> list[str]:
    return body.split("\n")


def _without_line(body: str, last: bool) -> str:
    lines = _lines(body)
    filled = [i for i, line in enumerate(lines) if line.strip()]
    if not filled:
        return body
    del lines[filled[-1] if last else filled[0]]
    return "\n".join(lines)


def tokenised(text: str) -> str:
    """Enron-Spam / Ling-Spam form: lower case, punctuation split off by spaces."""
    return re.sub(r" {2,}", " ", _TOKENISED_PUNCTUATION.sub(r" \1 ", text.lower())).strip()


def detokenised(text: str) -> str:
    """The reverse of the spacing (case cannot be restored): no space before punctuation."""
    return _SPACED_PUNCTUATION.sub(r"\1", text)


def _with_body(mail: Email, body: str) -> Email:
    return replace(mail, body=body, urls=tuple(extract_urls(body)))


# name → (email, donor of the other label) → the counterfactual email
COUNTERFACTUALS: dict[str, Callable[[Email, Email], Email]] = {
    "remove sender": lambda m, d: replace(m, sender=""),
    "remove subject": lambda m, d: replace(m, subject=""),
    "remove body": lambda m, d: replace(m, body="", urls=()),
    "remove URLs": lambda m, d: replace(m, body=URL_PATTERN.sub("", m.body), urls=()),
    "remove first line of body": lambda m, d: _with_body(m, _without_line(m.body, last=False)),
    "remove last line of body": lambda m, d: _with_body(m, _without_line(m.body, last=True)),
    "swap sender": lambda m, d: replace(m, sender=d.sender),
    "swap subject": lambda m, d: replace(m, subject=d.subject),
    "swap body": lambda m, d: replace(m, body=d.body, urls=d.urls),
    "lower-case and tokenise": lambda m, d: replace(m, sender=m.sender.lower(), subject=tokenised(m.subject),
                                                    body=tokenised(m.body)),
    "de-tokenise spacing": lambda m, d: replace(m, subject=detokenised(m.subject), body=detokenised(m.body)),
}
MEASURES = ("flip rate", "mean score change")


def donors(emails: Sequence[Email], seed: int) -> list[Email]:
    """Per email, another email of the sample to swap fields with: one of the other label where the
    sample has both (so a swap can carry the other verdict's evidence), else any other one."""
    rng = random.Random(seed)
    by_label = {label: [m for m in emails if m.label == label] for label in {m.label for m in emails}}
    chosen = []
    for i, mail in enumerate(emails):
        pool = [m for label, group in by_label.items() if label != mail.label for m in group]
        pool = pool or [m for j, m in enumerate(emails) if j != i] or [mail]
        chosen.append(rng.choice(pool))
    return chosen


def counterfactual_scores(score: Callable[[list[Email]], np.ndarray], emails: Sequence[Email],
                          donor_emails: Sequence[Email]) -> dict[str, np.ndarray]:
    """{"original": scores, counterfactual: scores (NaN where it leaves the email unchanged)}."""
    out = {"original": np.asarray(score(list(emails)), dtype=float)}
    for name, make in COUNTERFACTUALS.items():
        changed = [make(m, d) for m, d in zip(emails, donor_emails)]
        differs = [c != m for c, m in zip(changed, emails)]
        values = np.full(len(emails), np.nan)
        todo = [c for c, x in zip(changed, differs) if x]
        if todo:
            values[np.flatnonzero(differs)] = score(todo)
        out[name] = values
    return out


def reliance_grid(scores: dict[str, np.ndarray]) -> pd.DataFrame:
    """Per counterfactual: verdict flip rate (Wilson interval) and mean score change (normal
    interval) over the emails it changed; n is how many it changed."""
    original = scores["original"]
    rows = []
    for name in COUNTERFACTUALS:
        changed = ~np.isnan(scores[name])
        n = int(changed.sum())
        before = np.array([verdict(s) for s in original[changed]])
        after = np.array([verdict(s) for s in scores[name][changed]])
        flips = int((before != after).sum())
        low, high = wilson_interval(flips, n)
        mean, d_low, d_high = mean_interval(scores[name][changed] - original[changed])
        rows.append({"row": name, "column": MEASURES[0], "value": flips / n if n else np.nan, "low": low,
                     "high": high, "n": n})
        rows.append({"row": name, "column": MEASURES[1], "value": mean, "low": d_low, "high": d_high, "n": n})
    return pd.DataFrame(rows, columns=GRID_COLUMNS)


class FieldCounterfactuals(SampleDiagnostic):
    name = "field-counterfactuals"

    def pair(self, emails: Sequence[Email]) -> list:
        return donors(emails, self.request.seed)

    def measure(self, model: LoadedModel, part: SamplePart, on_progress: Progress | None = None):
        scores = counterfactual_scores(
            lambda batch: score_emails(model, batch, self.request.max_tokens, self.request.batch_size),
            part.emails, part.extra)
        if on_progress:
            on_progress(part.size)
        return scores

    def summarize(self, emails: Sequence[Email], measured: Sequence, context: dict) -> pd.DataFrame:
        return reliance_grid({key: np.concatenate([m[key] for m in measured]) for key in measured[0]})
