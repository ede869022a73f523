"""The classifier protocol: all that diagnostics and pages know about a model.

A PhishLens classifier is a causal LM read at the answer position of a fixed prompt: its
score is logit(positive label word) − logit(negative label word) (data.records.verdict turns
it into a verdict). `models.loading.LoadedModel` (Hugging Face, optionally with a peft
adapter) implements `Classifier`; `diagnostics.analyses.bridge.HeadModel` (the same model booted in
transformer-lens' TransformerBridge, adapter merged) implements `PromptReader`, the part that
builds prompts. Code that needs more than these names reaches for the concrete type and says so.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch
from transformers import PreTrainedTokenizerBase

from data.records import AdapterInfo
from models.registry import ModelSpec


@runtime_checkable
class PromptReader(Protocol):
    """What building a scorer's prompts needs: its tokenizer, its family's template and label
    words (spec), and its adapter (an FTICL adapter's prompts start with its examples)."""

    spec: ModelSpec
    tokenizer: PreTrainedTokenizerBase
    adapter: AdapterInfo | None
    device: torch.device

    @property
    def adapter_id(self) -> str: ...


@runtime_checkable
class Classifier(PromptReader, Protocol):
    """A scorer whose forward pass diagnostics can run: `model(input_ids=…, attention_mask=…,
    logits_to_keep=1)` returns next-token logits (models.scoring.score_prompts scores with it)."""

    model: torch.nn.Module
    dtype: torch.dtype
