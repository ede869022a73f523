"""Classifier scoring throughput against two baselines measured in the same run.

Baselines (same model, same emails, same prompts, same token budget):
  one_at_a_time  - a plain transformers forward per email, full-vocabulary logits at every position
  naive_batching - fixed batches in corpus order (no length bucketing), full logits at every position
PhishLens: score_emails - length-bucketed, left-padded batches, last-position logits only, inference mode;
phishlens_compiled: the same with the forward compiled by torch.compile (what `evaluate` does for
long jobs); its one-off compile time is reported apart (compile_s).
phishlens_bf16: score_emails with the model in bf16 (PHISHLENS_PRECISION=bf16).
phishlens_int8: SmoothQuant int8 (PHISHLENS_PRECISION=int8; calibrated on 32 other emails),
compiled (eager int8 spends its time quantizing activations; inductor fuses that into the matmuls).
Agreement with fp32 is reported as the largest score difference and verdicts flipped; F1 per
corpus is benchmarks/bench_precision.py's job.

MFU: useful model FLOPs (real tokens only, causal attention, last-position vocabulary
projection; models/flops.py) per second over the achievable rate of a large fp32 matmul
measured in the same run (before and after the timings; the mean is used). bf16 and int8 are
also given against their own dtype's matmul rate (mfu_own_dtype), measured in the same run.

On CUDA the model loads in bf16 (models.loading.pick_device), so the PhishLens rows are bf16 with
the GPU's bf16 matmul rate as MFU's ceiling, batches default to 64, and the CPU-only bf16 and
int8 rows are left out.

Emails: --n (default 256) sampled evenly from the four corpora. The sample size matters to the
fp32 figure: length buckets leave padding only among the emails the token budget does not cut,
and that tail shrinks as a job grows (pad share at batch 8: 4.7% of tokens at 64 emails, 1.4% at
256, 0.6% at 512); `evaluate` scores whole test splits, thousands of emails per corpus.

Usage: .venv/bin/python benchmarks/bench_scoring.py [--n 256] [--max-tokens 256] [--batch-size 8]
Prints one JSON object; ratios are emails/s of PhishLens over each baseline.
"""

from __future__ import annotations

import argparse
import json
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
from models.flops import describe_cpu, matmul_rate, scoring_flops  # noqa: E402
from models.loading import load_base  # noqa: E402
from models.precision import at_precision, measure_matmul_rates  # noqa: E402
from models.scoring import (PromptBuilder, compiled_for_scoring, default_batch_size, label_token_ids,  # noqa: E402
                            length_buckets, pad_left, score_emails)


CALIBRATION = 32  # int8 calibration emails, sampled with the timed ones but never timed


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


def padding_share(lengths, batch_size):
    """Share of the tokens in PhishLens' length-bucketed batches that are padding."""
    real = padded = 0
    for indices in length_buckets(lengths, batch_size):
        width = max(lengths[i] for i in indices)
        real += sum(lengths[i] for i in indices)
        padded += width * len(indices)
    return 1 - real / padded


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=256)
    parser.add_argument("--max-tokens", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=None, help="default: 8 on CPU, 64 on CUDA")
    parser.add_argument("--data", type=Path, default=PROJECT_ROOT.parent / "shared" / "data")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--row-limit-min", type=float, default=30,
                        help="skip a bf16 / int8 row whose time, estimated from measured matmul rates, passes this")
    args = parser.parse_args()

    settings = load_settings()
    loaded = load_base(settings.model, settings.models_dir, settings.device)
    on_cpu = loaded.device.type == "cpu"
    args.batch_size = args.batch_size or default_batch_size(loaded.device)
    emails = sample_emails(args.data, args.n + CALIBRATION, args.seed)
    emails, calibration = emails[:args.n], emails[args.n:]
    builder = PromptBuilder(loaded.tokenizer, loaded.spec, args.max_tokens)
    prompts = [builder.build(m).input_ids for m in emails]
    lengths = [len(p) for p in prompts]
    score_emails(loaded, emails[:4], args.max_tokens, args.batch_size)  # warm-up

    def reference_rate():  # the loaded dtype's matmul rate on the model's device (fp32 on CPU)
        return matmul_rate(loaded.dtype, device=loaded.device.type)

    rate_before = reference_rate()
    single, t_single = timed(lambda: full_logit_scores(loaded, prompts, 1))
    naive, t_naive = timed(lambda: full_logit_scores(loaded, prompts, args.batch_size))
    fast, t_fast = timed(lambda: score_emails(loaded, emails, args.max_tokens, args.batch_size))
    compiled = compiled_for_scoring(loaded)
    _, t_compile = timed(lambda: score_emails(compiled, emails[:args.batch_size], args.max_tokens, args.batch_size))
    fused, t_fused = timed(lambda: score_emails(compiled, emails, args.max_tokens, args.batch_size))
    rate = (rate_before + reference_rate()) / 2
    seconds = {"one_at_a_time": t_single, "naive_batching": t_naive, "phishlens": t_fast, "phishlens_compiled": t_fused}
    rates = {"fp32" if on_cpu else "bf16": rate}
    lower_precision, skipped, extra = {}, {}, {}

    if on_cpu:  # the opt-in CPU precisions; on CUDA the model already runs in bf16
        # Where a precision is emulated (bf16 on AVX2-only CPUs: ~1/100 of fp32) its row would take
        # hours: skip it, saying why, from a quick measurement of the rates.
        probe = measure_matmul_rates()
        skipped = {p: reason for p in ("bf16", "int8")
                   if (reason := probe.too_slow_for(p, t_fast, args.row_limit_min * 60))}
        if "bf16" not in skipped:
            half = at_precision(loaded, "bf16")
            score_emails(half, emails[:4], args.max_tokens, args.batch_size)  # warm-up
            lower_precision["bf16"], seconds["phishlens_bf16"] = timed(
                lambda: score_emails(half, emails, args.max_tokens, args.batch_size))
            rates["bf16"] = matmul_rate(torch.bfloat16)
        if "int8" not in skipped:
            int8_model, extra["int8_calibrate_s"] = timed(lambda: at_precision(
                loaded, "int8", [builder.build(m).input_ids for m in calibration]))
            lower_precision["int8_eager"], seconds["phishlens_int8_eager"] = timed(
                lambda: score_emails(int8_model, emails, args.max_tokens, args.batch_size))
            int8_model = compiled_for_scoring(int8_model)
            _, extra["int8_compile_s"] = timed(lambda: score_emails(int8_model, emails[:args.batch_size],
                                                                     args.max_tokens, args.batch_size))
            lower_precision["int8"], seconds["phishlens_int8"] = timed(
                lambda: score_emails(int8_model, emails, args.max_tokens, args.batch_size))
            rates["int8"] = matmul_rate(torch.int8)

    useful = scoring_flops(loaded.model.config, lengths)
    n = len(emails)

    def agreement(scores):
        return {"max_abs_score_diff": float(np.abs(scores - fast).max()),
                "mean_abs_score_diff": float(np.abs(scores - fast).mean()),
                "verdicts_flipped": int(((scores > 0) != (fast > 0)).sum())}

    result = {
        "benchmark": "scoring",
        "model": loaded.spec.name, "device": str(loaded.device), "dtype": str(loaded.dtype),
        "threads": torch.get_num_threads(), "cpu": describe_cpu(),
        "emails": n, "padding_share": padding_share(lengths, args.batch_size),
        "max_tokens": args.max_tokens, "batch_size": args.batch_size,
        "mean_prompt_tokens": float(np.mean(lengths)),
        "emails_per_s": {name: n / t for name, t in seconds.items()},
        "reference_matmul_gflops": rate / 1e9,
        "matmul_gflops": {k: v / 1e9 for k, v in rates.items()},
        "model_gflops_per_email": useful / n / 1e9,
        "mfu": {name: useful / t / rate for name, t in seconds.items() if name != "phishlens_int8_eager"},
        "compile_s": t_compile,
        "speedup_vs_one_at_a_time": {name: t_single / t for name, t in seconds.items()},
        "speedup_vs_naive_batching": {name: t_naive / t for name, t in seconds.items()},
        "max_abs_score_diff_vs_one_at_a_time": float(np.abs(fast - single).max()),
        "max_abs_score_diff_compiled_vs_eager": float(np.abs(fused - fast).max()),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    if on_cpu:
        result |= {
            "mfu_own_dtype": {f"phishlens_{p}": useful / seconds[f"phishlens_{p}"] / rates[p]
                              for p in ("bf16", "int8") if p in rates},
            **extra, "skipped_rows": skipped, "probe_matmul_gflops": probe.gflops,
            "agreement_with_fp32": {name: agreement(scores) for name, scores in lower_precision.items()},
        }
    else:
        result["peak_gpu_memory_mb"] = torch.cuda.max_memory_allocated() / 2**20
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
