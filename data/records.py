"""The records that cross module boundaries. One definition each, all frozen."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

# ---------------------------------------------------------------- the shared vocabulary

LEGITIMATE = 0
POSITIVE = 1  # the classifier's positive class: "phishing/spam"
LABEL_NAMES = {LEGITIMATE: "legitimate", POSITIVE: "phishing/spam"}
# A verdict is positive when the score, logit(positive word) - logit(negative word), exceeds this.
VERDICT_THRESHOLD = 0.0
# The base model without an adapter: its scorer id is "zero-shot:<model>", its training set this.
ZERO_SHOT = "zero-shot"
# How an LLM scorer's score is read: the LM head's logits of two label words, or a trained classification
# head's two logits (a peft SEQ_CLS adapter imported by models.imported).
LABEL_WORDS = "label-words"
CLASSIFICATION_HEAD = "classification-head"
READOUTS = (LABEL_WORDS, CLASSIFICATION_HEAD)
PRECISIONS = ("fp32", "bf16", "int8")  # scoring precisions (models.precision)


def verdict(score: float) -> int:
    """The classifier's verdict for a score: 1 (phishing/spam) above the threshold, else 0."""
    return int(score > VERDICT_THRESHOLD)


def label_name(label: int) -> str:
    return LABEL_NAMES[int(label)]


@dataclass(frozen=True)
class Email:
    """One normalised email. `id` is the content hash of what the model reads."""

    id: str
    corpus: str
    subject: str
    body: str
    label: int  # 1 = phishing/spam, 0 = legitimate
    sender: str = ""
    receiver: str = ""
    date: str = ""
    urls: tuple[str, ...] = ()
    source_ref: str = ""  # file name, CSV row or mbox key: where to find the original
    normalisation: str = ""
    truncated: bool = False  # body was cut at the configured size cap


@dataclass(frozen=True)
class CorpusInfo:
    """How a corpus was read and what its labels mean."""

    name: str
    source: str
    format: str  # csv | mbox | eml | synthetic
    label_meaning: str  # "phishing" or "spam": what label 1 means in this corpus
    label_convention: str  # human-readable: where the label came from
    synthetic: bool = False
    # Held out (evaluation only): every email is a test email, and no training set may draw on it.
    eval_only: bool = False


@dataclass(frozen=True)
class IngestReport:
    """Counts from one corpus ingest; duplicates are dropped, never silently."""

    corpus: str
    parsed: int
    parse_errors: int
    duplicates_within: int
    label_conflicts: int
    duplicates_across: int
    kept: int
    normalisation: str
    errors: tuple[tuple[str, str], ...] = field(default=(), repr=False)  # (source_ref, message)


@dataclass(frozen=True)
class LoraSettings:
    """LoRA fine-tuning hyperparameters; defaults train in minutes on 2 CPU cores."""

    r: int = 8
    alpha: int = 16
    # 0: dropout on each adapted projection's input drew a mask over every activation, a third of
    # the training step on 2 CPU cores (benchmarks/README.md, training), at no measured F1 gain.
    dropout: float = 0.0
    target_modules: tuple[str, ...] | None = None  # None: the model family's default
    epochs: int = 1
    lr: float = 3e-3
    batch_size: int = 8
    max_tokens: int = 128
    seed: int = 13
    # FTICL (fine-tuning with in-context examples): k labelled training emails placed before the
    # email in every training prompt, and a fixed k in every scoring prompt. 0: plain fine-tuning.
    context_examples: int = 0
    context_tokens: int = 64  # token budget per in-context example's email
    # "bf16": forward and backward under bf16 autocast (the LoRA weights, optimizer and loss stay
    # fp32); 1.7× the fp32 tokens/s on a CPU with AMX. CUDA trains in bf16 either way.
    precision: str = "fp32"
    # > 0: LoRA on layers from_layer and up only; the frozen layers below run once per training
    # set (models/layer_reuse.py) and every epoch and seed reuses their output. 0: every layer.
    from_layer: int = 0


@dataclass(frozen=True)
class Demonstration:
    """One labelled in-context example (FTICL): an email's rendered text and its label."""

    text: str
    label: int


@dataclass(frozen=True)
class AdapterInfo:
    """Metadata saved next to every adapter's safetensors."""

    id: str
    model: str
    base_weights_sha256: str
    architecture: str
    training_set: str
    path: str
    hyperparameters: dict
    seed: int
    train_loss: tuple[float, ...]
    n_train: int
    seconds: float
    created_at: str
    # FTICL adapters: the in-context examples every scoring prompt starts with (chosen once from
    # the training set with the adapter's seed, label-balanced). Empty for plain adapters.
    demonstrations: tuple[Demonstration, ...] = ()
    # Adapters trained elsewhere (models.imported): their own prompt template and label words (empty:
    # the base model's), how the score is read (models.registry.READOUTS), and the folder imported.
    prompt_template: str = ""
    label_words: tuple[str, ...] = ()
    readout: str = LABEL_WORDS
    imported_from: str = ""


@dataclass(frozen=True)
class Prediction:
    """One classifier verdict: score is logit(phishing) - logit(legitimate)."""

    run_id: str
    adapter_id: str
    model: str
    email_id: str
    corpus: str
    score: float
    predicted: int
    true_label: int
    truncated_tokens: int = 0  # email tokens the scoring budget cut off


@dataclass(frozen=True)
class Faithfulness:
    """Deletion/insertion curves: the score after removing (adding) the top-attributed units.

    Scores are signed towards the full email's verdict (positive = supports it), so a
    faithful explanation makes the deletion curve fall fast (small area) and the
    insertion curve rise fast (large area). `random_deletion` is the same curve in a
    random unit order: the reference an explanation must beat.
    """

    fractions: tuple[float, ...]
    deletion: tuple[float, ...]
    insertion: tuple[float, ...]
    random_deletion: tuple[float, ...]
    deletion_area: float
    insertion_area: float
    random_deletion_area: float


@dataclass(frozen=True)
class Explanation:
    """Attributions of one (adapter, email) score to character spans of the email's text.

    For SHAP methods the values are additive: base_value + sum(values) == score.
    """

    adapter_id: str
    email_id: str
    method: str  # shap | gradxinput | shap-text (shap's default text masker, a baseline)
    level: str  # field | sentence | word | token: what one span is
    params: str  # canonical JSON of the method's parameters: part of the cache key
    text: str  # the email exactly as the model read it; spans index into it
    spans: tuple[tuple[int, int], ...]
    fields: tuple[str, ...]  # per span: sender | subject | body | url
    values: tuple[float, ...]
    base_value: float  # the score with every span removed
    score: float  # logit(phishing) - logit(legitimate) of the full email
    evaluations: int  # model forward passes (one per scored prompt)
    seconds: float
    faithfulness: Faithfulness | None = None


@dataclass(frozen=True)
class PairedComparison:
    """Two scorers' F1 on the same emails: the difference with its paired-bootstrap interval,
    and McNemar's exact test on which emails each got right."""

    n: int
    f1_a: float
    f1_b: float
    delta_f1: float  # f1_a - f1_b
    delta_low: float
    delta_high: float
    only_a_right: int  # McNemar's discordant pairs
    only_b_right: int
    mcnemar_p: float
    level: float = 0.95

    def significant(self, alpha: float = 0.05) -> bool:
        """A difference in F1 the data supports: the interval excludes 0 and McNemar's p is below alpha
        (never on a one-class sample, where F1 and its interval are undefined)."""
        if math.isnan(self.delta_low) or math.isnan(self.delta_high):
            return False
        return (not (self.delta_low <= 0 <= self.delta_high)) and self.mcnemar_p < alpha


# ---------------------------------------------------------------- jobs


@dataclass(frozen=True)
class EvaluationTarget:
    """What to evaluate: an adapter folder, or None for the zero-shot base model."""

    model: str
    adapter_dir: Path | None = None
    quantize: str = "none"  # or "4bit" (CUDA only)


@dataclass(frozen=True)
class ScorerRef:
    """The model a work item runs on, as a worker can open it: base model, adapter, and how the
    job opens it (options: e.g. precision and compilation for scoring)."""

    model: str
    adapter_id: str
    adapter_dir: str | None = None
    quantize: str = "none"
    options: tuple[tuple[str, Any], ...] = ()

    def option(self, name: str, default: Any = None) -> Any:
        return dict(self.options).get(name, default)


# ---------------------------------------------------------------- inside the model


@dataclass(frozen=True)
class AttentionView:
    """One prompt seen from inside: attention patterns, token strings and the logit lens."""

    tokens: list[str]
    patterns: np.ndarray  # float16, (n_layers, n_heads, n_tokens, n_tokens)
    email_span: tuple[int, int]  # [start, end) of the email's tokens inside the prompt
    lens: np.ndarray  # (n_layers + 1,): the score read off the residual after the embedding and each block
    score: float

    def pattern(self, layer: int, head: int) -> np.ndarray:
        """(n_tokens, n_tokens) float32: one head's attention pattern."""
        return self.patterns[layer, head].astype(np.float32)

    def from_last_position(self) -> np.ndarray:
        """(n_layers, n_heads, n_tokens): what the answer position attends to."""
        return self.patterns[:, :, -1, :].astype(np.float32)

    def top_attended(self, layer: int, k: int = 5) -> pd.DataFrame:
        """Per head of a layer, the k tokens the answer position attends to most."""
        rows = []
        last = self.from_last_position()[layer]
        for head in range(last.shape[0]):
            for rank, position in enumerate(np.argsort(-last[head])[:k]):
                rows.append({"head": head, "rank": rank + 1, "position": int(position),
                             "token": self.tokens[position], "weight": float(last[head, position])})
        return pd.DataFrame(rows)

    def email_share(self) -> np.ndarray:
        """(n_layers, n_heads): the share of the answer position's attention on the email's tokens."""
        start, end = self.email_span
        return self.from_last_position()[:, :, start:end].sum(-1)


@dataclass(frozen=True)
class HeadSweep:
    """Head effects of one adapter on one set of emails, and the logit lens over them."""

    adapter_id: str
    ablation: str
    n_emails: int
    effects: pd.DataFrame  # layer, head, method, delta_logit, delta_f1
    lens: pd.DataFrame  # layer (-1 = embedding), mean_score, std_score
    clean_f1: float
    seconds: dict[str, float]


# ---------------------------------------------------------------- background jobs


@dataclass(frozen=True)
class JobRequest:
    """A job the dashboard starts in the background, in typed fields; `arguments()` is the
    `cli.py` call that runs it (diagnostics.runners.background)."""

    command: str  # a cli.py command: evaluate, train, explain, heads, diagnose, study, ingest, demo
    positional: tuple[str, ...] = ()  # e.g. the training set to train, the diagnostic to run
    corpus: str | None = None
    scorer: str | None = None  # a scorer id (data.scorers); None: the --model base zero-shot
    sample_size: int | None = None
    options: tuple[tuple[str, str | int | bool], ...] = ()  # further --flags; True: a bare flag

    def arguments(self) -> list[str]:
        arguments = [self.command, *self.positional]
        if self.corpus:
            arguments += ["--corpus", self.corpus]
        if self.scorer:
            arguments += ["--scorer", self.scorer]
        if self.sample_size:
            arguments += ["--sample-size", str(self.sample_size)]
        for flag, value in self.options:
            if value is True:
                arguments.append(f"--{flag}")
            elif value not in (None, False, ""):
                arguments += [f"--{flag}", str(value)]
        return arguments


@dataclass(frozen=True)
class BackgroundJob:
    """A `cli.py` process started from the dashboard, as read back from its files."""

    id: str
    command: str
    started: float
    pid: int
    log: Path
    status: str  # queued | running | done | failed | lost
    returncode: int | None
    last_line: str


@dataclass(frozen=True)
class DiagnosticRequest:
    """What a per-corpus diagnostic runs on: one scorer, a seeded sample of a corpus' test split."""

    target: EvaluationTarget
    corpus: str
    sample_size: int = 100
    max_tokens: int = 256
    seed: int = 0
    batch_size: int = 4

    def params_key(self, corpus: str, **extra) -> str:
        """The key a diagnostic's result is stored under (changing any of these is a new result)."""
        return json.dumps({"corpus": corpus, "sample": self.sample_size, "max_tokens": self.max_tokens,
                           "seed": self.seed, **extra}, sort_keys=True)


# ---------------------------------------------------------------- studies


@dataclass(frozen=True)
class StudySpec:
    """A cross-architecture study (studies/*.toml, parsed by diagnostics.analyses.study.load_spec)."""

    name: str
    models: tuple[str, ...]
    specialists: tuple[str, ...] | None = None  # None: every corpus with both labels
    generalist: bool = True
    # FTICL: k > 0 also trains every specialist's emails with k in-context examples (fticl-<corpus>)
    fticl_examples: int = 0
    test_corpora: tuple[str, ...] | None = None  # None: every corpus
    # Corpora of the data folder ingested for evaluation only (never trained on; the held-out columns)
    held_out: tuple[str, ...] = ()
    seeds: tuple[int, ...] = (13,)
    train_size: int = 256
    eval_size: int | None = 100  # test emails per corpus; None: the whole test split
    reference: bool = True  # the TF-IDF + logistic regression row
    lora: LoraSettings = field(default_factory=LoraSettings)
    # Per-model LoRA settings where a family needs its own ([lora.<model>] tables in the spec)
    lora_by_model: tuple[tuple[str, LoraSettings], ...] = ()

    def lora_for(self, model: str) -> LoraSettings:
        """The LoRA settings `model` trains with: its own table's, else the shared [lora] ones."""
        return dict(self.lora_by_model).get(model, self.lora)


@dataclass(frozen=True)
class StudyPlan:
    """What a spec means against one store: training sets, test corpora and adapter ids."""

    training_sets: tuple[str, ...]
    test_corpora: tuple[str, ...]
    adapters: tuple[tuple[str, str, int, str], ...]  # (model, training set, seed, adapter id)
