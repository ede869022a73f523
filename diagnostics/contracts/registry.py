"""Every diagnostic by stable name: what it answers, the kind of result it produces, which page
shows it, and how it is computed (LIT's interpreters are listed the same way). Pages list from
here and draw each entry by its kind (pages/_kinds.py), the store reads and writes by kind
(data/results.py), and `cli.py diagnose NAME` runs any entry. A new diagnostic of an existing
kind is one module and one line below; a new kind adds one store table family, one cached
reader and one drawer.

An entry is computed one of two ways:
- `job`: "module:function" building a job (diagnostics.contracts.job) from a DiagnosticRequest;
  the runner plans, runs and ingests it, so its result is stored and resumable;
- `compute`: "module:function(store, scorer_ids) -> grid frame": an analysis of what the store
  already holds (e.g. the predictions), computed when asked, cheap, never stored.
Both are imported only when the diagnostic runs, so listing diagnostics on a page loads no model code.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path

from data.records import DiagnosticRequest

# The closed set of result kinds: how a result is stored, read and drawn.
KINDS = {
    "matrix": "one value per scorer × corpus cell (predictions → F1 matrix)",
    "token_map": "one attribution per span of one email's text, per scorer (explanations); aggregated per word",
    "head_grid": "one value per attention head (layer × head), with a remainder for everything else",
    "sample_grid": "a small grid of values with 95% intervals per (scorer, corpus sample): rows × columns",
    "neighbours": "for one email, the nearest training emails of a scorer",
    "curve": "one line per series (x → y, with a 95% band): e.g. a measure across thresholds, per corpus",
    "email_flags": "flagged emails (or pairs of emails) with a strength and evidence, and per corpus the flagged "
                   "share with its 95% interval",
}
SCOPES = ("corpus", "store")  # a diagnostic samples one corpus' test split, or every corpus


@dataclass(frozen=True)
class Diagnostic:
    name: str  # stable: stored results and `cli.py diagnose NAME` use it
    title: str
    question: str  # what it answers, in the words a page shows
    page: str  # the page that shows it
    kind: str  # one of KINDS
    job: str = ""  # "module:function" building its job from a DiagnosticRequest (stored results)
    compute: str = ""  # "module:function(store, scorer_ids)" for an analysis of stored results
    scope: str = "corpus"  # one of SCOPES
    measure: str = ""  # for a grid: the column a page colours by
    scorers: int = 1  # how many scorers it takes (a paired comparison takes two; an audit of the emails none)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"{self.name}: kind {self.kind!r} is not one of {', '.join(KINDS)}")
        if bool(self.job) == bool(self.compute):
            raise ValueError(f"{self.name}: give a job or a compute function, one of them")

    def make_job(self, request: DiagnosticRequest, models_dir: Path, emails_per_item: int | None = None):
        """The job that computes this diagnostic for one scorer and corpus sample."""
        if not self.job:
            raise ValueError(f"{self.name} is computed from stored results, not run as a job")
        return _imported(self.job)(request, models_dir, emails_per_item)

    def run_analysis(self, store, scorer_ids: tuple[str, ...]):
        """The grid (row, column, value, low, high) of an analysis of stored results."""
        if not self.compute:
            raise ValueError(f"{self.name} runs as a job")
        if len(scorer_ids) != self.scorers:
            raise ValueError(f"{self.name} compares {self.scorers} scorer(s); {len(scorer_ids)} given")
        return _imported(self.compute)(store, tuple(scorer_ids))


def _imported(reference: str):
    module, _, name = reference.partition(":")
    return getattr(importlib.import_module(module), name)


A = "diagnostics.analyses."
DIAGNOSTICS: dict[str, Diagnostic] = {d.name: d for d in [
    Diagnostic("evaluate", "F1 matrix", "How well does each adapter do on each corpus, in and out of domain?",
               "overview", "matrix", job=A + "evaluate:job_for_request", scope="store"),
    Diagnostic("calibration", "Is it the threshold?", "Per corpus: calibration error, F1 at the product's threshold, "
               "at the best threshold (oracle) and after re-tuning on 10% of the corpus' labelled emails.",
               "overview", "sample_grid", compute=A + "calibration:calibration_grid", measure="F1 at 0"),
    Diagnostic("paired-comparison", "Is a difference real?", "Two scorers on the same test emails: ΔF1 with its "
               "paired-bootstrap interval and McNemar's exact test, per corpus.", "overview", "sample_grid",
               compute=A + "paired:paired_grid", measure="ΔF1 (A − B)", scorers=2),
    Diagnostic("f1-by-threshold", "F1 by threshold", "Per corpus, F1 at every threshold of one scorer's stored "
               "scores: does an out-of-domain curve peak away from 0 (a shifted threshold) or stay low (a lost ranking)?",
               "overview", "curve", compute=A + "threshold_curves:f1_by_threshold"),
    Diagnostic("source-threshold", "Threshold tuned at the source", "How much of an out-of-domain drop does a "
               "threshold tuned on the adapter's own training corpora (on emails it never trained on) recover, with "
               "no label from the target?", "overview", "sample_grid", job=A + "source_threshold:SourceThreshold",
               scope="store", measure="F1"),
    Diagnostic("drivers", "Drivers", "Which words does an adapter rely on across a corpus, and which of them "
               "mark the corpus rather than phishing?", "drivers", "token_map", job=A + "drivers:job_for_request"),
    Diagnostic("head-sweep", "Head effects", "Which attention heads does the score depend on (ablation)?",
               "heads", "head_grid", job=A + "head_sweep:job_for_request"),
    Diagnostic("direct-logit-attribution", "Direct logit attribution", "How much of the score does each head write "
               "straight into the answer position?", "heads", "head_grid",
               job=A + "direct_logit_attribution:DirectLogitAttribution"),
    Diagnostic("attention-entropy", "Attention entropy", "How spread out is each head's attention from the answer "
               "position (bits): does it read one token or the whole email?", "heads", "head_grid",
               job=A + "attention_entropy:AttentionEntropy"),
    Diagnostic("field-counterfactuals", "Field reliance", "Which field does the verdict rest on: how often does it flip "
               "when a field is removed, swapped with an email of the other label, or rewritten in another corpus' "
               "form?", "drivers", "sample_grid", job=A + "field_counterfactuals:FieldCounterfactuals",
               measure="flip rate"),
    Diagnostic("corpus-fingerprint", "Corpus fingerprints", "Can the source corpus be told from the text, or from each "
               "layer of the scorer, whatever the label? Then in-domain F1 is partly corpus identification.",
               "drivers", "sample_grid", job=A + "fingerprint:FingerprintAudit", scope="store", measure="accuracy"),
    Diagnostic("fingerprint-masking", "Fingerprints masked", "How much of the in- vs out-of-domain gap do the "
               "corpora's fingerprint words account for (F1 with them masked out, paired bootstrap)?", "drivers",
               "sample_grid", job=A + "fingerprint_masking:FingerprintMasking", scope="store",
               measure="ΔF1 (masked − original)"),
    Diagnostic("label-audit", "Suspected label errors", "Is it the model or the label? Per corpus, the share of "
               "emails whose label out-of-sample scorers confidently contradict (confident learning), with its 95% "
               "interval, and the suspects ranked with their evidence.", "corpora", "email_flags",
               job=A + "label_audit:job_for_request", scope="store", measure="estimate", scorers=0),
    Diagnostic("near-duplicates", "Near-duplicates", "Which emails are the same campaign or template with small "
               "edits (MinHash LSH, Jaccard ≥ 0.7 of word 5-grams), and how much of each corpus has one in another "
               "corpus?", "corpora", "email_flags", job=A + "near_duplicates:job_for_request", scope="store",
               measure="estimate", scorers=0),
    Diagnostic("nearest-training-emails", "Nearest training emails", "Which training emails does this email look "
               "like to the adapter (its answer-position state, cosine), and how did it score them?", "explain",
               "neighbours", job=A + "neighbours:NeighbourIndex", scope="store"),
]}


def diagnostic(name: str) -> Diagnostic:
    """The diagnostic registered under `name`, or an error that lists them."""
    if name not in DIAGNOSTICS:
        raise ValueError(f"no diagnostic {name!r}; known: {', '.join(DIAGNOSTICS)}")
    return DIAGNOSTICS[name]


def for_page(page: str, kind: str | None = None) -> list[Diagnostic]:
    """The diagnostics a page lists, in registry order (optionally only those of one kind)."""
    return [d for d in DIAGNOSTICS.values() if d.page == page and (kind is None or d.kind == kind)]
