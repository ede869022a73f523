"""Memory estimates against the real default model's size and the published model sizes."""

import pytest
from transformers import AutoConfig, LlamaConfig

from data.records import LoraSettings
from models.memory import estimate_memory, parameter_count


def test_parameter_count_matches_the_default_model(default_model_dir):
    from models.loading import load_base

    config = AutoConfig.from_pretrained(default_model_dir)
    loaded = load_base("smollm2-135m", default_model_dir.parent, "cpu")
    actual = sum(p.numel() for p in loaded.model.parameters())
    assert parameter_count(config) == pytest.approx(actual, rel=0.01)


def test_an_8b_model_fits_one_80gb_gpu_in_bf16_and_4bit_is_smaller():
    llama_8b = LlamaConfig(hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
                           num_key_value_heads=8, vocab_size=128256, tie_word_embeddings=False)
    assert parameter_count(llama_8b) / 1e9 == pytest.approx(8.03, rel=0.02)
    lora = LoraSettings(r=16, alpha=32, max_tokens=512)
    bf16 = estimate_memory(llama_8b, "bf16", lora, batch_size=8, tokens=512)
    four_bit = estimate_memory(llama_8b, "4bit", lora, batch_size=8, tokens=512)
    assert 15 < bf16.weights_gb < 17 and bf16.total_gb < 80
    assert four_bit.weights_gb < bf16.weights_gb / 3
    assert estimate_memory(llama_8b, "fp32").weights_gb > 30  # why CPU fp32 is no place for it
    with pytest.raises(ValueError, match="precision must be one of"):
        estimate_memory(llama_8b, "int3")


def test_lora_dropout_and_longer_prompts_cost_activation_memory(default_model_dir):
    """Dropout keeps a copy of each adapted projection's input; attention's scores grow with the
    square of the prompt, the rest linearly (what makes `train`'s estimate follow the measured
    peak RSS: benchmarks/last-run-training.json)."""
    from dataclasses import replace

    config = AutoConfig.from_pretrained(default_model_dir)
    lora = LoraSettings(max_tokens=256, batch_size=8, dropout=0.05)
    with_dropout = estimate_memory(config, "fp32", lora, 8, 256)
    without = estimate_memory(config, "fp32", replace(lora, dropout=0.0), 8, 256)
    assert without.activations_gb < with_dropout.activations_gb < 1.5 * without.activations_gb
    half_prompt = estimate_memory(config, "fp32", lora, 8, 128)
    half_batch = estimate_memory(config, "fp32", lora, 4, 256)
    assert half_prompt.activations_gb < half_batch.activations_gb == pytest.approx(with_dropout.activations_gb / 2)
    assert with_dropout.total_gb == pytest.approx(with_dropout.weights_gb + with_dropout.lora_gb
                                                  + with_dropout.activations_gb + with_dropout.runtime_gb)


def test_upper_layer_lora_keeps_activations_for_its_layers_plus_the_cached_states(default_model_dir):
    from dataclasses import replace

    config = AutoConfig.from_pretrained(default_model_dir)
    every = estimate_memory(config, "fp32", LoraSettings(), 8, 256, n_train=1000)
    upper = estimate_memory(config, "fp32", LoraSettings(from_layer=config.num_hidden_layers // 2), 8, 256,
                            n_train=1000)
    cached_gb = 1000 * 256 * config.hidden_size * 4 / 1e9
    assert upper.activations_gb == pytest.approx(every.activations_gb / 2 + cached_gb)
    assert upper.lora_gb == pytest.approx(every.lora_gb / 2)
    assert estimate_memory(config, "fp32", replace(LoraSettings(), from_layer=15), 8, 256).activations_gb \
        == pytest.approx(every.activations_gb / 2)  # no training emails named: no cache counted
