"""Model FLOPs of a decoder-only transformer, counted from its HF config, and the machine's
achievable matmul rate: together they give model FLOPs utilization (MFU). describe_cpu names
the CPU a rate was measured on (rates differ several-fold between CPUs and dtypes).

Only useful work is counted: real tokens (never padding), causal attention's lower
triangle, and the vocabulary projection only where logits are read. Norms, activations,
softmax and rotary embeddings are left out (well under 1% here), as is usual for MFU.
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Sequence
from pathlib import Path

import torch


def linear_parameters(config) -> int:
    """Weights of the attention and MLP projections of all layers (embeddings excluded)."""
    hidden, heads = config.hidden_size, config.num_attention_heads
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    head_dim = getattr(config, "head_dim", None) or hidden // heads
    attention = hidden * head_dim * (2 * heads + 2 * kv_heads)
    mlp = 3 * hidden * config.intermediate_size
    return config.num_hidden_layers * (attention + mlp)


def forward_flops(config, length: int, logits_positions: int = 1, layers: int | None = None) -> float:
    """FLOPs of one forward pass over a sequence of `length` real tokens, with vocabulary
    logits at `logits_positions` positions (1: the classifier reads the last one only; 0: none).
    `layers` counts that many transformer blocks instead of all of them."""
    heads = config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    share = (config.num_hidden_layers if layers is None else layers) / config.num_hidden_layers
    projections = 2 * length * linear_parameters(config) * share
    # QKᵀ and attention × V over the causal lower triangle, every head and layer.
    attention = 2 * 2 * heads * head_dim * (length * (length + 1) / 2) * config.num_hidden_layers * share
    unembedding = 2 * config.hidden_size * config.vocab_size * logits_positions
    return projections + attention + unembedding


def scoring_flops(config, lengths: Sequence[int]) -> float:
    """Useful FLOPs of scoring prompts of these lengths (last-position logits only)."""
    return sum(forward_flops(config, n) for n in lengths)


def lora_training_flops(config, lengths: Sequence[int], from_layer: int = 0) -> float:
    """Useful FLOPs of LoRA training steps over prompts of these lengths: the forward pass and
    the backward pass to the activations (≈ the forward again); frozen weights get no gradient
    and the low-rank updates' own FLOPs are under 1% at r ≤ 16. With upper-layer LoRA
    (from_layer > 0) the steps run the layers from there up only: the lower layers' one forward
    per training set is `lower_layer_flops`."""
    upper = config.num_hidden_layers - from_layer
    return 2 * sum(forward_flops(config, n, layers=upper) for n in lengths)


def lower_layer_flops(config, lengths: Sequence[int], from_layer: int) -> float:
    """FLOPs of running layers below `from_layer` once over prompts of these lengths (no logits)."""
    return sum(forward_flops(config, n, logits_positions=0, layers=from_layer) for n in lengths)


def matmul_rate(dtype: torch.dtype = torch.float32, size: int = 2048, seconds: float = 2.0,
                device: str = "cpu") -> float:
    """Achievable FLOP/s of one large square matmul in this dtype, with the current thread
    settings: the ceiling MFU is measured against. torch.int8 times torch._int_mm (int8 × int8
    → int32, the kernel dynamically quantized linear layers run; "FLOP" counts its integer ops)."""
    if dtype == torch.int8:
        a = torch.randint(-127, 128, (size, size), dtype=dtype, device=device)
        b = torch.randint(-127, 128, (size, size), dtype=dtype, device=device)
        multiply = torch._int_mm
    else:
        a = torch.randn(size, size, dtype=dtype, device=device)
        b = torch.randn(size, size, dtype=dtype, device=device)
        multiply = torch.mm
    multiply(a, b)  # warm-up: threads started, kernels chosen
    if device == "cuda":
        torch.cuda.synchronize()
    runs, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        multiply(a, b)
        runs += 1
    if device == "cuda":
        torch.cuda.synchronize()
    return 2 * size**3 * runs / (time.perf_counter() - started)


# CPU features that decide which precision runs fast: AMX tiles and AVX-512 BF16 run bf16 in
# hardware, VNNI int8; without them torch emulates bf16 (slower than fp32).
MATMUL_FEATURES = ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "amx_tile", "amx_bf16", "amx_int8")


def describe_cpu(cpuinfo: Path = Path("/proc/cpuinfo")) -> dict:
    """The CPU a benchmark ran on: model name, family/model numbers, cores, torch's thread count,
    and its matmul-relevant features (Linux /proc/cpuinfo; elsewhere the model name only), so that
    runs on different machines are not compared as if they were one. Cloud VMs may report a bare
    "AMD EPYC": the family/model numbers still tell the generations apart (25/17 is Zen 4)."""
    fields, flags = {"model name": platform.processor() or platform.machine()}, set()
    try:
        for line in cpuinfo.read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "flags":
                flags = set(value.split())
                break
            fields[key.strip()] = value.strip()
    except OSError:
        pass
    family = "/".join(fields[k] for k in ("cpu family", "model") if k in fields)
    return {"model": fields["model name"], "family_model": family, "cpus": os.cpu_count(),
            "threads": torch.get_num_threads(), "features": [f for f in MATMUL_FEATURES if f in flags]}
