"""Head sweeps on real emails: a naive ablation loop against PhishLens' exact ablation and
attribution patching, measured in one run on the same model, emails and ablation.

  naive        - the obvious implementation: for each head, for each fixed batch of emails, one
                 full forward pass through the TransformerBridge with a hook_z hook that ablates
                 the head (full-vocabulary logits, no length bucketing). 270 heads × 200 emails
                 is ~54,000 email forwards (hours here), so it runs on a seeded random sample of
                 heads and is extrapolated (per head it costs the same whatever the layer).
  exact        - diagnostics.analyses.heads.ablate_heads_exact: length-bucketed batches, one clean pass
                 per batch recording every block's input, each head re-running only the blocks
                 from its layer up. Timed on the same sampled heads; the full sweep is
                 extrapolated from its clean-pass time plus the per-block cost times the number
                 of blocks all 270 heads re-run.
  attribution  - diagnostics.analyses.heads.attribution_patching: one forward + one backward pass per
                 batch estimates every head; then the top-k heads by |estimate| are ablated
                 exactly (the check the product runs). Both timed in full.
Rank correlation (Spearman) of the estimated vs exact effect on the mean score over the
sampled heads plus the top-k; the naive and exact effects must agree (max |Δ| printed).

Usage: .venv/bin/python benchmarks/bench_heads.py [--emails 200] [--heads 10] [--store S --adapter A]
Emails: an equal share per corpus of ../shared/data (seeded), or with --store, of each
corpus' test split in that store (use this with an adapter so no training email is used).
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from scipy.stats import spearmanr  # noqa: E402

from data.corpora import discover_corpora, read_corpus  # noqa: E402
from data.records import Email  # noqa: E402
from data.settings import PROJECT_ROOT, load_settings  # noqa: E402
from diagnostics.analyses.bridge import email_prompt, load_head_model, score_from_logits  # noqa: E402
from diagnostics.analyses.heads import ablate_heads_exact, ablation_hook, attribution_patching  # noqa: E402
from models.scoring import (
    pad_left,  # noqa: E402
    prompt_builder,  # noqa: E402
)


def pick_emails(args) -> list[Email]:
    rng = random.Random(args.seed)
    if args.store:
        from data.splits import test_sample
        from data.store import Store

        with Store.open(args.store, read_only=True) as store:
            corpora = store.corpus_names()
            per = -(-args.emails // len(corpora))
            ids = [i for corpus in corpora for i in test_sample(store, corpus, per, args.seed)]
            return store.emails_by_ids(ids[: args.emails])
    sources = discover_corpora(args.data)
    per = -(-args.emails // len(sources))
    chosen = []
    for source in sources:
        parsed = []
        for mail in read_corpus(source, lowercase=False, progress=False):
            if isinstance(mail, Email):
                parsed.append(mail)
            if len(parsed) >= 1000:
                break
        chosen += rng.sample(parsed, min(per, len(parsed)))
    return chosen[: args.emails]


def naive_effects(hm, prompts, heads, means, batch_size) -> tuple[np.ndarray, np.ndarray]:
    """Clean scores and one full forward per head per fixed batch, in input order."""
    def scores_with(hooks) -> np.ndarray:
        out = []
        for start in range(0, len(prompts), batch_size):
            batch = pad_left(prompts[start:start + batch_size], hm.tokenizer.pad_token_id, hm.device)
            logits = hm.bridge.run_with_hooks(batch["input_ids"], attention_mask=batch["attention_mask"],
                                              fwd_hooks=hooks, use_cache=False)
            out.append(score_from_logits(hm, logits[:, -1, :]).cpu().numpy())
        return np.concatenate(out)

    with torch.inference_mode():
        clean = scores_with([])
        ablated = np.stack([scores_with([(hm.hook_z(layer), ablation_hook(head, means[layer, head]))])
                            for layer, head in heads], 1)
    return clean, ablated


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--emails", type=int, default=200)
    parser.add_argument("--heads", type=int, default=10, help="heads sampled for the naive loop")
    parser.add_argument("--top-k", type=int, default=10)
    parser.add_argument("--max-tokens", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--data", type=Path, default=PROJECT_ROOT.parent / "shared" / "data")
    parser.add_argument("--store", type=Path, default=None)
    parser.add_argument("--adapter", type=Path, default=None, help="an adapter folder (default: the base model)")
    parser.add_argument("--seed", type=int, default=13)
    args = parser.parse_args()

    settings = load_settings()
    torch.manual_seed(args.seed)
    hm = load_head_model(settings.model, args.adapter, settings.models_dir, "cpu")
    builder = prompt_builder(hm, args.max_tokens)
    emails = pick_emails(args)
    prompts = [email_prompt(builder, mail)[0] for mail in emails]
    all_heads = [(layer, head) for layer in range(hm.n_layers) for head in range(hm.n_heads)]
    sampled = sorted(random.Random(args.seed).sample(all_heads, args.heads))

    started = time.perf_counter()
    patched = attribution_patching(hm, prompts, args.batch_size)
    attribution_s = time.perf_counter() - started
    estimates = patched.estimated_effects("mean").reshape(len(prompts), -1).mean(0)
    top = [all_heads[i] for i in np.argsort(-np.abs(estimates))[: args.top_k]]

    started = time.perf_counter()
    clean, top_ablated = ablate_heads_exact(hm, prompts, top, patched.means, args.batch_size)
    top_check_s = time.perf_counter() - started

    started = time.perf_counter()
    ablate_heads_exact(hm, prompts, [], patched.means, args.batch_size)
    exact_clean_s = time.perf_counter() - started
    started = time.perf_counter()
    _, sampled_ablated = ablate_heads_exact(hm, prompts, sampled, patched.means, args.batch_size)
    exact_sampled_s = time.perf_counter() - started
    blocks_rerun = lambda heads: sum(hm.n_layers - layer for layer, _ in heads)  # noqa: E731
    per_block_s = (exact_sampled_s - exact_clean_s) / blocks_rerun(sampled)
    exact_full_s = exact_clean_s + per_block_s * blocks_rerun(all_heads)

    started = time.perf_counter()
    naive_clean, naive_ablated = naive_effects(hm, prompts, sampled, patched.means, args.batch_size)
    naive_sampled_s = time.perf_counter() - started
    # One clean pass plus one pass per head: extrapolate the per-head part to every head.
    naive_full_s = naive_sampled_s / (len(sampled) + 1) * (len(all_heads) + 1)

    exact_effect = {h: float((sampled_ablated[:, i] - clean).mean()) for i, h in enumerate(sampled)}
    exact_effect |= {h: float((top_ablated[:, i] - clean).mean()) for i, h in enumerate(top)}
    naive_effect = (naive_ablated - naive_clean[:, None]).mean(0)
    compared = sorted(exact_effect)
    rho = spearmanr([estimates[all_heads.index(h)] for h in compared], [exact_effect[h] for h in compared])
    top_rho = spearmanr([estimates[all_heads.index(h)] for h in top], [exact_effect[h] for h in top])
    lens_check = float(np.abs(patched.lens[:, -1] - clean).max())
    report = {
        "benchmark": "head sweep (mean ablation)",
        "machine": {"cpus": torch.get_num_threads(), "platform": platform.platform(), "torch": torch.__version__},
        "model": settings.model, "adapter": hm.adapter_id, "layers": hm.n_layers, "heads_per_layer": hm.n_heads,
        "emails": len(prompts), "max_tokens": args.max_tokens,
        "mean_prompt_tokens": float(np.mean([len(p) for p in prompts])), "batch_size": args.batch_size,
        "naive": {"sampled_heads": [list(h) for h in sampled], "measured_s": naive_sampled_s,
                  "email_forwards_measured": len(prompts) * (len(sampled) + 1),
                  "full_sweep_s": naive_full_s, "full_sweep_is": "extrapolated from the sampled heads",
                  "email_forwards_full": len(prompts) * (len(all_heads) + 1)},
        "exact": {"clean_pass_s": exact_clean_s, "sampled_heads_s": exact_sampled_s, "full_sweep_s": exact_full_s,
                  "full_sweep_is": "extrapolated: clean pass + per-block cost × blocks re-run by all heads",
                  "speedup_vs_naive": naive_full_s / exact_full_s,
                  "max_abs_diff_vs_naive": float(np.abs(naive_effect - np.array([exact_effect[h] for h in sampled])).max())},
        "attribution": {"patching_s": attribution_s, "top_k": args.top_k, "exact_top_k_check_s": top_check_s,
                        "sweep_with_check_s": attribution_s + top_check_s,
                        "speedup_vs_naive_patching_only": naive_full_s / attribution_s,
                        "speedup_vs_naive_with_check": naive_full_s / (attribution_s + top_check_s),
                        "fraction_of_naive_with_check": (attribution_s + top_check_s) / naive_full_s,
                        "spearman_vs_exact": float(rho.statistic), "spearman_heads": len(compared),
                        "spearman_top_k": float(top_rho.statistic),
                        "top_k_heads": [{"layer": h[0], "head": h[1], "estimate": float(estimates[all_heads.index(h)]),
                                         "exact": exact_effect[h]} for h in top]},
        "checks": {"logit_lens_last_layer_vs_score_max_abs": lens_check,
                   "clean_exact_vs_naive_max_abs": float(np.abs(clean - naive_clean).max())},
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
