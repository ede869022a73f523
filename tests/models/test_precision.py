import numpy as np
import pytest
import torch

from models.loading import load_base, load_with_adapter
from models.precision import (PrecisionError, at_precision, check_precision, compare_with_fp32, describe_precision,
                              int8_layout)
from models.scoring import PromptBuilder, score_emails


def test_unknown_precision_and_int8_off_cpu_are_refused():
    with pytest.raises(PrecisionError, match="fp32, bf16, int8"):
        check_precision("fp16", torch.device("cpu"))
    with pytest.raises(PrecisionError, match="on a GPU score in bf16"):
        check_precision("int8", torch.device("cuda"))


def test_fp32_is_the_model_unchanged(tiny_model_dir, settings):
    loaded = load_base(str(tiny_model_dir), settings.models_dir, "cpu")
    assert at_precision(loaded, "fp32") is loaded
    assert describe_precision("fp32") == "fp32"
    assert describe_precision("int8").startswith("int8 (SmoothQuant W8A8 on q, v, o, gate")


def test_int8_layout_keeps_bf16_layers_only_where_the_cpu_has_amx():
    sapphire_rapids = int8_layout(["avx512f", "avx512_bf16", "avx512_vnni", "amx_tile", "amx_bf16", "amx_int8"])
    assert sapphire_rapids.float_dtype == torch.bfloat16
    assert sapphire_rapids.quantized == ("q_proj", "v_proj", "o_proj", "gate_proj")
    zen4 = int8_layout(["avx2", "avx512f", "avx512_bf16", "avx512_vnni"])  # bf16 in hardware, but no AMX
    assert zen4.float_dtype == torch.float32
    assert zen4.quantized == ("q_proj", "v_proj", "o_proj", "gate_proj", "up_proj")
    assert "lm_head" in zen4.kept and int8_layout([]) == zen4


def test_bf16_scores_real_emails_close_to_fp32_and_keeps_the_original(default_model_dir, settings, real_emails):
    loaded = load_base("smollm2-135m", settings.models_dir, "cpu")
    fp32 = score_emails(loaded, real_emails, 128)
    half = at_precision(loaded, "bf16")
    assert next(half.model.parameters()).dtype == torch.bfloat16 and half.dtype == torch.bfloat16
    assert next(loaded.model.parameters()).dtype == torch.float32  # a copy: the fp32 scorer still works
    scores = score_emails(half, real_emails, 128)
    assert np.abs(scores - fp32).max() < 0.5
    assert np.corrcoef(scores, fp32)[0, 1] > 0.98
    check = compare_with_fp32("bf16", fp32, scores)
    assert check.emails == len(real_emails) and check.max_abs_score_change == pytest.approx(np.abs(scores - fp32).max())
    assert check.verdicts_flipped == int(((scores > 0) != (fp32 > 0)).sum())
    assert "bf16 moved scores by" in check.summary()


def test_precision_check_counts_flipped_verdicts():
    check = compare_with_fp32("int8", np.array([0.5, -0.02, 1.0, -2.0]), np.array([0.4, 0.03, 1.0, -1.5]))
    assert check.verdicts_flipped == 1
    assert check.mean_abs_score_change == pytest.approx((0.1 + 0.05 + 0 + 0.5) / 4)
    assert check.max_abs_score_change == pytest.approx(0.5)


def test_int8_quantizes_the_linear_layers_and_tracks_fp32_on_real_emails(default_model_dir, settings, real_emails):
    loaded = load_base("smollm2-135m", settings.models_dir, "cpu")
    builder = PromptBuilder(loaded.tokenizer, loaded.spec, 128)
    calibration, test = real_emails[::2], real_emails[1::2]
    with pytest.raises(PrecisionError, match="calibration"):
        at_precision(loaded, "int8")
    quantized = at_precision(loaded, "int8", [builder.build(m).input_ids for m in calibration])
    layer, layout = quantized.model.model.layers[0], int8_layout()
    projections = {**{n: getattr(layer.self_attn, n) for n in ("q_proj", "k_proj", "v_proj", "o_proj")},
                   **{n: getattr(layer.mlp, n) for n in ("gate_proj", "up_proj", "down_proj")}}
    assert {"q_proj", "v_proj", "o_proj", "gate_proj"} <= set(layout.quantized)
    for name in layout.quantized:
        assert "Int8" in type(projections[name].weight).__name__
    kept_layers = [projections[n] for n in layout.kept if n in projections] + [quantized.model.lm_head]
    assert len(kept_layers) >= 3  # down and k (the most outlier-sensitive) and the one-position vocabulary projection
    for kept in kept_layers:
        assert type(kept.weight) is torch.nn.Parameter and kept.weight.dtype == layout.float_dtype
    assert quantized.dtype == layout.float_dtype
    fp32, int8 = score_emails(loaded, test, 128), score_emails(quantized, test, 128)
    assert np.abs(int8 - fp32).max() < 1.5
    assert np.corrcoef(int8, fp32)[0, 1] > 0.9
    assert not np.allclose(int8, fp32, atol=1e-4)  # it really ran in int8


def test_int8_merges_a_lora_adapter_before_quantizing(evaluated_settings, real_emails):
    """An adapter's int8 scorer follows the adapter, not the bare base model."""
    from data.store import Store

    with Store.open(evaluated_settings.store_path, read_only=True) as store:
        folder = store.adapters()["path"].iloc[0]
    loaded = load_with_adapter(folder, evaluated_settings.models_dir, "cpu")
    builder = PromptBuilder(loaded.tokenizer, loaded.spec, 96)
    quantized = at_precision(loaded, "int8", [builder.build(m).input_ids for m in real_emails[:6]])
    assert not hasattr(quantized.model, "peft_config")
    with_adapter = score_emails(loaded, real_emails, 96)
    with loaded.model.disable_adapter():
        base = score_emails(loaded, real_emails, 96)
    int8 = score_emails(quantized, real_emails, 96)
    assert np.abs(int8 - with_adapter).mean() < np.abs(int8 - base).mean()


# ------------------------------------------------------------------ precision by measurement

def _record_rates(folder, **gflops):
    """A rates record for this machine with the given (fake) GFLOP/s: what doctor and evaluate read."""
    import json

    from models.precision import RATES_FILE, machine_key

    folder.mkdir(parents=True, exist_ok=True)
    (folder / RATES_FILE).write_text(json.dumps({"machine": machine_key(), "gflops": gflops}))
    return folder


def test_rates_are_measured_once_per_machine_and_remeasured_elsewhere(tmp_path):
    import json

    from models.precision import RATES_FILE, matmul_rates

    first = matmul_rates(tmp_path)
    assert set(first.gflops) == {"fp32", "bf16", "int8"} and all(v > 0 for v in first.gflops.values())
    assert matmul_rates(tmp_path) == first  # read back, not measured again
    record = json.loads((tmp_path / RATES_FILE).read_text())
    record["machine"] = "another CPU"
    record["gflops"]["fp32"] = 1e9
    (tmp_path / RATES_FILE).write_text(json.dumps(record))
    assert matmul_rates(tmp_path).gflops["fp32"] < 1e9  # measured again for this machine


def test_a_precision_slower_than_fp32_is_named_with_its_measured_rates(tmp_path):
    from models.precision import matmul_rates, precision_warning

    rates = matmul_rates(_record_rates(tmp_path, fp32=100.0, bf16=0.9, int8=1.6))
    assert rates.slower_than_fp32("fp32") is None
    assert "0.9 GFLOP/s" in rates.slower_than_fp32("bf16") and "slower than fp32" in rates.slower_than_fp32("int8")
    assert "--precision fp32" in precision_warning("int8", torch.device("cpu"), tmp_path)
    assert precision_warning("fp32", torch.device("cpu"), tmp_path) is None
    fast = matmul_rates(_record_rates(tmp_path / "fast", fp32=100.0, bf16=600.0, int8=900.0))
    assert fast.slower_than_fp32("int8") is None and fast.against_fp32("bf16") == 6


def test_doctor_and_evaluate_say_when_a_precision_is_slower_than_fp32(settings, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from cli import app
    from diagnostics.runners.doctor import OK, WARN, check_device

    slow = _record_rates(tmp_path / "slow", fp32=100.0, bf16=0.9, int8=1.6)
    check = check_device(settings.with_overrides(device="cpu", precision="int8", models_dir=slow))
    assert check.status == WARN and "int8 is slower than fp32" in check.detail and "1.6 GFLOP/s" in check.detail
    check = check_device(settings.with_overrides(device="cpu", models_dir=slow))
    assert check.status == OK and "keep fp32" in check.detail and "bf16 and int8 would be slower" in check.detail
    fast = _record_rates(tmp_path / "fast", fp32=100.0, bf16=300.0, int8=800.0)
    check = check_device(settings.with_overrides(device="cpu", models_dir=fast))
    assert "PHISHLENS_PRECISION=int8 scores faster than fp32" in check.detail

    monkeypatch.setenv("PHISHLENS_MODELS", str(slow))
    result = CliRunner().invoke(app, ["--home", str(tmp_path / "home"), "--device", "cpu", "evaluate",
                                      "--precision", "int8"])
    assert "warning: int8 matmuls run at 1.6 GFLOP/s" in result.output, result.output
    assert result.output.index("warning:") < result.output.index("error")  # warned before it started


def test_bf16_training_is_refused_where_measured_slower_than_fp32(tmp_path):
    from models.finetune import check_training_precision
    from models.precision import PrecisionError

    slow = _record_rates(tmp_path / "slow", fp32=100.0, bf16=0.9, int8=1.6)
    with pytest.raises(PrecisionError, match="0.9 GFLOP/s.*train in fp32"):
        check_training_precision("bf16", torch.device("cpu"), slow)
    check_training_precision("fp32", torch.device("cpu"), slow)
    check_training_precision("bf16", torch.device("cpu"), _record_rates(tmp_path / "fast", fp32=100.0, bf16=500.0,
                                                                         int8=900.0))
