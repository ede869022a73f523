"""LoRA fine-tuning throughput (tokens/s, MFU, peak RSS) and the F1 each loop's adapter reaches,
against a naive loop and the previous loop, in one run.

The corpora of ../shared/data are ingested into a temporary store and split; every loop
trains on the same generalist training set (--n emails, label-balanced over the corpora with
both labels) with the product's default LoRA settings, and every adapter is scored on the same
stratified sample of each corpus' test split:
  naive      - peft model, batches in corpus order, full-vocabulary logits at every position
               (what a causal-LM training loop computes by default), loss at the last position
  previous   - the loop PhishLens ran before this benchmark's change: LoRA dropout 0.05, batches
               in random order (padded to their longest prompt), unfused AdamW
  phishlens  - models.finetune.finetune_adapter as shipped: no LoRA dropout, length-bucketed
               batches, fused AdamW, last-position logits; trained with two seeds
  upper      - the same with LoRA on the upper half of the layers only (`train --from-layer`):
               the lower layers run once, the second seed reuses their output
  phishlens_bf16 - the shipped loop under bf16 autocast, where this CPU's bf16 matmul is faster
Tokens are real prompt tokens (no padding). MFU: useful FLOPs (models/flops.py: forward plus
the backward to the activations, of the layers a step runs) per second over a large fp32
matmul's rate measured in the same run. F1: each corpus' test sample, 95% bootstrap interval.

Usage: .venv/bin/python benchmarks/bench_training.py [--n 256] [--eval-size 100] [--max-tokens 128]
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from data.metrics import confusion  # noqa: E402
from data.records import LoraSettings  # noqa: E402
from data.settings import PROJECT_ROOT, load_settings  # noqa: E402
from data.splits import build_generalist, test_sample  # noqa: E402
from data.store import Store  # noqa: E402
from diagnostics.runners.pipeline import ingest_folder  # noqa: E402
from diagnostics.analyses.matrix import bootstrap_f1_interval  # noqa: E402
from models.finetune import finetune_adapter  # noqa: E402
from models.flops import describe_cpu, lora_training_flops, lower_layer_flops, matmul_rate  # noqa: E402
from models.layer_reuse import LOWER_STATES  # noqa: E402
from models.loading import load_base, load_with_adapter  # noqa: E402
from models.memory import estimate_memory  # noqa: E402
from models.precision import measure_matmul_rates  # noqa: E402
from models.scoring import PromptBuilder, label_token_ids, last_position_logits, pad_left, score_emails  # noqa: E402


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def peft_model(base, lora: LoraSettings):
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(lora.seed)
    model = get_peft_model(base.model, LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                                                  target_modules=list(base.spec.lora_target_modules),
                                                  task_type="CAUSAL_LM"))
    model.train()
    return model


def naive_training(base, emails, lora: LoraSettings):
    """One epoch of the naive loop; returns (seconds, the trained peft model)."""
    model = peft_model(base, lora)
    builder = PromptBuilder(base.tokenizer, base.spec, lora.max_tokens)
    negative, positive = label_token_ids(base.tokenizer, base.spec)
    prompts = [builder.build(m).input_ids for m in emails]
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lora.lr)
    started = time.perf_counter()
    for start in range(0, len(prompts), lora.batch_size):
        batch = pad_left(prompts[start: start + lora.batch_size], base.tokenizer.pad_token_id, base.device)
        labels = torch.tensor([m.label for m in emails[start: start + lora.batch_size]])
        logits = model(**batch, use_cache=False).logits[:, -1, [negative, positive]].float()
        torch.nn.functional.cross_entropy(logits, labels).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return time.perf_counter() - started, model


def previous_training(base, emails, lora: LoraSettings):
    """The loop finetune_adapter ran before length bucketing, no-dropout and fused AdamW (its
    warm-up/decay schedule and clipping included); returns (seconds, the trained peft model)."""
    lora = replace(lora, dropout=0.05)
    model = peft_model(base, lora)
    rng = random.Random(lora.seed)
    builder = PromptBuilder(base.tokenizer, base.spec, lora.max_tokens)
    negative, positive = label_token_ids(base.tokenizer, base.spec)
    examples = [(builder.build(m).input_ids, m.label) for m in emails]
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=lora.lr, weight_decay=0.0)
    total = (len(examples) + lora.batch_size - 1) // lora.batch_size * lora.epochs
    warmup = max(1, total // 10)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: (s + 1) / warmup if s < warmup else max(0.05, (total - s) / max(1, total - warmup)))
    started = time.perf_counter()
    for _ in range(lora.epochs):
        order = list(range(len(examples)))
        rng.shuffle(order)
        for start in range(0, len(order), lora.batch_size):
            chunk = [examples[i] for i in order[start: start + lora.batch_size]]
            batch = pad_left([ids for ids, _ in chunk], base.tokenizer.pad_token_id, base.device)
            labels = torch.tensor([label for _, label in chunk])
            logits = last_position_logits(model, batch)[:, [negative, positive]].float()
            torch.nn.functional.cross_entropy(logits, labels).backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
    return time.perf_counter() - started, model


def f1_cell(labels: np.ndarray, verdicts: np.ndarray) -> dict:
    """F1 with its 95% bootstrap interval, n, and the share of phishing verdicts."""
    tp, fp, fn, tn = confusion(verdicts, labels)
    f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else float("nan")
    low, high = bootstrap_f1_interval(tp, fp, fn, tn)
    return {"f1": round(f1, 3), "ci95": [round(low, 3), round(high, 3)], "n": len(labels),
            "phishing_verdicts": round(float(np.mean(verdicts)), 3)}


def verdict_table(score, tests: dict) -> dict:
    """Per corpus of `tests` (corpus → emails): f1_cell of the verdicts score(emails) > 0."""
    return {corpus: f1_cell(np.array([m.label for m in emails]), np.asarray(score(emails)) > 0)
            for corpus, emails in tests.items()}


def f1_by_corpus(loaded, tests: dict, max_tokens: int) -> dict:
    """F1 with its 95% bootstrap interval on each corpus' test sample, scored by `loaded`."""
    return verdict_table(lambda emails: score_emails(loaded, emails, max_tokens), tests)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=256, help="training emails (one generalist set)")
    parser.add_argument("--eval-size", type=int, default=100, help="test emails per corpus")
    parser.add_argument("--max-tokens", type=int, default=LoraSettings.max_tokens)
    parser.add_argument("--batch-size", type=int, default=LoraSettings.batch_size)
    parser.add_argument("--from-layer", type=int, default=None, help="upper row's first adapted layer (default: half)")
    parser.add_argument("--data", type=Path, default=PROJECT_ROOT.parent / "shared" / "data")
    args = parser.parse_args()

    settings = load_settings()
    home = Path(tempfile.mkdtemp(prefix="bench-training-"))
    with Store.open(home / "store.duckdb") as store:
        ingest_folder(store, settings, args.data, progress=False)
        corpora = store.training_corpora()
        build_generalist(store, corpora, args.n, settings.seed)
        emails = store.training_set_emails("generalist")
        tests = {c: store.emails_by_ids(test_sample(store, c, args.eval_size, settings.seed))
                 for c in sorted(store.corpora()["name"])}
    lora = LoraSettings(batch_size=args.batch_size, max_tokens=args.max_tokens)
    fresh = lambda: load_base(settings.model, settings.models_dir, settings.device)  # noqa: E731
    base = fresh()
    config = base.model.config
    split = args.from_layer or config.num_hidden_layers // 2
    lengths = [len(PromptBuilder(base.tokenizer, base.spec, lora.max_tokens).build(m).input_ids) for m in emails]
    tokens = sum(lengths)
    useful = lora_training_flops(config, lengths)
    useful_upper = lora_training_flops(config, lengths, split)
    once_lower = lower_layer_flops(config, lengths, split)

    adapters = home / "adapters"
    finetune_adapter(fresh(), emails[: lora.batch_size], "warm-up", lora, adapters, progress=False)  # threads, allocator
    rates = [matmul_rate(torch.float32)]
    rows, f1 = {}, {}

    def record(name: str, seconds: float, flops: float, rss_before: float, **extra) -> None:
        rows[name] = {"seconds": round(seconds, 2), "tokens_per_s": round(tokens * lora.epochs / seconds, 1),
                      "useful_tflop": round(flops / 1e12, 3), "peak_rss_mb": round(peak_rss_mb(), 0),
                      "peak_rss_grew_mb": round(peak_rss_mb() - rss_before, 0), **extra}

    # The shipped loop first, so that the process's peak RSS after it is its own.
    shipped = {}
    for seed in (lora.seed, lora.seed + 1):
        rss = peak_rss_mb()
        started = time.perf_counter()
        info = finetune_adapter(fresh(), emails, "generalist", replace(lora, seed=seed), adapters, progress=False)
        shipped[seed] = (time.perf_counter() - started, info)
        if seed == lora.seed:
            record("phishlens", shipped[seed][0], useful * lora.epochs, rss,
                   mean_loss=round(float(np.mean(info.train_loss)), 4))
    rows["phishlens"]["two_seeds_seconds"] = round(sum(t for t, _ in shipped.values()), 2)
    for seed, (_, info) in shipped.items():
        f1[f"phishlens seed {seed}"] = f1_by_corpus(load_with_adapter(info.path, settings.models_dir, settings.device),
                                                   tests, lora.max_tokens)

    upper = {}
    LOWER_STATES.clear()
    for seed in (lora.seed, lora.seed + 1):
        rss = peak_rss_mb()
        started = time.perf_counter()
        info = finetune_adapter(fresh(), emails, "generalist", replace(lora, seed=seed, from_layer=split), adapters,
                                progress=False)
        upper[seed] = (time.perf_counter() - started, info)
    first, second = upper[lora.seed][0], upper[lora.seed + 1][0]
    record("upper", first, useful_upper * lora.epochs + once_lower, rss, from_layer=split,
           layers=config.num_hidden_layers, second_seed_seconds=round(second, 2),
           second_seed_reused_states=LOWER_STATES.hits == 1,
           two_seeds_seconds=round(first + second, 2),
           saving_vs_all_layers_two_seeds=round(rows["phishlens"]["two_seeds_seconds"] / (first + second), 3),
           mean_loss=round(float(np.mean(upper[lora.seed][1].train_loss)), 4))
    LOWER_STATES.clear()
    for seed, (_, info) in upper.items():
        f1[f"upper seed {seed}"] = f1_by_corpus(load_with_adapter(info.path, settings.models_dir, settings.device),
                                               tests, lora.max_tokens)

    rss = peak_rss_mb()
    seconds, model = previous_training(base, emails, lora)
    record("previous", seconds, useful * lora.epochs, rss)
    model.eval()
    f1["previous"] = f1_by_corpus(replace(base, model=model), tests, lora.max_tokens)

    rss = peak_rss_mb()
    seconds, model = naive_training(fresh(), emails, replace(lora, epochs=1))
    record("naive", seconds * lora.epochs, useful * lora.epochs, rss,
           note="one epoch timed; its logits at every position are compute the classifier never reads")
    rates.append(matmul_rate(torch.float32))
    rate = float(np.mean(rates))
    for row in rows.values():
        row["mfu"] = round(row["useful_tflop"] * 1e12 / row["seconds"] / rate, 3)

    bf16: dict | str
    skip = measure_matmul_rates().too_slow_for("bf16", rows["phishlens"]["seconds"], 30 * 60)
    if skip:  # emulated bf16 (AVX2-only CPUs) trains ~100× slower than fp32
        bf16 = {"skipped": skip}
    else:
        half = replace(lora, precision="bf16")
        finetune_adapter(fresh(), emails[: lora.batch_size], "warm-up", half, adapters, progress=False)
        started = time.perf_counter()
        info = finetune_adapter(fresh(), emails, "generalist", half, adapters, progress=False)
        seconds = time.perf_counter() - started
        bf16_rate = matmul_rate(torch.bfloat16)
        bf16 = {"seconds": round(seconds, 2), "tokens_per_s": round(tokens * lora.epochs / seconds, 1),
                "mfu_vs_fp32_rate": round(useful * lora.epochs / seconds / rate, 3),
                "mfu_own_dtype": round(useful * lora.epochs / seconds / bf16_rate, 3),
                "bf16_matmul_gflops": round(bf16_rate / 1e9, 1),
                "speedup_vs_fp32": round(rows["phishlens"]["seconds"] / seconds, 3),
                "mean_loss": round(float(np.mean(info.train_loss)), 4)}
        f1["phishlens bf16"] = f1_by_corpus(load_with_adapter(info.path, settings.models_dir, settings.device),
                                            tests, lora.max_tokens)

    from models.bag_of_words import fit_reference, score_reference

    pipeline = fit_reference(emails, settings.seed)
    f1["bag of words (TF-IDF + LR)"] = verdict_table(lambda test: score_reference(pipeline, test), tests)

    print(json.dumps({
        "benchmark": "training", "model": base.spec.name, "device": str(base.device), "dtype": str(base.dtype),
        "cpu": describe_cpu(), "training_emails": len(emails), "tokens_per_epoch": tokens,
        "padding_free_mean_tokens": round(tokens / len(emails), 1), "epochs": lora.epochs,
        "max_tokens": lora.max_tokens, "batch_size": lora.batch_size, "lora_r": lora.r,
        "fp32_matmul_gflops": round(rate / 1e9, 1),
        "baseline": "naive",
        "loops": rows,
        "speedup_vs_naive": {k: round(rows["naive"]["seconds"] / v["seconds"], 3) for k, v in rows.items()},
        "speedup_vs_previous": {k: round(rows["previous"]["seconds"] / v["seconds"], 3) for k, v in rows.items()},
        # What `train` prints before it starts, for the same batch and token budget.
        "memory_estimate_mb": {
            "phishlens": round(estimate_memory(config, "fp32", lora, lora.batch_size, lora.max_tokens).total_gb
                               * 1e9 / 2**20),
            "upper": round(estimate_memory(config, "fp32", replace(lora, from_layer=split), lora.batch_size,
                                           lora.max_tokens, n_train=len(emails)).total_gb * 1e9 / 2**20)},
        "phishlens_bf16": bf16,
        "f1_on_test_splits": f1,
    }, indent=1))


if __name__ == "__main__":
    main()
