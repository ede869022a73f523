"""LoRA fine-tuning of the label token with peft.

The loss is cross-entropy over the two label-word logits at the last prompt position:
exactly the score the classifier reads, so training and evaluation agree. The adapter
is saved as safetensors with an AdapterInfo (base model and weights hash, training set,
hyperparameters, seed, loss curve) next to it; a failed run leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import random
import shutil
import time
from collections.abc import Sequence
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from data.records import AdapterInfo, Demonstration, Email, LoraSettings
from models.layer_reuse import (LOWER_STATES, check_first_layer, decoder_layers, lower_layer_states,
                                lower_layers_skipped, states_key, upper_layer_logits)
from models.loading import ADAPTER_INFO_FILE, LoadedModel
from models.precision import PrecisionError, matmul_rates, measure_matmul_rates
from models.scoring import PromptBuilder, label_token_ids, last_position_logits, pad_left, render_email


def adapter_id(model: str, training_set: str, lora: LoraSettings) -> str:
    """A stable id naming the adapter's folder and store rows; any hyperparameter change
    changes it (short hash), so a different configuration is never mistaken for a trained one."""
    hashed = asdict(lora)
    if not lora.context_examples:  # plain adapters keep the ids they had before FTICL existed
        del hashed["context_examples"], hashed["context_tokens"]
    if lora.precision == "fp32":  # and fp32 adapters the ids they had before bf16 training
        del hashed["precision"]
    if not lora.from_layer:  # and all-layer adapters the ids they had before upper-layer LoRA
        del hashed["from_layer"]
    digest = hashlib.sha256(json.dumps(hashed, sort_keys=True).encode()).hexdigest()[:6]
    return f"{model}--{training_set}--r{lora.r}-s{lora.seed}-{digest}"


def pick_demonstrations(pool: Sequence[Email], k: int, rng: random.Random) -> tuple[Demonstration, ...]:
    """k labelled examples from pool, half of each label (an odd k's extra one drawn at random),
    in random order: a balanced context does not tell the model which answer to expect."""
    by_label = {label: [m for m in pool if m.label == label] for label in (0, 1)}
    positives = k // 2 + (k % 2 and rng.random() < 0.5)
    wanted = {0: k - positives, 1: positives}
    for label, count in wanted.items():
        if count > len(by_label[label]):
            raise ValueError(f"{k} in-context examples need {count} emails labelled {label}; the training set "
                             f"has {len(by_label[label])} to draw from")
    chosen = [m for label, count in wanted.items() for m in rng.sample(by_label[label], count)]
    rng.shuffle(chosen)
    return tuple(Demonstration(render_email(m), m.label) for m in chosen)


def training_prompts(builder: PromptBuilder, emails: Sequence[Email], k: int, rng: random.Random) -> list[list[int]]:
    """Token ids of each training email's prompt; with k > 0 (FTICL) each starts with k examples
    drawn from the other training emails."""
    if not k:
        return [builder.build(m).input_ids for m in emails]
    prompts = []
    for index, mail in enumerate(emails):
        others = emails[:index] + emails[index + 1:]
        prompts.append(builder.build(mail, pick_demonstrations(others, k, rng)).input_ids)
    return prompts


def length_bucketed_batches(lengths: Sequence[int], batch_size: int, rng: random.Random,
                            window: int = 8) -> list[list[int]]:
    """One epoch's batches of example indices: shuffled, then each run of `window` batches'
    worth sorted by length and cut into batches, whose order is shuffled again. Batches hold
    prompts of similar length (little padding, which is compute spent on nothing) while the
    epoch's order and each batch's company still change from epoch to epoch."""
    order = list(range(len(lengths)))
    rng.shuffle(order)
    span = batch_size * window
    batches = []
    for start in range(0, len(order), span):
        run = sorted(order[start: start + span], key=lambda i: lengths[i])
        batches += [run[i: i + batch_size] for i in range(0, len(run), batch_size)]
    rng.shuffle(batches)
    return batches


TRAINING_PRECISIONS = ("fp32", "bf16")


def check_training_precision(precision: str, device: torch.device, rates_dir: Path | None = None) -> None:
    """Refuse a training precision that is unknown, or bf16 on a CPU where its measured matmul rate
    is below fp32's (emulated bf16: far slower). `rates_dir` caches the measurement (see
    models.precision.matmul_rates); without it the rates are measured now (under a second)."""
    if precision not in TRAINING_PRECISIONS:
        raise PrecisionError(f"training precision must be fp32 or bf16, not {precision!r}")
    if precision == "bf16" and device.type == "cpu":
        rates = matmul_rates(rates_dir) if rates_dir is not None else measure_matmul_rates()
        if (slower := rates.slower_than_fp32("bf16")) is not None:
            raise PrecisionError(f"{slower}: bf16 training would be slower than fp32; train in fp32")


def finetune_adapter(base: LoadedModel, emails: Sequence[Email], training_set: str,
                     lora: LoraSettings, adapters_dir: Path, progress: bool = True,
                     on_step=None) -> AdapterInfo:
    """Train a LoRA adapter on labelled emails; returns the saved adapter's info.

    `base` is modified (LoRA layers are injected): load a fresh base for other work.
    on_step(step, total, loss) is called after each optimizer step.
    """
    from peft import LoraConfig, get_peft_model

    if len({m.label for m in emails}) < 2:
        raise ValueError(f"training set {training_set!r} holds one class only; it needs both labels")
    check_training_precision(lora.precision, base.device)
    torch.manual_seed(lora.seed)
    rng = random.Random(lora.seed)
    targets = list(lora.target_modules or base.spec.lora_target_modules)
    upper_only = {}
    if lora.from_layer:
        check_first_layer(base.model, lora.from_layer)
        upper_only = {"layers_to_transform": list(range(lora.from_layer, len(decoder_layers(base.model)))),
                      "layers_pattern": "layers"}
    config = LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                        target_modules=targets, bias="none", task_type="CAUSAL_LM", **upper_only)
    if getattr(base.model, "is_loaded_in_4bit", False):
        from peft import prepare_model_for_kbit_training

        base.model = prepare_model_for_kbit_training(base.model)  # QLoRA: norms in fp32, inputs need grads
    model = get_peft_model(base.model, config)
    model.train()
    builder = PromptBuilder(base.tokenizer, base.spec, lora.max_tokens, context_tokens=lora.context_tokens)
    negative, positive = label_token_ids(base.tokenizer, base.spec)
    emails = list(emails)
    prompts = training_prompts(builder, emails, lora.context_examples, rng)
    labels = [m.label for m in emails]
    # An FTICL adapter scores every email after the same k examples, drawn once from its training set.
    demonstrations = pick_demonstrations(emails, lora.context_examples, random.Random(f"{lora.seed}:scoring")) \
        if lora.context_examples else ()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=lora.lr, weight_decay=0.0, fused=True)
    steps_per_epoch = (len(prompts) + lora.batch_size - 1) // lora.batch_size
    total = steps_per_epoch * lora.epochs
    warmup = max(1, total // 10)
    # Linear warm-up over the first 10% of steps, then linear decay.
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: (s + 1) / warmup if s < warmup else max(0.05, (total - s) / max(1, total - warmup)))
    autocast = torch.autocast(base.device.type, dtype=torch.bfloat16, enabled=lora.precision == "bf16")
    started = time.perf_counter()
    if lora.from_layer:
        key = states_key(base.weights_sha256, lora.from_layer, lora.precision, prompts)
        states = LOWER_STATES.get(key, lambda: lower_layer_states(
            model, prompts, lora.from_layer, base.tokenizer.pad_token_id, lora.batch_size,
            torch.bfloat16 if lora.precision == "bf16" else None))
        skipped = lower_layers_skipped(model, lora.from_layer)

        def logits_of(batch: list[int]) -> torch.Tensor:
            return upper_layer_logits(model, [states[i] for i in batch])
    else:
        skipped = contextlib.nullcontext()

        def logits_of(batch: list[int]) -> torch.Tensor:
            return last_position_logits(model, pad_left([prompts[i] for i in batch], base.tokenizer.pad_token_id,
                                                        base.device))
    losses: list[float] = []
    lengths = [len(ids) for ids in prompts]
    bar = tqdm(total=total, desc=f"train {training_set}", unit="step", disable=not progress)
    try:
        with skipped:
            for _ in range(lora.epochs):
                for batch in length_bucketed_batches(lengths, lora.batch_size, rng):
                    target = torch.tensor([labels[i] for i in batch], device=base.device)
                    with autocast:
                        logits = logits_of(batch)[:, [negative, positive]].float()
                    loss = torch.nn.functional.cross_entropy(logits, target)
                    loss.backward()
                    torch.nn.utils.clip_grad_norm_(params, 1.0)
                    optimizer.step()
                    scheduler.step()
                    optimizer.zero_grad(set_to_none=True)
                    losses.append(round(float(loss.detach()), 5))
                    bar.update()
                    bar.set_postfix(loss=f"{np.mean(losses[-10:]):.3f}")
                    if on_step:
                        on_step(len(losses), total, losses[-1])
    finally:
        bar.close()
    model.eval()
    info = AdapterInfo(
        id=adapter_id(base.spec.name, training_set, lora),
        model=base.spec.name,
        base_weights_sha256=base.weights_sha256,
        architecture=base.architecture,
        training_set=training_set,
        path=str(adapters_dir / adapter_id(base.spec.name, training_set, lora)),
        hyperparameters={**asdict(lora), "target_modules": targets},
        seed=lora.seed,
        train_loss=tuple(losses),
        n_train=len(prompts),
        seconds=round(time.perf_counter() - started, 2),
        created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        demonstrations=demonstrations,
    )
    _save_atomically(model, info)
    return info


def _save_atomically(model, info: AdapterInfo) -> None:
    target = Path(info.path)
    tmp = target.with_name(target.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp, safe_serialization=True)
    (tmp / ADAPTER_INFO_FILE).write_text(json.dumps(asdict(info), indent=1))
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)
