"""F1 per corpus when scoring in bf16 and int8, against fp32 on the same emails in the same run.

For the zero-shot base model and each adapter given: every corpus' seeded test sample (the
one `evaluate` draws) is scored in fp32, bf16 and int8 (SmoothQuant, calibrated on training
split emails and compiled, as `evaluate` does), and F1 per corpus is compared with fp32's.
Flips are emails whose verdict changed; for each precision the run also reports how close to
the threshold (score 0) the flipped emails were in fp32. emails_per_s includes int8's one-off
compile.

Usage: .venv/bin/python benchmarks/bench_precision.py --store STORE [--adapter DIR ...]
       [--per-corpus 200] [--max-tokens 256] [--precisions fp32,bf16,int8]
(fp32, the reference, always runs; leaving bf16 or int8 out saves its share of the time.)
The store must hold ingested, split corpora (e.g. `cli.py ingest --data ../shared/data`).
Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
from sklearn.metrics import f1_score  # noqa: E402

from data.settings import load_settings  # noqa: E402
from data.store import Store  # noqa: E402
from diagnostics.analyses.evaluate import calibration_emails, evaluation_samples, scoring_model  # noqa: E402
from models.flops import describe_cpu  # noqa: E402
from models.loading import load_model  # noqa: E402
from models.precision import PRECISIONS, describe_precision, measure_matmul_rates, merge_adapter  # noqa: E402
from models.scoring import compiled_for_scoring, score_emails  # noqa: E402


def compare_precisions(loaded, tests: dict, calibration: list, max_tokens: int, batch_size: int,
                       precisions: tuple[str, ...] = PRECISIONS) -> dict:
    """F1 and speed per precision, and each precision's change against fp32, per corpus."""
    scores, speed = {}, {}
    for precision in precisions:
        scorer = scoring_model(loaded, precision, calibration, max_tokens)
        if precision == "int8":
            scorer = compiled_for_scoring(scorer)
        started = time.perf_counter()
        scores[precision] = {c: score_emails(scorer, emails, max_tokens, batch_size) for c, emails in tests.items()}
        speed[precision] = sum(len(v) for v in tests.values()) / (time.perf_counter() - started)
        del scorer
    result = {"emails_per_s": speed, "corpora": {}}
    for corpus, emails in tests.items():
        labels = np.array([m.label for m in emails])
        f1 = {p: float(f1_score(labels, scores[p][corpus] > 0, zero_division=0)) for p in precisions}
        reference = scores["fp32"][corpus]
        result["corpora"][corpus] = {
            "emails": len(emails), "phishing": int(labels.sum()), "f1": f1,
            "f1_change": {p: f1[p] - f1["fp32"] for p in precisions[1:]},
            "verdicts_flipped": {p: int(((scores[p][corpus] > 0) != (reference > 0)).sum()) for p in precisions[1:]},
            "max_abs_score_diff": {p: float(np.abs(scores[p][corpus] - reference).max()) for p in precisions[1:]},
            "mean_abs_score_diff": {p: float(np.abs(scores[p][corpus] - reference).mean()) for p in precisions[1:]},
            # How close to the decision threshold the flipped emails were in fp32, and how many
            # emails sit that close: a flip there is a coin toss, not a systematic error.
            "flipped_max_abs_fp32_score": {p: float(np.abs(reference[(scores[p][corpus] > 0) != (reference > 0)])
                                                    .max(initial=0.0)) for p in precisions[1:]},
            "emails_within_0.1_of_threshold": int((np.abs(reference) < 0.1).sum()),
        }
    result["max_abs_f1_change"] = {p: max(abs(c["f1_change"][p]) for c in result["corpora"].values())
                                   for p in precisions[1:]}
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", type=Path, required=True)
    parser.add_argument("--adapter", type=Path, action="append", default=[])
    parser.add_argument("--per-corpus", type=int, default=200)
    parser.add_argument("--max-tokens", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--precisions", default=",".join(PRECISIONS))
    args = parser.parse_args()
    requested = set(args.precisions.split(","))
    if requested - set(PRECISIONS):
        parser.error(f"--precisions takes {', '.join(PRECISIONS)}, not {', '.join(sorted(requested - set(PRECISIONS)))}")
    precisions = tuple(p for p in PRECISIONS if p == "fp32" or p in requested)  # fp32 first: the reference
    # A precision slower than fp32 here (emulated bf16, int8 without VNNI/AMX) would take hours on
    # the whole test splits: leave it out, saying why, from a quick measurement of the rates.
    probe = measure_matmul_rates()
    skipped = {p: probe.slower_than_fp32(p) for p in precisions if probe.slower_than_fp32(p)}
    precisions = tuple(p for p in precisions if p not in skipped)

    settings = load_settings()
    with Store.open(args.store, read_only=True) as store:
        corpora = store.corpus_names()
        samples = evaluation_samples(store, corpora, args.per_corpus, args.seed)
        tests = {c: store.emails_by_ids(ids) for c, ids in samples.items()}
        calibration = calibration_emails(store, corpora, args.seed)
    result = {"benchmark": "precision", "model": settings.model, "cpu": describe_cpu(), "max_tokens": args.max_tokens,
              "per_corpus": args.per_corpus, "calibration_emails": len(calibration),
              "int8_layout": describe_precision("int8"), "probe_matmul_gflops": probe.gflops,
              "skipped_precisions": skipped, "scorers": {}}
    for adapter in [None, *args.adapter]:
        loaded = merge_adapter(load_model(settings.model, adapter, settings.models_dir, "cpu"))
        result["scorers"][loaded.adapter_id] = compare_precisions(loaded, tests, calibration, args.max_tokens,
                                                                  args.batch_size, precisions)
        del loaded
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
