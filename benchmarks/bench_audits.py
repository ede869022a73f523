"""Precision and recall of the label audit and the near-duplicate audit against planted ground truth.

Synthetic (data.synthetic.synthetic_truth): labels flipped in one corpus (every 25th email of the
list dump), edited copies of corporate mail planted in the webmail corpus; baseline in the same run:
the same generator with nothing planted (what the audits flag there is their false-alarm rate).
Real (../shared/data): a sample of Ling-Spam and SpamAssassin, audited as it is (baseline: the
natural rate) and with 3% of Ling-Spam's labels flipped on purpose (recall of the planted flips).
Seconds are per audit, beside one fit of the bag-of-words reference on the same emails (the named
baseline: the audit costs `folds` such fits, plus confident learning).

Usage: .venv/bin/python benchmarks/bench_audits.py [--per-corpus 240 1000] [--real-size 1500] [--out FILE]
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from data.settings import PROJECT_ROOT  # noqa: E402
from data.synthetic import generate_synthetic_corpora, synthetic_truth  # noqa: E402
from diagnostics.analyses.label_audit import audit_labels  # noqa: E402
from diagnostics.analyses.near_duplicates import near_duplicate_pairs  # noqa: E402
from models.bag_of_words import fit_reference  # noqa: E402


def _timed(function, *args):
    start = time.perf_counter()
    out = function(*args)
    return out, time.perf_counter() - start


def _scores(found: set, planted: set) -> dict:
    hit = len(found & planted)
    return {"flagged": len(found), "planted": len(planted), "true_positives": hit,
            "precision": round(hit / len(found), 3) if found else None,
            "recall": round(hit / len(planted), 3) if planted else None}


def synthetic_run(per_corpus: int, planted: bool) -> dict:
    emails = list({m.id: m for _, ms in generate_synthetic_corpora(per_corpus, planted=planted) for m in ms}.values())
    truth = synthetic_truth(per_corpus, planted=planted)
    refs = {m.id: m.source_ref for m in emails}
    _, fit_seconds = _timed(fit_reference, emails, 0)
    audited, label_seconds = _timed(audit_labels, emails)
    pairs, pair_seconds = _timed(near_duplicate_pairs, emails)
    found_pairs = {frozenset((refs[a], refs[b])) for a, b in zip(pairs["email_a"], pairs["email_b"])}
    planted_pairs = {frozenset(p) for p in truth.near_duplicates}
    joined = {p for p in found_pairs if {r.split("#")[0] for r in p} == {"synthetic-corporate", "synthetic-webmail"}}
    return {
        "emails": len(emails), "planted": planted,
        "label_audit": {**_scores({refs[i] for i in audited.flags["email_id"]}, set(truth.flipped)),
                        "per_corpus": audited.summaries.round(4).to_dict("records"), "seconds": round(label_seconds, 2),
                        "seconds_per_bag_of_words_fit": round(label_seconds / fit_seconds, 1)},
        "near_duplicates": {
            "pairs_found": len(found_pairs),
            "planted_found": len(found_pairs & planted_pairs), "planted": len(planted_pairs),
            "recall": round(len(found_pairs & planted_pairs) / len(planted_pairs), 3) if planted_pairs else None,
            # The corporate and webmail corpora share no writing style: a pair joining them is planted or wrong.
            "corporate_webmail_pairs": len(joined), "corporate_webmail_pairs_not_planted": len(joined - planted_pairs),
            # Every other pair should be one template filled twice (the list dump draws on every style).
            "pairs_joining_two_templates": sum(len({truth.styles[r] for r in p}) > 1 for p in found_pairs),
            "seconds": round(pair_seconds, 2)},
        "bag_of_words_fit_seconds": round(fit_seconds, 2),
    }


def real_run(shared: Path, size: int, flip_share: float = 0.03, seed: int = 5) -> dict:
    from data.corpora import discover_corpora, read_corpus
    from data.records import Email

    sources = {s.name: s for s in discover_corpora(shared)}
    mail = {name: list(itertools.islice((m for m in read_corpus(sources[name], lowercase=False, progress=False)
                                         if isinstance(m, Email)), size)) for name in ("LingSpam", "Nazario")}
    rng = random.Random(seed)
    emails = list({m.id: m for m in rng.sample(mail["LingSpam"], min(size, 1000)) + mail["Nazario"][:300]}.values())
    lingspam = [i for i, m in enumerate(emails) if m.corpus == "LingSpam"]
    flipped = set(rng.sample(lingspam, round(flip_share * len(lingspam))))
    out = {"emails": len(emails), "corpora": {"LingSpam": len(lingspam), "Nazario": len(emails) - len(lingspam)}}
    as_is, seconds = _timed(audit_labels, emails)
    out["as_is"] = {"per_corpus": as_is.summaries.round(4).to_dict("records"), "seconds": round(seconds, 2)}
    planted = [replace(m, label=1 - m.label) if i in flipped else m for i, m in enumerate(emails)]
    audited = audit_labels(planted)
    suspects = set(audited.flags["email_id"])
    found = {i for i, m in enumerate(planted) if m.id in suspects}
    natural = {i for i, m in enumerate(emails) if m.id in set(as_is.flags["email_id"])}
    out["flipped"] = {**_scores(found, flipped), "flagged_also_as_is": len(found & natural),
                      "per_corpus": audited.summaries.round(4).to_dict("records")}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-corpus", type=int, nargs="+", default=[240, 1000])
    parser.add_argument("--real-size", type=int, default=1500, help="Ling-Spam emails read (0: skip real mail)")
    parser.add_argument("--data", type=Path, default=PROJECT_ROOT.parent / "shared" / "data")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    result = {"synthetic": [synthetic_run(n, planted) for n in args.per_corpus for planted in (False, True)]}
    if args.real_size and args.data.exists():
        result["real"] = real_run(args.data, args.real_size)
    text = json.dumps(result, indent=1, default=str)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
