"""Head diagnostics on the TransformerBridge: exact ablation against a hand-written hook,
attribution patching against exact ablation, the logit lens against the model's own score,
LoRA update norms against the merged weights, and the stored, resumable sweep."""

from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from data.metrics import f1_at_zero
from diagnostics.analyses.bridge import attention_patterns, boot_bridge, email_prompt
from diagnostics.analyses.head_sweep import sweep_heads
from diagnostics.analyses.heads import ablate_heads_exact, attribution_patching, head_means
from diagnostics.analyses.lora_heads import lora_head_update_norms
from models.loading import load_base, load_with_adapter
from models.scoring import prompt_builder, score_prompts


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("heads-models")


@pytest.fixture(scope="module")
def tiny_heads(tiny_model_dir, models_dir):
    return boot_bridge(load_base(str(tiny_model_dir), models_dir, "cpu"))


@pytest.fixture(scope="module")
def sweep_emails(real_emails):
    """Six real emails of both labels: F1 is defined on them (data.metrics)."""
    positives = [m for m in real_emails if m.label == 1][:3]
    return [m for m in real_emails if m.label == 0][:6 - len(positives)] + positives


@pytest.fixture(scope="module")
def tiny_prompts(tiny_heads, sweep_emails):
    builder = prompt_builder(tiny_heads, 96)
    return [email_prompt(builder, mail)[0] for mail in sweep_emails]


def _manual_zero_ablation(model, prompts, layer: int, head: int, d_head: int) -> np.ndarray:
    """The score with one head zeroed by a plain torch hook on o_proj's input (no bridge involved)."""

    def zero_head(module, args):
        hidden = args[0].clone()
        hidden[..., head * d_head:(head + 1) * d_head] = 0.0
        return (hidden,)

    handle = model.model.model.layers[layer].self_attn.o_proj.register_forward_pre_hook(zero_head)
    try:
        return score_prompts(model, prompts, batch_size=4)
    finally:
        handle.remove()


def test_exact_ablation_changes_the_score_as_a_manual_hook_does(tiny_heads, tiny_prompts, tiny_model_dir,
                                                                models_dir):
    plain = load_base(str(tiny_model_dir), models_dir, "cpu")
    d_head = tiny_heads.bridge.cfg.d_head
    heads = [(0, 1), (1, 3), (1, 0)]
    clean, ablated = ablate_heads_exact(tiny_heads, tiny_prompts, heads, batch_size=4)
    np.testing.assert_allclose(clean, score_prompts(plain, tiny_prompts), atol=1e-4)
    for column, (layer, head) in enumerate(heads):
        manual = _manual_zero_ablation(plain, tiny_prompts, layer, head, d_head)
        assert np.abs(manual - clean).max() > 1e-4, "the ablation must change something to be a test"
        np.testing.assert_allclose(ablated[:, column], manual, atol=1e-4)


def test_heads_side_by_side_in_one_pass_give_the_same_effects(tiny_heads, tiny_prompts):
    heads = [(0, 0), (0, 2), (0, 3), (1, 1), (1, 2)]
    means = head_means(tiny_heads, tiny_prompts)
    one_by_one = ablate_heads_exact(tiny_heads, tiny_prompts, heads, means, batch_size=4, heads_per_pass=1)
    together = ablate_heads_exact(tiny_heads, tiny_prompts, heads, means, batch_size=4, heads_per_pass=3)
    np.testing.assert_allclose(together[1], one_by_one[1], atol=1e-5)
    np.testing.assert_allclose(together[0], one_by_one[0], atol=1e-6)


def test_mean_ablation_uses_the_heads_average_over_real_tokens(tiny_heads, tiny_prompts):
    means = head_means(tiny_heads, tiny_prompts)
    patched = attribution_patching(tiny_heads, tiny_prompts)
    assert means.shape == (tiny_heads.n_layers, tiny_heads.n_heads, tiny_heads.bridge.cfg.d_head)
    # Padding must not dilute the mean: computed alone or in padded batches, the same vector.
    torch.testing.assert_close(patched.means, means, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(head_means(tiny_heads, tiny_prompts, batch_size=1), means, atol=1e-5, rtol=1e-4)


def test_attribution_patching_matches_exact_ablation_on_a_near_linear_model(tiny_model_dir, models_dir,
                                                                           tiny_prompts):
    # Shrinking every head's output projection makes each head's contribution small, so the
    # score is close to linear in it and the first-order estimate must agree with the truth.
    loaded = load_base(str(tiny_model_dir), models_dir, "cpu")
    with torch.no_grad():
        for layer in loaded.model.model.layers:
            layer.self_attn.o_proj.weight.mul_(0.02)
    hm = boot_bridge(loaded)
    heads = [(layer, head) for layer in range(hm.n_layers) for head in range(hm.n_heads)]
    patched = attribution_patching(hm, tiny_prompts, batch_size=3)
    for ablation, means in [("zero", None), ("mean", patched.means)]:
        clean, ablated = ablate_heads_exact(hm, tiny_prompts, heads, means)
        exact = ablated - clean[:, None]
        estimate = patched.estimated_effects(ablation).reshape(len(tiny_prompts), -1)
        scale = np.abs(exact).max()
        assert scale > 1e-4, ablation
        np.testing.assert_allclose(estimate, exact, atol=0.05 * scale, err_msg=ablation)


def test_logit_lens_last_layer_is_the_models_own_score(tiny_heads, tiny_prompts, tiny_model_dir, models_dir):
    patched = attribution_patching(tiny_heads, tiny_prompts, batch_size=4)
    own = score_prompts(load_base(str(tiny_model_dir), models_dir, "cpu"), tiny_prompts)
    np.testing.assert_allclose(patched.scores, own, atol=1e-4)
    np.testing.assert_allclose(patched.lens[:, -1], own, atol=1e-4)
    assert patched.lens.shape == (len(tiny_prompts), tiny_heads.n_layers + 1)


def test_the_libraries_logit_lens_of_one_email_equals_the_sweeps_lens(tiny_heads, tiny_prompts, sweep_emails):
    """attention_patterns reads the lens with transformer-lens' logit_lens; the sweep reads it off
    its attribution pass by hand: the two are the same numbers at every layer."""
    builder = prompt_builder(tiny_heads, 96)
    for mail, prompt in zip(sweep_emails[:3], tiny_prompts[:3]):
        view = attention_patterns(tiny_heads, *email_prompt(builder, mail))
        np.testing.assert_allclose(view.lens, attribution_patching(tiny_heads, [prompt]).lens[0], atol=1e-4)


def test_default_model_in_the_bridge_scores_like_the_product(default_model_dir, models_dir, real_emails):
    hm = boot_bridge(load_base("smollm2-135m", default_model_dir.parent, "cpu"))
    assert (hm.n_layers, hm.n_heads) == (30, 9)
    builder = prompt_builder(hm, 128)
    prompts = [email_prompt(builder, mail)[0] for mail in real_emails[::3]]
    own = score_prompts(load_base("smollm2-135m", default_model_dir.parent, "cpu"), prompts)
    patched = attribution_patching(hm, prompts, batch_size=4)
    np.testing.assert_allclose(patched.lens[:, -1], own, atol=1e-3)
    view = attention_patterns(hm, *email_prompt(builder, real_emails[0]))
    assert view.score == pytest.approx(own[0], abs=1e-3)
    np.testing.assert_allclose(view.lens, patched.lens[0], atol=1e-3)


def test_attention_patterns_are_distributions_over_earlier_tokens(tiny_heads, real_emails):
    builder = prompt_builder(tiny_heads, 96)
    prompt, span = email_prompt(builder, real_emails[0])
    view = attention_patterns(tiny_heads, prompt, span)
    n = len(prompt)
    assert view.patterns.shape == (tiny_heads.n_layers, tiny_heads.n_heads, n, n)
    assert len(view.tokens) == n
    rows = view.patterns.astype(np.float32).sum(-1)
    np.testing.assert_allclose(rows, 1.0, atol=1e-2)
    assert np.abs(np.triu(view.patterns.astype(np.float32), k=1)).max() == 0  # causal
    share = view.email_share()
    assert share.shape == (tiny_heads.n_layers, tiny_heads.n_heads) and ((share >= 0) & (share <= 1.01)).all()
    top = view.top_attended(layer=1, k=3)
    assert len(top) == 3 * tiny_heads.n_heads and top.groupby("head")["weight"].is_monotonic_decreasing.all()


def test_left_padding_does_not_change_attribution(tiny_heads, tiny_prompts):
    together = attribution_patching(tiny_heads, tiny_prompts, batch_size=6)
    alone = attribution_patching(tiny_heads, tiny_prompts, batch_size=1)
    np.testing.assert_allclose(together.z_dot_grad, alone.z_dot_grad, atol=1e-4)
    np.testing.assert_allclose(together.scores, alone.scores, atol=1e-4)


def test_sweep_checks_the_top_heads_exactly(tiny_heads, tiny_prompts, sweep_emails):
    labels = [mail.label for mail in sweep_emails]
    sweep = sweep_heads(tiny_heads, tiny_prompts, labels, ablation="mean", top_k=3)
    estimated = sweep.effects[sweep.effects["method"] == "attribution"]
    exact = sweep.effects[sweep.effects["method"] == "exact"]
    assert len(estimated) == tiny_heads.n_layers * tiny_heads.n_heads and len(exact) == 3
    largest = estimated.reindex(estimated["delta_logit"].abs().sort_values(ascending=False).index).head(3)
    assert set(zip(largest["layer"], largest["head"])) == set(zip(exact["layer"], exact["head"]))
    assert list(sweep.lens["layer"]) == list(range(-1, tiny_heads.n_layers))
    assert 0 <= sweep.clean_f1 <= 1
    with pytest.raises(ValueError, match="ablation must be one of"):
        sweep_heads(tiny_heads, tiny_prompts, labels, ablation="resample")


def test_sweep_f1_is_the_matrix_metric_even_on_one_class_samples():
    """ΔF1 on the Heads page is the metric Overview shows: F1, recall where only positives exist,
    undefined where only legitimate emails exist (it used to return 2tp/(2tp+fp+fn) there)."""
    assert f1_at_zero(np.array([2.0, -1.0]), np.array([1, 1])) == pytest.approx(0.5)  # recall
    assert np.isnan(f1_at_zero(np.array([2.0, -1.0]), np.array([0, 0])))


def test_f1_at_zero_counts_verdicts_at_the_products_threshold():
    labels = np.array([1, 1, 0, 0])
    assert f1_at_zero(np.array([2.0, -1.0, 0.5, -3.0]), labels) == pytest.approx(0.5)
    assert f1_at_zero(np.array([1.0, 1.0, -1.0, -1.0]), labels) == 1.0


def test_lora_update_norms_match_the_merged_weights(evaluated_settings):
    from data.store import Store

    with Store.open(evaluated_settings.store_path, read_only=True) as store:
        adapter = store.adapters().iloc[0]
    models_dir = evaluated_settings.models_dir
    base = load_base(adapter["model"], models_dir, "cpu")
    merged = load_with_adapter(Path(adapter["path"]), models_dir, "cpu").model.merge_and_unload()
    config = base.model.config
    d_head = config.hidden_size // config.num_attention_heads
    norms = lora_head_update_norms(Path(adapter["path"]), config.num_attention_heads, config.num_key_value_heads,
                                   d_head)
    assert len(norms) == config.num_hidden_layers * config.num_attention_heads
    for row in norms.itertuples():
        base_attn = base.model.model.layers[row.layer].self_attn
        merged_attn = merged.model.layers[row.layer].self_attn
        rows = slice(row.head * d_head, (row.head + 1) * d_head)
        kv = slice((row.head // 2) * d_head, (row.head // 2 + 1) * d_head)  # 4 heads share 2 key-value heads
        expected = {
            "q": (merged_attn.q_proj.weight - base_attn.q_proj.weight)[rows].norm(),
            "k": (merged_attn.k_proj.weight - base_attn.k_proj.weight)[kv].norm(),
            "o": (merged_attn.o_proj.weight - base_attn.o_proj.weight)[:, rows].norm(),
        }
        for proj, value in expected.items():
            assert getattr(row, proj) == pytest.approx(float(value), rel=1e-3, abs=1e-6), (row.layer, row.head, proj)
    assert (norms["total"] > 0).all()


def test_heads_command_stores_a_sweep_and_skips_it_the_second_time(evaluated_settings):
    from cli import app
    from data.store import Store

    args = ["--home", str(evaluated_settings.home), "--store", str(evaluated_settings.store_path),
            "--model", evaluated_settings.model, "--device", "cpu", "heads", "--corpus", "synthetic-corporate",
            "--training-set", "generalist", "--sample-size", "8", "--top-k", "3", "--max-tokens", "96"]
    first = CliRunner().invoke(app, args)
    assert first.exit_code == 0, first.output
    assert "swept 8 heads" in first.output
    with Store.open(evaluated_settings.store_path, read_only=True) as store:
        sweeps = store.head_sweeps()
        row = sweeps[(sweeps["corpus"] == "synthetic-corporate") & (sweeps["n_emails"] == 8)].iloc[0]
        assert (row["training_set"], row["exact_heads"]) == ("generalist", 3)
        effects = store.head_effects(row["adapter_id"], row["params"])
        assert len(effects) == 8 and effects["exact_delta_logit"].notna().sum() == 3
        lens = store.logit_lens([row["adapter_id"]])
        assert len(lens[lens["params"] == row["params"]]) == 3  # embedding + 2 layers
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 0 and "already stored" in again.output
    wrong = CliRunner().invoke(app, args[:-6] + ["--ablation", "resample"])
    assert wrong.exit_code != 0 and "--ablation must be one of" in wrong.output
