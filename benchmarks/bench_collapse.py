"""Do the per-family LoRA defaults collapse (one verdict for every email) at the training-set sizes
the product proposes? Gemma 3 270M and SmolLM2 135M, generalists of 160 (the demo's size) and
1,000 emails of ../shared/data, two seeds each, with the defaults `train` uses (models.registry's
family learning rate).

Per run: training seconds, the check `train` now prints (diagnostics.analyses.collapse_check: held-back
training emails of each label), and F1 per corpus on a stratified test sample with the share of
phishing verdicts and the store's collapse rule (one verdict for >= 98% of the test emails,
data.metrics). Baseline in the same run: Gemma at LoraSettings' generic learning rate (3e-3),
the setting that collapsed before the family default, at 160 emails, same seeds.

Resumable: every finished run is appended to --work/runs.jsonl and skipped on a rerun.

Usage: .venv/bin/python benchmarks/bench_collapse.py [--sizes 160 1000] [--eval-size 100] [--work DIR]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.bench_recipe import is_collapsed  # noqa: E402
from benchmarks.bench_training import verdict_table  # noqa: E402
from data.records import LoraSettings  # noqa: E402
from data.settings import PROJECT_ROOT, load_settings  # noqa: E402
from data.splits import build_generalist, test_sample  # noqa: E402
from data.store import Store  # noqa: E402
from diagnostics.analyses.collapse_check import check_collapse, held_back_emails  # noqa: E402
from diagnostics.runners.pipeline import ingest_folder  # noqa: E402
from models.finetune import finetune_adapter  # noqa: E402
from models.loading import load_base, load_with_adapter, prepare_model  # noqa: E402
from models.registry import default_lora_lr, resolve_model  # noqa: E402
from models.scoring import score_emails  # noqa: E402

MODELS = ("smollm2-135m", "gemma3-270m")
SEEDS = (13, 14)


def runs_to_do(sizes: list[int], models: list[str] = MODELS) -> list[dict]:
    """(model, size, seed, lr, role) of every run: the family defaults, then the baseline."""
    runs = [{"model": m, "n": n, "seed": s, "lr": default_lora_lr(m), "role": "family default"}
            for n in sizes for m in models for s in SEEDS]
    runs += [{"model": "gemma3-270m", "n": min(sizes), "seed": s, "lr": LoraSettings.lr, "role": "baseline: generic lr"}
             for s in SEEDS]
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[160, 1000])
    parser.add_argument("--eval-size", type=int, default=100, help="test emails per corpus")
    parser.add_argument("--work", type=Path, default=PROJECT_ROOT / ".phishlens" / "bench-collapse")
    parser.add_argument("--data", type=Path, default=PROJECT_ROOT.parent / "shared" / "data")
    parser.add_argument("--models", nargs="+", default=list(MODELS), help="families to run (default: both)")
    args = parser.parse_args()

    args.work.mkdir(parents=True, exist_ok=True)
    settings = load_settings(home=args.work, store_path=args.work / "store.duckdb")
    with Store.open(settings.store_path) as store:
        ingest_folder(store, settings, args.data, progress=False)
        for n in args.sizes:
            if store.training_set(f"generalist-{n}") is None:
                build_generalist(store, store.training_corpora(), n, 13, name=f"generalist-{n}")
        corpora = store.training_set(f"generalist-{args.sizes[0]}")["corpora"]
        tests = {c: store.emails_by_ids(test_sample(store, c, args.eval_size, 13)) for c in corpora}
        training = {n: store.training_set_emails(f"generalist-{n}") for n in args.sizes}
        held_back = {n: held_back_emails(store, f"generalist-{n}") for n in args.sizes}
    log = args.work / "runs.jsonl"
    done = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    key = ("model", "n", "seed", "lr")
    for run in runs_to_do(args.sizes, args.models):
        if any(all(r[k] == run[k] for k in key) for r in done):
            continue
        prepare_model(resolve_model(run["model"]), settings.models_dir)
        lora = replace(LoraSettings(), seed=run["seed"], lr=run["lr"])
        base = load_base(run["model"], settings.models_dir, settings.device)
        started = time.perf_counter()
        info = finetune_adapter(base, training[run["n"]], f"generalist-{run['n']}", lora, settings.adapters_dir)
        seconds = time.perf_counter() - started
        tuned = load_with_adapter(Path(info.path), settings.models_dir, settings.device)
        emails, was_held_back = held_back[run["n"]]
        check = check_collapse(tuned, emails, lora.max_tokens, was_held_back)
        table = verdict_table(lambda batch: score_emails(tuned, batch, lora.max_tokens), tests)
        result = {**run, "train_seconds": round(seconds, 1), "check": {**asdict(check), "collapsed": check.collapsed},
                  "f1": table, "collapsed_on_test": is_collapsed(table)}
        with log.open("a") as handle:
            handle.write(json.dumps(result) + "\n")
        done.append(result)
        print(f"{run['model']} n={run['n']} seed {run['seed']} lr {run['lr']}: {check.sentence()}; "
              f"F1 {({c: v['f1'] for c, v in table.items()})} ({seconds:.0f} s)", file=sys.stderr)
    summary = {}
    for run in done:
        name = f"{run['model']} · {run['n']} emails · lr {run['lr']:g}"
        entry = summary.setdefault(name, {"role": run["role"], "seeds": {}})
        entry["seeds"][run["seed"]] = {"train_seconds": run["train_seconds"], "check_collapsed": run["check"]["collapsed"],
                                       "check_correct": f"{run['check']['correct']}/{run['check']['n_phishing'] + run['check']['n_legitimate']}",
                                       "collapsed_on_test": run["collapsed_on_test"],
                                       "mean_f1": round(float(np.nanmean([v["f1"] for v in run["f1"].values()])), 3),
                                       "f1": {c: [v["f1"], *v["ci95"]] for c, v in run["f1"].items()}}
    print(json.dumps({"benchmark": "collapse", "baseline": "Gemma at the generic lr 3e-3 (160 emails, same seeds)",
                      "test_emails_per_corpus": {c: len(t) for c, t in tests.items()},
                      "collapse_rule": "one verdict for >= 98% of the test emails", "runs": summary}, indent=1))


if __name__ == "__main__":
    main()
