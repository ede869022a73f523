"""Attributions: the email's layout, the cached-prefix scorer, SHAP additivity, faithfulness,
the LoRA delta and the explanation cache, on real corpora and real (tiny or default) models."""

import re

import numpy as np
import pytest

from data.records import Email
from diagnostics.analyses.coalitions import CoalitionScorer
from diagnostics.analyses.comparison import adapter_disabled, field_totals, lora_delta
from diagnostics.analyses.explainers import explain_gradient, explain_progressively, explain_shap
from diagnostics.analyses.faithfulness import faithfulness, with_faithfulness_curves
from diagnostics.analyses.layout import layout_email, linkage
from models.loading import load_base, load_with_adapter
from models.scoring import PromptBuilder, score_prompts

# Owen values telescope exactly; what remains is float64 summation of fp32 scores.
ADDITIVITY_TOLERANCE = 1e-6


@pytest.fixture(scope="module")
def settings_module(tmp_path_factory):
    from data.settings import load_settings

    home = tmp_path_factory.mktemp("attribution")
    return load_settings(home=home, store_path=home / "store.duckdb")


@pytest.fixture(scope="module")
def tiny(tiny_model_dir, settings_module):
    return load_base(str(tiny_model_dir), settings_module.models_dir, "cpu")


def _builder(loaded, max_tokens=256):
    return PromptBuilder(loaded.tokenizer, loaded.spec, max_tokens)


def test_layout_spans_lie_inside_the_text_in_order_and_never_overlap(tiny, real_emails):
    from data.parse import make_email, parse_message_bytes
    from tests.conftest import HOSTILE_EMAIL

    fields, truncated = parse_message_bytes(HOSTILE_EMAIL.encode())
    hostile = make_email(fields, "user", label=1, source_ref="hostile", truncated=truncated)
    for mail in [*real_emails, hostile]:
        layout = layout_email(_builder(tiny), mail)
        assert layout.words, mail.source_ref
        previous_end = 0
        for word in layout.words:
            assert 0 <= previous_end <= word.start < word.end <= len(layout.text)
            assert re.fullmatch(r"\S+", layout.text[word.start:word.end])
            previous_end = word.end
        # every email token belongs to at most one word; word tokens are in range
        owned = [t for w in layout.words for t in w.tokens]
        assert len(owned) == len(set(owned)) and max(owned) < len(layout.email_ids)
        # the tree holds every word exactly once, in reading order
        units, _ = layout.units("word")
        assert [u[0] for u in units] == list(range(len(layout.words)))


def test_layout_marks_fields_and_urls_and_keeps_the_budget(tiny):
    mail = Email(id="x", corpus="t", sender="alice@example.com", subject="Your account",
                 body="Please verify now. Visit http://evil.example.com/login today!\nThanks, Bob", label=1)
    layout = layout_email(_builder(tiny), mail)
    by_text = {layout.text[w.start:w.end]: w.field for w in layout.words}
    assert by_text["alice@example.com"] == "sender" and by_text["account"] == "subject"
    assert by_text["http://evil.example.com/login"] == "url" and by_text["verify"] == "body"
    sentences, _ = layout.units("sentence")
    assert len(sentences) == 2 + 3  # sender, subject, and the body's three sentences
    short = layout_email(_builder(tiny, max_tokens=64), Email(id="y", corpus="t", subject="s",
                                                               body="word " * 400, label=0))
    assert len(short.email_ids) == _builder(tiny, 64).budget
    assert all(max(w.tokens) < len(short.email_ids) for w in short.words)


def test_linkage_is_a_valid_binary_tree_over_all_units():
    tree = [[[0, 1, 2]], [[3]], [[4, 5], [6, 7, 8, 9]]]
    matrix = linkage(tree, 10)
    assert matrix.shape == (9, 4) and matrix[-1, 3] == 10
    for row, (left, right, height, size) in enumerate(matrix):
        assert left < 10 + row and right < 10 + row and height > 0


def test_cached_prefix_scores_equal_plain_scores(tiny, real_emails):
    layout = layout_email(_builder(tiny), max(real_emails, key=lambda m: len(m.body)))
    scorer = CoalitionScorer(tiny, layout, batch_size=4)
    rng = np.random.default_rng(0)
    keeps = rng.random((9, len(layout.email_ids))) > 0.4
    keeps[0, :] = True
    keeps[1, len(layout.email_ids) // 2:] = False
    plain = score_prompts(tiny, [scorer.prompt(k) for k in keeps], batch_size=1)
    np.testing.assert_allclose(scorer.scores(keeps), plain, atol=1e-4)
    assert scorer.score == pytest.approx(plain[0], abs=1e-4)


@pytest.mark.parametrize("level", ["field", "sentence", "word"])
def test_shap_values_are_additive(tiny, real_emails, level):
    for mail in real_emails[::3]:
        scorer = CoalitionScorer(tiny, layout_email(_builder(tiny), mail))
        explanation = explain_shap(scorer, mail.id, tiny.adapter_id, 256, level, max_evals=40)
        assert explanation.base_value + sum(explanation.values) == pytest.approx(
            explanation.score, abs=ADDITIVITY_TOLERANCE)
        assert len(explanation.values) == len(explanation.spans) == len(explanation.fields)


def test_progressive_levels_refine_the_same_email_and_reuse_evaluations(tiny, real_emails):
    mail = real_emails[0]
    levels = list(explain_progressively(tiny, mail, 256))
    assert [e.level for e in levels] == ["field", "sentence", "word"]
    assert [len(e.values) for e in levels] == sorted(len(e.values) for e in levels)
    assert len({e.score for e in levels}) == 1
    final = levels[-1]
    assert final.faithfulness is not None and levels[0].faithfulness is None
    totals = dict(field_totals(final))
    assert sum(totals.values()) == pytest.approx(sum(final.values))


def test_default_model_is_additive_and_gradient_reaches_every_word(default_model_dir, settings_module, real_emails):
    loaded = load_base("smollm2-135m", settings_module.models_dir, "cpu")
    mail = real_emails[-1]
    layout = layout_email(_builder(loaded, 128), mail)
    scorer = CoalitionScorer(loaded, layout)
    explanation = explain_shap(scorer, mail.id, loaded.adapter_id, 128, "sentence", max_evals=24)
    assert explanation.base_value + sum(explanation.values) == pytest.approx(explanation.score, abs=ADDITIVITY_TOLERANCE)
    gradient = explain_gradient(loaded, layout, mail.id, 128)
    assert gradient.score == pytest.approx(scorer.score, abs=1e-3)
    assert len(gradient.values) == len(layout.words) and np.count_nonzero(gradient.values) == len(layout.words)


def test_integrated_gradients_sum_to_the_score_minus_the_blanked_words(tiny, real_emails):
    """Completeness: the attributions add up to f(email) − f(the prompt with its words' embeddings
    zeroed), up to the integration error, which shrinks with more steps."""
    import torch

    from diagnostics.analyses.explainers import explain_integrated_gradients, explanation_passes
    from models.scoring import label_token_ids

    mail = real_emails[2]
    layout = layout_email(_builder(tiny), mail)
    negative, positive = label_token_ids(tiny.tokenizer, tiny.spec)
    ids = torch.tensor([layout.head + layout.email_ids + layout.tail])
    with torch.no_grad():
        blanked = tiny.model.get_input_embeddings()(ids)
        blanked[:, [len(layout.head) + t for w in layout.words for t in w.tokens]] = 0
        logits = tiny.model(inputs_embeds=blanked, logits_to_keep=1).logits[0, -1].float()
    baseline_score = float(logits[positive] - logits[negative])
    errors = []
    for steps in (2, 32):
        explanation = explain_integrated_gradients(tiny, layout, mail.id, 256, steps=steps)
        assert explanation.score == pytest.approx(CoalitionScorer(tiny, layout).score, abs=1e-3)
        assert len(explanation.values) == len(layout.words) and explanation.evaluations == steps
        errors.append(abs(explanation.base_value - baseline_score))
    span = abs(explanation.score - baseline_score)
    assert errors[1] <= 0.05 * span + 1e-3 and errors[1] <= errors[0] + 1e-6, (errors, span)
    passes = list(explanation_passes(tiny, mail, "integrated-gradients", 256))
    assert [p.method for p in passes] == ["integrated-gradients"] * 2 and passes[-1].faithfulness is not None


def test_faithfulness_curves_start_and_end_at_the_full_and_empty_email(tiny, real_emails):
    mail = real_emails[4]
    scorer = CoalitionScorer(tiny, layout_email(_builder(tiny), mail))
    explanation = with_faithfulness_curves(scorer, explain_shap(scorer, mail.id, tiny.adapter_id, 256, "word"))
    curves = explanation.faithfulness
    sign = 1 if explanation.score >= 0 else -1
    assert curves.deletion[0] == pytest.approx(sign * explanation.score, abs=1e-6)
    assert curves.deletion[-1] == pytest.approx(sign * explanation.base_value, abs=1e-6)
    assert curves.insertion[0] == pytest.approx(sign * explanation.base_value, abs=1e-6)
    assert curves.insertion[-1] == pytest.approx(sign * explanation.score, abs=1e-6)
    # ranking by SHAP value removes the verdict's support faster than a random order
    ranked = faithfulness(scorer, explanation.values, None)
    assert ranked.deletion_area <= ranked.random_deletion_area + 1e-9


def test_lora_delta_is_adapter_minus_base_and_the_base_view_is_the_base_model(evaluated_settings):
    from data.store import Store

    settings = evaluated_settings
    with Store.open(settings.store_path, read_only=True) as store:
        adapter = store.adapters().iloc[0]
        mail = store.emails_by_ids(store.split_ids("synthetic-corporate", "test")["id"][:1])[0]
    loaded = load_with_adapter(adapter["path"], settings.models_dir, "cpu")
    adapted = explain_shap(CoalitionScorer(loaded, layout_email(_builder(loaded, 96), mail)), mail.id,
                           loaded.adapter_id, 96, "sentence")
    with adapter_disabled(loaded) as base_view:
        base = explain_shap(CoalitionScorer(base_view, layout_email(_builder(base_view, 96), mail)), mail.id,
                            base_view.adapter_id, 96, "sentence")
        assert base_view.adapter_id.startswith("zero-shot")
    plain_base = load_base(settings.model, settings.models_dir, "cpu")
    plain = explain_shap(CoalitionScorer(plain_base, layout_email(_builder(plain_base, 96), mail)), mail.id,
                         plain_base.adapter_id, 96, "sentence")
    np.testing.assert_allclose(base.values, plain.values, atol=1e-4)
    delta = lora_delta(adapted, base)
    np.testing.assert_allclose(delta.values, np.subtract(adapted.values, base.values))
    assert adapted.score != pytest.approx(base.score, abs=1e-4)  # the adapter changed something


def test_explanations_round_trip_through_the_store(store, tiny, real_emails):
    mail = real_emails[1]
    final = list(explain_progressively(tiny, mail, 256, levels=("sentence",)))[-1]
    store.add_explanation(final, mail.corpus)
    again = store.explanation(final.adapter_id, final.email_id, final.method, final.params)
    assert again == final
    assert store.explanation(final.adapter_id, final.email_id, final.method, final.params + " ") is None


def test_character_values_keep_each_span_total_and_agreement_is_a_rank_correlation(tiny, real_emails):
    from diagnostics.analyses.comparison import agreement, character_values

    mail = real_emails[7]
    explanation = explain_gradient(tiny, layout_email(_builder(tiny), mail), mail.id, 256)
    chars = character_values(explanation)
    assert len(chars) == len(explanation.text)
    for (start, end), value in zip(explanation.spans, explanation.values):
        assert chars[start:end].sum() == pytest.approx(value, abs=1e-9)
    assert agreement(explanation, explanation) == pytest.approx(1.0)
    flipped = explanation.__class__(**{**explanation.__dict__, "values": tuple(-v for v in explanation.values)})
    assert agreement(explanation, flipped) == pytest.approx(-1.0)
