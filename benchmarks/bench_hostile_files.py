"""Hostile files, round 3: time and peak RSS of reading each file case at the default caps,
against data/mailfiles.py and data/parse_csv.py as they were before round 3 (commit 3e77961),
measured in the same run.

Every input is built here (nothing large is committed): an .mbox.gz of 320 MiB of empty lines
(318 KiB compressed), a 64 MiB newline preamble before the first From_ line, 8 GiB of text
without a newline before the first From_ line (gzipped), and a one-line 1 GiB .csv.gz. Each read
runs in a fresh process (peak RSS is its own: VmHWM) under a 60 s timeout and a 4 GiB
address-space limit. Usage: .venv/bin/python benchmarks/bench_hostile_files.py [--no-baseline]
[--huge-gib 8]. Prints one JSON object; the target is < 10 s and < 1 GB per file.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.bench_hostile import baseline_root, measure  # noqa: E402
from models.flops import describe_cpu  # noqa: E402

BASELINE_COMMIT = "3e77961"
MESSAGE = b"From a@b Thu Jan  1 00:00:00 2024\nFrom: a@b.test\nSubject: after\n\nthe good email\n"

READER = """
import resource, sys, time
resource.setrlimit(resource.RLIMIT_AS, (4 * 2**30, 4 * 2**30))
sys.path.insert(0, {root!r})
from pathlib import Path
from data.mailfiles import iter_mbox
from data.parse import ParseError
from data.parse_csv import iter_csv
path = Path(sys.argv[1])
start = time.perf_counter()
try:
    items = list(iter_csv(path)) if ".csv" in path.name else list(iter_mbox(path))
    errors = [str(i[1])[:70] for i in items if isinstance(i[1], ParseError)]
    outcome = f"{{len(items) - len(errors)}} parsed, {{len(errors)}} errors {{errors[:1]}}"
except (ParseError, MemoryError) as exc:
    outcome = f"{{type(exc).__name__}}: {{str(exc)[:70]}}"
peak = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:"))
print(time.perf_counter() - start, peak / 1024, outcome)
"""


def _gzip_of_repeats(path: Path, head: bytes, unit: bytes, total: int, tail: bytes) -> None:
    """A gzip file of head + unit repeated to `total` bytes + tail, fast: the compressed form of one
    1 MiB block (after a full flush, which resets the compressor) is written once per block."""
    block = unit * (2**20 // len(unit))
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    crc, size = 0, 0
    with open(path, "wb") as out:
        out.write(b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff")  # gzip header, no name
        out.write(compressor.compress(head) + compressor.flush(zlib.Z_FULL_FLUSH))
        crc, size = zlib.crc32(head, crc), len(head)
        packed = compressor.compress(block) + compressor.flush(zlib.Z_FULL_FLUSH)
        for _ in range(total // len(block)):
            out.write(packed)
            crc = zlib.crc32(block, crc)
            size += len(block)
        out.write(compressor.compress(tail) + compressor.flush())
        crc, size = zlib.crc32(tail, crc), size + len(tail)
        out.write(crc.to_bytes(4, "little") + (size % 2**32).to_bytes(4, "little"))


def build_inputs(folder: Path, huge_gib: int) -> dict[str, Path]:
    files = {}
    files["mbox.gz: 320 MiB of empty lines"] = folder / "empty_lines_spam.mbox.gz"
    _gzip_of_repeats(files["mbox.gz: 320 MiB of empty lines"], b"From a@b Thu Jan  1 00:00:00 2024\nSubject: x\n\n",
                     b"\n", 320 * 2**20, b"\n" + MESSAGE)
    files["mbox: 64 MiB newline preamble"] = folder / "preamble_spam.mbox"
    with open(files["mbox: 64 MiB newline preamble"], "wb") as out:
        for _ in range(64):
            out.write(b"\n" * 2**20)
        out.write(MESSAGE)
    files[f"mbox.gz: {huge_gib} GiB without a newline before the first From_ line"] = folder / "noline_spam.mbox.gz"
    _gzip_of_repeats(folder / "noline_spam.mbox.gz", b"", b"a", huge_gib * 2**30, b"\n" + MESSAGE)
    files["csv.gz: one 1 GiB line"] = folder / "oneline.csv.gz"
    _gzip_of_repeats(folder / "oneline.csv.gz", b"", b"a", 2**30, b"\nbody,label\nthe good email,1\n")
    return files


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--huge-gib", type=int, default=8)
    args = parser.parse_args()
    rows = {}
    with tempfile.TemporaryDirectory() as folder:
        old = baseline_root(Path(folder), BASELINE_COMMIT, ("__init__.py", "parse.py", "normalise.py", "records.py",
                                                            "mailfiles.py", "parse_csv.py")) if args.baseline else None
        for name, path in build_inputs(Path(folder), args.huge_gib).items():
            row = {"input_bytes": path.stat().st_size,
                   "phishlens": measure(READER.format(root=str(ROOT)), path, timeout=60)}
            if old is not None:
                row["baseline"] = measure(READER.format(root=str(old)), path, timeout=60)
                if row["baseline"]["seconds"] and row["phishlens"]["seconds"]:
                    row["speed-up"] = round(row["baseline"]["seconds"] / max(row["phishlens"]["seconds"], 0.01), 1)
            rows[name] = row
            print(f"{name}: {row}", file=sys.stderr)
    timed = [r["phishlens"] for r in rows.values()]
    print(json.dumps({
        "benchmark": "hostile files (round 3) at the default caps",
        "cpu": describe_cpu(),
        "baseline": f"data/mailfiles.py and data/parse_csv.py at commit {BASELINE_COMMIT}, 60 s timeout, 4 GiB limit",
        "target": {"seconds": 10.0, "peak_rss_mb": 1024},
        "worst": {"seconds": max((t["seconds"] or float("inf")) for t in timed),
                  "peak_rss_mb": max((t["peak_rss_mb"] or float("inf")) for t in timed)},
        "inputs": rows,
    }, indent=2))


if __name__ == "__main__":
    main()
