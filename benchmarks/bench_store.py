"""The store at scale: the dashboard's three heaviest reads on 10 million predictions and
1 million token-attribution rows, warm, against a naive baseline measured in the same run.

Builds a fresh store with the product's schema (data.store migrations) and fills it in
DuckDB SQL (timing only: the texts and scores mean nothing):
  emails       250,000 across 4 corpora, ~120-word bodies drawn from a 64-word vocabulary
  predictions  40 adapters × 250,000 emails = 10,000,000 rows
  attribution_features  20,000 explained emails × 50 word features = 1,000,000 rows
Then times, warm (one untimed run, then the median of --repeat):
  overview  - Store.metrics() + bootstrap F1 intervals: the Overview page's F1 matrix
  inbox     - Store.inbox(): one adapter's wrong verdicts in two corpora, |score| ≥ 1, text
              search, sorted by wrongness, 50 rows (and the same without the text search)
  drivers   - Store.drivers(): per-feature aggregation of one adapter's attributions
Baseline per query: what a page without SQL would do — read the table into pandas and
aggregate or filter there (the columns the query needs only).

Usage: .venv/bin/python benchmarks/bench_store.py [--emails 250000] [--adapters 40] [--repeat 5]
Prints one JSON object (seconds; target: every PhishLens query under 0.3 s on 2 cores).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pandas as pd  # noqa: E402

from data.store import Store  # noqa: E402
from diagnostics.analyses.matrix import with_f1_intervals  # noqa: E402

CORPORA = ["EnronSpam", "LingSpam", "Nazario", "SpamAssassin"]
WORDS = ("account invoice verify password meeting project report click urgent bank offer free money "
         "schedule attached please review update security login confirm team lunch budget deadline "
         "prize winner claim limited paypal shipping order delivery refund tax office manager call "
         "notice suspended access unusual activity link here today thanks regards friday monday week "
         "price discount unsubscribe newsletter conference agenda minutes draft contract").split()


def build_store(path: Path, n_emails: int, n_adapters: int, n_explained: int, features_per_email: int) -> Store:
    store = Store.open(path)
    words = "[" + ", ".join(f"'{w}'" for w in WORDS) + "]"
    corpora = "[" + ", ".join(f"'{c}'" for c in CORPORA) + "]"
    with store.transaction() as con:
        for name in CORPORA:
            con.execute("INSERT INTO corpora VALUES (?, 'bench', 'csv', 'phishing', 'bench', false, 'ws1', "
                        "0, 0, 0, 0, 0, 0, now())", [name])
        con.execute(f"""
            INSERT INTO emails BY NAME
            SELECT 'e' || i AS id, {corpora}[1 + i % 4] AS corpus, 'sender' || (i % 997) || '@example.com' AS sender,
                   array_to_string(list_transform(range(6), lambda x: {words}[1 + (hash(i, x, 's') % {len(WORDS)})::BIGINT]), ' ')
                       AS subject,
                   array_to_string(list_transform(range(120), lambda x: {words}[1 + (hash(i, x) % {len(WORDS)})::BIGINT]), ' ')
                       AS body,
                   []::VARCHAR[] AS urls, (i % 2)::TINYINT AS label, 'ws1' AS normalisation, false AS truncated
            FROM range({n_emails}) t(i)""")
        for c in CORPORA:
            con.execute("INSERT INTO training_sets VALUES (?, 'specialist', [?], 100, 13, now())",
                        [f"specialist-{c}", c])
        con.execute(f"""
            INSERT INTO adapters
            SELECT 'adapter-' || a, 'bench', 'x', 'llama', 'specialist-' || {corpora}[1 + a % 4], '', '{{}}', a,
                   [], 100, 0, ''
            FROM range({n_adapters}) t(a)""")
    with store.transaction() as con:
        con.execute(f"""
            INSERT INTO predictions BY NAME
            SELECT 'bench' AS run_id, 'adapter-' || a AS adapter_id, 'bench' AS model, 'e' || i AS email_id,
                   {corpora}[1 + i % 4] AS corpus, s AS score, (s > 0)::TINYINT AS predicted,
                   (i % 2)::TINYINT AS true_label, 0 AS truncated_tokens
            FROM (SELECT a, i, (hash(a, i) % 2000) / 100.0 - 10 + (i % 2) * 3 AS s
                  FROM range({n_adapters}) t(a), range({n_emails}) u(i))""")
    with store.transaction() as con:
        con.execute(f"""
            INSERT INTO attribution_features
            SELECT 'adapter-0', 'shap', 'p', 'e' || i, {corpora}[1 + i % 4],
                   {words}[1 + (hash(i, f) % {len(WORDS)})::BIGINT] || (hash(i, f, 'v') % 100),
                   (hash(i, f, 'x') % 2000) / 1000.0 - 1
            FROM range({n_explained}) t(i), range({features_per_email}) u(f)""")
    return store


def warm_median(fn, repeat: int) -> float:
    fn()  # warm: DuckDB's buffers and the OS cache hold the columns now
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def pandas_overview(store: Store) -> pd.DataFrame:
    frame = store.query("SELECT adapter_id, corpus, predicted, true_label FROM predictions")
    frame["tp"] = (frame.predicted == 1) & (frame.true_label == 1)
    frame["fp"] = (frame.predicted == 1) & (frame.true_label == 0)
    frame["fn"] = (frame.predicted == 0) & (frame.true_label == 1)
    frame["tn"] = (frame.predicted == 0) & (frame.true_label == 0)
    counts = frame.groupby(["adapter_id", "corpus"])[["tp", "fp", "fn", "tn"]].sum().reset_index()
    counts["f1"] = 2 * counts.tp / (2 * counts.tp + counts.fp + counts.fn)
    return with_f1_intervals(counts)


def pandas_inbox(store: Store, adapter: str, corpora: list[str], text: str | None) -> pd.DataFrame:
    predictions = store.query("SELECT email_id, score, predicted FROM predictions WHERE adapter_id = ?", [adapter])
    emails = store.query("SELECT id, corpus, sender, subject, body, label FROM emails")
    page = emails.merge(predictions, left_on="id", right_on="email_id")
    page = page[page.corpus.isin(corpora) & (page.predicted != page.label) & (page.score.abs() >= 1.0)]
    if text:
        hit = (page.subject.str.contains(text, case=False, regex=False) | page.body.str.contains(text, case=False, regex=False)
               | page.sender.str.contains(text, case=False, regex=False))
        page = page[hit]
    page = page.assign(wrongness=page.score.where(page.label == 0, -page.score))
    return page.sort_values("wrongness", ascending=False).head(50)


def pandas_drivers(store: Store) -> pd.DataFrame:
    frame = store.query("SELECT email_id, feature, value FROM attribution_features "
                        "WHERE adapter_id = 'adapter-0' AND method = 'shap' AND params = 'p'")
    per_email = frame.groupby(["feature", "email_id"])["value"].sum().reset_index()
    n = frame.email_id.nunique()
    out = per_email.groupby("feature")["value"].agg(emails="count", total="sum", mean_when_present="mean")
    out["mean_value"] = out.total / n
    return out.reindex(out.total.abs().sort_values(ascending=False).index)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--emails", type=int, default=250_000)
    parser.add_argument("--adapters", type=int, default=40)
    parser.add_argument("--explained", type=int, default=20_000)
    parser.add_argument("--features", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        store = build_store(Path(tmp) / "store.duckdb", args.emails, args.adapters, args.explained, args.features)
        build_s = time.perf_counter() - started
        counts = {t: store.scalar(f"SELECT count(*) FROM {t}") for t in ("emails", "predictions", "attribution_features")}
        adapter, corpora = "adapter-3", ["EnronSpam", "Nazario"]
        with store.connection():
            ours = {
                "overview": warm_median(lambda: with_f1_intervals(store.metrics()), args.repeat),
                "inbox_text_search": warm_median(lambda: store.inbox(adapter, corpora, outcome="wrong", min_confidence=1.0,
                                                                     text="invoice", limit=50), args.repeat),
                "inbox": warm_median(lambda: store.inbox(adapter, corpora, outcome="wrong", min_confidence=1.0, limit=50),
                                     args.repeat),
                "drivers": warm_median(lambda: store.drivers("adapter-0", "shap", "p"), args.repeat),
            }
            baseline = {
                "overview": warm_median(lambda: pandas_overview(store), 1),
                "inbox_text_search": warm_median(lambda: pandas_inbox(store, adapter, corpora, "invoice"), 1),
                "inbox": warm_median(lambda: pandas_inbox(store, adapter, corpora, None), 1),
                "drivers": warm_median(lambda: pandas_drivers(store), 1),
            }
        size_mb = os.path.getsize(Path(tmp) / "store.duckdb") / 1e6
    print(json.dumps({
        "benchmark": "store", "cpus": os.cpu_count(), "rows": counts, "store_mb": round(size_mb),
        "build_s": round(build_s, 1),
        "warm_seconds": {"phishlens": ours, "pandas_baseline": baseline},
        "speedup_vs_pandas": {k: baseline[k] / ours[k] for k in ours},
        "under_300_ms": {k: v < 0.3 for k, v in ours.items()},
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }, indent=1))


if __name__ == "__main__":
    main()
