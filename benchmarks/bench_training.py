"""LoRA fine-tuning throughput (tokens/s, MFU, peak RSS) against a naive loop, same run.

Both train the same LoRA configuration on the same real emails (an equal share of each
corpus of ../shared/data) for one epoch:
  naive     - peft model, batches in corpus order, full-vocabulary logits at every position
              (what a causal-LM training loop computes by default), loss at the last position
  phishlens - models.finetune.finetune_adapter: last-position logits only (logits_to_keep=1),
              cross-entropy over the two label words, the loop the product runs
  phishlens_bf16 - the same under bf16 autocast (`train --precision bf16`), where the CPU has
              bf16 hardware; its MFU is also given against a bf16 matmul's rate (mfu_own_dtype)
Tokens are real prompt tokens (no padding). MFU: useful FLOPs (forward + backward to the
activations; models/flops.py) per second over a large fp32 matmul's rate in the same run.

Usage: .venv/bin/python benchmarks/bench_training.py [--n 64] [--max-tokens 256] [--batch-size 8]
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from benchmarks.bench_scoring import sample_emails  # noqa: E402
from data.records import LoraSettings  # noqa: E402
from data.settings import PROJECT_ROOT, load_settings  # noqa: E402
from models.finetune import finetune_adapter  # noqa: E402
from models.flops import describe_cpu, lora_training_flops, matmul_rate  # noqa: E402
from models.loading import load_base  # noqa: E402
from models.memory import estimate_memory, prompt_tokens  # noqa: E402
from models.precision import measure_matmul_rates  # noqa: E402
from models.scoring import PromptBuilder, label_token_ids, pad_left  # noqa: E402


def naive_training(settings, emails, lora: LoraSettings) -> float:
    """Seconds for one epoch of the naive loop."""
    from peft import LoraConfig, get_peft_model

    base = load_base(settings.model, settings.models_dir, settings.device)
    torch.manual_seed(lora.seed)
    model = get_peft_model(base.model, LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                                                  target_modules=list(base.spec.lora_target_modules),
                                                  task_type="CAUSAL_LM"))
    model.train()
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
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=64)
    parser.add_argument("--max-tokens", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--data", type=Path, default=PROJECT_ROOT.parent / "shared" / "data")
    args = parser.parse_args()

    settings = load_settings()
    emails = sample_emails(args.data, args.n, seed=0)
    lora = LoraSettings(batch_size=args.batch_size, max_tokens=args.max_tokens, epochs=1)
    base = load_base(settings.model, settings.models_dir, settings.device)
    builder = PromptBuilder(base.tokenizer, base.spec, args.max_tokens)
    lengths = [len(builder.build(m).input_ids) for m in emails]
    useful = lora_training_flops(base.model.config, lengths)

    with tempfile.TemporaryDirectory() as tmp:  # warm-up step: thread pools, allocator, kernel choice
        finetune_adapter(load_base(settings.model, settings.models_dir, settings.device), emails[: args.batch_size],
                         "warm-up", lora, Path(tmp), progress=False)
    rate_before = matmul_rate(torch.float32)
    # PhishLens first: the process's peak RSS after it is its own (the naive loop's full logits peak higher).
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        trained = finetune_adapter(base, emails, "bench", lora, Path(tmp), progress=False)
        t_ours = time.perf_counter() - started
    mean_loss_fp32 = sum(trained.train_loss) / len(trained.train_loss)
    rss_ours = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t_naive = naive_training(settings, emails, lora)
    rate = (rate_before + matmul_rate(torch.float32)) / 2
    tokens = sum(lengths)
    bf16 = {}
    # Emulated bf16 (AVX2-only CPUs) trains ~100× slower than fp32: skip the row, saying why.
    skip_bf16 = measure_matmul_rates().too_slow_for("bf16", t_ours, 30 * 60)
    if skip_bf16:
        bf16 = {"skipped": skip_bf16}
    else:
        half = replace(lora, precision="bf16")
        with tempfile.TemporaryDirectory() as tmp:
            finetune_adapter(load_base(settings.model, settings.models_dir, settings.device),
                             emails[: args.batch_size], "warm-up", half, Path(tmp), progress=False)
            started = time.perf_counter()
            info = finetune_adapter(load_base(settings.model, settings.models_dir, settings.device), emails, "bench",
                                    half, Path(tmp), progress=False)
            t_bf16 = time.perf_counter() - started
        bf16_rate = matmul_rate(torch.bfloat16)
        bf16 = {"tokens_per_s": tokens / t_bf16, "seconds": t_bf16, "mfu": useful / t_bf16 / rate,
                "mfu_own_dtype": useful / t_bf16 / bf16_rate, "bf16_matmul_gflops": bf16_rate / 1e9,
                "speedup_vs_fp32": t_ours / t_bf16, "speedup_vs_naive": t_naive / t_bf16,
                "mean_loss": sum(info.train_loss) / len(info.train_loss), "mean_loss_fp32": mean_loss_fp32}
    print(json.dumps({
        "benchmark": "training", "model": base.spec.name, "device": str(base.device), "dtype": str(base.dtype),
        "threads": torch.get_num_threads(), "cpu": describe_cpu(), "emails": len(emails), "tokens": tokens,
        "max_tokens": args.max_tokens, "batch_size": args.batch_size, "lora_r": lora.r,
        "fp32_matmul_gflops": rate / 1e9,
        "tokens_per_s": {"naive": tokens / t_naive, "phishlens": tokens / t_ours},
        "mfu": {"naive": useful / t_naive / rate, "phishlens": useful / t_ours / rate},
        "peak_rss_note": "naive's figure is the process peak after both ran (it is the higher one)",
        "speedup_vs_naive": t_naive / t_ours,
        "seconds": {"naive": t_naive, "phishlens": t_ours},
        "peak_rss_mb": {"phishlens": rss_ours,
                        "naive": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024},
        # What `train` prints before it starts, for the same batch and token budget.
        "memory_estimate_mb": estimate_memory(base.model.config, "fp32", lora, args.batch_size,
                                              prompt_tokens(lora)).total_gb * 1e9 / 2**20,
        "phishlens_bf16": bf16 or "skipped: this CPU has no bf16 hardware",
    }, indent=1))


if __name__ == "__main__":
    main()
