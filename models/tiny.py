"""Tiny random-weight models for fast tests (real architectures, real tokenizer)."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import (AutoModelForCausalLM, Gemma2Config, Gemma3TextConfig, GemmaConfig, LlamaConfig,
                          MistralConfig, Qwen2Config)

TINY_CONFIGS = {
    "llama": lambda vocab: LlamaConfig(vocab_size=vocab, hidden_size=64, intermediate_size=128,
                                       num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                       max_position_embeddings=512, tie_word_embeddings=True),
    "mistral": lambda vocab: MistralConfig(vocab_size=vocab, hidden_size=64, intermediate_size=128,
                                           num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                           max_position_embeddings=512, sliding_window=None),
    "gemma": lambda vocab: GemmaConfig(vocab_size=vocab, hidden_size=64, intermediate_size=128,
                                       num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=1,
                                       head_dim=16, max_position_embeddings=512),
    "gemma2": lambda vocab: Gemma2Config(vocab_size=vocab, hidden_size=64, intermediate_size=128,
                                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                         head_dim=16, max_position_embeddings=512, sliding_window=32),
    "gemma3": lambda vocab: Gemma3TextConfig(vocab_size=vocab, hidden_size=64, intermediate_size=128,
                                             num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                             head_dim=16, max_position_embeddings=512, sliding_window=32),
    "qwen2": lambda vocab: Qwen2Config(vocab_size=vocab, hidden_size=64, intermediate_size=128,
                                       num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                       max_position_embeddings=512, tie_word_embeddings=True),
}


def build_tiny_model(family: str, tokenizer_dir: Path, out_dir: Path, seed: int = 0) -> Path:
    """Save a random-weight model of `family` with the tokenizer from tokenizer_dir."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    torch.manual_seed(seed)
    config = TINY_CONFIGS[family](len(tokenizer))
    config.pad_token_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
    return Path(out_dir)
