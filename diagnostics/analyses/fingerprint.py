"""The corpus-fingerprint audit: how well the source corpus of a test email can be told, whatever
its label, from its text (TF-IDF + logistic regression) and from each layer of the scorer's
residual stream at the answer position (a linear probe per layer), both cross-validated, against
the chance rate (the largest corpus' share). Where the corpus is this recognisable, "in-domain
F1" is partly corpus identification. Cross-corpus phishing work reports over 97% corpus accuracy
from TF-IDF alone; the audit puts our figure next to it. A second text probe adds four features of
form (the share of upper-case letters, of punctuation set off by a space, of blank lines, and
whether there is a sender), because corpora differ in form as much as in words (a lower-cased,
tokenised dump against raw mail); its largest coefficients name each corpus' fingerprint features.

Every probe is scored on held-out folds (5-fold, stratified by corpus); accuracies carry 95%
Wilson intervals over the n emails, so two corpora drawn from one distribution probe at chance
within the interval (tested).
"""

from __future__ import annotations

from collections.abc import Sequence

import re

import numpy as np
import pandas as pd

from data.records import Email
from diagnostics.contracts.job import Progress
from diagnostics.analyses.sample_grid import ALL_CORPORA, GRID_COLUMNS, SampleDiagnostic, SamplePart, wilson_interval
from models.loading import LoadedModel
from models.scoring import answer_states, render_email

FOLDS = 5
TOP_FEATURES = 5
PUBLISHED_TFIDF_ACCURACY = 0.97  # "over 97%" corpus identification from TF-IDF in published cross-corpus work


def cross_validated_accuracy(features, corpora: Sequence[str], seed: int, make_model) -> tuple[int, int]:
    """(correct, n) of held-out predictions of each email's corpus, FOLDS-fold stratified."""
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    labels = np.asarray(corpora)
    folds = min(FOLDS, int(pd.Series(labels).value_counts().min()))
    if folds < 2:
        raise ValueError("every corpus needs at least two emails to probe")
    predicted = cross_val_predict(make_model(), features, labels,
                                  cv=StratifiedKFold(folds, shuffle=True, random_state=seed))
    return int((predicted == labels).sum()), len(labels)


# Form, not words: what a word-level probe cannot name. Each is a share in [0, 1], on the scale of a
# TF-IDF weight, so the probe's coefficients rank them beside words.
_LETTER = re.compile(r"[^\W\d_]")
_PUNCTUATION = re.compile(r"(\s?)[.,:;!?]")


def _upper_case_share(mail: Email) -> float:
    letters = _LETTER.findall(mail.subject + mail.body)
    return sum(c.isupper() for c in letters) / len(letters) if letters else 0.0


def _spaced_punctuation_share(mail: Email) -> float:
    marks = _PUNCTUATION.findall(mail.subject + " " + mail.body)
    return sum(bool(space) for space in marks) / len(marks) if marks else 0.0


def _blank_line_share(mail: Email) -> float:
    lines = mail.body.split("\n")
    return sum(not line.strip() for line in lines) / len(lines)


FORM_FEATURES = {
    "form: upper-case letters": _upper_case_share,
    "form: punctuation set off by spaces": _spaced_punctuation_share,
    "form: blank lines": _blank_line_share,
    "form: has a sender": lambda mail: float(bool(mail.sender)),
}


def form_matrix(emails: Sequence[Email]) -> np.ndarray:
    """(n, len(FORM_FEATURES)): each email's form features."""
    return np.array([[feature(m) for feature in FORM_FEATURES.values()] for m in emails], dtype=float)


def _tfidf():
    from sklearn.feature_extraction.text import TfidfVectorizer

    return TfidfVectorizer(sublinear_tf=True, min_df=2, lowercase=False, token_pattern=r"(?u)\b\w+\b")


def _text_probe():
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    return make_pipeline(_tfidf(), LogisticRegression(max_iter=2000, C=10.0))


def _text_and_form_probe():
    """Words and form over Email records: the probe whose coefficients name fingerprints."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import FeatureUnion, make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    words = make_pipeline(FunctionTransformer(lambda emails: [render_email(m) for m in emails]), _tfidf())
    form = FunctionTransformer(form_matrix)
    return make_pipeline(FeatureUnion([("words", words), ("form", form)]), LogisticRegression(max_iter=2000, C=10.0))


def _layer_probe():
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, C=0.1))


def _accuracy_row(name: str, correct: int, n: int) -> dict:
    low, high = wilson_interval(correct, n)
    return {"row": name, "column": "accuracy", "value": correct / n, "low": low, "high": high, "n": n}


def fingerprint_grid(emails: Sequence[Email], hidden: np.ndarray | None, seed: int) -> pd.DataFrame:
    """Chance, the text probe and (given (n, layers + 1, d) answer-position states) a probe per
    layer: accuracy rows; then each corpus' top text-probe features (column: the feature, value:
    its coefficient)."""
    corpora = [m.corpus for m in emails]
    texts = [render_email(m) for m in emails]
    shares = pd.Series(corpora).value_counts(normalize=True)
    rows = [{"row": "chance (largest corpus)", "column": "accuracy", "value": float(shares.iloc[0]), "low": np.nan,
             "high": np.nan, "n": len(emails)},
            _accuracy_row("text (TF-IDF + LR)", *cross_validated_accuracy(texts, corpora, seed, _text_probe)),
            _accuracy_row("text and form", *cross_validated_accuracy(list(emails), corpora, seed,
                                                                     _text_and_form_probe))]
    if hidden is not None:
        for layer in range(hidden.shape[1]):
            name = "embedding" if layer == 0 else f"layer {layer - 1}"
            rows.append(_accuracy_row(name, *cross_validated_accuracy(hidden[:, layer], corpora, seed, _layer_probe)))
    for corpus, features in fingerprint_weights(emails, TOP_FEATURES).items():
        for feature, weight in features:
            rows.append({"row": f"fingerprint of {corpus}", "column": feature, "value": weight, "low": np.nan,
                         "high": np.nan, "n": corpora.count(corpus)})
    return pd.DataFrame(rows, columns=GRID_COLUMNS)


def fingerprint_weights(emails: Sequence[Email], k: int | None) -> dict[str, list[tuple[str, float]]]:
    """Per corpus, the k features (words, or FORM_FEATURES names) whose probe coefficients most say
    "this corpus", largest first (k None: all of them)."""
    probe = _text_and_form_probe().fit(list(emails), [m.corpus for m in emails])
    names = [*probe[0].transformer_list[0][1][-1].get_feature_names_out(), *FORM_FEATURES]
    model = probe[-1]
    coefficients = model.coef_ if len(model.classes_) > 2 else np.vstack([-model.coef_[0], model.coef_[0]])
    return {corpus: [(str(names[i]), float(weights[i])) for i in np.argsort(-weights)[:k]]
            for corpus, weights in zip(model.classes_, coefficients)}


def top_fingerprints(emails: Sequence[Email], k: int, seed: int = 0) -> dict[str, list[str]]:
    """Per corpus, its top k fingerprint words (what fingerprint masking removes; form features
    cannot be masked out of a text, so they are skipped)."""
    return {str(corpus): [name for name, _ in features if name not in FORM_FEATURES][:k]
            for corpus, features in fingerprint_weights(emails, None).items()}


class FingerprintAudit(SampleDiagnostic):
    name = "corpus-fingerprint"

    corpus = ALL_CORPORA

    def measure(self, model: LoadedModel, part: SamplePart, on_progress: Progress | None = None) -> np.ndarray:
        return answer_states(model, part.emails, self.request.max_tokens, self.request.batch_size, all_layers=True,
                             on_batch=on_progress)[1]

    def summarize(self, emails: Sequence[Email], measured: Sequence, context: dict) -> pd.DataFrame:
        return fingerprint_grid(emails, np.concatenate(measured), self.request.seed)
