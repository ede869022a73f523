"""Adapters trained elsewhere (models.imported): plain peft adapters on tiny models of two families, a
causal-LM one with its own prompt and label words and a sequence-classification one with a score head,
imported and read exactly as their own forward pass reads them, explained and swept to the same
number; and what must be refused, refused with a message."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

from data.records import DiagnosticRequest, EvaluationTarget
from diagnostics.analyses.bridge import attention_patterns, boot_bridge, email_prompt
from diagnostics.analyses.coalitions import CoalitionScorer
from diagnostics.analyses.direct_logit_attribution import DirectLogitAttribution
from diagnostics.analyses.explainers import explain_shap
from diagnostics.analyses.layout import layout_email
from models.imported import ImportRefused, ImportRequest, import_adapter
from models.loading import load_with_adapter
from models.registry import CLASSIFICATION_HEAD, LABEL_WORDS
from models.scoring import prompt_builder, render_email, score_emails
from tests.conftest import FOREIGN_HEAD_TEMPLATE, FOREIGN_TEMPLATE, FOREIGN_WORDS, plain_peft_adapter

FAMILIES = ["llama", "gemma3"]
MAX_TOKENS = 512  # every test email fits: the independent pass reads the whole prompt too


@pytest.fixture(scope="module")
def bases(tiny_model_dir, tiny_gemma_dir):
    return {"llama": tiny_model_dir, "gemma3": tiny_gemma_dir}


@pytest.fixture(scope="module")
def emails(real_emails):
    """Short real emails (one per corpus at most) so that no prompt is cut."""
    short = [m for m in real_emails if len(render_email(m)) < 600]
    assert len(short) >= 3
    return short[:4]


@pytest.fixture(scope="module")
def imported(bases, tmp_path_factory):
    """Per family: (base folder, causal-LM adapter folder and info, classification-head folder and info)."""
    out = {}
    for family, base in bases.items():
        root = tmp_path_factory.mktemp(f"foreign-{family}")
        causal = plain_peft_adapter(base, root / "causal", "CAUSAL_LM", seed=1,
                                    prompt_template=FOREIGN_TEMPLATE, label_words=list(FOREIGN_WORDS))
        head = plain_peft_adapter(base, root / "head", "SEQ_CLS", seed=2)
        adapters = root / "adapters"
        causal_info = import_adapter(ImportRequest(causal, str(base), name="scam-yes-no"), root / "models", adapters)
        head_info = import_adapter(ImportRequest(head, str(base), prompt_template=FOREIGN_HEAD_TEMPLATE,
                                                 name="seq-cls"), root / "models", adapters)
        out[family] = (base, root, causal, causal_info, head, head_info)
    return out


def _full_prompt_ids(tokenizer, template: str, mail) -> list[int]:
    """The prompt as the adapter's own training script would tokenize it: the whole text at once."""
    return tokenizer(template.replace("{email}", render_email(mail))).input_ids


def _own_causal_scores(base, adapter, emails) -> np.ndarray:
    tokenizer = AutoTokenizer.from_pretrained(base)
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), adapter).eval()
    negative, positive = (tokenizer(w, add_special_tokens=False).input_ids[0] for w in FOREIGN_WORDS)
    scores = []
    with torch.no_grad():
        for mail in emails:
            logits = model(torch.tensor([_full_prompt_ids(tokenizer, FOREIGN_TEMPLATE, mail)])).logits[0, -1]
            scores.append(float(logits[positive] - logits[negative]))
    return np.array(scores)


def _own_head_scores(base, adapter, emails) -> np.ndarray:
    tokenizer = AutoTokenizer.from_pretrained(base)
    model = AutoModelForSequenceClassification.from_pretrained(base, num_labels=2)
    model = PeftModel.from_pretrained(model, adapter).eval()
    scores = []
    with torch.no_grad():
        for mail in emails:
            logits = model(torch.tensor([_full_prompt_ids(tokenizer, FOREIGN_HEAD_TEMPLATE, mail)])).logits[0]
            scores.append(float(logits[1] - logits[0]))
    return np.array(scores)


@pytest.mark.parametrize("family", FAMILIES)
def test_imported_scores_equal_the_adapters_own_forward_pass(imported, emails, family):
    base, root, causal, causal_info, head, head_info = imported[family]
    assert causal_info.readout == LABEL_WORDS and causal_info.label_words == FOREIGN_WORDS
    assert head_info.readout == CLASSIFICATION_HEAD and head_info.training_set == "imported:seq-cls"
    for folder, info, own in ((causal, causal_info, _own_causal_scores), (head, head_info, _own_head_scores)):
        loaded = load_with_adapter(Path(info.path), root / "models", "cpu")
        builder = prompt_builder(loaded, MAX_TOKENS)
        template = FOREIGN_TEMPLATE if info is causal_info else FOREIGN_HEAD_TEMPLATE
        tokenizer = AutoTokenizer.from_pretrained(base)
        # PhishLens builds the same tokens the adapter's own script would
        assert [builder.build(m).input_ids for m in emails] == [_full_prompt_ids(tokenizer, template, m) for m in emails]
        expected = own(base, folder, emails)
        assert np.abs(expected).max() > 1e-3  # the adapter reads something
        np.testing.assert_allclose(score_emails(loaded, emails, MAX_TOKENS, batch_size=4), expected, atol=1e-4)


@pytest.mark.parametrize("family", FAMILIES)
def test_shap_logit_lens_and_dla_add_up_to_the_head_score(imported, emails, family):
    base, root, _, _, head, head_info = imported[family]
    adapter_dir = Path(head_info.path)
    expected = _own_head_scores(base, head, emails[:2])

    loaded = load_with_adapter(adapter_dir, root / "models", "cpu")
    mail = emails[0]
    scorer = CoalitionScorer(loaded, layout_email(prompt_builder(loaded, MAX_TOKENS), mail))
    explanation = explain_shap(scorer, mail.id, head_info.id, MAX_TOKENS, "sentence", max_evals=24)
    assert explanation.score == pytest.approx(expected[0], abs=1e-4)
    assert explanation.base_value + sum(explanation.values) == pytest.approx(expected[0], abs=1e-3)

    hm = boot_bridge(load_with_adapter(adapter_dir, root / "models", "cpu"))
    builder = prompt_builder(hm, MAX_TOKENS)
    for mail, score in zip(emails[:2], expected):
        prompt, span = email_prompt(builder, mail)
        assert attention_patterns(hm, prompt, span).lens[-1] == pytest.approx(score, abs=1e-3)

    dla = DirectLogitAttribution(DiagnosticRequest(EvaluationTarget(str(base), adapter_dir), "any"), root)
    hm = boot_bridge(load_with_adapter(adapter_dir, root / "models", "cpu"))
    hm.bridge.enable_compatibility_mode()
    prompts = [email_prompt(builder, mail)[0] for mail in emails[:2]]
    values = dla.values(hm, prompts, batch_size=1)
    np.testing.assert_allclose(values.per_head.sum((1, 2)) + values.remainder, expected, atol=1e-3)
    assert np.abs(values.per_head).max() > 1e-6


def test_a_mismatched_base_model_is_refused(imported, bases, default_model_dir, tmp_path):
    _, _, causal, _, head, _ = imported["llama"]
    # Tiny Llama and tiny Gemma share every layer shape: the architecture the adapter names tells them apart
    for folder in (causal, head):
        with pytest.raises(ImportRefused, match="trained on .*architecture llama.*not on a gemma3_text"):
            import_adapter(ImportRequest(folder, str(bases["gemma3"]), prompt_template=FOREIGN_HEAD_TEMPLATE),
                           tmp_path / "models", tmp_path / "adapters")
    # Adapters of the real SmolLM2 (hidden size 576) on the tiny Llama (64): refused by the base they name,
    # and, where that name says nothing, by their weights' shapes
    smol_causal = plain_peft_adapter(default_model_dir, tmp_path / "smol-causal", "CAUSAL_LM",
                                     prompt_template=FOREIGN_TEMPLATE, label_words=list(FOREIGN_WORDS))
    smol_head = plain_peft_adapter(default_model_dir, tmp_path / "smol-head", "SEQ_CLS")
    for folder in (smol_causal, smol_head):
        with pytest.raises(ImportRefused, match="hidden size 576"):
            import_adapter(ImportRequest(folder, str(bases["llama"]), prompt_template=FOREIGN_HEAD_TEMPLATE),
                           tmp_path / "models", tmp_path / "adapters")
        config = json.loads((folder / "adapter_config.json").read_text())
        (folder / "adapter_config.json").write_text(json.dumps({**config, "base_model_name_or_path": "org/base"}))
    with pytest.raises(ImportRefused, match="does not fit the base model.*match no targeted module"):
        import_adapter(ImportRequest(smol_causal, str(bases["llama"])), tmp_path / "models", tmp_path / "adapters")
    with pytest.raises(ImportRefused, match="head reads 576-wide states.*hidden size is 64"):
        import_adapter(ImportRequest(smol_head, str(bases["llama"]), prompt_template=FOREIGN_HEAD_TEMPLATE),
                       tmp_path / "models", tmp_path / "adapters")
    assert not (tmp_path / "adapters").exists()  # nothing half-imported


def test_a_pickle_only_adapter_is_refused(imported, bases, tmp_path):
    _, _, causal, _, _, _ = imported["llama"]
    pickled = shutil.copytree(causal, tmp_path / "pickled")
    from safetensors.torch import load_file

    torch.save(load_file(pickled / "adapter_model.safetensors"), pickled / "adapter_model.bin")
    (pickled / "adapter_model.safetensors").unlink()
    with pytest.raises(ImportRefused, match="pickle.*safetensors only"):
        import_adapter(ImportRequest(pickled, str(bases["llama"])), tmp_path / "models", tmp_path / "adapters")


def test_a_missing_or_unusable_label_word_is_refused(imported, bases, tmp_path):
    _, _, causal, _, _, _ = imported["llama"]
    bare = shutil.copytree(causal, tmp_path / "bare")
    (bare / "phishlens_import.json").unlink()
    request = ImportRequest(bare, str(bases["llama"]), prompt_template=FOREIGN_TEMPLATE)
    with pytest.raises(ImportRefused, match="two label words"):
        import_adapter(request, tmp_path / "models", tmp_path / "adapters")
    with pytest.raises(ImportRefused, match="two label words"):
        import_adapter(ImportRequest(bare, str(bases["llama"]), prompt_template=FOREIGN_TEMPLATE,
                                     label_words=(" no", "")), tmp_path / "models", tmp_path / "adapters")
    with pytest.raises(ImportRefused, match="distinct tokens"):
        import_adapter(ImportRequest(bare, str(bases["llama"]), prompt_template=FOREIGN_TEMPLATE,
                                     label_words=(" yes", " yes!")), tmp_path / "models", tmp_path / "adapters")
    with pytest.raises(ImportRefused, match=r"\{email\} exactly once"):
        import_adapter(ImportRequest(bare, str(bases["llama"]), prompt_template="no slot", label_words=FOREIGN_WORDS),
                       tmp_path / "models", tmp_path / "adapters")
    assert not (tmp_path / "adapters").exists()


def test_a_template_whose_seam_merges_tokens_is_imported_with_a_warning(imported, bases, default_model_dir):
    from models.imported import seam_warning
    from models.loading import load_tokenizer

    tokenizer = load_tokenizer(default_model_dir)
    assert seam_warning(tokenizer, FOREIGN_TEMPLATE) is None and seam_warning(tokenizer, "{email}") is None
    assert "merges with the email's first or last token" in seam_warning(tokenizer, "Email: {email} Verdict:")
    _, _, _, causal_info, _, head_info = imported["llama"]
    assert causal_info.hyperparameters["warning"] is None and head_info.hyperparameters["warning"] is None
