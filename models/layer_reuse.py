"""Upper-layer LoRA with the frozen lower layers run once per training set.

When LoRA adapts only layers `first_layer` and up, the layers below are frozen and see the same
prompts in every epoch and every seed: their output (the residual stream entering
`first_layer`) is computed once, without gradients, and training runs the upper layers alone
from it. The upper layers then get the cached states as `inputs_embeds` while the lower layers
are swapped for pass-throughs, so each family's own forward (masks, rotary embeddings, Gemma's
sliding-window layer types, the final norm) runs unchanged: the families scale their
embeddings inside the embedding module, which `inputs_embeds` bypasses, as it must here.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from contextlib import contextmanager

import torch

from models.scoring import left_padding, pad_left


def decoder_layers(model) -> torch.nn.ModuleList:
    """The decoder's list of transformer blocks, under peft's wrapper if there is one."""
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    layers = getattr(inner.get_decoder(), "layers", None)
    if not isinstance(layers, torch.nn.ModuleList):
        raise ValueError(f"{type(inner).__name__} has no decoder layer list to split at a layer")
    return layers


def check_first_layer(model, first_layer: int) -> None:
    """Refuse a split that leaves no frozen layer below it or no adapted layer above it."""
    count = len(decoder_layers(model))
    if not 0 < first_layer < count:
        raise ValueError(f"LoRA from layer {first_layer}: this model has layers 0–{count - 1}; pick 1–{count - 1} "
                         "(0 adapts every layer: leave the option unset)")


class _StopAtLayer(Exception):
    def __init__(self, hidden: torch.Tensor):
        self.hidden = hidden


def lower_layer_states(model, prompts: Sequence[list[int]], first_layer: int, pad_id: int,
                       batch_size: int = 8, autocast_dtype: torch.dtype | None = None) -> list[torch.Tensor]:
    """The residual stream entering `first_layer` for each prompt, (tokens, hidden), unpadded.

    The forward stops at that layer (a pre-hook raises), so the layers above cost nothing; prompts
    are run in length order so that batches carry little padding."""
    layers = decoder_layers(model)
    device = next(model.parameters()).device

    def stop(_module, args, kwargs):
        raise _StopAtLayer((args[0] if args else kwargs["hidden_states"]).detach())

    handle = layers[first_layer].register_forward_pre_hook(stop, with_kwargs=True)
    states: list[torch.Tensor | None] = [None] * len(prompts)
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    try:
        with torch.no_grad(), torch.autocast(device.type, dtype=autocast_dtype or torch.bfloat16,
                                             enabled=autocast_dtype is not None):
            for start in range(0, len(order), batch_size):
                chunk = order[start: start + batch_size]
                batch = pad_left([prompts[i] for i in chunk], pad_id, device)
                try:
                    model(**batch, use_cache=False)
                except _StopAtLayer as stopped:
                    hidden = stopped.hidden
                else:  # pragma: no cover - the hook always fires on a model with that layer
                    raise RuntimeError(f"layer {first_layer} never ran")
                for row, index in enumerate(chunk):
                    states[index] = hidden[row, hidden.shape[1] - len(prompts[index]):].clone()
    finally:
        handle.remove()
    return states


class _PassThrough(torch.nn.Module):
    """Stands in for a frozen lower layer whose output is already in the cached states."""

    def forward(self, hidden_states, *args, **kwargs):
        return hidden_states


@contextmanager
def lower_layers_skipped(model, first_layer: int):
    """Within the block the model's layers below `first_layer` pass their input through."""
    layers = decoder_layers(model)
    lower = [layers[i] for i in range(first_layer)]
    try:
        for i in range(first_layer):
            layers[i] = _PassThrough()
        yield model
    finally:
        for i, layer in enumerate(lower):
            layers[i] = layer


def pad_states_left(states: Sequence[torch.Tensor]) -> dict[str, torch.Tensor]:
    """Cached states as one left-padded batch: inputs_embeds, attention_mask and position_ids
    counting real tokens only (as models.scoring.pad_left does for token ids)."""
    width = max(len(s) for s in states)
    first = states[0]
    embeds = first.new_zeros((len(states), width, first.shape[-1]))
    for row, state in enumerate(states):
        embeds[row, width - len(state):] = state
    mask, positions = left_padding([len(s) for s in states], first.device)
    return {"inputs_embeds": embeds, "attention_mask": mask, "position_ids": positions}


def upper_layer_logits(model, states: Sequence[torch.Tensor]) -> torch.Tensor:
    """Last-position vocabulary logits, (batch, vocab), from cached lower-layer states; call it
    inside `lower_layers_skipped`."""
    return model(**pad_states_left(states), logits_to_keep=1, use_cache=False).logits[:, -1, :]


def states_key(weights_sha256: str, first_layer: int, precision: str, prompts: Sequence[list[int]]) -> str:
    """What cached states depend on: the base weights, the split, the precision and every token."""
    digest = hashlib.sha256(f"{weights_sha256}:{first_layer}:{precision}".encode())
    for ids in prompts:
        digest.update(len(ids).to_bytes(4, "little"))
        digest.update(torch.tensor(ids, dtype=torch.int32).numpy().tobytes())
    return digest.hexdigest()


class StatesCache:
    """The most recent training set's lower-layer states, kept for the next adapter on it (the
    next seed of a study): one entry, so memory holds one training set's states at most."""

    def __init__(self):
        self.key: str | None = None
        self.states: list[torch.Tensor] | None = None
        self.hits = 0

    def get(self, key: str, compute) -> list[torch.Tensor]:
        if key != self.key:
            self.key, self.states = None, None  # free the old entry before computing the new one
            self.states, self.key = compute(), key
        else:
            self.hits += 1
        return self.states

    def clear(self) -> None:
        self.key, self.states, self.hits = None, None, 0


LOWER_STATES = StatesCache()
