"""Inbox responsiveness on a large store: one page of misclassified mail out of N emails.

Builds a temporary store of N synthetic emails (data/synthetic.py) with random scores for
two adapters (timing only: the scores mean nothing), then measures
  phishlens  - Store.inbox(): filtered, sorted, LIMIT 50 in DuckDB
  baseline   - what a naive page does: load every email and prediction into pandas,
               filter and sort there
  first_render - AppTest's first run of the Inbox page (app.py + page, cold caches)
  browser_first_render - with --browser: `cli.py serve` on that store, headless Chromium
               (Playwright) opens /inbox; seconds from navigation until the page's table
               and its download button are drawn (cold server caches), then again (warm)

Usage: .venv/bin/python benchmarks/bench_inbox.py [--n 100000] [--browser]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from data.records import Prediction  # noqa: E402
from data.settings import PROJECT_ROOT, load_settings  # noqa: E402
from data.store import Store  # noqa: E402
from diagnostics.runners.pipeline import ingest_synthetic  # noqa: E402


def build_store(home: Path, n: int) -> tuple[Path, str]:
    settings = load_settings(home=home, store_path=home / "store.duckdb")
    store = Store.open(settings.store_path)
    # Template mail repeats now and then and is deduplicated: generate ~20% more than asked.
    ingest_synthetic(store, settings, per_corpus=int(n * 1.2) // 3 + 1)
    rows = store.query("SELECT id, corpus, label FROM emails")
    rng = np.random.default_rng(0)
    for adapter in ("bench-a", "bench-b"):
        scores = rng.normal(0, 3, len(rows))
        store.add_predictions([Prediction("bench", adapter, "bench", r.id, r.corpus, float(s), int(s > 0), int(r.label))
                               for r, s in zip(rows.itertuples(), scores)])
    return settings.store_path, "bench-a"


def timed(fn, repeat: int = 5) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description="Inbox query and first-render time on a large store")
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--browser", action="store_true", help="also time the first render in headless Chromium")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        path, adapter = build_store(Path(tmp), args.n)
        build_s = time.perf_counter() - t0
        store = Store.open(path, read_only=True)
        n_emails = store.scalar("SELECT count(*) FROM emails")

        def phishlens():
            return store.inbox(adapter, outcome="wrong", text="invoice", limit=50)

        def baseline():
            with store.connection() as con:
                emails = con.execute("SELECT * FROM emails").df()
                predictions = con.execute("SELECT * FROM predictions WHERE adapter_id = ?", [adapter]).df()
            joined = emails.merge(predictions, left_on="id", right_on="email_id")
            wrong = joined[(joined["predicted"] != joined["label"])
                           & joined["subject"].str.contains("invoice", case=False)]
            return wrong.assign(w=np.where(wrong["label"] == 1, -wrong["score"], wrong["score"])).nlargest(50, "w")

        assert len(phishlens()[0]) == len(baseline())
        fast, slow = timed(phishlens), timed(baseline, repeat=2)

        from streamlit.testing.v1 import AppTest

        os.environ.update(PHISHLENS_STORE=str(path), PHISHLENS_HOME=tmp)
        start = time.perf_counter()
        at = AppTest.from_file(str(PROJECT_ROOT / "app.py"), default_timeout=300).run()
        at.switch_page("pages/inbox.py").run()
        first_render = time.perf_counter() - start
        assert not at.exception, at.exception
        result = {
            "benchmark": "inbox", "emails": n_emails, "predictions": 2 * n_emails, "store_build_s": round(build_s, 1),
            "query_s": {"phishlens": fast, "baseline_pandas": slow}, "speedup_vs_baseline": slow / fast,
            "first_render_s": first_render,
        }
        store.close()
        if args.browser:
            result["browser_first_render_s"] = browser_first_render(path, Path(tmp), adapter)
        print(json.dumps(result, indent=1))


def browser_first_render(store_path: Path, home: Path, adapter: str) -> dict:
    """Seconds from navigation to a drawn Inbox page in headless Chromium: cold, then warm."""
    import shutil
    import signal
    import socket
    import subprocess
    import urllib.request

    from playwright.sync_api import sync_playwright

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "PHISHLENS_STORE": str(store_path), "PHISHLENS_HOME": str(home),
           "PHISHLENS_PORT": str(port)}
    server = subprocess.Popen([sys.executable, "cli.py", "serve"], cwd=PROJECT_ROOT, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(240):
            try:
                urllib.request.urlopen(f"{url}/_stcore/health", timeout=2)
                break
            except OSError:
                time.sleep(0.5)
        chromium = shutil.which("chromium") or shutil.which("chromium-browser")
        times = []
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium, args=[
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run"])
            for _ in range(2):
                page = browser.new_page(viewport={"width": 1400, "height": 1200})
                start = time.perf_counter()
                page.goto(f"{url}/inbox?adapter={adapter}&show=wrong")
                page.get_by_text("Download this page (CSV)").first.wait_for(timeout=300_000)
                page.locator("[data-testid='stDataFrame']").first.wait_for(timeout=300_000)
                times.append(time.perf_counter() - start)
                page.close()
            browser.close()
    finally:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait()
    return {"cold": times[0], "warm": times[1]}


if __name__ == "__main__":
    main()
