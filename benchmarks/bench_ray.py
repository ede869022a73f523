"""Ray executor scaling on this machine: the same evaluation with 1 and with 2 Ray workers
(one thread each), and the local executor (all threads, one process) as the reference.

Builds a store from the real corpora (--per-corpus test emails scored per corpus), then for
each executor evaluates the default model (zero-shot) on every corpus from an empty
predictions table, timing the evaluate call (Ray's start-up and each worker's model load
included: that is what a user waits for).

Usage: .venv/bin/python benchmarks/bench_ray.py [--per-corpus 48] [--max-tokens 256]
Prints one JSON object: seconds and emails/s per executor, speed-up of 2 workers over 1.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from data.settings import PROJECT_ROOT, load_settings  # noqa: E402
from data.store import Store  # noqa: E402
from data.records import EvaluationTarget  # noqa: E402
from diagnostics.analyses.evaluate import evaluate  # noqa: E402
from diagnostics.runners.pipeline import ingest_folder  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-corpus", type=int, default=48)
    parser.add_argument("--max-tokens", type=int, default=256)
    parser.add_argument("--data", type=Path, default=PROJECT_ROOT.parent / "shared" / "data")
    args = parser.parse_args()

    import ray

    from diagnostics.runners.ray import RayExecutor, connect_ray

    with tempfile.TemporaryDirectory() as tmp:
        settings = load_settings(home=Path(tmp), store_path=Path(tmp) / "store.duckdb", device="cpu")
        store = Store.open(settings.store_path)
        ingest_folder(store, settings, args.data, progress=False)
        corpora = store.corpus_names()
        target = [EvaluationTarget(settings.model, None)]
        seconds = {}

        def timed(name: str, run) -> None:
            store.execute("DELETE FROM predictions")
            started = time.perf_counter()
            run()
            seconds[name] = time.perf_counter() - started

        timed("local", lambda: evaluate(store, target, corpora, settings.models_dir, args.per_corpus, args.max_tokens,
                                        settings.seed, "cpu", progress=False))
        for workers in (1, 2):
            def on_ray(workers=workers):
                connect_ray(None, workers)
                evaluate(store, target, corpora, settings.models_dir, args.per_corpus, args.max_tokens,
                         settings.seed, "cpu", progress=False, emails_per_item=16,
                         executor=RayExecutor(Path(tmp) / f"shards-{workers}", settings.models_dir, "cpu"))
                ray.shutdown()
            timed(f"ray_{workers}_workers", on_ray)
        emails = store.scalar("SELECT count(*) FROM predictions")
    print(json.dumps({
        "benchmark": "ray", "model": settings.model, "emails": emails, "max_tokens": args.max_tokens,
        "seconds": seconds, "emails_per_s": {k: emails / v for k, v in seconds.items()},
        "speedup_2_over_1_workers": seconds["ray_1_workers"] / seconds["ray_2_workers"],
        "ray_2_workers_vs_local": seconds["local"] / seconds["ray_2_workers"],
    }, indent=1))


if __name__ == "__main__":
    main()
