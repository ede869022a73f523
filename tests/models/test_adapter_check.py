"""Adapters must be what they claim: weights that do not cover the config's target modules, a
config rank no layer can hold, and a base model only the hub has are refused from the files,
before peft allocates or anything is fetched."""

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

import models.loading as loading
from models.loading import ModelError, load_base, load_with_adapter


@pytest.fixture
def adapter_copy(evaluated_settings, tmp_path):
    """A private copy of a real adapter of the tiny model (trained by the evaluated_settings protocol)."""
    from data.store import Store

    with Store.open(evaluated_settings.store_path, read_only=True) as store:
        source = store.adapters()["path"].iloc[0]
    folder = tmp_path / "adapter"
    shutil.copytree(source, folder)
    return folder


def _weights(folder):
    return load_file(folder / "adapter_model.safetensors")


def _save(folder, tensors):
    save_file(tensors, folder / "adapter_model.safetensors")


def _config(folder, **changes):
    path = folder / "adapter_config.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))


@pytest.fixture
def never_peft(monkeypatch):
    """Fail the test if peft is asked to build the adapter: refusals must come before."""
    import peft

    def refuse(*args, **kwargs):
        raise AssertionError("peft was asked to load a refused adapter")

    monkeypatch.setattr(peft.PeftModel, "from_pretrained", refuse)


def test_a_sound_adapter_loads_and_differs_from_its_base(adapter_copy, evaluated_settings):
    tuned = load_with_adapter(adapter_copy, evaluated_settings.models_dir, "cpu")
    base = load_base(tuned.adapter.model, evaluated_settings.models_dir, "cpu")
    ids = base.tokenizer(["an email about a parcel"], return_tensors="pt")
    with torch.no_grad():
        assert not torch.allclose(tuned.model(**ids).logits, base.model(**ids).logits)


@pytest.mark.parametrize("damage,message", [
    ("empty", "holds no tensors"),
    ("renamed", "match no targeted module"),
    ("half", "are missing"),
    ("shape", "wrong shape"),
])
def test_weights_that_do_not_cover_the_config_are_refused(adapter_copy, evaluated_settings, never_peft, damage,
                                                          message):
    tensors = _weights(adapter_copy)
    if damage == "empty":
        tensors = {}
    elif damage == "renamed":
        tensors = {key.replace("layers", "blocks"): value for key, value in tensors.items()}
    elif damage == "half":
        tensors = dict(sorted(tensors.items())[: len(tensors) // 2])
    else:
        key = next(k for k in tensors if k.endswith("lora_A.weight"))
        tensors[key] = torch.zeros(tensors[key].shape[0], tensors[key].shape[1] + 1)
    _save(adapter_copy, tensors)
    with pytest.raises(ModelError, match=message):
        load_with_adapter(adapter_copy, evaluated_settings.models_dir, "cpu")


def test_a_rank_no_layer_can_hold_is_refused_before_allocating(adapter_copy, evaluated_settings, never_peft):
    _config(adapter_copy, r=1_000_000)
    with pytest.raises(ModelError, match="rank 1000000 .* outside"):
        load_with_adapter(adapter_copy, evaluated_settings.models_dir, "cpu")


def test_targets_of_another_architecture_are_refused(adapter_copy, evaluated_settings, never_peft):
    _config(adapter_copy, target_modules=["c_attn", "c_proj"])  # GPT-2's names
    with pytest.raises(ModelError, match="match no linear layer"):
        load_with_adapter(adapter_copy, evaluated_settings.models_dir, "cpu")


def test_a_base_model_only_the_hub_has_is_never_fetched(adapter_copy, evaluated_settings, monkeypatch):
    meta = adapter_copy / loading.ADAPTER_INFO_FILE
    meta.write_text(json.dumps({**json.loads(meta.read_text()), "model": "someone/llama-70b-phish"}))

    def no_fetch(*args, **kwargs):
        raise AssertionError("tried to load the base model an adapter names")

    monkeypatch.setattr(loading, "load_base", no_fetch)
    with pytest.raises(ModelError, match="never downloads a model an adapter names"):
        load_with_adapter(adapter_copy, evaluated_settings.models_dir, "cpu")
