"""Hostile mail, round 2: header, MIME, HTML and compression bombs stay within the caps, and
one faulty file among good ones costs that file only. Every input is built here."""

import csv
import gzip
import io
import mailbox
import os
import tracemalloc

import pytest

from data.mailfiles import iter_mbox, read_eml
from data.parse import DEFAULT_LIMITS, ParseError, ParseLimits, parse_message_bytes, parse_pasted_text
from data.parse_csv import iter_csv

SMALL = ParseLimits(max_message_bytes=2 * 2**20)
# The standard library's parser allocates about 12x the bytes it parses (several copies: bytes,
# surrogate-escaped text, decoded payload), so a streamed reader stays under ~16x the cap.
STREAMED_PEAK_MIB = 16 * SMALL.max_message_bytes / 2**20


def _peak_mib(call):
    """(result, peak traced MiB) of call(): the memory the parser itself allocates."""
    tracemalloc.start()
    try:
        result = call()
        return result, tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()


# ------------------------------------------------------------------ 1. headers

HEADER_BOMBS = {
    # 20,000 encoded words: the modern policy's parser took 2.4 s and 2.7 GB on main.
    "encoded-word subject": b"Subject: " + b" ".join([b"=?utf-8?q?ab?="] * 20_000) + b"\r\n\r\nbody\r\n",
    # 100,000 addresses: 27 s on main.
    "address-list sender": b"From: " + b", ".join([b"a@b.test"] * 100_000) + b"\r\n\r\nbody\r\n",
    # a 600 KB folded subject: 12 s on main.
    "folded subject": b"Subject: " + b"\r\n ".join([b"word"] * 120_000) + b"\r\n\r\nbody\r\n",
    # Content-Type with 20,000 parameters: read for every part.
    "parameter bomb": b"Subject: p\r\nContent-Type: text/plain; " + b"; ".join([b"a=b"] * 20_000) + b"\r\n\r\nbody\r\n",
    # a million header lines.
    "header-line bomb": b"Subject: many\r\n" + b"X-A: a\r\n" * 1_000_000 + b"\r\nbody\r\n",
}


@pytest.mark.parametrize("name", sorted(HEADER_BOMBS))
def test_header_bombs_are_cut_cheaply_and_flagged(name):
    raw = HEADER_BOMBS[name]
    (fields, truncated), peak = _peak_mib(lambda: parse_message_bytes(raw))
    assert peak < 64, f"{name}: {peak:.0f} MiB traced"
    assert fields.body.strip() == "body"
    for value in (fields.subject, fields.sender, fields.receiver):
        assert len(value) <= DEFAULT_LIMITS.max_header_chars
    if name != "parameter bomb":  # that one is within the header caps: nothing to cut
        assert truncated


def test_a_cut_header_keeps_its_decoded_start():
    raw = b"Subject: " + b" ".join([b"=?utf-8?q?caf=C3=A9?="] * 20_000) + b"\r\nFrom: a@b.test\r\n\r\nbody\r\n"
    fields, truncated = parse_message_bytes(raw)
    assert truncated and fields.subject.startswith("cafécafé")
    assert fields.sender == "a@b.test"  # the headers after the huge one are still read


def test_pasted_header_bomb_is_cut():
    text = "Subject: " + "=?utf-8?q?ab?= " * 20_000 + "\n\nhello"
    (fields, truncated), peak = _peak_mib(lambda: parse_pasted_text(text))
    assert truncated and len(fields.subject) <= DEFAULT_LIMITS.max_header_chars and peak < 64


def test_csv_header_cells_have_caps_of_their_own(tmp_path):
    path = tmp_path / "big.csv.gz"
    with gzip.open(path, "wt", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["sender", "date", "subject", "body", "label"])
        writer.writerow(["a@b.test " * 200_000, "Mon " * 100_000, "win " * 2_000_000, "hello", "1"])
        writer.writerow(["c@d.test", "Tue", "fine", "ok", "0"])
    rows = list(iter_csv(path))
    (_, big, _, truncated), (_, fine, _, fine_truncated) = rows
    assert truncated and not fine_truncated
    assert len(big.subject) == len(big.sender) == DEFAULT_LIMITS.max_header_chars
    assert len(big.date) == DEFAULT_LIMITS.max_date_chars
    assert fine.subject == "fine"


# ------------------------------------------------------------------ MIME and HTML

def test_mime_part_bomb_is_cut_at_the_part_cap():
    raw = (b"Subject: parts\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
           + b"--b\r\nContent-Type: text/plain\r\n\r\nx\r\n" * 100_000 + b"--b--\r\n")
    fields, truncated = parse_message_bytes(raw)  # 18 s on main
    assert truncated
    assert fields.body.count("x") <= DEFAULT_LIMITS.max_mime_parts


def test_html_nesting_bomb_is_bounded_and_flagged():
    raw = (b"Subject: html\r\nContent-Type: text/html\r\n\r\n<p>visible</p>" + b"<div>" * 4_000_000
           + b"<p>past the cap</p>")
    fields, truncated = parse_message_bytes(raw)  # 20 MB took 14 s on main
    assert truncated and "visible" in fields.body and "past the cap" not in fields.body
    fields, truncated = parse_message_bytes(raw, ParseLimits(max_html_chars=len(raw), max_body_chars=len(raw)))
    assert "past the cap" in fields.body  # the cap, not the parser, dropped it


def test_short_line_bomb_is_cut_at_the_line_cap():
    raw = b"Subject: lines\r\n\r\n" + b"a\n" * 5_000_000
    (fields, truncated), peak = _peak_mib(lambda: parse_message_bytes(raw))
    assert truncated and fields.subject == "lines"
    assert peak < 200, f"{peak:.0f} MiB traced"  # 1 GB RSS on main (12 M lines)


# ------------------------------------------------------------------ 2. compression

def _mbox_gz(path, messages):
    with gzip.open(path, "wb", compresslevel=9) as handle:
        for message in messages:
            handle.write(b"From sender@example.test Mon Jan  1 00:00:00 2024\n" + message + b"\n")


def test_gzip_mbox_bomb_is_streamed_and_each_message_cut_at_the_cap(tmp_path, raw_samples):
    good = raw_samples[0].read_bytes().replace(b"\r\n", b"\n")
    bomb = b"Subject: bomb\n\n" + b"A" * (200 * 2**20)  # 200 MB that gzip makes 200 KB
    path = tmp_path / "spam.mbox.gz"
    _mbox_gz(path, [good, bomb, good])
    assert path.stat().st_size < 2**20
    results, peak = _peak_mib(lambda: list(iter_mbox(path, SMALL)))
    assert [ref for ref, _, _ in results] == ["spam.mbox.gz#0", "spam.mbox.gz#1", "spam.mbox.gz#2"]
    assert [truncated for _, _, truncated in results] == [False, True, False]
    assert results[1][1].subject == "bomb"
    assert results[0][1] == results[2][1]
    assert peak < STREAMED_PEAK_MIB, f"{peak:.0f} MiB traced for a 2 MiB cap"
    assert not list(tmp_path.glob("*.mbox")) and not list(tmp_path.glob("tmp*"))


def test_mbox_message_past_the_skip_limit_ends_the_file_with_a_reason(tmp_path, raw_samples):
    good = raw_samples[0].read_bytes().replace(b"\r\n", b"\n")
    bomb = b"Subject: bomb\n\n" + b"A" * (40 * 2**20)
    path = tmp_path / "spam.mbox.gz"
    _mbox_gz(path, [good, bomb, good])
    limits = ParseLimits(max_message_bytes=2**20, max_mbox_skip_bytes=8 * 2**20)
    results = list(iter_mbox(path, limits))
    assert [r[0] for r in results] == ["spam.mbox.gz#0", "spam.mbox.gz#1", "spam.mbox.gz#2"]
    assert results[1][1].subject == "bomb" and results[1][2]  # kept, cut at the cap
    assert isinstance(results[2][1], ParseError) and "decompression bomb" in str(results[2][1])
    assert len(list(iter_mbox(path, ParseLimits(max_message_bytes=2**20)))) == 3  # within the default skip limit


def test_mbox_line_longer_than_the_cap_is_cut_while_reading(tmp_path):
    path = tmp_path / "ham.mbox"
    path.write_bytes(b"From a@b Mon Jan  1 00:00:00 2024\nSubject: one line\n\n" + b"x" * (50 * 2**20)
                     + b"\n\nFrom a@b Mon Jan  1 00:00:00 2024\nSubject: next\n\nhi\n")
    results, peak = _peak_mib(lambda: list(iter_mbox(path, SMALL)))
    assert [f.subject for _, f, _ in results] == ["one line", "next"]
    assert results[0][2] and not results[1][2]
    assert peak < STREAMED_PEAK_MIB


def test_mbox_split_matches_the_standard_library(tmp_path, raw_samples):
    path = tmp_path / "ham.mbox"
    box = mailbox.mbox(path)
    for sample in raw_samples[:8]:
        box.add(sample.read_bytes())
    box.flush()
    box.close()
    expected = [parse_message_bytes(mailbox.mbox(path).get_bytes(key)) for key in mailbox.mbox(path).iterkeys()]
    assert [(f, t) for _, f, t in iter_mbox(path)] == expected


def test_gzip_eml_bomb_reads_no_more_than_the_cap(tmp_path):
    path = tmp_path / "spam.eml"
    with gzip.open(path, "wb") as handle:
        handle.write(b"Subject: zipped\r\n\r\n" + b"B" * (100 * 2**20))
    (fields, truncated), peak = _peak_mib(lambda: read_eml(path, SMALL))
    assert truncated and fields.subject == "zipped" and peak < STREAMED_PEAK_MIB


def test_csv_cell_over_the_message_cap_is_a_row_error(tmp_path):
    path = tmp_path / "cells.csv.gz"
    with gzip.open(path, "wt", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["subject", "body", "label"])
        writer.writerow(["ok", "first", "0"])
        writer.writerow(["huge", "C" * (10 * 2**20), "1"])
    rows, peak = _peak_mib(lambda: list(iter_csv(path, SMALL)))
    assert rows[0][1].body == "first"
    assert any(isinstance(fields, ParseError) and "field" in str(fields) for _, fields, _, _ in rows[1:])
    assert peak < STREAMED_PEAK_MIB


# ------------------------------------------------------------------ 3. file faults

def _truncated_gzip(path, payload: bytes):
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb") as handle:
        handle.write(payload)
    data = buffer.getvalue()
    path.write_bytes(data[: len(data) * 2 // 3])


def test_truncated_gzip_mbox_keeps_the_messages_before_the_fault(tmp_path, raw_samples):
    box = mailbox.mbox(tmp_path / "plain.mbox")
    for sample in raw_samples[:12]:
        box.add(sample.read_bytes())
    box.flush()
    box.close()
    path = tmp_path / "spam.mbox.gz"
    _truncated_gzip(path, (tmp_path / "plain.mbox").read_bytes())
    results = list(iter_mbox(path))
    errors = [f for _, f, _ in results if isinstance(f, ParseError)]
    assert len(errors) == 1 and "truncated gzip" in str(errors[0])
    assert 3 <= len(results) - 1 < 12


def test_truncated_gzip_csv_keeps_the_rows_before_the_fault(tmp_path):
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["subject", "body", "label"])
    for i in range(3000):
        writer.writerow([f"s{i}", os.urandom(40).hex(), i % 2])
    path = tmp_path / "rows.csv.gz"
    _truncated_gzip(path, buffer.getvalue().encode())
    rows = list(iter_csv(path))
    assert isinstance(rows[-1][1], ParseError) and "truncated gzip" in str(rows[-1][1])
    assert sum(not isinstance(f, ParseError) for _, f, _, _ in rows) > 1000


def _faulty_eml_folder(folder, raw_samples):
    folder.mkdir()
    for index, sample in enumerate(raw_samples[:5]):
        (folder / f"ham_{index}.eml").write_bytes(sample.read_bytes())
    (folder / "spam_gzip_magic.eml").write_bytes(b"\x1f\x8b\x08\x00not really gzip")
    (folder / "spam_folder.eml").mkdir()
    (folder / "spam_dangling.eml").symlink_to(folder / "nowhere.eml")
    _truncated_gzip(folder / "spam_truncated.eml", raw_samples[6].read_bytes() * 20)
    (folder / "unlabelled.eml").write_bytes(raw_samples[7].read_bytes())


def test_faulty_files_among_good_ones_are_recorded_and_the_good_ones_kept(tmp_path, raw_samples, store):
    from data.corpora import CorpusSource, ingest_source

    folder = tmp_path / "mixed"
    _faulty_eml_folder(folder, raw_samples)
    report = ingest_source(store, CorpusSource("mixed", folder, "eml"), progress=False)
    assert report.kept == 5 and report.parse_errors == 5
    errors = dict(store.rows("SELECT source_ref, error FROM ingest_errors WHERE corpus = 'mixed'"))
    assert "directory" in errors["spam_folder.eml"]
    assert "does not exist" in errors["spam_dangling.eml"]
    assert "gzip" in errors["spam_gzip_magic.eml"] and "gzip" in errors["spam_truncated.eml"]
    assert "label" in errors["unlabelled.eml"]


def test_cli_ingest_of_a_faulty_folder_succeeds_and_counts_the_faults(tmp_path, raw_samples):
    from typer.testing import CliRunner

    from cli import app

    folder = tmp_path / "mixed"
    _faulty_eml_folder(folder, raw_samples)
    result = CliRunner().invoke(app, ["--home", str(tmp_path / "home"), "ingest", str(folder)])
    assert result.exit_code == 0, result.output
    assert "mixed: parsed 5, errors 5" in result.output
    assert "spam_folder.eml" in result.output  # the faults are named, not only counted
