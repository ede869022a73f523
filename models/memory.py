"""Memory estimates printed before a run: will this model fit on this device?

Weights from the config's parameter count; LoRA parameters with their AdamW state and fp32
gradients; activations of one batch (stored for backward when training; one layer at a time
when scoring). Rough by design — within tens of percent — but enough to say "8B in bf16
fits on one 80 GB GPU, in fp32 on this laptop it does not" before minutes of loading.
"""

from __future__ import annotations

from dataclasses import dataclass

from data.records import LoraSettings

BYTES = {"fp32": 4.0, "bf16": 2.0, "4bit": 0.5 + 0.0625}  # nf4 + its block scales


@dataclass(frozen=True)
class MemoryEstimate:
    weights_gb: float
    lora_gb: float
    activations_gb: float

    @property
    def total_gb(self) -> float:
        return self.weights_gb + self.lora_gb + self.activations_gb

    def describe(self) -> str:
        return (f"≈ {self.total_gb:.1f} GB (weights {self.weights_gb:.1f}, LoRA + optimizer {self.lora_gb:.2f}, "
                f"activations {self.activations_gb:.1f})")


def parameter_count(config) -> int:
    """Parameters of a decoder-only transformer from its HF config (embeddings counted once if tied)."""
    hidden, layers, vocab = config.hidden_size, config.num_hidden_layers, config.vocab_size
    heads = config.num_attention_heads
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    head_dim = getattr(config, "head_dim", None) or hidden // heads
    attention = hidden * head_dim * (2 * heads + 2 * kv_heads)
    mlp = 3 * hidden * config.intermediate_size
    embeddings = vocab * hidden * (1 if getattr(config, "tie_word_embeddings", False) else 2)
    return layers * (attention + mlp + 2 * hidden) + embeddings


def prompt_tokens(lora: LoraSettings) -> int:
    """Upper bound of a training prompt's length: the email's budget plus, with FTICL, each
    in-context example's budget and its copy of the template (~48 tokens with the default one)."""
    return lora.max_tokens + lora.context_examples * (lora.context_tokens + 48)


def estimate_memory(config, precision: str, lora: LoraSettings | None = None, batch_size: int = 8,
                    tokens: int = 256) -> MemoryEstimate:
    """Memory of scoring (lora None) or LoRA training of a model at a precision (fp32, bf16, 4bit)."""
    if precision not in BYTES:
        raise ValueError(f"precision must be one of {sorted(BYTES)}")
    weights = parameter_count(config) * BYTES[precision]
    activation_bytes = 2.0 if precision != "fp32" else 4.0
    hidden, layers, heads = config.hidden_size, config.num_hidden_layers, config.num_attention_heads
    # Per layer and token: ~34·hidden bytes of bf16 activations kept for backward (attention,
    # MLP, norms; Korthikanti et al. 2022) plus the eager attention matrices, 5·heads·tokens.
    per_layer = batch_size * tokens * (34 * hidden / 2 * activation_bytes + 5 * heads * tokens * activation_bytes / 2)
    if lora is None:
        return MemoryEstimate(weights / 1e9, 0.0, per_layer / 1e9)
    targets = len(lora.target_modules or ("q", "k", "v", "o", "gate", "up", "down"))
    lora_params = layers * targets * lora.r * (2 * hidden)  # rough: A and B of each adapted projection
    lora_bytes = lora_params * (4 + 4 + 8)  # fp32 weights, gradients, AdamW's two moments
    return MemoryEstimate(weights / 1e9, lora_bytes / 1e9, per_layer * layers / 1e9)
