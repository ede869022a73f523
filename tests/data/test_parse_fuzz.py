"""Property-based fuzzing of the parsers: structure-aware mutations of real messages.

Every input must yield a parse or a ParseError; nothing else may escape.
"""

import csv
import gzip
import io

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from data.mailfiles import iter_mbox
from data.parse import ParseError, ParseLimits, parse_message_bytes
from data.parse_csv import iter_csv
from tests.conftest import SHARED_DATA

if not (SHARED_DATA / "raw_samples").is_dir():
    pytest.skip(f"real messages to mutate not found at {SHARED_DATA}/raw_samples", allow_module_level=True)
SAMPLES = [p.read_bytes() for p in sorted((SHARED_DATA / "raw_samples").glob("*.eml"))]
# A generous per-input deadline: the bound that matters is "seconds, not hours" for any input.
FUZZ = settings(max_examples=150, deadline=10_000, suppress_health_check=[HealthCheck.too_slow])


def _parse_or_clear_error(raw: bytes) -> None:
    try:
        fields, _ = parse_message_bytes(raw, ParseLimits(max_body_chars=50_000))
    except ParseError as exc:
        assert str(exc)
        return
    assert isinstance(fields.body, str) and isinstance(fields.subject, str)
    assert len(fields.body) <= 50_000
    for value in (fields.subject, fields.sender, fields.receiver):
        assert len(value) <= ParseLimits().max_header_chars


MUTATIONS = st.sampled_from([
    "truncate", "drop_boundary", "null_bytes", "bad_charset", "huge_header", "bad_base64", "bad_qp", "nest",
    "splice", "encoded_word_header", "address_header", "folded_header", "header_lines", "part_bomb",
])


def _mutate(raw: bytes, how: str, position: float, blob: bytes) -> bytes:
    cut = int(len(raw) * position)
    if how == "truncate":
        return raw[:cut]
    if how == "drop_boundary":
        return raw.replace(b"boundary=", b"boundery=", 1)
    if how == "null_bytes":
        return raw[:cut] + b"\x00" * 64 + raw[cut:]
    if how == "bad_charset":
        return raw.replace(b"charset=", b"charset=x-lying-" + blob[:8].hex().encode() + b"-", 1)
    if how == "huge_header":
        return b"X-Huge: " + b"a" * 200_000 + b"\r\n" + raw
    if how == "bad_base64":
        return (b"Subject: b\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\n" + blob)
    if how == "bad_qp":
        return (b"Subject: q\r\nContent-Type: text/plain; charset=utf-8\r\n"
                b"Content-Transfer-Encoding: quoted-printable\r\n\r\n=" + blob + b"=\r\n=Z")
    if how == "nest":
        depth = 1 + int(position * 100)
        head = b"".join(b"Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n" % (i, i) for i in range(depth))
        return b"Subject: deep\r\n" + head + b"Content-Type: text/plain\r\n\r\nhello\r\n"
    repeats = 1_000 + int(position * 40_000)  # header-size mutations: up to ~600 KB of one header
    if how == "encoded_word_header":
        return b"Subject: " + b" ".join([b"=?utf-8?b?" + (blob[:9].hex().encode() or b"QQ==") + b"?="] * repeats) \
            + b"\r\n" + raw
    if how == "address_header":
        return b"From: " + b", ".join([b"a%d@b.test" % i for i in range(repeats)]) + b"\r\n" + raw
    if how == "folded_header":
        return b"Subject: " + b"\r\n ".join([blob[:12].hex().encode() or b"w"] * repeats) + b"\r\n" + raw
    if how == "header_lines":
        return b"X-Many: " + blob[:20].hex().encode() + b"\r\n" + b"X-A: a\r\n" * (repeats * 10) + raw
    if how == "part_bomb":
        return (b"Subject: parts\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
                + b"--b\r\nContent-Type: text/plain\r\n\r\n" + blob[:16] + b"\r\n"
                + b"--b\r\n\r\nx\r\n" * repeats)
    return raw[:cut] + blob + raw[cut:]  # splice random bytes


@FUZZ
@given(index=st.integers(0, len(SAMPLES) - 1), how=MUTATIONS, position=st.floats(0, 1), blob=st.binary(max_size=512))
def test_mutated_real_messages_parse_or_fail_clearly(index, how, position, blob):
    _parse_or_clear_error(_mutate(SAMPLES[index], how, position, blob))


@FUZZ
@given(st.binary(max_size=4096))
def test_arbitrary_bytes_parse_or_fail_clearly(raw):
    _parse_or_clear_error(raw)


@FUZZ
@given(rows=st.lists(st.lists(st.text(max_size=40), min_size=1, max_size=6), max_size=8), cut=st.integers(0, 2000))
def test_broken_csv_rows_are_reported_not_raised(tmp_path_factory, rows, cut):
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["subject", "body", "label"])
    writer.writerows(rows)
    text = buffer.getvalue()
    text = text[: len(text) - cut % (len(text) + 1)] + '"unterminated'
    path = tmp_path_factory.mktemp("csv") / "fuzz.csv.gz"
    with gzip.open(path, "wt", newline="") as handle:
        handle.write(text)
    try:
        for _ref, fields, label, _ in iter_csv(path):
            assert isinstance(fields, ParseError) or label in (0, 1)
    except ParseError as exc:  # a broken header is a whole-file error, with its reason
        assert "CSV" in str(exc)


@FUZZ
@given(picks=st.lists(st.tuples(st.integers(0, len(SAMPLES) - 1), MUTATIONS, st.floats(0, 1), st.binary(max_size=256)),
                      min_size=1, max_size=5))
def test_mutated_messages_in_an_mbox_parse_or_fail_clearly(tmp_path_factory, picks):
    import mailbox

    path = tmp_path_factory.mktemp("mbox") / "spam.mbox"
    box = mailbox.mbox(path)
    for index, how, position, blob in picks:
        box.add(_mutate(SAMPLES[index], how, position, blob))
    box.flush()
    box.close()
    for _ref, fields, _ in iter_mbox(path, ParseLimits(max_body_chars=50_000)):
        assert isinstance(fields, ParseError) or isinstance(fields.body, str)


def test_50mb_body_stays_within_the_caps():
    import tracemalloc

    raw = b"Subject: big\r\nContent-Type: text/plain\r\n\r\n" + b"click here now " * (50 * 2**20 // 15)
    tracemalloc.start()
    fields, truncated = parse_message_bytes(raw)  # default caps: 25 MiB read, 100,000 characters kept
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert truncated and len(fields.body) == 100_000
    # The stdlib parser keeps several copies (bytes, surrogate-escaped str, decoded payload):
    # measured 281 MiB, about 11x the 25 MiB cap. The cap, not the input, sets the bound.
    assert peak < 12 * 25 * 2**20, f"peak {peak / 2**20:.0f} MiB"


@FUZZ
@given(index=st.integers(0, len(SAMPLES) - 1), how=MUTATIONS, position=st.floats(0, 1), blob=st.binary(max_size=256),
       cut=st.floats(0.05, 1), copies=st.integers(1, 40))
def test_compressed_and_truncated_inputs_parse_or_fail_clearly(tmp_path_factory, index, how, position, blob, cut, copies):
    """Compression mutations: a mutated message gzipped (repeated, so it inflates), cut anywhere,
    read as .eml and inside an mbox; every outcome is a parse, a per-message or a per-file ParseError."""
    import mailbox

    from data.mailfiles import read_eml

    folder = tmp_path_factory.mktemp("gz")
    message = _mutate(SAMPLES[index], how, position, blob)
    limits = ParseLimits(max_body_chars=50_000, max_message_bytes=2 * 2**20)
    packed = gzip.compress(message * copies, compresslevel=1)
    (folder / "m.eml").write_bytes(packed[: max(2, int(len(packed) * cut))])
    try:
        fields, _ = read_eml(folder / "m.eml", limits)
        assert len(fields.subject) <= limits.max_header_chars and len(fields.body) <= 50_000
    except ParseError as exc:
        assert str(exc)
    box = mailbox.mbox(folder / "plain.mbox")
    for _ in range(min(copies, 4)):
        box.add(message)
    box.flush()
    box.close()
    packed = gzip.compress((folder / "plain.mbox").read_bytes(), compresslevel=1)
    (folder / "m.mbox.gz").write_bytes(packed[: max(2, int(len(packed) * cut))])
    for _ref, fields, _ in iter_mbox(folder / "m.mbox.gz", limits):
        assert isinstance(fields, ParseError) and str(fields) or len(fields.subject) <= limits.max_header_chars
