"""Every diagnostic by stable name: what it answers, which page shows it and how, and the job that
computes it (LIT's interpreters are listed the same way). Pages list from here, the CLI runs
from here (`cli.py diagnose NAME` for the per-corpus ones), so a new diagnostic is one module
and one line below.

`job` names the job class as "module:Class" and is imported only when the diagnostic runs, so
listing diagnostics on a page loads no model code.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path

from data.records import DiagnosticRequest

SHOWS = ("matrix", "word_features", "head_sweep", "head_grid", "grid", "neighbours")  # how a page draws a result
SCOPES = ("corpus", "store")  # a diagnostic samples one corpus' test split, or every corpus


@dataclass(frozen=True)
class Diagnostic:
    name: str  # stable: stored results and `cli.py diagnose NAME` use it
    title: str
    question: str  # what it answers, in the words a page shows
    page: str  # the page that shows it
    shows: str  # one of SHOWS
    command: str  # the cli.py command that runs it
    job: str = ""  # "module:Class" of a per-corpus job built from a DiagnosticRequest (`diagnose`)
    scope: str = "corpus"  # one of SCOPES
    measure: str = ""  # for a grid: the column a page colours by

    def make_job(self, request: DiagnosticRequest, models_dir: Path, emails_per_item: int | None = None):
        """The job that computes this diagnostic for one scorer and corpus sample."""
        if not self.job:
            raise ValueError(f"{self.name} runs with `cli.py {self.command}`, not `diagnose`")
        module, _, name = self.job.partition(":")
        return getattr(importlib.import_module(module), name)(request, models_dir, emails_per_item)


DIAGNOSTICS: dict[str, Diagnostic] = {d.name: d for d in [
    Diagnostic("evaluate", "F1 matrix", "How well does each adapter do on each corpus, in and out of domain?",
               "overview", "matrix", "evaluate"),
    Diagnostic("drivers", "Drivers", "Which words does an adapter rely on across a corpus, and which of them "
               "mark the corpus rather than phishing?", "drivers", "word_features", "explain"),
    Diagnostic("head-sweep", "Head effects", "Which attention heads does the score depend on (ablation)?",
               "heads", "head_sweep", "heads"),
    Diagnostic("direct-logit-attribution", "Direct logit attribution", "How much of the score does each head write "
               "straight into the answer position?", "heads", "head_grid", "diagnose",
               "diagnostics.direct_logit_attribution:DirectLogitAttribution"),
    Diagnostic("field-counterfactuals", "Field reliance", "Which field does the verdict rest on: how often does it flip "
               "when a field is removed, swapped with an email of the other label, or rewritten in another corpus' "
               "form?", "drivers", "grid", "diagnose", "diagnostics.field_counterfactuals:FieldCounterfactuals",
               measure="flip rate"),
    Diagnostic("corpus-fingerprint", "Corpus fingerprints", "Can the source corpus be told from the text, or from each "
               "layer of the scorer, whatever the label? Then in-domain F1 is partly corpus identification.",
               "drivers", "grid", "diagnose", "diagnostics.fingerprint:FingerprintAudit", scope="store",
               measure="accuracy"),
    Diagnostic("fingerprint-masking", "Fingerprints masked", "How much of the in- vs out-of-domain gap do the "
               "corpora's fingerprint words account for (F1 with them masked out, paired bootstrap)?", "drivers",
               "grid", "diagnose", "diagnostics.fingerprint_masking:FingerprintMasking", scope="store",
               measure="ΔF1 (masked − original)"),
    Diagnostic("source-threshold", "Threshold tuned at the source", "How much of an out-of-domain drop does a "
               "threshold tuned on the adapter's own training corpora (on emails it never trained on) recover, with "
               "no label from the target?", "overview", "grid", "diagnose",
               "diagnostics.source_threshold:SourceThreshold", scope="store", measure="F1"),
    Diagnostic("nearest-training-emails", "Nearest training emails", "Which training emails does this email look "
               "like to the adapter (its answer-position state, cosine), and how did it score them?", "explain",
               "neighbours", "diagnose", "diagnostics.neighbours:NeighbourIndex", scope="store"),
]}


def diagnostic(name: str) -> Diagnostic:
    """The diagnostic registered under `name`, or an error that lists them."""
    if name not in DIAGNOSTICS:
        raise ValueError(f"no diagnostic {name!r}; known: {', '.join(DIAGNOSTICS)}")
    return DIAGNOSTICS[name]


def for_page(page: str, shows: str | None = None) -> list[Diagnostic]:
    """The diagnostics a page lists, in registry order (optionally only those drawn one way)."""
    return [d for d in DIAGNOSTICS.values() if d.page == page and (shows is None or d.shows == shows)]
