"""FLOP counts for MFU: the projections and the vocabulary projection equal what torch's own
FLOP counter sees in a real forward; attention is counted over the causal triangle only."""

import torch
from torch.utils.flop_counter import FlopCounterMode

from models.flops import describe_cpu, forward_flops, linear_parameters, lora_training_flops, matmul_rate, scoring_flops
from models.loading import load_base


def test_forward_flops_match_torch_flop_counter_on_a_real_forward(tiny_model_dir, settings):
    loaded = load_base(str(tiny_model_dir), settings.models_dir, "cpu")
    config, length = loaded.model.config, 40
    ids = torch.randint(5, 1000, (1, length))

    def counted(attention: str) -> dict[str, int]:
        loaded.model.set_attn_implementation(attention)
        counter = FlopCounterMode(display=False)
        with counter, torch.inference_mode():
            loaded.model(input_ids=ids, logits_to_keep=1, use_cache=False)
        return {str(op).split(".")[-1]: n for op, n in counter.get_flop_counts()["Global"].items()}

    eager = counted("eager")  # attention as plain matmuls (bmm), which the counter sees
    projections = sum(n for op, n in eager.items() if op in ("mm", "addmm"))
    attention = sum(n for op, n in eager.items() if op == "bmm")
    assert sum(n for op, n in counted("sdpa").items() if op in ("mm", "addmm")) == projections
    heads = config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    ours_attention = 2 * 2 * heads * head_dim * length * (length + 1) / 2 * config.num_hidden_layers
    assert projections == 2 * length * linear_parameters(config) + 2 * config.hidden_size * config.vocab_size
    # torch counts the full square of QKᵀ and attention × V; only the causal triangle is useful work
    assert attention > 0 and abs(attention * (length + 1) / (2 * length) - ours_attention) < 1e-6 * ours_attention
    assert forward_flops(config, length) == projections + ours_attention
    assert scoring_flops(config, [length, length]) == 2 * forward_flops(config, length)
    assert lora_training_flops(config, [length]) == 2 * forward_flops(config, length)
    # full logits cost the vocabulary projection at every position
    assert forward_flops(config, length, logits_positions=length) - forward_flops(config, length) == \
        2 * config.hidden_size * config.vocab_size * (length - 1)


def test_matmul_rate_is_a_positive_rate_in_every_scoring_dtype():
    for dtype in (torch.float32, torch.bfloat16, torch.int8):
        assert matmul_rate(dtype, size=256, seconds=0.05) > 1e8


def test_describe_cpu_reads_the_model_name_and_matmul_features_from_cpuinfo(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nvendor_id\t: GenuineIntel\ncpu family\t: 6\nmodel\t\t: 143\nmodel name\t: Intel(R) Xeon(R) Platinum 8481C\n"
                       "flags\t\t: fpu sse avx2 avx512f avx512_vnni amx_tile amx_bf16 avx512_bf16\n\n"
                       "processor\t: 1\nmodel name\t: Intel(R) Xeon(R) Platinum 8481C\nflags\t\t: fpu\n")
    cpu = describe_cpu(cpuinfo)
    assert cpu["model"] == "Intel(R) Xeon(R) Platinum 8481C"
    assert cpu["family_model"] == "6/143"
    assert cpu["features"] == ["avx2", "avx512f", "avx512_bf16", "avx512_vnni", "amx_tile", "amx_bf16"]
    assert cpu["threads"] == torch.get_num_threads()


def test_describe_cpu_without_cpuinfo_still_names_the_machine(tmp_path):
    cpu = describe_cpu(tmp_path / "missing")
    assert cpu["model"] and cpu["features"] == []


def test_lora_training_flops_match_torch_flop_counter_on_a_real_training_step(tiny_model_dir, settings):
    """A LoRA step (forward, backward) counted by torch equals our count within 5%: torch also sees
    the low-rank matrices' own FLOPs and the full square of attention, which we leave out. Upper-layer
    LoRA's step runs the upper layers only: the lower layers' one forward is lower_layer_flops."""
    from peft import LoraConfig, get_peft_model

    from models.flops import lower_layer_flops

    length = 40
    ids = torch.randint(5, 1000, (1, length))
    for from_layer in (0, 1):
        loaded = load_base(str(tiny_model_dir), settings.models_dir, "cpu")
        only = {"layers_to_transform": [1], "layers_pattern": "layers"} if from_layer else {}
        model = get_peft_model(loaded.model, LoraConfig(r=4, lora_alpha=8, target_modules=list(
            loaded.spec.lora_target_modules), **only))
        counter = FlopCounterMode(display=False)
        with counter:
            model(input_ids=ids, logits_to_keep=1, use_cache=False).logits[:, -1, :2].sum().backward()
        counted = sum(counter.get_flop_counts()["Global"].values())
        config = loaded.model.config
        ours = lora_training_flops(config, [length], from_layer)
        if from_layer:  # this step also ran the lower layer, which a cached run does once per training set
            ours += lower_layer_flops(config, [length], from_layer)
            assert ours < lora_training_flops(config, [length]) * 0.9
        assert abs(counted - ours) < 0.05 * ours, (from_layer, counted, ours)
