"""Hostile input, round 3: files that hang, loop, fill the disk or race. Each ends with its
fault recorded or one line of error, never a hang or a traceback, and loses no good email.
Every input is built here; the sizes that matter for time and memory are measured in
benchmarks/bench_hostile_files.py."""

import gzip
import io
import mailbox
import os
import shutil
import subprocess
import sys
import threading

import pytest

from data.corpora import CorpusSource, IngestError, ingest_source, source_for_path
from data.mailfiles import iter_mbox, read_eml
from data.parse import ParseError, ParseLimits
from data.parse_csv import iter_csv
from data.settings import PROJECT_ROOT

SMALL_SKIP = ParseLimits(max_mbox_skip_bytes=4 * 2**20)


def _finishes(call, seconds: float = 20):
    """call()'s result, failing the test if it has not returned within `seconds` (a hang)."""
    outcome = {}

    def run():
        try:
            outcome["value"] = call()
        except BaseException as exc:  # noqa: BLE001 - handed back to the test
            outcome["error"] = exc

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(seconds)
    assert not worker.is_alive(), f"still running after {seconds} s: it hangs"
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


class CountingStream(io.RawIOBase):
    """Bytes from a generator of chunks, counting what was read: how much of a file a reader took."""

    def __init__(self, chunks):
        self.chunks, self.pending, self.taken = iter(chunks), b"", 0

    def readable(self):
        return True

    def readinto(self, buffer):
        while not self.pending:
            self.pending = next(self.chunks, None)
            if self.pending is None:
                self.pending = b""
                return 0
        n = min(len(buffer), len(self.pending))
        buffer[:n], self.pending = self.pending[:n], self.pending[n:]
        self.taken += n
        return n


def _mbox_of(raw_samples, n: int, path):
    box = mailbox.mbox(path)
    for sample in raw_samples[:n]:
        box.add(sample.read_bytes())
    box.flush()
    box.close()
    return path


# ------------------------------------------------------------------ special files


def test_fifos_named_like_mail_files_are_refused_unread_and_the_rest_kept(tmp_path, raw_samples, store):
    eml, mbox = tmp_path / "eml", tmp_path / "mbox"
    eml.mkdir()
    mbox.mkdir()
    for i, sample in enumerate(raw_samples[:3]):
        (eml / f"ham_{i}.eml").write_bytes(sample.read_bytes())
    os.mkfifo(eml / "spam_x.eml")
    _mbox_of(raw_samples, 4, mbox / "ham.mbox")
    os.mkfifo(mbox / "spam_x.mbox")
    eml_report = _finishes(lambda: ingest_source(store, CorpusSource("eml", eml, "eml"), progress=False))
    mbox_report = _finishes(lambda: ingest_source(store, CorpusSource("mbox", mbox, "mbox"), progress=False))
    assert (eml_report.kept, eml_report.parse_errors) == (3, 1)
    assert (mbox_report.parse_errors, mbox_report.parsed) == (1, 4)
    errors = dict(store.rows("SELECT source_ref, error FROM ingest_errors"))
    assert "a FIFO, not a regular file" in errors["spam_x.eml"]
    assert "a FIFO, not a regular file" in errors["spam_x.mbox#0"]
    with pytest.raises(ParseError, match="FIFO"):
        _finishes(lambda: read_eml(eml / "spam_x.eml"))


def test_a_fifo_or_a_symlink_loop_as_the_ingest_argument_is_one_line(tmp_path):
    os.mkfifo(tmp_path / "x.mbox")
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    with pytest.raises(IngestError, match="not a regular file or a folder"):
        _finishes(lambda: source_for_path(tmp_path / "x.mbox"))
    with pytest.raises(IngestError, match="symbolic link loop"):
        source_for_path(tmp_path / "loop")
    for target in ("x.mbox", "loop"):
        done = subprocess.run([sys.executable, "cli.py", "--home", str(tmp_path / "home"), "ingest",
                               str(tmp_path / target)], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120)
        assert done.returncode == 1
        assert "Traceback" not in done.stderr and done.stderr.strip().startswith("error:"), done.stderr


# ------------------------------------------------------------------ mbox bombs


def test_empty_line_bomb_is_split_without_reading_it_line_by_line(tmp_path):
    """320 MiB of empty lines in one message (318 KiB gzipped; 150 s and 2.6 GB before this
    splitter): the message is kept cut at the line cap, the rest given up past the skip budget."""
    path = tmp_path / "spam.mbox.gz"
    with gzip.open(path, "wb", compresslevel=1) as handle:
        handle.write(b"From a@b Thu Jan  1 00:00:00 2024\nSubject: empty lines\n\n")
        for _ in range(40):
            handle.write(b"\n" * 2**20)
        handle.write(b"From a@b Thu Jan  1 00:00:00 2024\nSubject: after\n\nlost\n")
    results = list(iter_mbox(path, SMALL_SKIP))
    (ref, fields, truncated), (_, error, _) = results
    assert fields.subject == "empty lines" and truncated
    assert isinstance(error, ParseError) and "past its caps" in str(error)


def test_an_mbox_whose_messages_end_in_long_runs_of_blank_lines_keeps_every_message(tmp_path):
    """Runs of blank lines within the skip budget are only cut, and the messages after them read."""
    path = tmp_path / "spam.mbox"
    one = b"From a@b Thu Jan  1 00:00:00 2024\nSubject: m%d\n\nbody %d\n" + b"\n" * 500_000
    path.write_bytes(b"".join(one % (i, i) for i in range(3)))
    results = list(iter_mbox(path))
    assert [f.subject for _, f, _ in results] == ["m0", "m1", "m2"]
    assert all(truncated for _, _, truncated in results)  # each cut at the 400,000-line cap


@pytest.mark.parametrize("preamble", [b"\n", b"a"], ids=["newlines", "one line"])
def test_text_before_the_first_from_line_is_skipped_fast_and_given_up_past_the_budget(tmp_path, preamble):
    within = tmp_path / "within_spam.mbox"
    within.write_bytes(preamble * (3 * 2**20) + b"\nFrom a@b Thu Jan  1 00:00:00 2024\nSubject: found\n\nx\n")
    assert [f.subject for _, f, _ in iter_mbox(within, SMALL_SKIP)] == ["found"]

    # 64 MiB with no From_ line, fed through a counting stream: the splitter stops after the budget.
    stream = CountingStream(preamble * 2**20 for _ in range(64))
    from data.mailfiles import _MboxGivenUp, _MboxSplitter

    with pytest.raises(_MboxGivenUp, match="before the first From_ line"):
        list(_MboxSplitter(SMALL_SKIP).messages(io.BufferedReader(stream)))
    assert stream.taken <= SMALL_SKIP.max_mbox_skip_bytes + 2 * 2**20

    beyond = tmp_path / "beyond_spam.mbox"
    beyond.write_bytes(preamble * (6 * 2**20) + b"\nFrom a@b Thu Jan  1 00:00:00 2024\nSubject: late\n\nx\n")
    (ref, error, _), = list(iter_mbox(beyond, SMALL_SKIP))
    assert isinstance(error, ParseError) and "before the first From_ line" in str(error)


def test_block_splitting_matches_the_standard_library_across_block_edges(tmp_path, raw_samples):
    """From_ lines that straddle the splitter's 1 MiB blocks are found as mailbox.mbox finds them."""
    path = tmp_path / "big.mbox"
    box = mailbox.mbox(path)
    for i in range(60):
        sample = raw_samples[i % len(raw_samples)].read_bytes()
        box.add(sample + b"\n" + b"padding line\n" * (1000 + 37 * i))  # ~13-40 KB each: edges fall anywhere
    box.flush()
    box.close()
    ours = [(f.subject, f.body[-40:]) for _, f, _ in iter_mbox(path)]
    from data.parse import parse_message_bytes

    theirs = [parse_message_bytes(m.as_bytes())[0] for m in mailbox.mbox(path)]
    assert ours == [(f.subject, f.body[-40:]) for f in theirs]


# ------------------------------------------------------------------ CSV


def test_a_csv_line_longer_than_the_cap_is_skipped_unread_and_the_other_rows_kept(tmp_path):
    limits = ParseLimits(max_message_bytes=2**20)
    path = tmp_path / "rows.csv.gz"
    with gzip.open(path, "wb", compresslevel=1) as handle:
        handle.write(b"body,label\nfirst,1\n")
        for _ in range(16):
            handle.write(b"a" * 2**20)  # one 16 MiB line, 16x the cap
        handle.write(b",0\nlast,0\n")
    results = list(iter_csv(path, limits))
    assert [r[0].split(":")[1] for r in results] == ["row2", "line3", "row3"]
    assert results[0][1].body == "first" and results[2][1].body == "last"
    assert isinstance(results[1][1], ParseError) and "longer than the message cap" in str(results[1][1])


def test_a_csv_whose_first_line_is_past_the_cap_is_one_error(tmp_path):
    path = tmp_path / "oneline.csv.gz"
    with gzip.open(path, "wb", compresslevel=1) as handle:
        for _ in range(8):
            handle.write(b"a" * 2**20)
    with pytest.raises(ParseError, match="before the header was read"):
        list(iter_csv(path, ParseLimits(max_message_bytes=2**20)))


def test_csv_with_old_mac_line_ends_still_reads(tmp_path):
    path = tmp_path / "mac.csv"
    path.write_bytes(b"body,label\r\"two\rlines\",1\rplain,0\r")
    assert [(f.body, label) for _, f, label, _ in iter_csv(path)] == [("two\rlines", 1), ("plain", 0)]


# ------------------------------------------------------------------ disk full, races


def _tmpfs_works() -> bool:
    return shutil.which("unshare") is not None and subprocess.run(
        ["unshare", "-rm", "sh", "-c", "mount -t tmpfs -o size=1m tmpfs /mnt"], capture_output=True).returncode == 0


@pytest.mark.skipif(not _tmpfs_works(), reason="needs `unshare -rm` to mount a small tmpfs as a full disk")
def test_a_full_disk_during_ingest_is_one_line_and_the_store_stays_intact(tmp_path, shared_data):
    disk = tmp_path / "disk"
    disk.mkdir()
    store = disk / "store.duckdb"
    py = sys.executable
    script = (f"mount -t tmpfs -o size=6m tmpfs {disk} && "
              f"{py} cli.py --store {store} ingest --synthetic > /dev/null 2>&1; echo first=$?; "
              f"sha256sum {store}; "
              f"{py} cli.py --store {store} ingest {shared_data / 'EnronSpam.csv.gz'} > {tmp_path / 'second.log'} 2>&1; "
              f"echo second=$?; sha256sum {store}; "
              f"{py} cli.py --store {store} status | grep -c synthetic-; ls {disk}")
    done = subprocess.run(["unshare", "-rm", "sh", "-c", script], cwd=PROJECT_ROOT, capture_output=True, text=True,
                          timeout=600)
    output = done.stdout + done.stderr
    second = (tmp_path / "second.log").read_text().replace("\r", "\n")
    assert "first=0" in output and "second=1" in output, output
    assert "Traceback" not in second, second
    assert "No space left on device" in second and "rerun the command" in second, second
    digests = [line.split()[0] for line in output.splitlines() if line.endswith("/store.duckdb")]
    assert len(digests) == 2 and digests[0] == digests[1], output  # the failed ingest changed nothing
    assert "phishlens-ingest-" not in output  # its scratch folder went with it


def test_two_ingests_of_one_corpus_at_once_store_it_once_without_a_traceback(tmp_path, raw_samples):
    folder = tmp_path / "pair"
    folder.mkdir()
    _mbox_of(raw_samples, 10, folder / "spam.mbox")
    for round_ in range(5):  # the race is on creating the store, then on storing the corpus
        store = tmp_path / f"store{round_}.duckdb"
        command = [sys.executable, "cli.py", "--store", str(store), "ingest", str(folder)]
        runs = [subprocess.Popen(command, cwd=PROJECT_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                for _ in range(2)]
        outputs = [run.communicate(timeout=300) for run in runs]
        for run, (out, err) in zip(runs, outputs):
            assert "Traceback" not in err, err
            assert run.returncode == 0 or ("another ingest" in err or "already in the store" in err), err
        assert sorted(run.returncode for run in runs)[0] == 0
        import duckdb

        con = duckdb.connect(str(store), read_only=True)
        assert con.execute("SELECT count(*) FROM corpora WHERE name = 'pair'").fetchone()[0] == 1
        con.close()


def test_each_from_line_has_its_own_budget_and_a_giant_one_is_named(tmp_path):
    """5,000 messages with 1 KB From_ lines (5 MB of them) fit a 4 MiB budget: it is per From_ line."""
    many = tmp_path / "many_spam.mbox"
    many.write_bytes(b"".join(b"From " + b"x" * 1000 + b"\nSubject: m%d\n\nbody\n" % i for i in range(5000)))
    assert len([f for _, f, _ in iter_mbox(many, SMALL_SKIP) if not isinstance(f, ParseError)]) == 5000
    giant = tmp_path / "giant_spam.mbox"
    giant.write_bytes(b"From a\nSubject: first\n\nbody\nFrom " + b"x" * (6 * 2**20) + b"\nSubject: lost\n\nx\n")
    (_, first, _), (_, error, _) = list(iter_mbox(giant, SMALL_SKIP))
    assert first.subject == "first"
    assert isinstance(error, ParseError) and "in one From_ line" in str(error)
