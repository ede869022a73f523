"""Ingest of a large mbox corpus in bounded memory: peak RSS and time against the
collect-everything baseline, measured in the same run.

Builds a corpus folder of two mbox files (ham.mbox, spam.mbox), --size-mb in all, from the
real SpamAssassin messages in ../shared/data, each copy's Subject tagged with its copy number
so that every message is a distinct email (no deduplication shortcut). Then, each in a fresh
process (so peak RSS is its own):
  phishlens - data.corpora.ingest_source: parse → staging file in batches → dedupe in SQL
  baseline  - the pre-streaming ingest: parse every email into a list, dedupe in a dict,
              write all in one Store.add_corpus call
Usage: .venv/bin/python benchmarks/bench_ingest.py [--size-mb 1024] [--workdir DIR]
Prints one JSON object (seconds, emails/s, peak RSS in MB).
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SUBJECT = re.compile(rb"^Subject:", re.I | re.M)


def raw_messages(mbox_gz: Path) -> list[bytes]:
    """The messages of a gzipped mbox, without their 'From ' separator lines."""
    text = gzip.decompress(mbox_gz.read_bytes())
    parts = re.split(rb"(?m)^From [^\n]*\n", text)
    return [p for p in parts if p.strip()]


def tagged(message: bytes, copy: int) -> bytes:
    head, sep, body = message.partition(b"\n\n")
    tag = f"Subject: [copy {copy}]".encode()
    head = SUBJECT.sub(tag, head, count=1) if SUBJECT.search(head) else head + b"\n" + tag
    return head + sep + body


def write_corpus(folder: Path, data_dir: Path, size_mb: int) -> dict[str, int]:
    """ham.mbox and spam.mbox of about size_mb / 2 each; returns messages written per file."""
    folder.mkdir(parents=True, exist_ok=True)
    sources = {"ham": ["easy_ham", "easy_ham_2", "hard_ham"], "spam": ["spam", "spam_2"]}
    counts = {}
    for label, names in sources.items():
        messages = [m for n in names for m in raw_messages(data_dir / "SpamAssassin" / f"{n}.mbox.gz")]
        written, copy = 0, 0
        with open(folder / f"{label}.mbox", "wb") as out:
            while out.tell() < size_mb * 2**20 // 2:
                for message in messages:
                    body = re.sub(rb"(?m)^From ", b">From ", tagged(message, copy))
                    out.write(b"From bench@example.test Mon Jan  1 00:00:00 2024\n" + body.rstrip(b"\n") + b"\n\n")
                    written += 1
                copy += 1
        counts[label] = written
    return counts


CHILD = r"""
import json, resource, sys, time
from pathlib import Path
sys.path.insert(0, {root!r})
from data.corpora import corpus_info, ingest_source, read_corpus, source_for_path
from data.normalise import normalisation_name
from data.records import Email, IngestReport
from data.store import Store

folder, store_path, mode = Path({folder!r}), Path({store!r}), {mode!r}
source = source_for_path(folder)
store = Store.open(store_path)
started = time.perf_counter()
if mode == "phishlens":
    report = ingest_source(store, source, progress=False)
    kept, parsed = report.kept, report.parsed
else:  # the pre-streaming ingest: everything in memory at once
    emails = [m for m in read_corpus(source, False, progress=False) if isinstance(m, Email)]
    first = {{}}
    for m in emails:
        first.setdefault(m.id, m)
    kept_emails = list(first.values())
    report = IngestReport(source.name, len(emails), 0, len(emails) - len(kept_emails), 0, 0, len(kept_emails), normalisation_name(False))
    store.add_corpus(corpus_info(source), report, kept_emails)
    kept, parsed = len(kept_emails), len(emails)
seconds = time.perf_counter() - started
print(json.dumps({{"seconds": seconds, "parsed": parsed, "kept": kept,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
"""


def run_child(folder: Path, store: Path, mode: str) -> dict:
    code = CHILD.format(root=str(ROOT), folder=str(folder), store=str(store), mode=mode)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"{mode} ingest failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=1024)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--workdir", type=Path, default=None, help="where the mbox and stores go (default: a temp dir)")
    parser.add_argument("--skip-baseline", action="store_true")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        folder = Path(tmp) / "BenchMbox"
        started = time.perf_counter()
        messages = write_corpus(folder, args.data, args.size_mb)
        mbox_mb = sum(p.stat().st_size for p in folder.iterdir()) / 2**20
        result = {"benchmark": "ingest", "mbox_mb": round(mbox_mb), "messages": messages,
                  "write_s": round(time.perf_counter() - started, 1),
                  "phishlens": run_child(folder, Path(tmp) / "streamed.duckdb", "phishlens")}
        if not args.skip_baseline:
            result["baseline_collect_all"] = run_child(folder, Path(tmp) / "collected.duckdb", "baseline")
            result["peak_rss_ratio_baseline_over_phishlens"] = (result["baseline_collect_all"]["peak_rss_mb"]
                                                                / result["phishlens"]["peak_rss_mb"])
            result["time_ratio_baseline_over_phishlens"] = (result["baseline_collect_all"]["seconds"]
                                                            / result["phishlens"]["seconds"])
        for key in ("phishlens", "baseline_collect_all"):
            if key in result:
                result[key]["emails_per_s"] = result[key]["parsed"] / result[key]["seconds"]
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
