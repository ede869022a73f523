"""Scoring precision on CPU: fp32 (the reference), bf16, or int8.

Measured on the 2-core development machine (Sapphire Rapids: AMX for bf16 and int8), a
large matmul runs ~6× faster in bf16 and ~9× faster in int8 than in fp32 (benchmarks/
bench_scoring.py measures it on whatever machine runs it: CPUs without AMX or AVX-512 BF16
emulate bf16 and are far slower, so measure before choosing).

int8 is torchao's dynamic quantization: weights per output channel, activations per token,
int8 × int8 matmuls. LLM activations have a few channels ~100× larger than the rest, which
ruins a shared int8 scale, so SmoothQuant first moves that range into the weights: each
input channel is divided by s = max|x|^α / max|w|^(1-α), measured on calibration emails, and
the weight's column multiplied by it. A LoRA adapter is merged into the base weights first.
Some projections stay in floating point (int8_layout). Measured on SmolLM2 with a fine-tuned
adapter (64 emails, int8 on one projection type at a time), the mean score change was q 0.03,
v 0.03, o 0.04, gate 0.04, up 0.07, k 0.08 and down 0.12 (its gated input is the most
outlier-heavy); int8 on all of them moved scores by 0.15 on average, with k, up and down kept
by 0.08, next to bf16's own 0.05–0.07. The vocabulary projection runs on one position per email.
Which layers stay, and in which dtype, depends on the CPU (measured, zero-shot SpamAssassin,
the corpus most sensitive to it): with AMX, k, up and down stay in bf16 (Sapphire Rapids: F1
within 0.9 points on every corpus at 4.4× the one-email baseline); elsewhere bf16 there moves
F1 by 1.2 points (AVX-512 BF16 on Zen 4/5 shifts SpamAssassin's scores down), so k and down
stay in fp32 and up joins int8 to pay for it (Zen 4: every corpus within 0.2 points, at 3.1×
the one-email baseline). Details: benchmarks/README.md.
"""

from __future__ import annotations

import copy
import importlib.util
import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from data.records import PRECISIONS, VERDICT_THRESHOLD  # noqa: F401 (PRECISIONS: re-exported)

SMOOTHQUANT_ALPHA = 0.5


class PrecisionError(ValueError):
    """A scoring precision that cannot run here; the message says what to do instead."""


@dataclass(frozen=True)
class PrecisionCheck:
    """How far a scoring precision moved scores from fp32 on the same (held-out) emails."""

    precision: str
    emails: int
    mean_abs_score_change: float
    max_abs_score_change: float
    verdicts_flipped: int

    def summary(self) -> str:
        return (f"{self.precision} moved scores by {self.mean_abs_score_change:.3f} on average "
                f"(at most {self.max_abs_score_change:.3f}) against fp32 on {self.emails} held-out training "
                f"emails; {self.verdicts_flipped} verdict(s) flipped")


def compare_with_fp32(precision: str, fp32_scores: np.ndarray, scores: np.ndarray) -> PrecisionCheck:
    """The change `precision` made to fp32's scores of the same emails."""
    change = np.abs(np.asarray(scores, dtype=np.float64) - np.asarray(fp32_scores, dtype=np.float64))
    flipped = (np.asarray(scores) > VERDICT_THRESHOLD) != (np.asarray(fp32_scores) > VERDICT_THRESHOLD)
    return PrecisionCheck(precision, len(change), float(change.mean()) if len(change) else 0.0,
                          float(change.max(initial=0.0)), int(flipped.sum()))


# ---------------------------------------------------------------- precision by measurement
#
# CPU flags do not say which precision is fast: on a 2-core AVX2-only EPYC torch's int8 matmul
# ran at 1.6 GFLOP/s and bf16 at 0.9 against fp32's 85-114, so int8 scoring was 17x slower
# than fp32 while the flags suggested it as the fast option. So the choice rests on a quick
# same-process measurement of each dtype's matmul rate, cached per machine.

RATES_FILE = "matmul-rates.json"
RATE_PROBE_SIZE = 512  # one 512³ matmul: 0.3 s even where bf16 is emulated at ~1 GFLOP/s
RATE_PROBE_SECONDS = 0.2


@dataclass(frozen=True)
class MatmulRates:
    """Each precision's measured matmul rate on this machine (GFLOP/s; int8: integer GOP/s)."""

    machine: str  # what the measurement is valid for: CPU, thread count, torch version
    gflops: dict

    def against_fp32(self, precision: str) -> float:
        """How many times fp32's rate `precision` runs at (below 1: slower than fp32)."""
        return self.gflops[precision] / self.gflops["fp32"]

    def slower_than_fp32(self, precision: str) -> str | None:
        """Why `precision` would be slower than fp32 here, or None when it is not."""
        if precision == "fp32" or precision not in self.gflops or self.against_fp32(precision) >= 1:
            return None
        return (f"{precision} matmuls run at {self.gflops[precision]:.1f} GFLOP/s on this CPU against fp32's "
                f"{self.gflops['fp32']:.1f} ({self.against_fp32(precision):.2f}× fp32; measured): "
                f"{precision} would be slower than fp32 here")

    def too_slow_for(self, precision: str, fp32_seconds: float, limit_seconds: float) -> str | None:
        """Why a run that takes `fp32_seconds` in fp32 should not be run in `precision` here (its
        time estimated from the rates would pass `limit_seconds`), or None. For benchmark rows."""
        estimate = fp32_seconds / self.against_fp32(precision)
        if estimate <= limit_seconds:
            return None
        return (f"skipped: {precision} matmuls run at {self.gflops[precision]:.1f} GFLOP/s here, "
                f"{self.against_fp32(precision):.3f}× fp32's {self.gflops['fp32']:.1f}, so this row would take about "
                f"{estimate / 60:.0f} min (fp32: {fp32_seconds:.0f} s; limit {limit_seconds / 60:.0f} min)")

    def describe(self) -> str:
        return ", ".join(f"{p} {self.gflops[p]:.1f} GFLOP/s" + ("" if p == "fp32" else f" ({self.against_fp32(p):.2f}×)")
                         for p in PRECISIONS if p in self.gflops)


def machine_key() -> str:
    """The machine a rate measurement is valid for: CPU model and features, threads, torch."""
    from models.flops import describe_cpu

    cpu = describe_cpu()
    return (f"{cpu['model']} [{cpu['family_model']}] {'+'.join(cpu['features'])} · {cpu['threads']} threads · "
            f"torch {torch.__version__}")


def measure_matmul_rates(seconds: float = RATE_PROBE_SECONDS, size: int = RATE_PROBE_SIZE) -> MatmulRates:
    """fp32, bf16 and int8 matmul rates measured now, in this process (about a second)."""
    from models.flops import matmul_rate

    dtypes = {"fp32": torch.float32, "bf16": torch.bfloat16, "int8": torch.int8}
    return MatmulRates(machine_key(), {p: matmul_rate(d, size, seconds) / 1e9 for p, d in dtypes.items()})


def matmul_rates(cache_dir: Path) -> MatmulRates:
    """This machine's matmul rates: read from cache_dir's record when it was measured on this
    machine (CPU, threads, torch version), else measured now and recorded."""
    path = Path(cache_dir) / RATES_FILE
    key = machine_key()
    try:
        recorded = json.loads(path.read_text())
        if recorded.get("machine") == key and set(PRECISIONS) <= set(recorded.get("gflops", {})):
            return MatmulRates(key, {p: float(recorded["gflops"][p]) for p in PRECISIONS})
    except (OSError, ValueError, TypeError, AttributeError):
        pass  # missing or unreadable: measure again
    rates = measure_matmul_rates()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"machine": rates.machine, "gflops": rates.gflops}, indent=1))
    except OSError:
        pass  # a read-only cache folder: measure each time
    return rates


def precision_warning(precision: str, device: torch.device, cache_dir: Path) -> str | None:
    """What to tell a user who asked for `precision` where it would be slower than fp32 (CPU,
    by this machine's measured matmul rates), or None."""
    if device.type != "cpu" or precision == "fp32" or precision not in PRECISIONS:
        return None
    slower = matmul_rates(cache_dir).slower_than_fp32(precision)
    return f"{slower}; fp32 would be faster (--precision fp32)" if slower else None


def native_bf16() -> bool:
    """Whether this CPU runs bf16 matmuls in hardware (AVX-512 BF16 or AMX); elsewhere torch
    emulates them, far slower than fp32."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass(frozen=True)
class Int8Layout:
    """Which linear layers the int8 path leaves in floating point (by name suffix), and in which dtype."""

    kept: tuple[str, ...]
    float_dtype: torch.dtype

    @property
    def quantized(self) -> tuple[str, ...]:
        return tuple(p for p in PROJECTIONS if p not in self.kept)


def int8_layout(cpu_features: Sequence[str] | None = None) -> Int8Layout:
    """The int8 layout for a CPU with these /proc/cpuinfo features (default: this one's). AMX
    runs the kept layers in bf16 within the F1 bar; AVX-512 BF16 alone does not (see above)."""
    if cpu_features is None:
        from models.flops import describe_cpu

        cpu_features = describe_cpu()["features"]
    if "amx_bf16" in cpu_features:
        return Int8Layout(("down_proj", "k_proj", "up_proj", "lm_head"), torch.bfloat16)
    return Int8Layout(("down_proj", "k_proj", "lm_head"), torch.float32)


def describe_precision(precision: str) -> str:
    """What a precision means on this machine, for run records and reports."""
    if precision != "int8":
        return precision
    layout = int8_layout()
    quantized = ", ".join(n.removesuffix("_proj") for n in layout.quantized)
    kept = ", ".join(n.removesuffix("_proj") for n in layout.kept if n in PROJECTIONS)
    dtype = "bf16" if layout.float_dtype == torch.bfloat16 else "fp32"
    return f"int8 (SmoothQuant W8A8 on {quantized} projections; {kept} in {dtype})"


def check_precision(precision: str, device: torch.device) -> None:
    """Refuse an unknown precision, or int8 where its kernels do not apply."""
    if precision not in PRECISIONS:
        raise PrecisionError(f"precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
    if precision == "int8" and device.type != "cpu":
        raise PrecisionError("int8 scoring is the CPU path (AMX/VNNI kernels); on a GPU score in bf16 "
                             "(PHISHLENS_PRECISION=bf16)")
    if precision == "int8" and importlib.util.find_spec("torchao") is None:
        raise PrecisionError("int8 scoring needs torchao: `pip install torchao==0.18.0`")


def _torchao():
    """torchao's quantization API (imported on first use; models/__init__ quiets its logging)."""
    import torchao.quantization as quantization
    from torchao.prototype import smoothquant
    from torchao.quantization.quantize_.common.quantization_step import QuantizationStep

    return quantization, smoothquant, QuantizationStep


def smoothquant_int8(model: torch.nn.Module, calibrate, kept: tuple[str, ...],
                     alpha: float = SMOOTHQUANT_ALPHA) -> torch.nn.Module:
    """`model` (merged) with its linear layers, but those whose names end in `kept`, in
    SmoothQuant int8; `calibrate(model)` runs calibration emails through the observed model
    once. Changes `model` in place."""
    quantization, smoothquant, step = _torchao()
    base = quantization.Int8DynamicActivationInt8WeightConfig()
    quantization.quantize_(model, smoothquant.SmoothQuantConfig(base, step.PREPARE, alpha=alpha, use_running_absmax=True),
                           filter_fn=lambda module, name: isinstance(module, torch.nn.Linear) and not name.endswith(kept))
    calibrate(model)
    quantization.quantize_(model, smoothquant.SmoothQuantConfig(base, step.CONVERT, alpha=alpha, use_running_absmax=True),
                           filter_fn=lambda module, name: isinstance(module, smoothquant.SmoothQuantObservedLinear))
    return model


def merged(model: torch.nn.Module) -> torch.nn.Module:
    """A plain model with any LoRA adapter folded into its weights (a copy: the input is kept)."""
    model = copy.deepcopy(model)
    return model.merge_and_unload() if hasattr(model, "merge_and_unload") else model


def merge_adapter(loaded):
    """The scorer with its LoRA adapter folded into the base weights, in place (the caller gives
    up the adapter's own layers): the same scores to float rounding, without an adapter branch
    in every projection — SmolLM2 with r 8 on every projection scored 1.3× faster on CPU merged.
    A 4-bit base keeps its adapter (merging into NF4 weights would round the adapter away)."""
    if loaded.adapter is None or not hasattr(loaded.model, "merge_and_unload") \
            or getattr(loaded.model, "is_loaded_in_4bit", False):
        return loaded
    return replace(loaded, model=loaded.model.merge_and_unload())


def _contiguous_input(module, args):
    return (args[0].contiguous(), *args[1:])


def with_contiguous_head_input(model: torch.nn.Module) -> torch.nn.Module:
    """Hand the vocabulary projection a contiguous input. transformers slices the last position
    out of the hidden states (a strided view); torch 2.13's CPU bf16 linear on a strided 3-D
    input with a frozen weight falls back to a batched matmul over copies of the weight —
    0.5 s instead of 4 ms per batch for SmolLM2, which made a merged adapter score 2.8× slower
    than the base model in bf16. Changes `model` in place."""
    head = model.get_output_embeddings()
    if head is not None:
        head.register_forward_pre_hook(_contiguous_input)
    return model


def at_precision(loaded, precision: str, calibration_prompts: Sequence[list[int]] = ()):
    """A copy of a LoadedModel that scores in `precision`. "fp32" returns it unchanged: the
    device's reference precision, which on CUDA is already bf16 (models.loading.pick_device).

    int8 needs calibration prompts (token ids, e.g. 32 training emails built by the scorer's
    PromptBuilder): SmoothQuant's per-channel activation ranges are measured on them.
    """
    check_precision(precision, loaded.device)
    if precision == "fp32" or loaded.dtype == torch.bfloat16 and precision == "bf16":
        return loaded
    if precision == "bf16":
        model = with_contiguous_head_input(merged(loaded.model).to(torch.bfloat16))
        return replace(loaded, model=model, dtype=torch.bfloat16)
    if not calibration_prompts:
        raise PrecisionError("int8 scoring needs calibration emails to measure activation ranges")
    from models.scoring import score_prompts

    def calibrate(model):
        score_prompts(replace(loaded, model=model), calibration_prompts)

    layout = int8_layout()
    model = smoothquant_int8(with_contiguous_head_input(merged(loaded.model).to(layout.float_dtype)), calibrate,
                             layout.kept)
    return replace(loaded, model=model, dtype=layout.float_dtype)
