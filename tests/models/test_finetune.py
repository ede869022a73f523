from dataclasses import replace
from pathlib import Path

import pytest
from safetensors import safe_open

from data.records import LoraSettings
from models.finetune import finetune_adapter
from models.loading import ModelError, load_base, load_with_adapter, read_adapter_info
from models.scoring import render_email
from models.tiny import build_tiny_model


@pytest.fixture(scope="module")
def tiny_adapter(tiny_model_dir, synthetic_emails, tmp_path_factory):
    from data.settings import load_settings

    models_dir = load_settings().models_dir
    base = load_base(str(tiny_model_dir), models_dir, "cpu")
    emails = synthetic_emails[0][1][:48]
    lora = LoraSettings(r=4, alpha=8, epochs=2, lr=5e-3, batch_size=8, max_tokens=96, seed=1)
    return finetune_adapter(base, emails, "tiny-set", lora, tmp_path_factory.mktemp("adapters"), progress=False)


def test_adapter_saved_as_safetensors_with_metadata(tiny_adapter, tiny_model_dir):
    from pathlib import Path

    folder = Path(tiny_adapter.path)
    assert (folder / "adapter_model.safetensors").exists()
    assert not list(folder.glob("*.bin"))
    with safe_open(folder / "adapter_model.safetensors", "pt") as handle:
        assert any("lora_A" in k for k in handle.keys())
    info = read_adapter_info(folder)
    assert info.model == str(tiny_model_dir) and info.training_set == "tiny-set"
    assert info.n_train == 48 and len(info.train_loss) == 12  # 2 epochs × 6 steps
    assert info.hyperparameters["r"] == 4 and info.seed == 1
    assert len(info.base_weights_sha256) == 64


def test_training_reduces_loss(tiny_adapter):
    losses = tiny_adapter.train_loss
    assert sum(losses[-4:]) / 4 < sum(losses[:4]) / 4


def test_adapter_changes_scores_and_reloads(tiny_adapter, tiny_model_dir, synthetic_emails):
    from data.settings import load_settings
    from models.scoring import score_emails

    models_dir = load_settings().models_dir
    emails = synthetic_emails[0][1][:6]
    base_scores = score_emails(load_base(str(tiny_model_dir), models_dir, "cpu"), emails, 96)
    tuned = load_with_adapter(tiny_adapter.path, models_dir, "cpu")
    assert tuned.adapter_id == tiny_adapter.id
    tuned_scores = score_emails(tuned, emails, 96)
    assert abs(tuned_scores - base_scores).max() > 1e-3


def test_adapter_on_a_different_base_is_refused(tiny_adapter, tiny_model_dir, default_model_dir, tmp_path):
    from data.settings import load_settings

    other = build_tiny_model("llama", default_model_dir, tmp_path / "other-llama", seed=99)
    with pytest.raises(ModelError, match="was trained on"):
        load_with_adapter(tiny_adapter.path, load_settings().models_dir, "cpu", model=str(other))


def test_corrupt_adapter_metadata_is_a_clear_error(tiny_adapter, tmp_path):
    import shutil

    copy = tmp_path / "broken"
    shutil.copytree(tiny_adapter.path, copy)
    (copy / "phishlens_adapter.json").write_text("{not json")
    with pytest.raises(ModelError, match="corrupt"):
        read_adapter_info(copy)
    with pytest.raises(ModelError, match="not a PhishLens adapter"):
        read_adapter_info(tmp_path)


@pytest.mark.parametrize("content", [b"\xff\xfe\x00garbage", b"[1, 2, 3]", b"\"a string\"", b"null",
                                     b'{"id": "x", "demonstrations": [1]}'])
def test_adapter_metadata_that_is_not_utf8_or_not_an_object_is_the_adapter_error(tmp_path, content):
    (tmp_path / "phishlens_adapter.json").write_bytes(content)
    with pytest.raises(ModelError, match="corrupt.*retrain"):
        read_adapter_info(tmp_path)


def test_one_class_training_set_is_refused(tiny_model_dir, synthetic_emails, tmp_path):
    from data.settings import load_settings

    base = load_base(str(tiny_model_dir), load_settings().models_dir, "cpu")
    phishing_only = [m for m in synthetic_emails[0][1] if m.label == 1][:8]
    with pytest.raises(ValueError, match="one class only"):
        finetune_adapter(base, phishing_only, "x", LoraSettings(), tmp_path, progress=False)


def test_corrupt_adapter_weights_are_a_clear_error(tiny_adapter, tmp_path):
    import shutil

    from data.settings import load_settings

    copy = tmp_path / "corrupt-weights"
    shutil.copytree(tiny_adapter.path, copy)
    (copy / "adapter_model.safetensors").write_bytes(b"\x00garbage" * 100)
    with pytest.raises(ModelError, match="cannot load adapter"):
        load_with_adapter(copy, load_settings().models_dir, "cpu")
    (copy / "adapter_model.safetensors").unlink()
    (copy / "adapter_model.bin").write_bytes(b"pickle payloads are never loaded")
    with pytest.raises(ModelError, match="safetensors only"):
        load_with_adapter(copy, load_settings().models_dir, "cpu")


def test_no_code_path_trusts_remote_code():
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    sources = [p for folder in ("data", "models", "diagnostics", "pages") for p in (root / folder).glob("*.py")]
    offending = [p.name for p in sources + [root / "cli.py", root / "app.py"]
                 if "trust_remote_code=True" in p.read_text()]
    assert offending == []


def test_four_bit_loading_says_what_it_needs(tiny_model_dir):
    from data.settings import load_settings

    models_dir = load_settings().models_dir
    with pytest.raises(ModelError, match="needs a CUDA GPU"):
        load_base(str(tiny_model_dir), models_dir, "cpu", quantize="4bit")
    with pytest.raises(ModelError, match="quantize must be one of none, 4bit"):
        load_base(str(tiny_model_dir), models_dir, "cpu", quantize="8bit")


def test_plain_adapter_ids_did_not_change_when_fticl_was_added():
    from models.finetune import adapter_id

    # ids of adapters trained before the context, precision and from_layer fields existed, with
    # the dropout then the default (stores in the field hold them)
    old_default = LoraSettings(dropout=0.05)
    assert adapter_id("smollm2-135m", "specialist-EnronSpam", old_default) == \
        "smollm2-135m--specialist-EnronSpam--r8-s13-415db2"
    assert adapter_id("gemma3-270m", "generalist", replace(old_default, seed=14)) == \
        "gemma3-270m--generalist--r8-s14-437cb5"
    assert adapter_id("smollm2-135m", "generalist", LoraSettings()) != adapter_id("smollm2-135m", "generalist",
                                                                                  old_default)
    fticl = adapter_id("smollm2-135m", "fticl-EnronSpam", LoraSettings(context_examples=2))
    assert fticl != adapter_id("smollm2-135m", "fticl-EnronSpam", LoraSettings(context_examples=4))


def test_demonstrations_are_label_balanced_and_refused_when_a_label_is_short(synthetic_emails):
    import random

    from models.finetune import pick_demonstrations

    pool = synthetic_emails[0][1][:30]
    for k in (2, 4):
        demos = pick_demonstrations(pool, k, random.Random(0))
        assert sorted(d.label for d in demos) == [0] * (k // 2) + [1] * (k // 2)
        assert {d.text for d in demos} <= {render_email(m) for m in pool}
    odd = [pick_demonstrations(pool, 3, random.Random(seed)) for seed in range(20)]
    assert {sum(d.label for d in demos) for demos in odd} == {1, 2}  # the extra example is either label
    one_positive = [m for m in pool if m.label == 0] + [next(m for m in pool if m.label == 1)]
    with pytest.raises(ValueError, match="need 2 emails labelled 1"):
        pick_demonstrations(one_positive, 4, random.Random(0))


def test_fticl_adapter_trains_with_examples_and_scores_after_its_own(tiny_model_dir, synthetic_emails, tmp_path):
    import random

    import numpy as np

    from data.settings import load_settings
    from models.finetune import training_prompts
    from models.scoring import PromptBuilder, prompt_builder, score_emails

    models_dir = load_settings().models_dir
    emails = synthetic_emails[0][1][:32]
    base = load_base(str(tiny_model_dir), models_dir, "cpu")
    builder = PromptBuilder(base.tokenizer, base.spec, 96, context_tokens=24)
    prompts = training_prompts(builder, emails, 2, random.Random(0))
    head = builder.template_head
    starts = [sum(p[i: i + len(head)] == head for i in range(len(p))) for p in prompts]
    assert set(starts) == {3}  # two examples, then the email itself
    assert len({tuple(p[: 40]) for p in prompts}) > 1  # examples are drawn per email, not fixed

    lora = LoraSettings(r=4, alpha=8, lr=5e-3, batch_size=8, max_tokens=96, seed=1, context_examples=2,
                        context_tokens=24)
    info = finetune_adapter(base, emails, "fticl-tiny", lora, tmp_path, progress=False)
    assert info.hyperparameters["context_examples"] == 2 and len(info.demonstrations) == 2
    assert sorted(d.label for d in info.demonstrations) == [0, 1]
    tuned = load_with_adapter(info.path, models_dir, "cpu")
    assert tuned.adapter.demonstrations == info.demonstrations  # saved and read back
    fticl_builder = prompt_builder(tuned, 96)
    assert fticl_builder.head == PromptBuilder(tuned.tokenizer, tuned.spec, 96, info.demonstrations, 24).head
    test = synthetic_emails[1][1][:4]
    with_examples = score_emails(tuned, test, 96)
    plain = np.array([float(s) for s in __import__("models.scoring", fromlist=["score_prompts"]).score_prompts(
        tuned, [PromptBuilder(tuned.tokenizer, tuned.spec, 96).build(m).input_ids for m in test])])
    assert np.abs(with_examples - plain).max() > 1e-4  # the examples are really in the scoring prompt


@pytest.mark.skipif(not __import__("models.precision", fromlist=["native_bf16"]).native_bf16(),
                    reason="this CPU emulates bf16 (no AMX or AVX-512 BF16): bf16 training is refused here")
def test_bf16_training_follows_fp32_and_keeps_fp32_adapter_weights(default_model_dir, settings, real_emails, tmp_path):
    """The same seed and emails trained under bf16 autocast: losses close to fp32's, LoRA weights
    saved in fp32, and a different adapter id (it is a different adapter)."""
    import torch

    infos = {}
    for precision in ("fp32", "bf16"):
        base = load_base("smollm2-135m", settings.models_dir, "cpu")
        lora = LoraSettings(epochs=1, batch_size=8, max_tokens=96, precision=precision)
        infos[precision] = finetune_adapter(base, real_emails, "mixed", lora, tmp_path / precision, progress=False)
    fp32, bf16 = infos["fp32"], infos["bf16"]
    assert bf16.hyperparameters["precision"] == "bf16" and bf16.id != fp32.id
    assert abs(bf16.train_loss[0] - fp32.train_loss[0]) < 0.1  # the same first batch, before any update
    assert all(abs(a - b) < 0.5 for a, b in zip(bf16.train_loss, fp32.train_loss))
    with safe_open(Path(bf16.path) / "adapter_model.safetensors", "pt") as handle:
        assert {handle.get_tensor(k).dtype for k in handle.keys()} == {torch.float32}


def test_unknown_training_precision_is_refused(tiny_model_dir, synthetic_emails, tmp_path):
    from data.settings import load_settings
    from models.precision import PrecisionError

    base = load_base(str(tiny_model_dir), load_settings().models_dir, "cpu")
    with pytest.raises(PrecisionError, match="fp32 or bf16"):
        finetune_adapter(base, synthetic_emails[0][1][:16], "x", LoraSettings(precision="int8"), tmp_path,
                         progress=False)
