"""Batched classifier scores: the label-word logit difference at the last prompt position.

Emails are rendered into the model's prompt template, truncated to a token budget (the
email text is cut, never the instruction or the question), sorted by length into
buckets, left-padded, and only the last position's vocabulary logits are computed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from data.records import AdapterInfo, Demonstration, Email
from models.classifier import Classifier, PromptReader
from models.registry import CLASSIFICATION_HEAD, HEAD_ROWS, ModelSpec, scorer_spec


def render_email(mail: Email) -> str:
    """The email text the model reads (same for every corpus: missing fields stay empty)."""
    return f"From: {mail.sender}\nSubject: {mail.subject}\n\n{mail.body}"


def label_token_ids(tokenizer, spec: ModelSpec) -> tuple[int, int]:
    """Token ids of the (negative, positive) label words: the first token of each. A classification
    head's rows sit at HEAD_ROWS of its unembedding (models.imported)."""
    if spec.readout == CLASSIFICATION_HEAD:
        return HEAD_ROWS
    ids = [tokenizer(word, add_special_tokens=False).input_ids for word in spec.label_words]
    if not all(ids) or ids[0][0] == ids[1][0]:
        raise ValueError(f"label words {spec.label_words} do not start with distinct tokens for this tokenizer")
    return ids[0][0], ids[1][0]


@dataclass(frozen=True)
class PromptTokens:
    """Token ids of one prompt and how much of the email was cut."""

    input_ids: list[int]
    email_tokens: int
    truncated_tokens: int


class PromptBuilder:
    """Turns emails into token ids under a fixed template and token budget.

    With demonstrations (FTICL), each prompt starts with labelled examples in the same
    template, each answered with its label word; the email under test follows. The budget
    (max_tokens) is the email's prompt; each example's email has its own budget (context_tokens).
    """

    def __init__(self, tokenizer, spec: ModelSpec, max_tokens: int,
                 demonstrations: Sequence[Demonstration] = (), context_tokens: int = 64):
        head, tail = spec.prompt_template.split("{email}")
        self.tokenizer = tokenizer
        self.context_tokens = context_tokens
        # Keep the BOS token where the tokenizer adds one (Gemma and Llama 3 expect it).
        probe = tokenizer("x").input_ids
        self.bos = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None and probe[:1] == [tokenizer.bos_token_id] else []
        self.template_head = tokenizer(head, add_special_tokens=False).input_ids
        self.tail = tokenizer(tail, add_special_tokens=False).input_ids
        self.budget = max_tokens - len(self.bos) - len(self.template_head) - len(self.tail)
        if self.budget < 16:
            raise ValueError(f"token budget {max_tokens} leaves {self.budget} tokens for the email; raise it")
        self._answers = [tokenizer(word, add_special_tokens=False).input_ids for word in spec.label_words]
        self._separator = tokenizer("\n\n", add_special_tokens=False).input_ids
        self._email_ids: dict[str, list[int]] = {}
        # Everything before the email: fixed for a builder, so spans and layouts can rely on it.
        self.head = self.head_with(demonstrations)

    def head_with(self, demonstrations: Sequence[Demonstration]) -> list[int]:
        """BOS, the labelled examples (each a full prompt plus its answer), then the template's head."""
        ids = list(self.bos)
        for demo in demonstrations:
            if demo.text not in self._email_ids:
                self._email_ids[demo.text] = self.tokenizer(demo.text, add_special_tokens=False).input_ids
            ids += (self.template_head + self._email_ids[demo.text][: self.context_tokens] + self.tail
                    + self._answers[demo.label] + self._separator)
        return ids + self.template_head

    def build(self, mail: Email, demonstrations: Sequence[Demonstration] | None = None) -> PromptTokens:
        """The prompt for one email; `demonstrations` replaces the builder's own examples (FTICL training)."""
        head = self.head if demonstrations is None else self.head_with(demonstrations)
        ids = self.tokenizer(render_email(mail), add_special_tokens=False).input_ids
        kept = ids[: self.budget]
        return PromptTokens(head + kept + self.tail, len(ids), len(ids) - len(kept))


def prompt_builder(model: PromptReader, max_tokens: int) -> PromptBuilder:
    """The prompt builder for a scorer (models.classifier.PromptReader): an
    FTICL adapter's prompts start with the in-context examples it was saved with."""
    return adapter_prompt_builder(model.tokenizer, model.spec, model.adapter, max_tokens)


def adapter_prompt_builder(tokenizer, spec: ModelSpec, adapter: AdapterInfo | None, max_tokens: int) -> PromptBuilder:
    """The prompt builder of a scorer: the base model's template (or an imported adapter's own), plus an
    FTICL adapter's examples."""
    spec = scorer_spec(spec, adapter)
    if adapter is None or not adapter.demonstrations:
        return PromptBuilder(tokenizer, spec, max_tokens)
    return PromptBuilder(tokenizer, spec, max_tokens, adapter.demonstrations,
                         int(adapter.hyperparameters.get("context_tokens", 64)))


def left_padding(lengths: Sequence[int], device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """(attention_mask, position_ids) of sequences of these lengths left-padded to the longest.
    Positions count real tokens only, so a padded email scores as it would alone."""
    width = max(lengths)
    mask = (torch.arange(width) >= width - torch.tensor(lengths).unsqueeze(1)).long()
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    return mask.to(device), positions.to(device)


def pad_left(sequences: Sequence[list[int]], pad_id: int, device: torch.device) -> dict[str, torch.Tensor]:
    """Left-padded input_ids, attention_mask and matching position_ids for one batch."""
    width = max(len(s) for s in sequences)
    input_ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    for row, seq in enumerate(sequences):
        input_ids[row, width - len(seq):] = torch.tensor(seq, dtype=torch.long)
    mask, positions = left_padding([len(s) for s in sequences], device)
    return {"input_ids": input_ids.to(device), "attention_mask": mask, "position_ids": positions}


def default_batch_size(device: torch.device) -> int:
    """Emails per forward pass: 8 on CPU (bigger batches pad more and ran slower on 2 cores:
    benchmarks/README.md), 64 on CUDA, where a small model needs large batches to fill the GPU."""
    return 64 if device.type == "cuda" else 8


def length_buckets(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Indices grouped into batches of similar length (longest first: fail fast on memory)."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    return [order[i: i + batch_size] for i in range(0, len(order), batch_size)]


def last_position_logits(model, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Vocabulary logits at the last position only (logits_to_keep=1): (batch, vocab)."""
    return model(**batch, logits_to_keep=1, use_cache=False).logits[:, -1, :]


def compiled_for_scoring(loaded):
    """A copy of a LoadedModel whose forward is compiled by torch.compile (inductor, dynamic
    shapes: every length bucket reuses one graph). It fuses the norms, rotary embeddings and the
    gated MLP's element-wise work that eager mode runs as separate passes over memory — on
    SmolLM2 with 2 CPU cores that was ~20% of scoring time. The first batch pays the compile
    (~30–90 s; inductor caches it on disk for the next process), so it pays off on long jobs.
    """
    from dataclasses import replace

    return replace(loaded, model=torch.compile(loaded.model, dynamic=True))


def score_prompts(loaded: Classifier, prompts: Sequence[list[int]], batch_size: int = 8,
                  on_batch: Callable[[int], None] | None = None) -> np.ndarray:
    """logit(positive label) - logit(negative label) for each prompt's token ids, in input order.

    on_batch(n) is called after each batch.
    """
    negative, positive = label_token_ids(loaded.tokenizer, loaded.spec)
    scores = np.zeros(len(prompts), dtype=np.float64)
    pad_id = loaded.tokenizer.pad_token_id
    with torch.inference_mode():
        for indices in length_buckets([len(p) for p in prompts], batch_size):
            batch = pad_left([prompts[i] for i in indices], pad_id, loaded.device)
            logits = last_position_logits(loaded.model, batch).float()
            scores[indices] = (logits[:, positive] - logits[:, negative]).cpu().numpy()
            if on_batch:
                on_batch(len(indices))
    return scores


def score_emails(loaded: Classifier, emails: Sequence[Email], max_tokens: int, batch_size: int = 8,
                 on_batch: Callable[[int], None] | None = None) -> np.ndarray:
    """Scores of emails rendered into the model's prompt under a token budget (see score_prompts)."""
    builder = prompt_builder(loaded, max_tokens)
    return score_prompts(loaded, [builder.build(mail).input_ids for mail in emails], batch_size, on_batch)


def answer_states(loaded: Classifier, emails: Sequence[Email], max_tokens: int, batch_size: int = 8,
                  all_layers: bool = False, on_batch: Callable[[int], None] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(scores (n,), hidden states at the answer position): (n, d) from the last layer, or
    (n, layers + 1, d) with all_layers (the embedding first). One forward pass per batch gives both."""
    negative, positive = label_token_ids(loaded.tokenizer, loaded.spec)
    builder = prompt_builder(loaded, max_tokens)
    prompts = [builder.build(mail).input_ids for mail in emails]
    scores, states = np.zeros(len(prompts)), None
    with torch.inference_mode():
        for indices in length_buckets([len(p) for p in prompts], batch_size):
            batch = pad_left([prompts[i] for i in indices], loaded.tokenizer.pad_token_id, loaded.device)
            out = loaded.model(**batch, output_hidden_states=True, logits_to_keep=1, use_cache=False)
            logits = out.logits[:, -1, :].float()
            scores[indices] = (logits[:, positive] - logits[:, negative]).cpu().numpy()
            hidden = out.hidden_states if all_layers else out.hidden_states[-1:]
            stacked = torch.stack([h[:, -1, :] for h in hidden], 1).float().cpu().numpy()  # left-padded: last column
            if states is None:
                states = np.zeros((len(prompts), *stacked.shape[1:]), dtype=np.float32)
            states[indices] = stacked
            if on_batch:
                on_batch(len(indices))
    if states is None:
        states = np.zeros((0, 1, 0), dtype=np.float32)
    return scores, states if all_layers else states[:, 0]
