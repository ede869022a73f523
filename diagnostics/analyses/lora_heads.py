"""What a LoRA adapter changed, head by head: the norm of its update to each head's weights."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import torch

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


def adapter_head_norms(adapter_dir: Path, model: str, models_dir: Path) -> pd.DataFrame:
    """lora_head_update_norms of an adapter of `model`, its head layout read from the model's config."""
    from transformers import AutoConfig

    from models.loading import prepare_model
    from models.registry import resolve_model

    config = AutoConfig.from_pretrained(prepare_model(resolve_model(model), models_dir))
    heads = config.num_attention_heads
    d_head = getattr(config, "head_dim", None) or config.hidden_size // heads
    return lora_head_update_norms(Path(adapter_dir), heads, getattr(config, "num_key_value_heads", heads), d_head)


def update_effect_correlation(norms: pd.DataFrame, effects: pd.DataFrame) -> tuple[pd.DataFrame, float]:
    """Per head, the LoRA update's norm beside the head's ablation effect, and the Spearman rank
    correlation of the update size with |Δ mean score| (does fine-tuning change the heads that matter?)."""
    joined = norms.merge(effects, on=["layer", "head"])
    return joined, float(joined["total"].corr(joined["delta_logit"].abs(), method="spearman"))
