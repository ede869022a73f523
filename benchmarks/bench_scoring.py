"""Classifier scoring throughput against two baselines measured in the same run.

Baselines (same model, same emails, same prompts, same token budget):
  one_at_a_time  - a plain transformers forward per email, full-vocabulary logits at every position
  naive_batching - fixed batches in corpus order (no length bucketing), full logits at every position
PhishLens: score_emails - length-bucketed, left-padded batches, last-position logits only, inference mode;
phishlens_compiled: the same with the forward compiled by torch.compile (what `evaluate` does for
long jobs); its one-off compile time is reported apart (compile_s).

MFU: useful model FLOPs (real tokens only, causal attention, last-position vocabulary
projection; models/flops.py) per second over the achievable rate of a large fp32 matmul
measured in the same run (before and after the timings; the mean is used).

Usage: .venv/bin/python benchmarks/bench_scoring.py [--n 64] [--max-tokens 256] [--batch-size 8]
Prints one JSON object; ratios are emails/s of PhishLens over each baseline.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from data.corpora import discover_corpora, read_corpus  # noqa: E402
from data.settings import PROJECT_ROOT, load_settings  # noqa: E402
from models.flops import matmul_rate, scoring_flops  # noqa: E402
from models.loading import load_base  # noqa: E402
from models.scoring import PromptBuilder, compiled_for_scoring, label_token_ids, pad_left, score_emails  # noqa: E402


def sample_emails(data_dir: Path, n: int, seed: int):
    """n real emails, an equal share from each corpus (first 400 parsed of each, then sampled)."""
    pool = []
    for source in discover_corpora(data_dir):
        emails = []
        for item in read_corpus(source, lowercase=False, progress=False):
            if not isinstance(item, tuple):
                emails.append(item)
            if len(emails) >= 400:
                break
        pool.append(emails)
    rng = random.Random(seed)
    per = n // len(pool) + 1
    chosen = [m for emails in pool for m in rng.sample(emails, min(per, len(emails)))]
    rng.shuffle(chosen)
    return chosen[:n]


def full_logit_scores(loaded, prompts, batch_size):
    negative, positive = label_token_ids(loaded.tokenizer, loaded.spec)
    out = []
    with torch.no_grad():
        for start in range(0, len(prompts), batch_size):
            batch = pad_left(prompts[start: start + batch_size], loaded.tokenizer.pad_token_id, loaded.device)
            logits = loaded.model(**batch).logits[:, -1, :].float()  # every position computed, last one read
            out.extend((logits[:, positive] - logits[:, negative]).tolist())
    return np.array(out)


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=64)
    parser.add_argument("--max-tokens", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--data", type=Path, default=PROJECT_ROOT.parent / "shared" / "data")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    settings = load_settings()
    loaded = load_base(settings.model, settings.models_dir, settings.device)
    emails = sample_emails(args.data, args.n, args.seed)
    builder = PromptBuilder(loaded.tokenizer, loaded.spec, args.max_tokens)
    prompts = [builder.build(m).input_ids for m in emails]
    score_emails(loaded, emails[:4], args.max_tokens, args.batch_size)  # warm-up

    rate_before = matmul_rate(torch.float32)
    single, t_single = timed(lambda: full_logit_scores(loaded, prompts, 1))
    naive, t_naive = timed(lambda: full_logit_scores(loaded, prompts, args.batch_size))
    fast, t_fast = timed(lambda: score_emails(loaded, emails, args.max_tokens, args.batch_size))
    compiled = compiled_for_scoring(loaded)
    _, t_compile = timed(lambda: score_emails(compiled, emails[:args.batch_size], args.max_tokens, args.batch_size))
    fused, t_fused = timed(lambda: score_emails(compiled, emails, args.max_tokens, args.batch_size))

    rate = (rate_before + matmul_rate(torch.float32)) / 2
    useful = scoring_flops(loaded.model.config, [len(p) for p in prompts])
    n = len(emails)
    result = {
        "benchmark": "scoring",
        "model": loaded.spec.name, "device": str(loaded.device), "dtype": str(loaded.dtype),
        "threads": torch.get_num_threads(), "cpu": platform.processor() or platform.machine(),
        "emails": n, "max_tokens": args.max_tokens, "batch_size": args.batch_size,
        "mean_prompt_tokens": float(np.mean([len(p) for p in prompts])),
        "emails_per_s": {"one_at_a_time": n / t_single, "naive_batching": n / t_naive, "phishlens": n / t_fast,
                         "phishlens_compiled": n / t_fused},
        "fp32_matmul_gflops": rate / 1e9,
        "model_gflops_per_email": useful / n / 1e9,
        "mfu": {"one_at_a_time": useful / t_single / rate, "naive_batching": useful / t_naive / rate,
                "phishlens": useful / t_fast / rate, "phishlens_compiled": useful / t_fused / rate},
        "compile_s": t_compile,
        "compiled_speedup_vs_one_at_a_time": t_single / t_fused,
        "max_abs_score_diff_compiled_vs_eager": float(np.abs(fused - fast).max()),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "speedup_vs_one_at_a_time": t_single / t_fast,
        "speedup_vs_naive_batching": t_naive / t_fast,
        "max_abs_score_diff_vs_one_at_a_time": float(np.abs(fast - single).max()),
    }
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
