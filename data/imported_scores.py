"""Scores from any detector (an API model's verdicts, a production mail filter): a CSV or Parquet file
matched to the store's emails, checked row by row, and stored as a scores-only scorer.

A file has one column that names the email and one that scores it:
- `email_id`: the store's id (24 hex digits), or the full 64-digit content hash it is the start of;
  or `subject` and `body`: hashed as ingest hashes them; or `raw_message`: an RFC822 message, parsed
  and hashed as ingest does (under either normalisation);
- `score` (a logit or any real number, verdict above the threshold, default 0) or `probability`
  (of phishing/spam, in [0, 1], verdict above the threshold, default 0.5).
A raw message the store does not hold yet is added, when the caller names a new corpus for such
emails and the row has a `label` (phishing/spam/1 or legitimate/ham/0): a held-out corpus (every email
a test email, never trained on), stored in the same transaction as the scores.

The stored score is shifted so that 0 is the file's threshold (logit(p) − logit(threshold) for
probabilities): every view's verdict (score > 0) is then the file's own. Every row is checked before
anything is stored: unknown emails, duplicate rows, scores that are not numbers. Any such problem
refuses the whole file (the report lists each row) unless the caller skips the rows in question;
rows of emails outside every test split are left out of the matrix (reported, never an error).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from data.normalise import content_hash, normalise_text
from data.parse import ParseError, make_email, parse_message_bytes
from data.records import CorpusInfo, Email

ID_COLUMNS = ("email_id", "raw_message")  # or both of SUBJECT_BODY
SUBJECT_BODY = ("subject", "body")
SCORE_COLUMNS = ("score", "probability")
DEFAULT_THRESHOLDS = {"score": 0.0, "probability": 0.5}
SCORER_PREFIX = "scores--"
PROBABILITY_CLIP = 1e-9  # p of exactly 0 or 1 is stored as a finite logit (±20.7)
PROBLEM_COLUMNS = ["row", "value", "problem"]
LABELS = {"1": 1, "phishing": 1, "spam": 1, "0": 0, "legitimate": 0, "ham": 0}
_HEX = re.compile(r"^[0-9a-f]{24}([0-9a-f]{40})?$")


class ScoreFileError(ValueError):
    """A score file PhishLens cannot read as a whole (format, columns); the message says what to fix."""


@dataclass(frozen=True)
class MatchedScores:
    """A score file checked against the store: the rows to store, the rows refused (blocking) and the
    rows left out of the matrix (outside every test split)."""

    scorer_id: str
    name: str
    score_column: str
    threshold: float
    predictions: pd.DataFrame  # email_id, corpus, score, predicted, true_label
    problems: pd.DataFrame  # row (1-based, as a spreadsheet counts data rows), value, problem
    left_out: pd.DataFrame  # the same columns: emails in no test split
    new_emails: tuple[Email, ...] = ()  # raw messages not yet stored, for the held-out corpus below
    new_corpus: CorpusInfo | None = None

    @property
    def blocked(self) -> bool:
        return not self.problems.empty


def scorer_id_for(name: str) -> str:
    """The id a scores-only scorer is stored under."""
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", name.strip()).strip("-")
    if not slug:
        raise ScoreFileError(f"the name {name!r} has no letters or digits; give --name a readable name")
    return SCORER_PREFIX + slug[:80]


def read_score_file(path: Path) -> pd.DataFrame:
    """A CSV or Parquet file as a frame of strings and numbers, each row numbered from 1 (`row`)."""
    path = Path(path)
    if not path.is_file():
        raise ScoreFileError(f"{path} is not a file")
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            frame = pd.read_parquet(path)
        elif path.suffix.lower() in (".csv", ".tsv", ".txt"):
            frame = pd.read_csv(path, sep="\t" if path.suffix.lower() == ".tsv" else ",", dtype=str,
                                keep_default_na=False)
        else:
            raise ScoreFileError(f"{path.name}: give a .csv, .tsv or .parquet file")
    except ScoreFileError:
        raise
    except Exception as exc:  # pandas and pyarrow raise many types for a malformed file
        raise ScoreFileError(f"{path.name} cannot be read ({type(exc).__name__}: {exc})") from exc
    frame.columns = [str(c).strip().lower() for c in frame.columns]
    return frame.reset_index(drop=True).assign(row=np.arange(1, len(frame) + 1))


def _score_column(frame: pd.DataFrame) -> str:
    found = [c for c in SCORE_COLUMNS if c in frame.columns]
    if len(found) != 1:
        raise ScoreFileError(f"the file needs exactly one of the columns {', '.join(SCORE_COLUMNS)}; it has "
                             f"{', '.join(c for c in frame.columns if c != 'row') or 'none'}")
    return found[0]


def _id_column(frame: pd.DataFrame) -> str:
    found = [c for c in ID_COLUMNS if c in frame.columns]
    if all(c in frame.columns for c in SUBJECT_BODY):
        found.append("subject+body")
    if len(found) != 1:
        raise ScoreFileError("the file needs exactly one way to name the email: an email_id column, a raw_message "
                             f"column, or subject and body columns; it has {', '.join(c for c in frame.columns if c != 'row')}")
    return found[0]


def candidate_ids(frame: pd.DataFrame, id_column: str) -> tuple[list[tuple[str, ...]], list[str | None], list]:
    """Per row, the email ids it may name (a raw message's under both normalisations), why it names
    none (None where it does), and a raw message's parsed fields (None for other columns)."""
    ids, problems, parsed = [], [], []
    for record in frame.to_dict("records"):
        try:
            if id_column == "email_id":
                value = str(record["email_id"]).strip().lower()
                if not _HEX.match(value):
                    raise ValueError(f"not an email id (24 or 64 hex digits): {value[:40]!r}")
                ids.append((value[:24],))
            elif id_column == "subject+body":
                ids.append(_hashes(str(record["subject"]), str(record["body"])))
            else:
                fields, _ = parse_message_bytes(str(record["raw_message"]).encode("utf-8", "surrogatepass"))
                ids.append(_hashes(fields.subject, fields.body))
                parsed.append(fields)
                problems.append(None)
                continue
            problems.append(None)
        except (ValueError, ParseError) as exc:
            ids.append(())
            problems.append(str(exc))
        parsed.append(None)
    return ids, problems, parsed


def _hashes(subject: str, body: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys(content_hash(normalise_text(subject, lower), normalise_text(body, lower))
                               for lower in (False, True)))


def _number(value) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def stored_score(value: float, column: str, threshold: float) -> float:
    """The score as stored: 0 at the file's threshold (a probability as logit(p) − logit(threshold))."""
    if column == "score":
        return value - threshold
    p = min(max(value, PROBABILITY_CLIP), 1 - PROBABILITY_CLIP)
    return math.log(p / (1 - p)) - math.log(threshold / (1 - threshold))


def match_scores(frame: pd.DataFrame, emails: pd.DataFrame, test_ids: set[str], name: str,
                 threshold: float | None = None, new_corpus: str | None = None, lowercase: bool = False,
                 source: str = "") -> MatchedScores:
    """Check every row of a score file (read_score_file) against the store's emails (id, corpus, label) and
    its test emails; nothing is stored here. With new_corpus, labelled raw messages the store lacks become
    that held-out corpus' emails (normalised as `lowercase` says)."""
    scorer_id = scorer_id_for(name)
    column, id_column = _score_column(frame), _id_column(frame)
    if new_corpus is not None and id_column != "raw_message":
        raise ScoreFileError("only raw messages can add emails to the store: give a raw_message column (and a "
                             "label column), or leave the new corpus out")
    if new_corpus is not None and "label" not in frame.columns:
        raise ScoreFileError("emails added to a new corpus need their labels: add a label column "
                             "(phishing/spam/1 or legitimate/ham/0)")
    threshold = DEFAULT_THRESHOLDS[column] if threshold is None else float(threshold)
    if column == "probability" and not 0 < threshold < 1:
        raise ScoreFileError(f"a probability threshold must lie strictly between 0 and 1, not {threshold}")
    known = emails.set_index("id")
    ids, id_problems, parsed = candidate_ids(frame, id_column)
    problems, left_out, rows, first_row_of, new_emails = [], [], [], {}, {}
    for record, candidates, id_problem, fields in zip(frame.to_dict("records"), ids, id_problems, parsed):
        row, shown = int(record["row"]), _shown(record, id_column)
        value = _number(record[column])
        matched = next((i for i in candidates if i in known.index or i in new_emails), None)
        label = LABELS.get(str(record.get("label", "")).strip().lower())
        if matched is None and new_corpus is not None and fields is not None and id_problem is None:
            if label is None:
                problems.append((row, shown, f"not in the store, and its label {str(record.get('label'))[:20]!r} is "
                                             "not phishing/spam/1 or legitimate/ham/0"))
                continue
            mail = make_email(fields, new_corpus, label, f"{Path(source).name}:row {row}", lowercase)
            if value is not None and not (column == "probability" and not 0 <= value <= 1):
                new_emails[mail.id] = mail
            matched = mail.id
        if id_problem:
            problems.append((row, shown, id_problem))
        elif matched is None:
            problems.append((row, shown, "no such email in the store (ingest its corpus first, or give a new corpus "
                                         "for raw messages not stored)"))
        elif value is None:
            problems.append((row, str(record[column])[:40], f"the {column} is not a finite number"))
        elif column == "probability" and not 0 <= value <= 1:
            problems.append((row, str(record[column]), "a probability must lie in [0, 1]"))
        elif matched in first_row_of:
            problems.append((row, shown, f"a second row for email {matched} (first at row {first_row_of[matched]})"))
        else:
            first_row_of[matched] = row
            if matched in new_emails:
                corpus, true_label = new_corpus, new_emails[matched].label
            elif matched not in test_ids:
                left_out.append((row, shown, f"email {matched} is in no test split: left out of the matrix"))
                continue
            else:
                corpus, true_label = known.at[matched, "corpus"], int(known.at[matched, "label"])
            score = stored_score(value, column, threshold)
            rows.append({"email_id": matched, "corpus": corpus, "score": score, "predicted": int(score > 0),
                         "true_label": int(true_label)})
    predictions = pd.DataFrame(rows, columns=["email_id", "corpus", "score", "predicted", "true_label"])
    info = None
    if new_emails:
        info = CorpusInfo(new_corpus, str(source), "score-file", "phishing",
                          f"labels from the score file's label column ({Path(source).name})", eval_only=True)
    return MatchedScores(scorer_id, name, column, threshold, predictions,
                         pd.DataFrame(problems, columns=PROBLEM_COLUMNS), pd.DataFrame(left_out, columns=PROBLEM_COLUMNS),
                         tuple(new_emails.values()), info)


def _shown(record: dict, id_column: str) -> str:
    """How a problem row names its email: the id, or the start of the subject or raw message."""
    value = record.get("subject" if id_column == "subject+body" else id_column, "")
    return " ".join(str(value).split())[:60]
