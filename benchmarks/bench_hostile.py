"""The worst single emails we know, parsed at the default caps: time and peak RSS of each,
against data/parse.py as it was before its caps (commit 31a2200), measured in the same run.

Every input is built here (header, MIME, line, HTML and compression bombs, the largest
ordinary message the cap allows). Each parse runs in a fresh process, so peak RSS is its
own (VmHWM, which exec resets; interpreter included, about 20 MB). The baseline is the
same call into data/parse.py as of commit 31a2200 (from git), under a 20 s timeout and a
4 GiB address-space limit so that it cannot take the machine down.
Usage: .venv/bin/python benchmarks/bench_hostile.py [--baseline/--no-baseline]
Prints one JSON object; the target is < 2 s and < 512 MB for every input.
"""

from __future__ import annotations

import argparse
import base64
import gzip
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from data.parse import DEFAULT_LIMITS  # noqa: E402
from models.flops import describe_cpu  # noqa: E402

CAP = DEFAULT_LIMITS.max_message_bytes


def hostile_inputs() -> dict[str, Callable[[], bytes]]:
    """name → a function building the raw message; each aims at one cost the caps must bound."""
    mime = b"Subject: a\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
    return {
        "encoded-word Subject, 1 MB": lambda: b"Subject: " + b" ".join([b"=?utf-8?q?ab?="] * 70_000) + b"\r\n\r\nbody\r\n",
        "From with 100,000 addresses": lambda: b"From: " + b", ".join([b"a@b.test"] * 100_000) + b"\r\n\r\nbody\r\n",
        "folded Subject, 600 KB": lambda: b"Subject: " + b"\r\n ".join([b"word"] * 120_000) + b"\r\n\r\nbody\r\n",
        "Content-Type with 20,000 parameters": lambda: b"Content-Type: text/plain; " + b"; ".join([b"a=b"] * 20_000)
        + b"\r\n\r\nbody\r\n",
        "5 M header lines": lambda: b"X-A: a\n" * 5_000_000 + b"\nbody\n",
        "100,000 MIME parts": lambda: mime + b"--b\r\nContent-Type: text/plain\r\n\r\nx\r\n" * 100_000 + b"--b--\r\n",
        "MIME nested 900 deep": lambda: b"Subject: deep\r\n" + b"".join(
            b"Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n" % (i, i) for i in range(900))
        + b"Content-Type: text/plain\r\n\r\nhello\r\n",
        "12 M short lines": lambda: b"Subject: x\r\n\r\n" + b"a\n" * 12_000_000,
        "25 M empty lines": lambda: b"Subject: x\r\n\r\n" + b"\n" * 25_000_000,
        "quoted-printable soft breaks, 24 MB": lambda: b"Subject: q\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
        + b"=\n" * 12_000_000,
        "nested <div>, 26 MB": lambda: b"Content-Type: text/html\r\n\r\n" + b"<div>" * 5_200_000,
        "one-line body at the cap, UTF-8": lambda: b"Subject: u\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
        + "é".encode() * (CAP // 2),
        "base64 attachment at the cap": lambda: mime + b"--b\r\nContent-Type: text/plain\r\n\r\nhello\r\n--b\r\n"
        b"Content-Type: application/pdf\r\nContent-Disposition: attachment\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        + base64.encodebytes(os.urandom(CAP * 3 // 4 - 4096)) + b"\r\n--b--\r\n",
    }


def compressed_inputs(folder: Path) -> dict[str, Path]:
    """name → file: gzip bombs read by the streaming readers."""
    mbox = folder / "bomb.mbox.gz"
    with gzip.open(mbox, "wb", compresslevel=9) as handle:
        handle.write(b"From a@b Mon Jan  1 00:00:00 2024\nSubject: bomb\n\n")
        for _ in range(1024):
            handle.write(b"A" * 2**20)  # 1 GiB that gzip makes 1 MB
    eml = folder / "bomb.eml"
    with gzip.open(eml, "wb", compresslevel=9) as handle:
        handle.write(b"Subject: bomb\n\n")
        for _ in range(1024):
            handle.write(b"B" * 2**20)
    return {"mbox.gz: one 1 GiB message": mbox, ".eml gzip: 1 GiB": eml}


PHISHLENS = """
import sys, time
sys.path.insert(0, {root!r})
from data.mailfiles import iter_mbox, read_eml
from data.parse import ParseError, parse_message_bytes
from pathlib import Path
path = Path(sys.argv[1])
start = time.perf_counter()
try:
    if path.name.endswith(".mbox.gz"):
        outcome = [("error" if isinstance(f, ParseError) else "parsed", t) for _, f, t in iter_mbox(path)]
    elif path.name.endswith(".eml"):
        outcome = ("parsed", read_eml(path)[1])
    else:
        outcome = ("parsed", parse_message_bytes(path.read_bytes())[1])
except ParseError as exc:
    outcome = ("ParseError", str(exc)[:80])
peak = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:"))
print(time.perf_counter() - start, peak / 1024, repr(outcome))
"""

# The baseline is data/parse.py as it was before the caps (commit BASELINE_COMMIT), run the
# same way under a 4 GiB address-space limit.
BASELINE_COMMIT = "31a2200"
BASELINE = PHISHLENS.replace("import sys, time", "import resource, sys, time\n"
                             "resource.setrlimit(resource.RLIMIT_AS, (4 * 2**30, 4 * 2**30))").replace(
    "except ParseError as exc:", "except (ParseError, MemoryError) as exc:")


def baseline_root(folder: Path, commit: str = BASELINE_COMMIT,
                  modules: tuple[str, ...] = ("__init__.py", "parse.py", "normalise.py", "records.py")) -> Path:
    """A folder holding data/ as of `commit` (the parser and what it imports)."""
    root = folder / "baseline"
    (root / "data").mkdir(parents=True)
    for module in modules:
        source = subprocess.run(["git", "-C", str(ROOT), "show", f"{commit}:data/{module}"],
                                capture_output=True, check=True).stdout
        (root / "data" / module).write_bytes(source)
    return root


def measure(script: str, path: Path, timeout: float) -> dict:
    try:
        done = subprocess.run([sys.executable, "-c", script, str(path)], capture_output=True, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"seconds": None, "peak_rss_mb": None, "outcome": f"killed after {timeout:.0f} s"}
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["?"])[-1]
        return {"seconds": None, "peak_rss_mb": None, "outcome": f"exit {done.returncode}: {last[:100]}"}
    seconds, rss, outcome = done.stdout.strip().split(" ", 2)
    return {"seconds": round(float(seconds), 3), "peak_rss_mb": round(float(rss)), "outcome": outcome[:120]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", action=argparse.BooleanOptionalAction, default=True)
    args = parser.parse_args()
    rows = {}
    with tempfile.TemporaryDirectory() as folder:
        files = {}
        old = baseline_root(Path(folder)) if args.baseline else None
        for i, (name, build) in enumerate(hostile_inputs().items()):
            files[name] = Path(folder) / f"input-{i}.msg"
            files[name].write_bytes(build())  # built one at a time: this process stays small
        files.update(compressed_inputs(Path(folder)))
        for name, path in files.items():
            row = {"input_bytes": path.stat().st_size,
                   "phishlens": measure(PHISHLENS.format(root=str(ROOT)), path, timeout=60)}
            if args.baseline:
                row["baseline"] = measure(BASELINE.format(root=str(old)), path, timeout=20)
            rows[name] = row
            print(f"{name}: {row}", file=sys.stderr)
    timed = [r["phishlens"] for r in rows.values()]
    result = {
        "benchmark": "hostile single emails at the default caps",
        "cpu": describe_cpu(),
        "caps": DEFAULT_LIMITS.__dict__,
        "baseline": f"data/parse.py at commit {BASELINE_COMMIT}, before the caps (modern policy, whole message)",
        "target": {"seconds": 2.0, "peak_rss_mb": 512},
        "worst": {"seconds": max((t["seconds"] or float("inf")) for t in timed),
                  "peak_rss_mb": max((t["peak_rss_mb"] or float("inf")) for t in timed)},
        "inputs": rows,
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
