"""Upper-layer LoRA: the cached lower-layer states reproduce the full forward in every family, an
upper-layer adapter adapts only its layers, scores after reloading like any adapter, and the next
seed on the same training set reuses the states instead of recomputing them."""

from dataclasses import replace

import pytest
import torch
from safetensors import safe_open

from data.records import LoraSettings
from models.finetune import adapter_id, finetune_adapter
from models.layer_reuse import (LOWER_STATES, lower_layer_states, lower_layers_skipped, upper_layer_logits)
from models.loading import load_base, load_with_adapter
from models.scoring import PromptBuilder, last_position_logits, pad_left, score_emails
from models.tiny import TINY_CONFIGS, build_tiny_model


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("reuse-models")


@pytest.mark.parametrize("family", sorted(TINY_CONFIGS))
def test_cached_lower_states_give_the_full_forwards_logits(family, default_model_dir, models_dir, real_emails,
                                                           tmp_path):
    base = load_base(str(build_tiny_model(family, default_model_dir, tmp_path / family)), models_dir, "cpu")
    builder = PromptBuilder(base.tokenizer, base.spec, 96)
    prompts = [builder.build(mail).input_ids for mail in real_emails[:5]]
    assert len({len(p) for p in prompts}) > 1  # unequal lengths: padding is exercised both ways
    pad = base.tokenizer.pad_token_id
    with torch.no_grad():
        full = last_position_logits(base.model, pad_left(prompts, pad, base.device))
        states = lower_layer_states(base.model, prompts, 1, pad, batch_size=2)
        assert [len(s) for s in states] == [len(p) for p in prompts]
        with lower_layers_skipped(base.model, 1):
            upper = upper_layer_logits(base.model, states)
        restored = last_position_logits(base.model, pad_left(prompts, pad, base.device))
    torch.testing.assert_close(upper, full, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(restored, full)  # the lower layers are back after the block


def test_upper_layer_adapter_trains_only_its_layers_and_reuses_states_across_seeds(tiny_model_dir, models_dir,
                                                                                   synthetic_emails, tmp_path):
    emails = synthetic_emails[0][1][:32]
    lora = LoraSettings(r=4, alpha=8, epochs=2, lr=5e-3, batch_size=8, max_tokens=96, seed=1, from_layer=1)
    LOWER_STATES.clear()
    first = finetune_adapter(load_base(str(tiny_model_dir), models_dir, "cpu"), emails, "tiny-set", lora,
                             tmp_path, progress=False)
    assert LOWER_STATES.hits == 0
    second = finetune_adapter(load_base(str(tiny_model_dir), models_dir, "cpu"), emails, "tiny-set",
                              replace(lora, seed=2), tmp_path, progress=False)
    assert LOWER_STATES.hits == 1  # the second seed ran no lower layer
    assert first.id != second.id != adapter_id(str(tiny_model_dir), "tiny-set", replace(lora, from_layer=0))
    with safe_open(f"{first.path}/adapter_model.safetensors", "pt") as handle:
        layers = {k.split("layers.")[1].split(".")[0] for k in handle.keys()}
    assert layers == {"1"}
    assert sum(first.train_loss[-4:]) < sum(first.train_loss[:4])

    tuned = load_with_adapter(first.path, models_dir, "cpu")  # scores through every layer, like any adapter
    base_scores = score_emails(load_base(str(tiny_model_dir), models_dir, "cpu"), emails[:6], 96)
    assert abs(score_emails(tuned, emails[:6], 96) - base_scores).max() > 1e-3


@pytest.mark.parametrize("layer", [2, -1])
def test_a_split_outside_the_model_is_refused(tiny_model_dir, models_dir, synthetic_emails, tmp_path, layer):
    lora = LoraSettings(r=4, alpha=8, batch_size=8, max_tokens=96, from_layer=layer)
    with pytest.raises(ValueError, match="this model has layers 0–1"):
        finetune_adapter(load_base(str(tiny_model_dir), models_dir, "cpu"), synthetic_emails[0][1][:8], "x", lora,
                         tmp_path, progress=False)
    assert not list(tmp_path.iterdir())  # nothing saved
