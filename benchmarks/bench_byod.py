"""Bring your own detector, end to end on real mail: a sequence-classification LoRA trained "elsewhere"
(plain peft and a plain torch loop, not PhishLens' trainer) on the offline default model, imported,
evaluated and compared on the same test emails with PhishLens' own adapter of the same training set;
and an external filter's score file imported beside them.

Needs a store with real corpora and SmolLM2 adapters of one training set evaluated on a test sample
(benchmarks/bench_collapse.py builds one: --store). The store is copied; the original is not changed.
Timings are ratios against PhishLens' own adapter scoring the same emails in the same run.

    python benchmarks/bench_byod.py --store .phishlens/bench-collapse/store.duckdb --training-set generalist-160
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import typer

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

OUT = Path(__file__).resolve().parent / "last-run-byod.json"


def train_elsewhere(base_dir: Path, emails, out_dir: Path, max_tokens: int, seed: int, lr: float) -> float:
    """A user's own script: peft SEQ_CLS LoRA on every projection, cross-entropy on the head, 1 epoch."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from models.scoring import render_email

    torch.manual_seed(seed)
    tokenizer = AutoTokenizer.from_pretrained(base_dir)
    tokenizer.padding_side = "left"
    tokenizer.pad_token = tokenizer.pad_token or tokenizer.eos_token
    model = AutoModelForSequenceClassification.from_pretrained(base_dir, num_labels=2)
    model.config.pad_token_id = tokenizer.pad_token_id
    model = get_peft_model(model, LoraConfig(task_type="SEQ_CLS", r=8, lora_alpha=16, target_modules=[
        "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]))
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)
    order = torch.randperm(len(emails)).tolist()
    started = time.perf_counter()
    model.train()
    for start in range(0, len(order), 8):
        batch = [emails[i] for i in order[start:start + 8]]
        encoded = tokenizer([render_email(m) for m in batch], return_tensors="pt", padding=True, truncation=True,
                            max_length=max_tokens)
        loss = model(**encoded, labels=torch.tensor([m.label for m in batch])).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.save_pretrained(out_dir, safe_serialization=True)
    return time.perf_counter() - started


def _num(value: float, digits: int = 3):
    """A figure for JSON: rounded, None where undefined (F1 on a one-class sample)."""
    return None if value is None or value != value else round(float(value), digits)


def main(store_path: Path = typer.Option(..., "--store"), training_set: str = "generalist-160",
         max_tokens: int = 128, seed: int = 13, lr: float = 1e-3):
    from data.imported_scores import match_scores
    from data.settings import load_settings
    from data.store import Store
    from diagnostics.analyses.paired import compare_scorers
    from diagnostics.runners.pipeline import import_trained_adapter
    from models.imported import ImportRequest
    from models.loading import load_model, prepare_model
    from models.registry import REGISTRY
    from models.scoring import score_emails

    home = Path(tempfile.mkdtemp(prefix="bench-byod-"))
    shutil.copy(store_path, home / "store.duckdb")
    settings = load_settings(home=home, store_path=home / "store.duckdb", model="smollm2-135m", device="cpu",
                             max_tokens=max_tokens)
    base_dir = prepare_model(REGISTRY["smollm2-135m"], settings.models_dir)
    result = {"machine_note": "2 CPU cores; figures are ratios against PhishLens' own adapter in the same run"}
    with Store.open(settings.store_path) as store:
        own = store.scorer_catalogue().query("kind == 'adapter' and model == 'smollm2-135m' and "
                                             f"training_set == '{training_set}' and seed == {seed}").iloc[0]
        emails = store.training_set_emails(training_set)
        folder = home / "elsewhere" / "seqcls"
        result["training_seconds_elsewhere"] = round(train_elsewhere(base_dir, emails, folder, max_tokens, seed, lr), 1)
        sample = int(store.scalar("SELECT max(n) FROM (SELECT count(*) n FROM predictions WHERE adapter_id = ? "
                                  "GROUP BY corpus)", [own["id"]]))
        started = time.perf_counter()
        info, _ = import_trained_adapter(store, settings, ImportRequest(folder, "smollm2-135m", "{email}", name="seqcls",
                                                                        seed=seed), sample_size=sample, progress=False)
        result["import_and_evaluate_seconds"] = round(time.perf_counter() - started, 1)
        result["imported_id"] = info.id
        metrics = store.metrics()
        rows = []
        for corpus in sorted(metrics["corpus"].unique()):
            cell = {"corpus": corpus}
            for label, scorer in (("imported_seqcls", info.id), ("own_adapter", own["id"])):
                m = metrics[(metrics["adapter_id"] == scorer) & (metrics["corpus"] == corpus)].iloc[0]
                cell[label] = {"n": int(m["n"]), "f1": _num(m["f1"]), "recall": _num(m["recall"])}
            pairs = store.paired_verdicts(info.id, own["id"])
            pairs = pairs[pairs["corpus"] == corpus]
            c = compare_scorers(pairs["true_label"], pairs["verdict_a"], pairs["verdict_b"])
            cell["paired_delta_f1"] = [_num(c.delta_f1), _num(c.delta_low), _num(c.delta_high)]
            cell["mcnemar_p"] = round(c.mcnemar_p, 4)
            cell["claimed"] = c.significant()
            rows.append(cell)
        result["cells"] = rows

        # Scoring speed on the same emails: the imported head (merged) against the own adapter (peft).
        test = store.emails_by_ids(store.query("SELECT email_id FROM predictions WHERE adapter_id = ?",
                                               [own["id"]])["email_id"])
        timings = {}
        for label, path in (("own_adapter", own["path"]), ("imported_seqcls", info.path)):
            loaded = load_model("smollm2-135m", Path(path), settings.models_dir, "cpu")
            started = time.perf_counter()
            score_emails(loaded, test, max_tokens, batch_size=8)
            timings[label] = time.perf_counter() - started
        result["scoring_seconds"] = {k: round(v, 1) for k, v in timings.items()}
        result["scoring_ratio_imported_over_own"] = round(timings["imported_seqcls"] / timings["own_adapter"], 2)

        # An external filter's scores for the same test emails, plus rows it cannot match.
        import pandas as pd

        words = ("free", "money", "$", "click", "offer", "remove", "order", "account", "verify")
        frame = pd.DataFrame({"email_id": [m.id for m in test] + ["0" * 24],
                              "probability": [0.9 if any(w in (m.subject + " " + m.body).lower() for w in words)
                                              else 0.1 for m in test] + [0.5]})
        frame = frame.assign(row=range(1, len(frame) + 1))
        every = store.test_emails()
        matched = match_scores(frame, every, set(every.loc[every["test"], "id"]), "keyword filter")
        store.add_imported_scores(matched, "keyword-filter.csv", skip_bad_rows=True)
        pairs = store.paired_verdicts(matched.scorer_id, own["id"])
        result["score_file"] = {"rows": len(frame), "stored": len(matched.predictions),
                                "not_matched": len(matched.problems)}
        result["score_file_vs_own"] = {}
        for corpus, group in pairs.groupby("corpus"):
            c = compare_scorers(group["true_label"], group["verdict_a"], group["verdict_b"])
            result["score_file_vs_own"][corpus] = {"f1_filter": _num(c.f1_a), "f1_own": _num(c.f1_b),
                                                   "delta": [_num(c.delta_f1), _num(c.delta_low), _num(c.delta_high)],
                                                   "mcnemar_p": round(c.mcnemar_p, 4), "claimed": c.significant()}
    OUT.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    typer.run(main)
