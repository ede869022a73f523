"""Planted shortcuts: do the diagnostics find a shortcut when one is really there?

The synthetic corpora get data.synthetic.PLANTED_SHORTCUTS (a fixed signature line on every
legitimate webmail email, one link domain on every corporate phishing email; the list dump
differs in form). The default model's generalist is LoRA-trained on them, then each diagnostic
is asked for its top 5 findings and scored on how many planted shortcuts those name:

  shortcut finder   (Drivers: gradient × input over each corpus' test sample) the top 5
                    flagged shortcut candidates; recovered when one contains the marker word;
  fingerprint audit (TF-IDF probe) each planted corpus' top 5 fingerprint features;
  field counterfactuals  each planted corpus' top 5 counterfactuals by flip rate (those that
                    flip anything); recovered when the shortcut's own counterfactual (remove
                    the last line, the URLs, re-space the form) is among them.

Baseline, measured in the same run: the same pipeline on the unplanted corpora, where the
counterfactuals tied to the shortcuts must not rank as high by chance (a marker word cannot
appear there at all).

Usage: .venv/bin/python benchmarks/bench_planted.py [--per-corpus 16] [--train-size 160]
Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from data.corpora import ingest_emails  # noqa: E402
from data.records import DiagnosticRequest, EvaluationTarget, LoraSettings  # noqa: E402
from data.settings import load_settings  # noqa: E402
from data.splits import build_generalist, split_corpus  # noqa: E402
from data.store import Store  # noqa: E402
from data.synthetic import PLANTED_SHORTCUTS, generate_synthetic_corpora, plant_shortcuts  # noqa: E402
from diagnostics.drivers import ShortcutRule, explain_sample, shortcut_candidates  # noqa: E402
from diagnostics.executor import LocalExecutor, run_job  # noqa: E402
from diagnostics.explainers import method_params  # noqa: E402
from diagnostics.jobs import train_training_set  # noqa: E402
from diagnostics.registry import diagnostic  # noqa: E402

TOP = 5


def recovered(store: Store, adapter_id: str, target: EvaluationTarget, settings, per_corpus: int,
              max_tokens: int) -> dict:
    """Per diagnostic and planted shortcut: whether its top 5 findings name it (and what they were)."""
    here = LocalExecutor(settings.models_dir, "cpu")
    corpora = store.corpus_names()
    for corpus in corpora:
        explain_sample(store, target, corpus, per_corpus, "gradxinput", max_tokens, 0, here)
    params = method_params("gradxinput", max_tokens, 0)
    drivers = store.drivers(adapter_id, "gradxinput", params)
    shares = store.feature_document_frequency(list(drivers["feature"].head(40)))
    candidates = shortcut_candidates(drivers, shares, ShortcutRule(top=40))
    flagged = list(candidates[candidates["shortcut"]]["feature"].head(TOP))

    fingerprint = diagnostic("corpus-fingerprint")
    run_job(store, fingerprint.make_job(DiagnosticRequest(target, "", per_corpus, max_tokens, 0, 8),
                                        settings.models_dir), here, progress=False)
    result = store.diagnostic_results(fingerprint.name).iloc[0]
    grid = store.diagnostic_values(fingerprint.name, result["adapter_id"], result["params"])
    accuracy = grid[grid["column"] == "accuracy"].set_index("row")["value"].round(3).to_dict()

    counterfactuals = diagnostic("field-counterfactuals")
    out = {"shortcut finder": {}, "fingerprint audit": {}, "field counterfactuals": {}}
    for planted in PLANTED_SHORTCUTS:
        name = f"{planted.corpus}: {planted.kind}"
        found = [f for f in flagged if planted.marker and planted.marker in f]
        out["shortcut finder"][name] = {"recovered": bool(found), "top": flagged}
        features = list(grid[grid["row"] == f"fingerprint of {planted.corpus}"]["column"].head(TOP))
        out["fingerprint audit"][name] = {"recovered": bool(planted.marker) and any(
            planted.marker in f.lower() for f in features), "top": features}
        request = DiagnosticRequest(target, planted.corpus, per_corpus, max_tokens, 0, 8)
        run_job(store, counterfactuals.make_job(request, settings.models_dir), here, progress=False)
        row = store.diagnostic_results(counterfactuals.name)
        row = row[row["corpus"] == planted.corpus].iloc[0]
        values = store.diagnostic_values(counterfactuals.name, row["adapter_id"], row["params"])
        # A finding is a counterfactual that flips something: rows at 0 are not ranked.
        rates = values[(values["column"] == "flip rate") & (values["n"] > 0)].sort_values("value", ascending=False)
        rates = rates[rates["value"] > 0]
        ranked = list(rates["row"].head(TOP))
        out["field counterfactuals"][name] = {"recovered": planted.counterfactual in ranked, "top": ranked,
                                              "flip rate": float(rates.set_index("row")["value"].get(
                                                  planted.counterfactual, 0.0))}
    out["fingerprint accuracy"] = accuracy
    return out


def run(planted: bool, args, settings_home: Path) -> dict:
    settings = load_settings(home=settings_home, store_path=settings_home / "store.duckdb", device="cpu",
                             max_tokens=args.max_tokens)
    corpora = generate_synthetic_corpora(240, settings.seed)
    if planted:
        corpora = plant_shortcuts(corpora)
    started = time.perf_counter()
    with Store.open(settings.store_path) as store:
        for info, emails in corpora:
            ingest_emails(store, info, emails, False)
            split_corpus(store, info.name, 0.2, settings.seed)
        build_generalist(store, store.corpus_names(), args.train_size, settings.seed)
        folder = train_training_set(store, settings, "generalist", LoraSettings(max_tokens=args.max_tokens, epochs=1),
                                    progress=False)
        trained = time.perf_counter() - started
        adapter_id = store.adapters().iloc[0]["id"]
        found = recovered(store, adapter_id, EvaluationTarget(settings.model, folder), settings, args.per_corpus,
                          args.max_tokens)
    found["seconds"] = {"train": round(trained, 1), "total": round(time.perf_counter() - started, 1)}
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-corpus", type=int, default=16)
    parser.add_argument("--train-size", type=int, default=160)
    parser.add_argument("--max-tokens", type=int, default=128)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        planted = run(True, args, Path(tmp) / "planted")
        baseline = run(False, args, Path(tmp) / "unplanted")
    summary = {name: sum(v["recovered"] for v in planted[name].values())
               for name in ("shortcut finder", "fingerprint audit", "field counterfactuals")}
    baseline_summary = {name: sum(v["recovered"] for v in baseline[name].values())
                        for name in ("shortcut finder", "fingerprint audit", "field counterfactuals")}
    print(json.dumps({"benchmark": "planted shortcuts", "planted": len(PLANTED_SHORTCUTS), "top": TOP,
                      "recovered_in_top_5": summary, "baseline_unplanted_recovered_in_top_5": baseline_summary,
                      "per_corpus": args.per_corpus, "train_size": args.train_size, "details": planted,
                      "baseline_details": baseline}, indent=1, default=str))


if __name__ == "__main__":
    main()
