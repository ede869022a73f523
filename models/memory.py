"""Memory estimates printed before a run: will this model fit on this device?

Weights from the config's parameter count; LoRA parameters with their AdamW state and fp32
gradients; activations of one batch (stored for backward when training; one layer at a time
when scoring); and the runtime itself. Counted from what autograd keeps in transformers'
Llama-style blocks with peft's LoRA layers, checked against the peak RSS of LoRA training
SmolLM2-135M on CPU in fp32 (batch × prompt tokens 8 × 256, 8 × 128, 4 × 256: measured 7.6,
4.1 and 4.6 GB, estimated 7.5, 4.0 and 4.5). Rough by design — within tens of percent on
other models — but enough to say "8B in bf16 fits on one 80 GB GPU, in fp32 on this laptop it
does not" before minutes of loading.
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
    runtime_gb: float = 0.0

    @property
    def total_gb(self) -> float:
        return self.weights_gb + self.lora_gb + self.activations_gb + self.runtime_gb

    def describe(self) -> str:
        return (f"≈ {self.total_gb:.1f} GB (weights {self.weights_gb:.1f}, LoRA + optimizer {self.lora_gb:.2f}, "
                f"activations {self.activations_gb:.1f}, runtime {self.runtime_gb:.1f})")


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


ALL_PROJECTIONS = ("q", "k", "v", "o", "gate", "up", "down")  # LoRA targets when a run names none
RUNTIME_GB = 1.0  # the Python process with torch (0.33 GB on CPU) plus allocator and autograd overhead


def stored_values_per_token(config, lora: LoraSettings | None) -> float:
    """Activation values autograd keeps per token and decoder layer for the backward pass.

    Both RMSNorms keep their input and output (~5 hidden), attention its q, k, v, output and
    the output projection's input (~3.7 hidden), the gated MLP its gate, up, SiLU and product
    (4 intermediate). LoRA dropout gives each adapted projection its own copy of its input.
    """
    hidden, intermediate = config.hidden_size, config.intermediate_size
    values = 8.7 * hidden + 4 * intermediate
    if lora is not None and lora.dropout > 0:
        targets = lora.target_modules or ALL_PROJECTIONS
        values += sum(intermediate if "down" in name else hidden for name in targets)
    return values


def estimate_memory(config, precision: str, lora: LoraSettings | None = None, batch_size: int = 8,
                    tokens: int = 256, n_train: int = 0) -> MemoryEstimate:
    """Memory of scoring (lora None) or LoRA training of a model at a precision (fp32, bf16, 4bit).
    Upper-layer LoRA (lora.from_layer) keeps activations for its layers only, plus the cached
    lower-layer states of the n_train prompts (fp32, `tokens` each at most)."""
    if precision not in BYTES:
        raise ValueError(f"precision must be one of {sorted(BYTES)}")
    weights = parameter_count(config) * BYTES[precision]
    activation_bytes = 2.0 if precision != "fp32" else 4.0
    hidden, layers, heads = config.hidden_size, config.num_hidden_layers, config.num_attention_heads
    # Attention's score matrices, ~3.5 values per head and pair of tokens (scores, mask applied,
    # softmax): what the CPU's masked SDPA path keeps; a GPU's fused kernels keep less.
    per_token = stored_values_per_token(config, lora) + 3.5 * heads * tokens
    per_layer = batch_size * tokens * per_token * activation_bytes
    if lora is None:
        return MemoryEstimate(weights / 1e9, 0.0, per_layer / 1e9, RUNTIME_GB)
    targets = len(lora.target_modules or ALL_PROJECTIONS)
    adapted = layers - lora.from_layer
    lora_params = adapted * targets * lora.r * (2 * hidden)  # rough: A and B of each adapted projection
    lora_bytes = lora_params * (4 + 4 + 8)  # fp32 weights, gradients, AdamW's two moments
    cached = n_train * tokens * hidden * 4 if lora.from_layer else 0
    return MemoryEstimate(weights / 1e9, lora_bytes / 1e9, (per_layer * adapted + cached) / 1e9, RUNTIME_GB)
