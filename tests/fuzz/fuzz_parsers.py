"""Coverage-guided fuzz target (atheris) for the email and CSV parsers.

    .venv/bin/pip install atheris==3.0.0
    .venv/bin/python tests/fuzz/fuzz_parsers.py -runs=50000 -timeout=10 -rss_limit_mb=2048

Seeds are the real messages of ../shared/data/raw_samples (copied to a temporary corpus
folder, since libFuzzer writes new inputs there). An input may parse or raise ParseError;
anything else is a crash that libFuzzer reports with the input that caused it.
"""

import gzip
import shutil
import sys
import tempfile
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

with atheris.instrument_imports():
    from data.parse import ParseError, ParseLimits, iter_csv, parse_message_bytes, parse_pasted_text

LIMITS = ParseLimits(max_body_chars=50_000, max_message_bytes=2 * 2**20)

SEEDS = Path(__file__).resolve().parents[3] / "shared" / "data" / "raw_samples"
CSV_PATH = Path(tempfile.mkdtemp()) / "fuzz.csv.gz"


def fuzz_one(data: bytes) -> None:
    if not data:
        return
    mode, payload = data[0] % 3, data[1:]
    try:
        if mode == 0:
            parse_message_bytes(payload, LIMITS)
        elif mode == 1:
            parse_pasted_text(payload.decode("utf-8", "replace"), LIMITS)
        else:
            CSV_PATH.write_bytes(gzip.compress(b"subject,body,label,urls\n" + payload, compresslevel=1))
            for _ in iter_csv(CSV_PATH, LIMITS):
                pass
    except ParseError:
        pass


def main() -> None:
    corpus = Path(tempfile.mkdtemp(prefix="phishlens-fuzz-"))
    if SEEDS.is_dir():
        for i, seed in enumerate(sorted(SEEDS.glob("*.eml"))):
            shutil.copy(seed, corpus / f"seed-{i:02d}")
    atheris.Setup([*sys.argv, str(corpus)], fuzz_one)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
