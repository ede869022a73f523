"""Planted shortcuts: do the diagnostics find a shortcut when one is really there?

The first-run demo's synthetic corpora carry data.synthetic.PLANTED_SHORTCUTS: one link domain on
every corporate phishing email, one signature line on every legitimate webmail email, and a list
dump that differs in form (lower-cased, tokenised). This builds that demo exactly as `cli.py demo`
does (DEMO_PLAN: the corporate specialist and the generalist of the default model, evaluated on
every corpus, the walk-through's diagnostics stored), then asks each diagnostic of each adapter for
its top 5 findings and counts the planted shortcuts they name:

  shortcut finder   (Drivers: integrated gradients over each corpus' test sample, the walk-
                    through's explainer) the top 5 flagged shortcut candidates; recovered when
                    one contains the marker word;
  fingerprint audit (text and form probe) each planted corpus' top 5 fingerprint features;
                    recovered when one names the marker (a word, or the form feature);
  field counterfactuals  each planted corpus' top 5 counterfactuals by flip rate (those that
                    flip anything); recovered when the shortcut's own one (remove the last line,
                    the URLs, re-space the form) is among them.

Explainer signs: on the corporate test phishing (every one carries the planted link domain), the
push each explainer gives the domain's words against the truth measured by removing them
(occlusion: the score drop), for gradient × input and integrated gradients, with the specialist.

A shortcut an adapter never saw cannot be one it learned: the specialist saw only the corporate
corpus, so the table gives both adapters and the closing numbers count each against the
shortcuts its training data carried. Baseline, measured in the same run: the same demo on the
unplanted corpora (generate_synthetic_corpora(planted=False)), where no marker exists.

Usage: .venv/bin/python benchmarks/bench_planted.py [--sample 16]
Prints one JSON object (about 20 minutes on 2 CPU cores: two demo builds).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from data.corpora import ingest_emails  # noqa: E402
from data.records import DiagnosticRequest, EvaluationTarget  # noqa: E402
from data.settings import load_settings  # noqa: E402
from data.splits import split_corpus  # noqa: E402
from data.store import Store  # noqa: E402
from data.synthetic import PLANTED_SHORTCUTS, generate_synthetic_corpora  # noqa: E402
from diagnostics.analyses.drivers import ShortcutRule, explain_sample, shortcut_candidates  # noqa: E402
from diagnostics.runners.local import LocalExecutor, run_job  # noqa: E402
from diagnostics.analyses.explainers import method_params  # noqa: E402
from diagnostics.runners.pipeline import DEMO_PLAN, run_protocol  # noqa: E402
from diagnostics.contracts.registry import diagnostic  # noqa: E402
from diagnostics.analyses.walkthrough import WALKTHROUGH_METHOD  # noqa: E402

TOP = 5
DIAGNOSTICS = ("shortcut finder", "fingerprint audit", "field counterfactuals")


def findings(store: Store, record, model: str, models_dir: Path, sample: int, max_tokens: int) -> dict:
    """Per diagnostic and planted shortcut: whether one adapter's top 5 findings name it."""
    here = LocalExecutor(models_dir, "cpu")
    target = EvaluationTarget(model, Path(record["path"]))
    for corpus in store.corpus_names():  # stored already for the demo's specialist: skipped
        explain_sample(store, target, corpus, sample, WALKTHROUGH_METHOD, max_tokens, 0, here)
    drivers = store.drivers(record["id"], WALKTHROUGH_METHOD, method_params(WALKTHROUGH_METHOD, max_tokens, 0))
    shares = store.feature_document_frequency(list(drivers["feature"].head(40)))
    candidates = shortcut_candidates(drivers, shares, ShortcutRule(top=40))
    flagged = list(candidates[candidates["shortcut"]]["feature"].head(TOP))

    fingerprint = diagnostic("corpus-fingerprint")
    request = DiagnosticRequest(target, "", sample, max_tokens, 0, 8)
    run_job(store, fingerprint.make_job(request, models_dir), here, progress=False)
    results = store.diagnostic_results(fingerprint.name)
    result = results[results["adapter_id"] == record["id"]].iloc[0]
    grid = store.diagnostic_values(fingerprint.name, record["id"], result["params"])
    accuracy = grid[grid["column"] == "accuracy"].set_index("row")["value"].round(3).to_dict()

    counterfactuals = diagnostic("field-counterfactuals")
    out = {name: {} for name in DIAGNOSTICS}
    for planted in PLANTED_SHORTCUTS:
        name = f"{planted.corpus}: {planted.kind}"
        out["shortcut finder"][name] = {"recovered": any(planted.marker in f for f in flagged), "top": flagged}
        features = list(grid[grid["row"] == f"fingerprint of {planted.corpus}"]["column"].head(TOP))
        out["fingerprint audit"][name] = {"recovered": any(planted.marker in f.lower() for f in features),
                                          "top": features}
        request = DiagnosticRequest(target, planted.corpus, sample, max_tokens, 0, 8)
        run_job(store, counterfactuals.make_job(request, models_dir), here, progress=False)
        rows = store.diagnostic_results(counterfactuals.name)
        row = rows[(rows["corpus"] == planted.corpus) & (rows["adapter_id"] == record["id"])].iloc[0]
        values = store.diagnostic_values(counterfactuals.name, record["id"], row["params"])
        # A finding is a counterfactual that flips something: rows at 0 are not ranked.
        rates = values[(values["column"] == "flip rate") & (values["n"] > 0) & (values["value"] > 0)]
        ranked = list(rates.sort_values("value", ascending=False)["row"].head(TOP))
        flip = rates.set_index("row")["value"].get(planted.counterfactual, 0.0)
        out["field counterfactuals"][name] = {"recovered": planted.counterfactual in ranked, "top": ranked,
                                              "flip rate": round(float(flip), 3)}
    out["fingerprint accuracy"] = accuracy
    return out


def explainer_signs(store: Store, record, model: str, models_dir: Path, n: int, max_tokens: int) -> dict:
    """Each explainer's push on the planted link domain's words against occlusion's, per email."""
    import numpy as np

    from data.synthetic import LINK_DOMAIN
    from diagnostics.analyses.coalitions import CoalitionScorer
    from diagnostics.analyses.explainers import explain_gradient, explain_integrated_gradients
    from diagnostics.analyses.layout import layout_email
    from models.loading import load_model
    from models.scoring import prompt_builder

    loaded = load_model(model, Path(record["path"]), models_dir, "cpu")
    builder = prompt_builder(loaded, max_tokens)
    ids = store.split_ids("synthetic-corporate", "test")["id"]
    mails = [m for m in store.emails_by_ids(ids) if m.label == 1 and LINK_DOMAIN in m.body][:n]
    rows = []
    for mail in mails:
        layout = layout_email(builder, mail)
        marked = [i for i, w in enumerate(layout.words) if "zorbpay" in layout.text[w.start:w.end]]
        if not marked:  # the link fell beyond the token budget
            continue
        keep = np.ones((1, len(layout.email_ids)), dtype=bool)
        for i in marked:
            keep[0, layout.words[i].tokens] = False
        scorer = CoalitionScorer(loaded, layout)
        occlusion = float(scorer.score - scorer.scores(keep)[0])
        pushes = {"gradxinput": explain_gradient(loaded, layout, mail.id, max_tokens),
                  "integrated-gradients": explain_integrated_gradients(loaded, layout, mail.id, max_tokens)}
        rows.append({"occlusion": occlusion, **{name: float(sum(e.values[i] for i in marked))
                                                for name, e in pushes.items()}})
    out = {"emails": len(rows), "occlusion_mean": round(float(np.mean([r["occlusion"] for r in rows])), 2)}
    for name in ("gradxinput", "integrated-gradients"):
        out[name] = {"same_sign_as_occlusion": int(sum(np.sign(r[name]) == np.sign(r["occlusion"]) for r in rows)),
                     "mean": round(float(np.mean([r[name] for r in rows])), 2)}
    return out


def build(planted: bool, home: Path, models_dir: Path, sample: int) -> dict:
    """The first-run demo on planted (or unplanted) corpora, and every adapter's findings."""
    settings = load_settings(home=home, store_path=home / "store.duckdb", models_dir=models_dir, device="cpu")
    plan = replace(DEMO_PLAN, walkthrough_sample=sample)
    started = time.perf_counter()
    with Store.open(settings.store_path) as store:
        for info, emails in generate_synthetic_corpora(240, settings.seed, planted=planted):
            ingest_emails(store, info, emails, False)
            split_corpus(store, info.name, plan.test_fraction, settings.seed)
        run_protocol(store, settings, plan, progress=False)
        built = time.perf_counter() - started
        metrics = store.metrics()
        f1 = {f"{r.model} · {r.training_set} on {r.corpus}": round(float(r.f1), 3)
              for r in metrics.itertuples() if r.f1 == r.f1}
        adapters = {r["training_set"]: r for r in store.adapters().to_dict("records")}
        found = {training_set: findings(store, record, settings.model, models_dir, sample, plan.lora.max_tokens)
                 for training_set, record in adapters.items()}
        signs = (explainer_signs(store, adapters["specialist-synthetic-corporate"], settings.model, models_dir,
                                 24, plan.lora.max_tokens) if planted else None)
    return {"f1": f1, "adapters": found, "explainer_signs_on_the_planted_link_domain": signs,
            "seconds": {"demo": round(built, 1), "total": round(time.perf_counter() - started, 1)}}


def recovered(adapters: dict) -> dict:
    return {training_set: {name: sum(v["recovered"] for v in result[name].values()) for name in DIAGNOSTICS}
            for training_set, result in adapters.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sample", type=int, default=DEMO_PLAN.walkthrough_sample,
                        help="test emails per corpus for each diagnostic (the demo's walk-through sample)")
    args = parser.parse_args()
    models_dir = load_settings().models_dir
    with tempfile.TemporaryDirectory() as tmp:
        planted = build(True, Path(tmp) / "planted", models_dir, args.sample)
        baseline = build(False, Path(tmp) / "unplanted", models_dir, args.sample)
    print(json.dumps({"benchmark": "planted shortcuts", "planted": len(PLANTED_SHORTCUTS), "top": TOP,
                      "recovered_in_top_5": recovered(planted["adapters"]),
                      "baseline_unplanted_recovered_in_top_5": recovered(baseline["adapters"]),
                      "sample_per_corpus": args.sample, "plan": {"train_size": DEMO_PLAN.train_size,
                                                                 "epochs": DEMO_PLAN.lora.epochs,
                                                                 "max_tokens": DEMO_PLAN.lora.max_tokens},
                      "planted_run": planted, "baseline_run": baseline}, indent=1, default=str))


if __name__ == "__main__":
    main()
