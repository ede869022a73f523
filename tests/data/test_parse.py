"""Parser tests on every real raw sample and on broken input: a parse or a clear error."""

import csv
import gzip
import mailbox

import pytest

from data.mailfiles import iter_mbox, read_eml
from data.parse import (ParseError, ParseLimits, decode_bytes, html_to_text, make_email, parse_message_bytes,
                        parse_pasted_text)
from data.parse_csv import detect_csv_columns, iter_csv, map_label


def test_every_raw_sample_parses(raw_samples, shared_data):
    manifest = {r["file"]: r for r in csv.DictReader(open(shared_data / "raw_samples" / "MANIFEST.csv"))}
    assert set(manifest) == {p.name for p in raw_samples}
    assert len(raw_samples) >= 30
    for path in raw_samples:
        fields, truncated = read_eml(path)
        assert not truncated
        assert fields.subject or fields.body, path.name
        assert fields.sender, f"{path.name}: no sender"
        assert "\ufffd" not in fields.subject, f"{path.name}: undecoded subject {fields.subject!r}"
        email_ = make_email(fields, "samples", 0, path.name)
        assert len(email_.id) == 24


# Samples whose bodies really carry non-ASCII text in their declared charset (MANIFEST.csv).
@pytest.mark.parametrize("name,script", [
    ("spam_29_spam_2_00259.eml", "\u4e00-\u9fff"),          # gb2312: CJK
    ("spam_25_spam_2_00773.eml", "\u4e00-\u9fff"),          # big5
    ("spam_33_spam_00325.eml", "\u3040-\u30ff"),            # iso-2022-jp: kana
    ("spam_20_spam_2_00921.eml", "\uac00-\ud7af"),          # ks_c_5601-1987: Hangul
    ("spam_32_spam_2_00588.eml", "\uac00-\ud7af"),          # euc-kr
])
def test_declared_charsets_decode_to_their_script(shared_data, name, script):
    import re

    fields, _ = read_eml(shared_data / "raw_samples" / name)
    assert re.search(f"[{script}]", fields.body), f"{name}: body not decoded"
    assert "\ufffd" not in fields.body


@pytest.mark.parametrize("name", ["spam_20_spam_2_00921.eml", "spam_32_spam_2_00588.eml"])
def test_raw_8bit_subject_decoded_with_message_charset(shared_data, name):
    import re

    fields, _ = read_eml(shared_data / "raw_samples" / name)
    assert re.search("[\uac00-\ud7af]", fields.subject), fields.subject
    assert "\ufffd" not in fields.subject


def test_html_becomes_visible_text_without_script_or_style():
    html = ("<html><head><style>body{background:url(http://evil.test/x.png)}</style>"
            "<script>alert('x')</script></head><body><p>Verify&nbsp;your <b>account</b></p>"
            "<a href='http://phish.test/login'>here</a><img src='http://track.test/p.gif'></body></html>")
    text, links = html_to_text(html)
    assert "alert" not in text and "background" not in text
    assert "Verify\xa0your account" in text
    assert links == ["http://phish.test/login", "http://track.test/p.gif"]


def test_html_only_message_gives_text_and_urls():
    raw = (b"From: a@b.test\r\nSubject: hi\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
           b"<p>Click <a href=\"http://x.test/a\">now</a></p><script>steal()</script>")
    fields, _ = parse_message_bytes(raw)
    assert "Click" in fields.body and "steal" not in fields.body
    assert fields.urls == ("http://x.test/a",)


def test_truncated_mime_still_parses(raw_samples):
    for path in raw_samples:
        data = path.read_bytes()
        if b"multipart" in data.lower():
            fields, _ = parse_message_bytes(data[: len(data) // 2])
            assert fields.subject or fields.body
            return
    pytest.fail("no multipart sample")


def test_wrong_declared_charset_is_replaced_not_fatal():
    body = "Caf\xe9 cr\xe8me".encode("latin-1")
    raw = b"Subject: x\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" + body
    fields, _ = parse_message_bytes(raw)
    assert fields.body.startswith("Caf")
    assert "\ufffd" in fields.body


@pytest.mark.parametrize("charset", [b"x-unknown-charset", b"default", b"default_charset", b"\xff\xfe"])
def test_unknown_charset_is_sniffed(charset):
    raw = b"Subject: x\r\nContent-Type: text/plain; charset=" + charset + b"\r\n\r\n" + "na\xefve".encode("cp1252")
    fields, _ = parse_message_bytes(raw)
    assert fields.body == "na\xefve"


def test_decode_bytes_prefers_utf8_then_cp1252():
    assert decode_bytes("é".encode(), None) == "é"
    assert decode_bytes(b"\x93quoted\x94", None) == "\u201cquoted\u201d"


@pytest.mark.parametrize("raw", [b"", b"   \r\n\r\n  "])
def test_empty_message_is_a_clear_error(raw):
    with pytest.raises(ParseError, match="empty"):
        parse_message_bytes(raw)


def test_binary_garbage_does_not_crash():
    import random

    rng = random.Random(0)
    for _ in range(50):
        blob = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 4000)))
        try:
            fields, _ = parse_message_bytes(blob)
            assert isinstance(fields.body, str)
        except ParseError:
            pass


def test_invalid_base64_and_qp_do_not_crash():
    raw = (b"Subject: b\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\n!!!not base64***\r\n")
    fields, _ = parse_message_bytes(raw)
    assert isinstance(fields.body, str)
    raw = (b"Subject: q\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n=ZZ=4\r\n")
    fields, _ = parse_message_bytes(raw)
    assert isinstance(fields.body, str)


def test_20mb_message_is_truncated_and_flagged():
    raw = b"Subject: big\r\nContent-Type: text/plain\r\n\r\n" + b"spam " * (4 * 1024 * 1024)
    fields, truncated = parse_message_bytes(raw, ParseLimits(max_body_chars=100_000))
    assert truncated
    assert len(fields.body) == 100_000


def test_malformed_headers_do_not_crash():
    raw = (b"From: =?utf-8?B?broken\r\nSubject: =?x-bogus?Q?hello?=\r\nDate: Mon, 32 Foo 102 99:99\r\n"
           b"To: <<<>>>\r\n\r\nbody")
    fields, _ = parse_message_bytes(raw)
    assert fields.body == "body"
    assert isinstance(fields.subject, str) and isinstance(fields.sender, str)


def test_mbox_reads_every_message(tmp_path, raw_samples):
    box = mailbox.mbox(tmp_path / "spam.mbox")
    for path in raw_samples[:5]:
        box.add(path.read_bytes())
    box.flush()
    box.close()
    results = list(iter_mbox(tmp_path / "spam.mbox"))
    assert len(results) == 5
    assert all(not isinstance(f, ParseError) for _, f, _ in results)


def test_gzipped_mbox_from_shared_data(shared_data):
    results = list(iter_mbox(shared_data / "SpamAssassin" / "hard_ham.mbox.gz"))
    assert len(results) == 250  # SOURCES.md
    assert sum(isinstance(f, ParseError) for _, f, _ in results) == 0


def test_csv_columns_detected_and_labels_mapped():
    assert detect_csv_columns(["Sender", "Subject", "Body", "Label", "URLs"])["body"] == "Body"
    with pytest.raises(ParseError, match="no body"):
        detect_csv_columns(["subject", "label"])
    assert map_label("Phishing Email") == 1 and map_label("ham") == 0 and map_label(" 1 ") == 1
    with pytest.raises(ParseError, match="unknown label"):
        map_label("maybe")


def test_csv_bad_rows_are_reported_not_fatal(tmp_path):
    path = tmp_path / "c.csv.gz"
    with gzip.open(path, "wt", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["subject", "body", "label", "urls"])
        writer.writerow(["hi", "see http://a.test/x.", "1", "1"])
        writer.writerow(["yo", "plain", "perhaps", "0"])
        writer.writerow(["ok", "fine", "0", "http://listed.test/"])
    rows = list(iter_csv(path))
    assert len(rows) == 3
    assert rows[0][1].urls == ("http://a.test/x",)  # urls column is a 0/1 flag: extracted from body
    assert isinstance(rows[1][1], ParseError)
    assert rows[2][1].urls == ("http://listed.test/",)


def test_nazario_csv_whitespace_is_normalised(shared_data):
    for ref, fields, label, _ in iter_csv(shared_data / "Nazario.csv.gz"):
        mail = make_email(fields, "Nazario", label, ref)
        assert label == 1
        assert "\t" not in mail.body and "\xa0" not in mail.body and "  " not in mail.body
        break


def test_pasted_text_plain_and_rfc822():
    fields, _ = parse_pasted_text("Your account is locked, go to http://x.test now")
    assert fields.urls == ("http://x.test",)
    fields, _ = parse_pasted_text("From: a@b.test\nSubject: Hello\n\nBody here")
    assert fields.subject == "Hello" and fields.body.strip() == "Body here"
    with pytest.raises(ParseError):
        parse_pasted_text("  ")


def test_raw_message_size_cap_cuts_and_flags(tmp_path):
    raw = b"Subject: huge\r\nContent-Type: text/plain\r\n\r\n" + b"x" * 5_000_000
    limits = ParseLimits(max_body_chars=10_000_000, max_message_bytes=1_000_000)
    fields, truncated = parse_message_bytes(raw, limits)
    assert truncated and fields.subject == "huge"
    assert len(fields.body) < 1_000_000
    path = tmp_path / "huge.eml"
    path.write_bytes(raw)
    fields, truncated = read_eml(path, limits)
    assert truncated and len(fields.body) < 1_000_000
    fields, truncated = read_eml(path, ParseLimits(max_body_chars=10_000_000, max_message_bytes=10_000_000))
    assert not truncated and len(fields.body) == 5_000_000
