"""An adapter must be what it claims, checked from its files before anything is allocated.

peft loads an adapter whose safetensors hold no tensors, or keys that match no module, or half
of its weights, with at most a warning: the model that results is (partly) the base model,
scored and explained under the adapter's name. And it builds every LoRA matrix at the config's
rank before reading the weights, so a config claiming rank 10^5 allocates gigabytes first.
check_adapter_weights reads only the adapter's config and the safetensors header (names and
shapes), against the base model's modules (which exist already, in memory), and refuses:
- a config that is not a LoRA config, or whose rank no target module can hold;
- weights missing for any module the config targets, or keys that match no module there;
- a tensor whose shape is not the LoRA shape of its module at the config's rank.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import torch
from safetensors import safe_open

ADAPTER_CONFIG_FILE = "adapter_config.json"
ADAPTER_WEIGHTS_FILE = "adapter_model.safetensors"


class AdapterMismatch(ValueError):
    """The adapter's files do not match its config or its base model; the message says how."""


def read_adapter_config(adapter_dir: Path) -> dict:
    """adapter_config.json as a dict; AdapterMismatch when it is missing, unreadable or not LoRA."""
    path = Path(adapter_dir) / ADAPTER_CONFIG_FILE
    try:
        config = json.loads(path.read_bytes().decode("utf-8"))
    except FileNotFoundError:
        raise AdapterMismatch(f"{adapter_dir} has no {ADAPTER_CONFIG_FILE}: not a peft adapter folder") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise AdapterMismatch(f"{path} cannot be read as JSON ({exc})") from exc
    if not isinstance(config, dict) or config.get("peft_type") != "LORA":
        raise AdapterMismatch(f"{path} is not a LoRA adapter config (peft_type "
                              f"{config.get('peft_type') if isinstance(config, dict) else None!r})")
    return config


def _rank_for(config: dict, module: str) -> int:
    """The LoRA rank of one module: its rank_pattern entry where one matches, else the config's r."""
    for pattern, rank in (config.get("rank_pattern") or {}).items():
        if re.search(rf"(^|\.){pattern}$", module):
            return int(rank)
    return int(config["r"])


def check_adapter_weights(adapter_dir: Path, base: torch.nn.Module) -> None:
    """Refuse (AdapterMismatch) an adapter whose weights do not cover exactly the modules its config
    targets on `base`, at the config's rank; reads headers only, allocates nothing."""
    from peft import LoraConfig
    from peft.tuners.tuners_utils import check_target_module_exists

    adapter_dir = Path(adapter_dir)
    raw = read_adapter_config(adapter_dir)
    config = LoraConfig.from_pretrained(str(adapter_dir))
    linear = {name: module for name, module in base.named_modules()
              if isinstance(module, torch.nn.Linear) and check_target_module_exists(config, name)}
    if not linear:
        raise AdapterMismatch(f"the adapter's target modules {sorted(config.target_modules or [])} match no linear "
                              f"layer of the base model ({type(base).__name__}): it was made for another architecture")
    expected = {}  # key → the LoRA shape of its module at the config's rank
    for name, module in linear.items():
        rank = _rank_for(raw, name)
        expected[f"base_model.model.{name}.lora_A.weight"] = (rank, module.in_features)
        expected[f"base_model.model.{name}.lora_B.weight"] = (module.out_features, rank)
        if not 0 < rank <= min(module.in_features, module.out_features):
            raise AdapterMismatch(f"the adapter's rank {rank} for {name} is outside 1..{min(module.in_features, module.out_features)}, "
                                  f"what a {module.in_features}×{module.out_features} layer can hold: refused before "
                                  f"allocating it")
    weights = adapter_dir / ADAPTER_WEIGHTS_FILE
    try:
        with safe_open(str(weights), "pt") as handle:
            shapes = {key: tuple(handle.get_slice(key).get_shape()) for key in handle.keys()}
    except FileNotFoundError:
        raise AdapterMismatch(f"{adapter_dir} has no {ADAPTER_WEIGHTS_FILE}; PhishLens loads safetensors only") from None
    except Exception as exc:  # safetensors raises its own error types for a bad header
        raise AdapterMismatch(f"{weights} is not a readable safetensors file ({exc})") from exc
    if not shapes:
        raise AdapterMismatch(f"{weights} holds no tensors: loaded, it would be the base model under the "
                              f"adapter's name")
    base_modules = {name for name, _ in base.named_modules()}

    def matches_nothing(key: str) -> bool:
        path = key.removeprefix("base_model.model.")
        if ".lora_" in path:  # a LoRA part (A, B, a DoRA magnitude...) of a module the config targets
            return path.split(".lora_", 1)[0] not in linear
        # modules_to_save: full weights of a module the base has (a classification head, say)
        return path.rsplit(".", 1)[0].removesuffix(".modules_to_save") not in base_modules

    unexpected = sorted(key for key in shapes if matches_nothing(key))
    missing = sorted(expected.keys() - shapes.keys())
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"{len(missing)} of the {len(expected)} LoRA weights its config targets are missing "
                         f"(e.g. {missing[0]})")
        if unexpected:
            parts.append(f"{len(unexpected)} keys match no targeted module of the base model (e.g. {unexpected[0]})")
        raise AdapterMismatch(f"{weights}: {'; '.join(parts)}. Loaded, it would be partly the base model under the "
                              f"adapter's name; export the adapter again with peft's save_pretrained")
    wrong = [(key, shapes[key], shape) for key, shape in expected.items() if shapes[key] != shape]
    if wrong:
        key, got, want = wrong[0]
        raise AdapterMismatch(f"{weights}: {len(wrong)} tensors have the wrong shape for the base model at the "
                              f"config's rank (e.g. {key}: {got}, expected {want})")
