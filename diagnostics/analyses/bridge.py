"""The classifier booted in transformer-lens' TransformerBridge, and the hook vocabulary.

Every number read through the bridge is the product's classifier score (models.scoring):
logit(positive label word) − logit(negative label word) at the last prompt position. An
adapter is merged into a private copy of the base weights before the bridge boots, so hook
names are TransformerLens' standard ones for every architecture the bridge supports; they are
built here and nowhere else.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from transformers import PreTrainedTokenizerBase

from data.records import AdapterInfo, AttentionView, Email, EvaluationTarget
from models.loading import LoadedModel, load_tokenizer, prepare_model, read_adapter_info
from models.registry import ModelSpec, resolve_model
from models.scoring import PromptBuilder, adapter_prompt_builder, label_token_ids, length_buckets, pad_left

if TYPE_CHECKING:  # importing transformer_lens takes seconds: only where a bridge boots
    from transformer_lens.model_bridge import TransformerBridge


# ---------------------------------------------------------------- hook names (TransformerLens' vocabulary)

def hook_z(layer: int) -> str:
    """Each head's output before the output projection: (batch, pos, head, d_head)."""
    return f"blocks.{layer}.attn.hook_z"


def hook_pattern(layer: int) -> str:
    """Attention probabilities: (batch, head, query, key)."""
    return f"blocks.{layer}.attn.hook_pattern"


def hook_resid_pre(layer: int) -> str:
    return f"blocks.{layer}.hook_resid_pre"


def hook_resid_post(layer: int) -> str:
    return f"blocks.{layer}.hook_resid_post"


def residual_hooks(n_layers: int) -> list[str]:
    """The residual stream after the embedding and after each block: the logit lens' readouts."""
    return [hook_resid_pre(0)] + [hook_resid_post(layer) for layer in range(n_layers)]


@dataclass
class HeadModel:
    """A model booted in a TransformerBridge, with what scoring needs."""

    bridge: TransformerBridge
    tokenizer: PreTrainedTokenizerBase
    spec: ModelSpec
    adapter_id: str
    negative: int
    positive: int
    device: torch.device
    n_layers: int
    n_heads: int
    softcap: float | None  # Gemma 2's final logit soft-capping, applied to the score too
    adapter: AdapterInfo | None = None  # its in-context examples (FTICL) are part of every prompt

    def hook_z(self, layer: int) -> str:
        return hook_z(layer)


def boot_bridge(loaded: LoadedModel) -> HeadModel:
    """Boot a TransformerBridge on a loaded model; a peft adapter is merged in first.

    Consumes `loaded`: the bridge takes over its model (merging modifies the weights), so
    load a fresh copy for it rather than a model that also scores elsewhere.
    """
    from transformer_lens.model_bridge.sources import build_bridge_from_module

    model = loaded.model
    if hasattr(model, "merge_and_unload"):
        model = model.merge_and_unload()
    model.requires_grad_(False)
    bridge = build_bridge_from_module(model, type(model).__name__, hf_config=model.config,
                                      tokenizer=loaded.tokenizer, dtype=loaded.dtype, device=loaded.device,
                                      model_name=loaded.adapter_id)
    bridge.eval()
    negative, positive = label_token_ids(loaded.tokenizer, loaded.spec)
    return HeadModel(bridge, loaded.tokenizer, loaded.spec, loaded.adapter_id, negative, positive, loaded.device,
                     bridge.cfg.n_layers, bridge.cfg.n_heads, getattr(model.config, "final_logit_softcapping", None),
                     loaded.adapter)


def batches(hm: HeadModel, prompts: Sequence[list[int]], batch_size: int):
    for indices in length_buckets([len(p) for p in prompts], batch_size):
        yield indices, pad_left([prompts[i] for i in indices], hm.tokenizer.pad_token_id, hm.device)


def score_from_logits(hm: HeadModel, logits: torch.Tensor) -> torch.Tensor:
    """The score from the logits the model's forward returns (..., vocab): already soft-capped by HF
    where the model has it (Gemma 2), so only the label difference is left to take."""
    return (logits[..., hm.positive] - logits[..., hm.negative]).float()


def score_from_residual(hm: HeadModel, residual: torch.Tensor) -> torch.Tensor:
    """The score read off residual-stream vectors (..., d_model): final norm, unembed, the model's
    final soft-capping (which HF applies in the forward, outside the unembedding), label difference.
    The sweep's logit lens uses it on the residuals its attribution pass keeps (no ActivationCache
    is built there for the library's logit_lens to read); tests/diagnostics/test_heads.py checks
    it equal to the library's lens on one email."""
    logits = hm.bridge.unembed(hm.bridge.ln_final(residual))
    if hm.softcap:
        logits = torch.tanh(logits / hm.softcap) * hm.softcap
    return score_from_logits(hm, logits)


def attention_patterns(hm: HeadModel, prompt: list[int], email_span: tuple[int, int]) -> AttentionView:
    """Every head's attention pattern and the logit lens of one prompt, from one forward pass; the
    lens is transformer_lens.tools.analysis.logit_lens read off that pass's cache (the real final
    norm, unembedding and output transform), as the score difference of the two label words."""
    from transformer_lens.tools.analysis import logit_lens

    patterns = [hook_pattern(layer) for layer in range(hm.n_layers)]
    residuals = [hook_resid_pre(layer) for layer in range(hm.n_layers)] + [hook_resid_post(hm.n_layers - 1)]
    wanted = set(patterns + residuals)
    ids = torch.tensor([prompt], device=hm.device)
    with torch.inference_mode():
        _, cache = hm.bridge.run_with_cache(ids, names_filter=lambda name: name in wanted, use_cache=False)
        read = logit_lens(cache, vocab=[hm.negative, hm.positive]).values[:, 0, :].float()  # (n_layers + 1, 2)
    lens = (read[:, 1] - read[:, 0]).cpu().numpy().astype(np.float64)
    stacked = torch.stack([cache[name][0] for name in patterns]).to(torch.float16).cpu().numpy()
    tokens = [hm.tokenizer.decode([t]) for t in prompt]
    return AttentionView(tokens, stacked, email_span, lens, float(lens[-1]))


def load_head_model(model: str, adapter_dir: Path | None, models_dir: Path, device: str = "auto") -> HeadModel:
    """A fresh copy of the base model (with the adapter merged in) booted in a bridge."""
    from models.loading import load_model

    return boot_bridge(load_model(model, adapter_dir, models_dir, device))


def sample_prompts(target: EvaluationTarget, emails: Sequence[Email], max_tokens: int,
                   models_dir: Path) -> list[tuple[int, ...]]:
    """The target's prompts of these emails, built from the tokenizer alone (no model loaded), so
    that the driver plans and every worker reads exactly the same tokens."""
    spec = resolve_model(target.model)
    adapter = read_adapter_info(target.adapter_dir) if target.adapter_dir else None
    builder = adapter_prompt_builder(load_tokenizer(prepare_model(spec, models_dir)), spec, adapter, max_tokens)
    return [tuple(email_prompt(builder, mail)[0]) for mail in emails]


def email_prompt(builder: PromptBuilder, mail) -> tuple[list[int], tuple[int, int]]:
    """A prompt's token ids and the [start, end) span of the email's tokens in it."""
    ids = builder.build(mail).input_ids
    return ids, (len(builder.head), len(ids) - len(builder.tail))
