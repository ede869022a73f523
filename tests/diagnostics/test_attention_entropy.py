"""Attention entropy per head, a per-head diagnostic added as one module and one registry line: its
values equal the entropy of the answer position's attention recomputed from the bridge's patterns,
stay within [0, log2(prompt length)], are stored from `cli.py diagnose`, and the Heads page draws them."""

import json

import numpy as np
from typer.testing import CliRunner

from data.records import DiagnosticRequest, EvaluationTarget
from data.store import Store
from diagnostics.analyses.attention_entropy import AttentionEntropy
from diagnostics.analyses.bridge import attention_patterns, boot_bridge, email_prompt
from models.loading import load_base
from models.scoring import prompt_builder


def test_values_are_the_entropy_of_the_answer_positions_attention(tiny_model_dir, real_emails, tmp_path):
    loaded = load_base(str(tiny_model_dir), tmp_path, "cpu")
    builder = prompt_builder(loaded, 96)
    prompts = [email_prompt(builder, mail) for mail in real_emails[:4]]
    hm = boot_bridge(loaded)
    values = AttentionEntropy(DiagnosticRequest(EvaluationTarget(str(tiny_model_dir)), "any"), tmp_path).values(
        hm, [p for p, _ in prompts], batch_size=1)
    assert values.per_head.shape == (4, 2, 4) and np.isnan(values.remainder).all()
    for i, (prompt, span) in enumerate(prompts):
        last = attention_patterns(hm, prompt, span).from_last_position().astype(np.float64)  # (layers, heads, tokens)
        expected = -(last * np.log2(np.clip(last, 1e-12, None))).sum(-1)
        np.testing.assert_allclose(values.per_head[i], expected, atol=2e-3)  # the view keeps float16 patterns
        assert (values.per_head[i] >= -1e-9).all() and (values.per_head[i] <= np.log2(len(prompt)) + 1e-9).all()


def test_it_runs_from_the_cli_and_the_heads_page_draws_it(monkeypatch, evaluated_copy):
    from cli import app
    from tests.conftest import open_app_page

    settings = evaluated_copy
    args = ["--home", str(settings.home), "--store", str(settings.store_path), "--model", settings.model,
            "--device", "cpu", "diagnose", "attention-entropy", "--corpus", "synthetic-corporate",
            "--training-set", "generalist", "--sample-size", "4", "--max-tokens", "96"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0 and "stored (run" in result.output, result.output
    with Store.open(settings.store_path, read_only=True) as store:
        stored = store.head_value_results("attention-entropy")
        values = store.head_values("attention-entropy", stored["adapter_id"][0], stored["params"][0])
    heads = values[values["layer"] >= 0]
    assert len(heads) == 8 and heads["value"].between(0, 10).all() and heads["value"].std() > 0
    at = open_app_page(monkeypatch, settings, "pages/heads.py", max_tokens=96, adapter="generalist",
                       tab="Attention entropy")
    assert not at.exception, at.exception
    titles = [json.loads(c.proto.spec)["layout"].get("title", {}).get("text", "") for c in at.get("plotly_chart")]
    assert "Attention entropy: generalist · synthetic-corporate · 4 emails" in titles, titles
    assert not any("everything else (embedding, MLPs)" in c.value for c in at.caption)  # no remainder row
