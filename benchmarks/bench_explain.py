"""Explaining real emails: shap's default text explainer against PhishLens' structured one.

Same model (the default, fp32, CPU), same emails (200–400 tokens, an equal share from each
corpus of ../shared/data, none truncated), same scoring function, measured in one run:
  shap_default - shap.Explainer(f, shap.maskers.Text(tokenizer)): PartitionExplainer over
                 tokens, masked tokens replaced by "..." (collapsed), max_evals=500,
                 every masked text tokenized and scored by PhishLens' batched scorer.
  phishlens    - Owen values over fields → sentences → words (explain_progressively's
                 three passes), masked units removed, prefix key/value cache, memoised.
Faithfulness of both is measured the same way: deletion/insertion curves over the email's
words (token values summed per word), scored by the same model.

Usage: .venv/bin/python benchmarks/bench_explain.py [--emails 20] [--data ../shared/data]
Prints one JSON object (per-email rows and the means); speedup = shap_default s / phishlens s.
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

from benchmarks.shap_text_baseline import explain_shap_text  # noqa: E402
from data.corpora import discover_corpora, read_corpus  # noqa: E402
from data.records import Email  # noqa: E402
from data.settings import PROJECT_ROOT, load_settings  # noqa: E402
from diagnostics.analyses.coalitions import CoalitionScorer  # noqa: E402
from diagnostics.analyses.explainers import DEFAULT_FIXED_CONTEXT, DEFAULT_MAX_EVALS, explain_gradient, explain_shap  # noqa: E402
from diagnostics.analyses.faithfulness import faithfulness  # noqa: E402
from diagnostics.analyses.layout import layout_email, word_values  # noqa: E402
from models.loading import load_base  # noqa: E402
from models.scoring import PromptBuilder  # noqa: E402

MAX_TOKENS = 440  # 200–400 email tokens + the instruction and question: nothing is cut


def pick_emails(data_dir: Path, builder: PromptBuilder, n: int, seed: int) -> list[tuple[Email, object]]:
    """n emails of 200–400 tokens, an equal share per corpus (seeded from each corpus' first 600)."""
    rng = random.Random(seed)
    sources = discover_corpora(data_dir)
    per = -(-n // len(sources))
    chosen = []
    for source in sources:
        fits = []
        for mail in read_corpus(source, lowercase=False, progress=False):
            if isinstance(mail, Email):
                layout = layout_email(builder, mail)
                if 200 <= len(layout.email_ids) <= 400 and len(layout.email_ids) < builder.budget:
                    fits.append((mail, layout))
            if len(fits) >= 60:
                break
        chosen += rng.sample(fits, min(per, len(fits)))
    return chosen[:n]


def explain_ours(loaded, mail: Email, layout) -> dict:
    """The three progressive passes, with the time at which each map is ready."""
    started = time.perf_counter()
    scorer = CoalitionScorer(loaded, layout)
    times = {}
    for level in ("field", "sentence", "word"):
        explanation = explain_shap(scorer, mail.id, loaded.adapter_id, MAX_TOKENS, level)
        times[level] = time.perf_counter() - started
    return {"explanation": explanation, "scorer": scorer, "times": times, "evaluations": scorer.evaluations}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--emails", type=int, default=20)
    parser.add_argument("--data", type=Path, default=PROJECT_ROOT.parent / "shared" / "data")
    parser.add_argument("--seed", type=int, default=13)
    args = parser.parse_args()

    settings = load_settings()
    loaded = load_base("smollm2-135m", settings.models_dir, "cpu")
    builder = PromptBuilder(loaded.tokenizer, loaded.spec, MAX_TOKENS)
    emails = pick_emails(args.data, builder, args.emails, args.seed)
    # Warm-up, not timed: the first forward passes on CPU are slower (allocator, kernels) and
    # shap's first call compiles its numba helpers (~3 s, once per process).
    warm_mail, warm_layout = emails[0]
    explain_shap(CoalitionScorer(loaded, warm_layout), warm_mail.id, loaded.adapter_id, MAX_TOKENS, "field")

    rows = []
    for mail, layout in emails:
        ours = explain_ours(loaded, mail, layout)
        explanation, scorer = ours["explanation"], ours["scorer"]
        started = time.perf_counter()
        gradient = explain_gradient(loaded, layout, mail.id, MAX_TOKENS)
        gradient_seconds = time.perf_counter() - started
        started = time.perf_counter()
        default, default_per_word = explain_shap_text(loaded, layout, mail.id, MAX_TOKENS)
        default_seconds = time.perf_counter() - started
        ours_curves = faithfulness(scorer, word_values(explanation, layout), seed=args.seed)
        default_curves = faithfulness(scorer, default_per_word, seed=args.seed)
        gradient_curves = faithfulness(scorer, gradient.values, seed=args.seed)
        rows.append({
            "corpus": mail.corpus, "email_tokens": len(layout.email_ids), "words": len(layout.words),
            "score": scorer.score,
            "phishlens": {"seconds": ours["times"]["word"], "first_map_fields_s": ours["times"]["field"],
                          "first_map_sentences_s": ours["times"]["sentence"], "evaluations": ours["evaluations"],
                          "additivity_error": explanation.base_value + sum(explanation.values) - explanation.score,
                          "deletion_area": ours_curves.deletion_area, "insertion_area": ours_curves.insertion_area},
            "shap_default": {"seconds": default_seconds, "evaluations": default.evaluations,
                             "deletion_area": default_curves.deletion_area,
                             "insertion_area": default_curves.insertion_area},
            "gradxinput": {"seconds": gradient_seconds, "deletion_area": gradient_curves.deletion_area},
            "random_deletion_area": ours_curves.random_deletion_area,
        })
        print(json.dumps({"progress": len(rows), "of": len(emails), **rows[-1]}), file=sys.stderr, flush=True)

    def mean(method: str, key: str) -> float:
        return float(np.mean([r[method][key] for r in rows]))

    summary = {
        "benchmark": "explain",
        "machine": {"platform": platform.platform(), "torch": torch.__version__, "threads": torch.get_num_threads(),
                    "device": "cpu", "dtype": "float32"},
        "model": "smollm2-135m", "emails": len(rows), "corpora": sorted({r["corpus"] for r in rows}),
        "email_tokens_mean": float(np.mean([r["email_tokens"] for r in rows])),
        "phishlens_budgets": {"max_evals": DEFAULT_MAX_EVALS, "fixed_context": DEFAULT_FIXED_CONTEXT},
        "seconds_per_email": {m: mean(m, "seconds") for m in ("shap_default", "phishlens", "gradxinput")},
        "evaluations_per_email": {m: mean(m, "evaluations") for m in ("shap_default", "phishlens")},
        "deletion_area_mean": {m: mean(m, "deletion_area") for m in ("shap_default", "phishlens", "gradxinput")}
        | {"random_order": float(np.mean([r["random_deletion_area"] for r in rows]))},
        "insertion_area_mean": {m: mean(m, "insertion_area") for m in ("shap_default", "phishlens")},
        "phishlens_first_map_s": {"fields": mean("phishlens", "first_map_fields_s"),
                                  "sentences": mean("phishlens", "first_map_sentences_s"),
                                  "sentences_max": float(max(r["phishlens"]["first_map_sentences_s"] for r in rows)),
                                  "words": mean("phishlens", "seconds")},
        "gradxinput_max_s": float(max(r["gradxinput"]["seconds"] for r in rows)),
        "max_additivity_error": float(max(abs(r["phishlens"]["additivity_error"]) for r in rows)),
        "phishlens_deletion_no_worse_on": f"{sum(r['phishlens']['deletion_area'] <= r['shap_default']['deletion_area'] for r in rows)}/{len(rows)} emails",
        "rows": rows,
    }
    summary["speedup_vs_shap_default"] = summary["seconds_per_email"]["shap_default"] / summary["seconds_per_email"]["phishlens"]
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
