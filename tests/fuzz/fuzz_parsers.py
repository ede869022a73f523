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
    from data.mailfiles import iter_mbox, read_eml
    from data.parse import ParseError, ParseLimits, parse_message_bytes, parse_pasted_text
    from data.parse_csv import iter_csv

LIMITS = ParseLimits(max_body_chars=50_000, max_message_bytes=2 * 2**20)

SEEDS = Path(__file__).resolve().parents[3] / "shared" / "data" / "raw_samples"
CSV_PATH = Path(tempfile.mkdtemp()) / "fuzz.csv.gz"


EML_PATH = CSV_PATH.with_name("fuzz.eml")
MBOX_PATH = CSV_PATH.with_name("fuzz.mbox.gz")


def _inflate_headers(payload: bytes, times: int) -> bytes:
    """Header-size mutations: the first line repeated, folded into one huge header, or as encoded words."""
    line, _, rest = payload.partition(b"\n")
    style = times % 3
    if style == 0:
        return (line + b"\n") * (times * 50) + rest
    if style == 1:
        return b"Subject: " + b"\n ".join([line[:40] or b"x"] * (times * 200)) + b"\n" + rest
    return b"From: " + b" ".join([b"=?utf-8?q?" + line[:20].hex().encode() + b"?="] * (times * 100)) + b"\n" + rest


def _check_caps(fields) -> None:
    assert len(fields.body) <= LIMITS.max_body_chars
    for value in (fields.subject, fields.sender, fields.receiver):
        assert len(value) <= LIMITS.max_header_chars, len(value)
    assert len(fields.date) <= LIMITS.max_date_chars


def fuzz_one(data: bytes) -> None:
    if len(data) < 2:
        return
    mode, knob, payload = data[0] % 5, data[1], data[2:]
    try:
        if mode == 0:
            _check_caps(parse_message_bytes(payload, LIMITS)[0])
        elif mode == 1:
            _check_caps(parse_pasted_text(payload.decode("utf-8", "replace"), LIMITS)[0])
        elif mode == 2:
            CSV_PATH.write_bytes(gzip.compress(b"subject,body,label,urls\n" + payload, compresslevel=1))
            for _, fields, _, _ in iter_csv(CSV_PATH, LIMITS):
                if not isinstance(fields, ParseError):
                    _check_caps(fields)
        elif mode == 3:
            _check_caps(parse_message_bytes(_inflate_headers(payload, knob + 1), LIMITS)[0])
        else:  # compression: a gzip stream, cut at a point the knob picks, as .eml and as an mbox
            packed = gzip.compress(payload * (1 + knob % 8), compresslevel=1)
            packed = packed[: max(2, len(packed) * (knob + 1) // 256)] if knob < 192 else packed
            EML_PATH.write_bytes(packed)
            try:
                _check_caps(read_eml(EML_PATH, LIMITS)[0])
            except ParseError:
                pass
            MBOX_PATH.write_bytes(gzip.compress(b"From a@b Mon Jan  1 00:00:00 2024\n" + payload, 1)[: len(packed)])
            for _, fields, _ in iter_mbox(MBOX_PATH, LIMITS):
                if not isinstance(fields, ParseError):
                    _check_caps(fields)
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
