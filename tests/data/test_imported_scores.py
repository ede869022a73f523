"""Scores from any detector (data.imported_scores): a score file matched row by row against a real corpus,
stored whole or not at all, and shown beside the LLM rows."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from typer.testing import CliRunner

from data.imported_scores import ScoreFileError, match_scores, read_score_file, stored_score
from data.store import Store
from tests.conftest import spam_words_scores


def test_the_imported_filter_is_a_scorer_of_its_matched_test_emails_only(byod_settings):
    with Store.open_to_read(byod_settings.store_path) as store:
        scorers = store.scorer_catalogue()
        row = scorers.set_index("id").loc["scores--spam-words-filter"]
        assert row["kind"] == "scores" and row["name"] == "spam-words filter (scores only)"
        predictions = store.query("SELECT p.*, e.subject, e.body FROM predictions p JOIN emails e ON e.id = p.email_id "
                                  "WHERE adapter_id = 'scores--spam-words-filter'")
        test_ids = set(store.split_ids("LingSpam", "test")["id"])
        # every Ling-Spam test email once (the duplicate and the bad rows skipped, the training emails left out)
        assert set(predictions["email_id"]) == test_ids and len(predictions) == len(test_ids)
        # the stored score is the file's probability as a logit, so 0 is its 0.5 threshold
        mails = store.emails_by_ids(predictions["email_id"])
        expected = dict(zip([m.id for m in mails], spam_words_scores(mails)))
        for email_id, score in zip(predictions["email_id"], predictions["score"]):
            assert score == pytest.approx(math.log(expected[email_id] / (1 - expected[email_id])))
        problems = store.score_import_problems("scores--spam-words-filter")
        skipped = problems[problems["skipped"]].sort_values("row")
        assert list(skipped["problem"].str.split(" ").str[0]) == ["no", "no", "a", "the"]  # unknown ×2, duplicate, n/a
        assert len(problems[~problems["skipped"]]) == 3  # the three training emails
        assert store.metrics().query("adapter_id == 'scores--spam-words-filter'")["corpus"].tolist() == ["LingSpam"]


def test_a_file_with_bad_rows_is_refused_whole_and_listed(byod_settings, tmp_path):
    from cli import app

    with Store.open_to_read(byod_settings.store_path) as store:
        test = store.split_ids("LingSpam", "test")["id"].tolist()[:5]
    path = tmp_path / "scores.csv"
    pd.DataFrame({"email_id": [*test, test[0], "nonsense"], "score": [1, -1, 2, 0.5, "x", 3, 1]}).to_csv(path, index=False)
    report = tmp_path / "report.csv"
    home = tmp_path / "home"
    import shutil

    shutil.copytree(byod_settings.home, home)
    env = {"PHISHLENS_HOME": str(home), "PHISHLENS_STORE": str(home / "store.duckdb")}
    result = CliRunner().invoke(app, ["import-scores", str(path), "--name", "api model", "--report", str(report)], env=env)
    assert result.exit_code == 1 and "3 of 7 rows could not be used; nothing was imported" in result.output
    listed = pd.read_csv(report)
    assert listed["row"].tolist() == [5, 6, 7]
    assert "not a finite number" in listed["problem"][0] and "second row" in listed["problem"][1]
    with Store.open_to_read(home / "store.duckdb") as store:
        assert store.scalar("SELECT count(*) FROM predictions WHERE adapter_id = 'scores--api-model'") == 0
    result = CliRunner().invoke(app, ["import-scores", str(path), "--name", "api model", "--skip-bad-rows"], env=env)
    assert result.exit_code == 0, result.output
    with Store.open_to_read(home / "store.duckdb") as store:
        assert store.scalar("SELECT count(*) FROM predictions WHERE adapter_id = 'scores--api-model'") == 4


def test_subject_and_body_or_the_raw_message_name_the_email(byod_settings):
    with Store.open_to_read(byod_settings.store_path) as store:
        emails = store.test_emails()
        mail = store.emails_by_ids(store.split_ids("LingSpam", "test")["id"][:1])[0]
    test_ids = set(emails.loc[emails["test"], "id"])
    by_fields = pd.DataFrame({"subject": ["  " + mail.subject], "body": [mail.body + "\n\n"], "score": ["2.5"], "row": [1]})
    raw = f"From: someone@example.test\nSubject: {mail.subject}\nContent-Type: text/plain\n\n{mail.body}\n"
    by_raw = pd.DataFrame({"raw_message": [raw], "score": ["2.5"], "row": [1]})
    for frame in (by_fields, by_raw):
        matched = match_scores(frame, emails, test_ids, "x", threshold=1.0)
        assert matched.problems.empty and matched.predictions["email_id"].tolist() == [mail.id]
        assert matched.predictions["score"].tolist() == [1.5]


def test_a_file_pandas_cannot_read_or_without_the_columns_is_refused(tmp_path, byod_settings):
    with Store.open_to_read(byod_settings.store_path) as store:
        emails = store.test_emails()
    bad = tmp_path / "scores.xlsx"
    bad.write_bytes(b"PK\x03\x04")
    with pytest.raises(ScoreFileError, match="csv"):
        read_score_file(bad)
    no_score = tmp_path / "a.csv"
    no_score.write_text("email_id,verdict\nabc,1\n")
    with pytest.raises(ScoreFileError, match="exactly one of the columns score, probability"):
        match_scores(read_score_file(no_score), emails, set(), "x")
    assert stored_score(0.5, "probability", 0.5) == 0 and stored_score(1.0, "probability", 0.5) > 20


def test_raw_messages_not_yet_stored_join_a_held_out_corpus_with_their_scores(byod_settings, shared_data, tmp_path):
    """Real .eml files the store lacks (SpamAssassin samples), in a Parquet file with labels and a filter's
    probabilities: stored as a held-out corpus and scored in one transaction; an unlabelled one is listed."""
    import shutil

    from cli import app

    manifest = pd.read_csv(shared_data / "raw_samples" / "MANIFEST.csv").groupby("label").head(6)
    raw = [(shared_data / "raw_samples" / f).read_bytes().decode("utf-8", errors="replace") for f in manifest["file"]]
    labels = ["spam" if label else "ham" for label in manifest["label"]]
    labels[-1] = "unknown"
    frame = pd.DataFrame({"raw_message": raw, "label": labels,
                          "probability": [0.8 if label == "spam" else 0.3 for label in labels]})
    path = tmp_path / "filter.parquet"
    frame.to_parquet(path)
    home = tmp_path / "home"
    shutil.copytree(byod_settings.home, home)
    env = {"PHISHLENS_HOME": str(home), "PHISHLENS_STORE": str(home / "store.duckdb")}
    refused = CliRunner().invoke(app, ["import-scores", str(path), "--name", "filter", "--corpus", "filter-inbox"],
                                 env=env)
    assert refused.exit_code == 1 and "label 'unknown'" in refused.output
    with Store.open_to_read(home / "store.duckdb") as store:
        assert not store.has_corpus("filter-inbox")  # nothing half-imported
    result = CliRunner().invoke(app, ["import-scores", str(path), "--name", "filter", "--corpus", "filter-inbox",
                                      "--skip-bad-rows"], env=env)
    assert result.exit_code == 0, result.output
    assert "11 new emails in the held-out corpus filter-inbox" in result.output
    with Store.open_to_read(home / "store.duckdb") as store:
        assert "filter-inbox" in store.held_out_corpora()
        assert len(store.split_ids("filter-inbox", "test")) == 11
        cell = store.metrics().query("adapter_id == 'scores--filter' and corpus == 'filter-inbox'").iloc[0]
        assert cell["n"] == 11 and cell["f1"] == 1.0  # the stand-in filter gave each spam 0.8 and each ham 0.3
