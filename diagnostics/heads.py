"""Inside the classifier, head by head, on transformer_lens' TransformerBridge.

Every number here is the product's classifier score (models.scoring): logit(positive
label word) − logit(negative label word) at the last prompt position. What this module
measures about it:

- attention patterns of one email, per layer and head (`attention_patterns`);
- the effect of ablating each head on the score and on F1 over a set of emails, exactly
  (`ablate_heads_exact`: the blocks below the ablated layer run once per batch and are
  reused for every head of that layer) or estimated for all heads at once by attribution
  patching (`attribution_patching`: one forward and one backward pass per batch);
- the logit lens: the score read off the residual stream after each layer;
- per head, how much a LoRA adapter changed its weights (`lora_head_update_norms`).

An adapter is merged into a private copy of the base weights before the bridge boots, so
hook names are TransformerLens' standard ones (blocks.{l}.attn.hook_z, ...) for every
architecture the bridge supports.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from data.records import AdapterInfo
from models.loading import LoadedModel
from models.registry import ModelSpec
from models.scoring import PromptBuilder, label_token_ids, length_buckets, pad_left, prompt_builder  # noqa: F401 (re-exported)

ABLATIONS = ("mean", "zero")
SWEEP_METHODS = ("attribution", "exact")


@dataclass
class HeadModel:
    """A model booted in a TransformerBridge, with what scoring needs."""

    bridge: object
    tokenizer: object
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
        return f"blocks.{layer}.attn.hook_z"


def boot_bridge(loaded: LoadedModel) -> HeadModel:
    """Boot a TransformerBridge on a loaded model; a peft adapter is merged in first.

    Consumes `loaded`: the bridge takes over its model (merging modifies the weights), so
    load a fresh copy for it rather than a model that also scores elsewhere.
    """
    from transformer_lens.model_bridge.sources._bridge_builder import build_bridge_from_module

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


def _batches(hm: HeadModel, prompts: Sequence[list[int]], batch_size: int):
    for indices in length_buckets([len(p) for p in prompts], batch_size):
        yield indices, pad_left([prompts[i] for i in indices], hm.tokenizer.pad_token_id, hm.device)


def score_from_logits(hm: HeadModel, logits: torch.Tensor) -> torch.Tensor:
    """The score from the logits the model's forward returns (..., vocab): already soft-capped by HF
    where the model has it (Gemma 2), so only the label difference is left to take."""
    return (logits[..., hm.positive] - logits[..., hm.negative]).float()


def score_from_residual(hm: HeadModel, residual: torch.Tensor) -> torch.Tensor:
    """The score read off residual-stream vectors (..., d_model): final norm, unembed, the model's
    final soft-capping (which HF applies in the forward, outside the unembedding), label difference."""
    logits = hm.bridge.unembed(hm.bridge.ln_final(residual))
    if hm.softcap:
        logits = torch.tanh(logits / hm.softcap) * hm.softcap
    return score_from_logits(hm, logits)


# ---------------------------------------------------------------- one email


@dataclass(frozen=True)
class AttentionView:
    """One prompt seen from inside: attention patterns, token strings and the logit lens."""

    tokens: list[str]
    patterns: np.ndarray  # float16, (n_layers, n_heads, n_tokens, n_tokens)
    email_span: tuple[int, int]  # [start, end) of the email's tokens inside the prompt
    lens: np.ndarray  # (n_layers + 1,): the score read off the residual after the embedding and each block
    score: float

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


def attention_patterns(hm: HeadModel, prompt: list[int], email_span: tuple[int, int]) -> AttentionView:
    """Every head's attention pattern and the logit lens of one prompt, from one forward pass."""
    patterns = [f"blocks.{layer}.attn.hook_pattern" for layer in range(hm.n_layers)]
    residuals = ["blocks.0.hook_resid_pre"] + [f"blocks.{layer}.hook_resid_post" for layer in range(hm.n_layers)]
    wanted = set(patterns + residuals)
    ids = torch.tensor([prompt], device=hm.device)
    with torch.inference_mode():
        _, cache = hm.bridge.run_with_cache(ids, names_filter=lambda name: name in wanted, use_cache=False)
        lens = score_from_residual(hm, torch.stack([cache[name][0, -1] for name in residuals])).cpu().numpy()
    stacked = torch.stack([cache[name][0] for name in patterns]).to(torch.float16).cpu().numpy()
    tokens = [hm.tokenizer.decode([t]) for t in prompt]
    return AttentionView(tokens, stacked, email_span, lens, float(lens[-1]))


# ---------------------------------------------------------------- ablation


@dataclass
class _BlockInputs:
    """What each block received in a clean forward: hidden states and HF's keyword arguments."""

    hidden: list[torch.Tensor] = field(default_factory=list)
    kwargs: list[dict] = field(default_factory=list)


def _clean_forward(hm: HeadModel, batch: dict[str, torch.Tensor]) -> tuple[_BlockInputs, torch.Tensor]:
    """One clean forward pass recording every block's inputs (to resume from any layer), and its scores."""
    captured = _BlockInputs()

    def record(module, args, kwargs):
        captured.hidden.append(args[0] if args else kwargs["hidden_states"])
        # No KV cache: a resumed pass must not append to the clean pass's cache.
        captured.kwargs.append({k: v for k, v in kwargs.items() if k != "hidden_states"}
                               | {"past_key_values": None, "use_cache": False})

    handles = [block.register_forward_pre_hook(record, with_kwargs=True) for block in hm.bridge.blocks]
    try:
        logits = hm.bridge(batch["input_ids"], attention_mask=batch["attention_mask"], use_cache=False,
                           logits_to_keep=1)
    finally:
        for handle in handles:
            handle.remove()
    return captured, score_from_logits(hm, logits[:, -1, :])


def _repeat_batch(value, copies: int, batch: int):
    """A block argument repeated `copies` times along the batch dimension (tensors of rank ≥ 2 only:
    a 1-D tensor such as cache_position has no batch dimension)."""
    if copies == 1:
        return value
    if isinstance(value, torch.Tensor) and value.ndim >= 2 and value.shape[0] == batch:
        return value.repeat(copies, *[1] * (value.ndim - 1))
    if isinstance(value, tuple):
        return tuple(_repeat_batch(v, copies, batch) for v in value)
    return value


def _resume(hm: HeadModel, inputs: _BlockInputs, start: int, hooks: list, copies: int = 1) -> torch.Tensor:
    """The score when blocks start.. run again from the recorded inputs, under the given hooks.

    With copies > 1 the batch runs that many times side by side (one copy per ablated head).
    """
    batch = inputs.hidden[start].shape[0]
    residual = _repeat_batch(inputs.hidden[start], copies, batch)
    with hm.bridge.hooks(fwd_hooks=hooks):
        for layer in range(start, hm.n_layers):
            kwargs = {k: _repeat_batch(v, copies, batch) for k, v in inputs.kwargs[layer].items()}
            out = hm.bridge.blocks[layer](residual, **kwargs)
            residual = out[0] if isinstance(out, tuple) else out
    return score_from_residual(hm, residual[:, -1, :])


def ablation_hook(head: int, replacement: torch.Tensor | None) -> Callable:
    """A hook_z hook replacing one head's output: zeros, or the given (d_head,) vector (mean ablation)."""
    return stacked_ablation_hook([head], [replacement], batch=None)


def stacked_ablation_hook(heads: Sequence[int], replacements: Sequence[torch.Tensor | None],
                          batch: int | None) -> Callable:
    """A hook_z hook for a batch holding one copy of the emails per head: copy i ablates heads[i]."""

    def hook(z, hook=None):
        z = z.clone()
        for i, (head, replacement) in enumerate(zip(heads, replacements)):
            rows = slice(None) if batch is None else slice(i * batch, (i + 1) * batch)
            z[rows, :, head, :] = 0.0 if replacement is None else replacement.to(z.dtype)
        return z

    return hook


def head_means(hm: HeadModel, prompts: Sequence[list[int]], batch_size: int = 4) -> torch.Tensor:
    """(n_layers, n_heads, d_head): each head's output averaged over the real tokens of the prompts."""
    names = [hm.hook_z(layer) for layer in range(hm.n_layers)]
    total, count = None, 0
    with torch.inference_mode():
        for _, batch in _batches(hm, prompts, batch_size):
            _, cache = hm.bridge.run_with_cache(batch["input_ids"], attention_mask=batch["attention_mask"],
                                                names_filter=lambda n: n in names, use_cache=False)
            real = batch["attention_mask"].bool()
            sums = torch.stack([cache[n][real].sum(0) for n in names]).double()
            total = sums if total is None else total + sums
            count += int(real.sum())
    return (total / count).float()


def ablate_heads_exact(hm: HeadModel, prompts: Sequence[list[int]], heads: Sequence[tuple[int, int]],
                       means: torch.Tensor | None = None, batch_size: int = 4,
                       on_batch: Callable[[int], None] | None = None,
                       heads_per_pass: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Exact ablation of each head on each prompt: (clean scores (n,), ablated scores (n, len(heads))).

    Zero ablation when `means` is None, else mean ablation with head_means(). Per batch of
    emails, one clean pass records every block's input; each head then re-runs only the
    blocks from its own layer up. heads_per_pass heads of a layer run side by side in one
    pass (default 8 on CUDA, where wider batches are nearly free; 4 on CPU, measured 1.13×
    faster than one at a time on SmolLM2 with 2 cores).
    """
    if heads_per_pass is None:
        heads_per_pass = 8 if hm.device.type == "cuda" else 4
    clean = np.zeros(len(prompts))
    ablated = np.zeros((len(prompts), len(heads)))
    by_layer: dict[int, list[int]] = {}
    for column, (layer, _) in enumerate(heads):
        by_layer.setdefault(layer, []).append(column)
    with torch.inference_mode():
        for indices, batch in _batches(hm, prompts, batch_size):
            inputs, clean_scores = _clean_forward(hm, batch)
            clean[indices] = clean_scores.cpu().numpy()
            for layer, columns in sorted(by_layer.items()):
                for first in range(0, len(columns), heads_per_pass):
                    group = columns[first:first + heads_per_pass]
                    group_heads = [heads[c][1] for c in group]
                    replacements = [None if means is None else means[layer, h] for h in group_heads]
                    hook = stacked_ablation_hook(group_heads, replacements, len(indices))
                    scores = _resume(hm, inputs, layer, [(hm.hook_z(layer), hook)], copies=len(group))
                    for i, column in enumerate(group):
                        ablated[indices, column] = scores[i * len(indices):(i + 1) * len(indices)].cpu().numpy()
            if on_batch:
                on_batch(len(indices))
    return clean, ablated


@dataclass(frozen=True)
class AttributionPass:
    """One forward + backward per batch, everything the sweep needs from it.

    Per prompt: the clean score, the logit lens (score after the embedding and after each
    block), Σ_pos z·∂score/∂z and Σ_pos ∂score/∂z per head; and each head's mean output.
    """

    scores: np.ndarray  # (n,)
    lens: np.ndarray  # (n, n_layers + 1)
    z_dot_grad: np.ndarray  # (n, n_layers, n_heads)
    grad_sum: np.ndarray  # (n, n_layers, n_heads, d_head)
    z_total: torch.Tensor  # (n_layers, n_heads, d_head): sum of every head's output over the real tokens
    token_count: int

    @property
    def means(self) -> torch.Tensor:
        """(n_layers, n_heads, d_head): each head's mean output over the real tokens."""
        return (self.z_total / self.token_count).float()

    @classmethod
    def concatenate(cls, parts: Sequence["AttributionPass"]) -> "AttributionPass":
        """The pass over all prompts of several parts, in order (e.g. batches run on other machines)."""
        return cls(np.concatenate([p.scores for p in parts]), np.concatenate([p.lens for p in parts]),
                   np.concatenate([p.z_dot_grad for p in parts]), np.concatenate([p.grad_sum for p in parts]),
                   sum((p.z_total for p in parts[1:]), parts[0].z_total), sum(p.token_count for p in parts))

    def estimated_effects(self, ablation: str) -> np.ndarray:
        """(n, n_layers, n_heads): first-order estimate of ablated − clean score.

        Replacing z by r changes the score by about Σ_pos (r − z)·∂score/∂z.
        """
        if ablation == "zero":
            return -self.z_dot_grad
        return np.einsum("nlhd,lhd->nlh", self.grad_sum, self.means.numpy().astype(np.float64)) - self.z_dot_grad


def attribution_patching(hm: HeadModel, prompts: Sequence[list[int]], batch_size: int = 4,
                         on_batch: Callable[[int], None] | None = None) -> AttributionPass:
    """Gradients of the score with respect to every head's output, one backward pass per batch."""
    n, layers, heads = len(prompts), hm.n_layers, hm.n_heads
    scores, lens = np.zeros(n), np.zeros((n, layers + 1))
    z_dot_grad = np.zeros((n, layers, heads))
    grad_sum = None
    z_total, token_count = None, 0
    for indices, batch in _batches(hm, prompts, batch_size):
        zs: list[torch.Tensor] = []
        residuals: list[torch.Tensor] = []

        def start_graph(x, hook=None):
            return x.detach().requires_grad_(True)  # weights are frozen: the graph starts at the embedding

        def keep_z(z, hook=None):
            zs.append(z)
            return z

        def keep_residual(x, hook=None):
            residuals.append(x[:, -1, :])
            return x

        hooks = [("blocks.0.hook_resid_pre", start_graph), ("blocks.0.hook_resid_pre", keep_residual)]
        hooks += [(hm.hook_z(layer), keep_z) for layer in range(layers)]
        hooks += [(f"blocks.{layer}.hook_resid_post", keep_residual) for layer in range(layers)]
        with torch.enable_grad(), hm.bridge.hooks(fwd_hooks=hooks):
            # Only the answer position's logits: the unembedding of every other position is wasted work.
            logits = hm.bridge(batch["input_ids"], attention_mask=batch["attention_mask"], use_cache=False,
                               logits_to_keep=1)
            score = score_from_logits(hm, logits[:, -1, :])
            grads = torch.autograd.grad(score.sum(), zs)
        real = batch["attention_mask"].bool()[:, :, None, None]
        with torch.no_grad():
            z = torch.stack([t.detach() for t in zs], 1) * real[:, None]  # (b, layer, pos, head, d)
            g = torch.stack(grads, 1) * real[:, None]
            z_dot_grad[indices] = (z * g).sum((2, 4)).double().cpu().numpy()
            batch_grad_sum = g.sum(2).double().cpu().numpy()
            if grad_sum is None:
                grad_sum = np.zeros((n, *batch_grad_sum.shape[1:]))
            grad_sum[indices] = batch_grad_sum
            sums = z.sum((0, 2)).double()
            z_total = sums if z_total is None else z_total + sums
            token_count += int(real.sum())
            scores[indices] = score.detach().cpu().numpy()
            lens[indices] = torch.stack([score_from_residual(hm, r.detach()) for r in residuals], 1).cpu().numpy()
        if on_batch:
            on_batch(len(indices))
    return AttributionPass(scores, lens, z_dot_grad, grad_sum, z_total, token_count)


# ---------------------------------------------------------------- the sweep


def f1_at_zero(scores: np.ndarray, labels: np.ndarray) -> float:
    """F1 of the verdicts `score > 0` (the product's threshold); recall where only positives exist."""
    predicted = scores > 0
    tp = int((predicted & (labels == 1)).sum())
    fp = int((predicted & (labels == 0)).sum())
    fn = int((~predicted & (labels == 1)).sum())
    return 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0


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


def _effect_rows(heads: Sequence[tuple[int, int]], deltas: np.ndarray, clean: np.ndarray, labels: np.ndarray,
                 method: str) -> list[dict]:
    base_f1 = f1_at_zero(clean, labels)
    return [{"layer": layer, "head": head, "method": method, "delta_logit": float(deltas[:, i].mean()),
             "delta_f1": f1_at_zero(clean + deltas[:, i], labels) - base_f1}
            for i, (layer, head) in enumerate(heads)]


def sweep_heads(hm: HeadModel, prompts: Sequence[list[int]], labels: Sequence[int], ablation: str = "mean",
                method: str = "attribution", top_k: int = 10, batch_size: int = 4,
                on_progress: Callable[[str, int, int], None] | None = None) -> HeadSweep:
    """Every head's ablation effect on the mean score and on F1 over the prompts.

    method "attribution": attribution patching for all heads, then exact ablation of the
    top_k heads by |Δ mean score| as a check (both kept, method column says which).
    method "exact": exact ablation of every head. on_progress(stage, done, total).
    """
    if ablation not in ABLATIONS:
        raise ValueError(f"ablation must be one of {ABLATIONS}, not {ablation!r}")
    if method not in SWEEP_METHODS:
        raise ValueError(f"method must be one of {SWEEP_METHODS}, not {method!r}")
    if not prompts:
        raise ValueError("no emails to sweep")
    labels = np.asarray(labels)
    seconds: dict[str, float] = {}

    def reporter(stage: str, total: int) -> Callable[[int], None]:
        done = [0]

        def step(k: int) -> None:
            done[0] += k
            if on_progress:
                on_progress(stage, done[0], total)
        return step

    start = time.perf_counter()
    patched = attribution_patching(hm, prompts, batch_size, reporter("attribution patching", len(prompts)))
    seconds["attribution"] = time.perf_counter() - start
    checked = heads_to_check(hm.n_layers, hm.n_heads, patched, ablation, method, top_k)
    start = time.perf_counter()
    clean, ablated = ablate_heads_exact(hm, prompts, checked, patched.means if ablation == "mean" else None,
                                        batch_size, reporter(f"exact ablation of {len(checked)} heads", len(prompts)))
    seconds["exact"] = time.perf_counter() - start
    return assemble_sweep(hm.adapter_id, hm.n_layers, hm.n_heads, ablation, method, labels, patched, checked, clean,
                          ablated, seconds)


def heads_to_check(n_layers: int, n_heads: int, patched: AttributionPass, ablation: str, method: str,
                   top_k: int) -> list[tuple[int, int]]:
    """The heads exact ablation runs on: the top_k by |estimated Δ mean score|, or all (exact)."""
    all_heads = [(layer, head) for layer in range(n_layers) for head in range(n_heads)]
    if method != "attribution":
        return all_heads
    estimates = patched.estimated_effects(ablation).reshape(len(patched.scores), -1)
    return [all_heads[i] for i in np.argsort(-np.abs(estimates.mean(0)))[:top_k]]


def assemble_sweep(adapter_id: str, n_layers: int, n_heads: int, ablation: str, method: str, labels: Sequence[int],
                   patched: AttributionPass, checked: Sequence[tuple[int, int]], clean: np.ndarray,
                   ablated: np.ndarray, seconds: dict[str, float]) -> HeadSweep:
    """A HeadSweep from the attribution pass and the exact ablation of the checked heads."""
    labels = np.asarray(labels)
    rows = []
    if method == "attribution":
        all_heads = [(layer, head) for layer in range(n_layers) for head in range(n_heads)]
        estimates = patched.estimated_effects(ablation).reshape(len(patched.scores), -1)
        rows = _effect_rows(all_heads, estimates, patched.scores, labels, "attribution")
    rows += _effect_rows(checked, ablated - clean[:, None], clean, labels, "exact")
    lens = pd.DataFrame({"layer": np.arange(-1, n_layers), "mean_score": patched.lens.mean(0),
                         "std_score": patched.lens.std(0)})
    return HeadSweep(adapter_id, ablation, len(clean), pd.DataFrame(rows), lens, f1_at_zero(clean, labels), seconds)


def sweep_params(corpus: str, sample: int, max_tokens: int, seed: int, ablation: str, top_k: int) -> str:
    """The key under which a head sweep is stored (changing any of these is a new sweep)."""
    return json.dumps({"corpus": corpus, "sample": sample, "max_tokens": max_tokens, "seed": seed,
                       "ablation": ablation, "top_k": top_k}, sort_keys=True)


# ---------------------------------------------------------------- adapter vs base

_LORA_KEY = re.compile(r"layers\.(\d+)\.self_attn\.([qkvo])_proj\.lora_([AB])\.weight$")


def lora_head_update_norms(adapter_dir: Path, n_heads: int, n_kv_heads: int, d_head: int) -> pd.DataFrame:
    """Per layer and head, the Frobenius norm of the LoRA update of its q, k, v and o weights.

    Read from the adapter's files (ΔW = B·A·scale): q and o rows/columns of the head, k and
    v of the key-value head it shares (grouped-query attention). `total` combines the four.
    """
    from safetensors.torch import load_file

    config = json.loads((Path(adapter_dir) / "adapter_config.json").read_text())
    rank, alpha = config["r"], config["lora_alpha"]
    scale = alpha / (rank ** 0.5) if config.get("use_rslora") else alpha / rank
    tensors = load_file(str(Path(adapter_dir) / "adapter_model.safetensors"))
    factors: dict[tuple[int, str], dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        found = _LORA_KEY.search(key)
        if found:
            factors.setdefault((int(found[1]), found[2]), {})[found[3]] = value.float()
    if not factors:
        return pd.DataFrame(columns=["layer", "head", "q", "k", "v", "o", "total"])
    per_kv = n_heads // n_kv_heads
    rows: dict[tuple[int, int], dict] = {}
    for (layer, proj), ab in sorted(factors.items()):
        delta = ab["B"] @ ab["A"] * scale  # (out, in)
        for head in range(n_heads):
            if proj == "o":
                block = delta[:, head * d_head:(head + 1) * d_head]
            else:
                slot = head if proj == "q" else head // per_kv
                block = delta[slot * d_head:(slot + 1) * d_head, :]
            rows.setdefault((layer, head), {"layer": layer, "head": head})[proj] = float(block.norm())
    frame = pd.DataFrame(list(rows.values())).fillna(0.0)
    for proj in "qkvo":
        if proj not in frame:
            frame[proj] = 0.0
    frame["total"] = np.sqrt((frame[list("qkvo")] ** 2).sum(1))
    return frame.sort_values(["layer", "head"]).reset_index(drop=True)


def load_head_model(model: str, adapter_dir: Path | None, models_dir: Path, device: str = "auto") -> HeadModel:
    """A fresh copy of the base model (with the adapter merged in) booted in a bridge."""
    from models.loading import load_model

    return boot_bridge(load_model(model, adapter_dir, models_dir, device))


def email_prompt(builder: PromptBuilder, mail) -> tuple[list[int], tuple[int, int]]:
    """A prompt's token ids and the [start, end) span of the email's tokens in it."""
    ids = builder.build(mail).input_ids
    return ids, (len(builder.head), len(ids) - len(builder.tail))
