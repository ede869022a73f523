"""The corpus-fingerprint audit: how well the source corpus of a test email can be told, whatever
its label, from its text (TF-IDF + logistic regression) and from each layer of the scorer's
residual stream at the answer position (a linear probe per layer), both cross-validated, against
the chance rate (the largest corpus' share). Where the corpus is this recognisable, "in-domain
F1" is partly corpus identification. The text probe's largest coefficients name each corpus'
fingerprint features (cross-corpus phishing work reports over 97% corpus accuracy from TF-IDF
alone; the audit puts our figure next to it).

Every probe is scored on held-out folds (5-fold, stratified by corpus); accuracies carry 95%
Wilson intervals over the n emails, so two corpora drawn from one distribution probe at chance
within the interval (tested).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from data.records import Email
from diagnostics.executor import Progress
from diagnostics.sample_grid import ALL_CORPORA, GRID_COLUMNS, SampleDiagnostic, SamplePart, wilson_interval
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


def _text_probe():
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    return make_pipeline(TfidfVectorizer(sublinear_tf=True, min_df=2, lowercase=False, token_pattern=r"(?u)\b\w+\b"),
                         LogisticRegression(max_iter=2000, C=10.0))


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
            _accuracy_row("text (TF-IDF + LR)", *cross_validated_accuracy(texts, corpora, seed, _text_probe))]
    if hidden is not None:
        for layer in range(hidden.shape[1]):
            name = "embedding" if layer == 0 else f"layer {layer - 1}"
            rows.append(_accuracy_row(name, *cross_validated_accuracy(hidden[:, layer], corpora, seed, _layer_probe)))
    for corpus, features in fingerprint_weights(emails, TOP_FEATURES).items():
        for feature, weight in features:
            rows.append({"row": f"fingerprint of {corpus}", "column": feature, "value": weight, "low": np.nan,
                         "high": np.nan, "n": corpora.count(corpus)})
    return pd.DataFrame(rows, columns=GRID_COLUMNS)


def fingerprint_weights(emails: Sequence[Email], k: int) -> dict[str, list[tuple[str, float]]]:
    """Per corpus, the k text features (words) whose probe coefficients most say "this corpus"."""
    probe = _text_probe().fit([render_email(m) for m in emails], [m.corpus for m in emails])
    vocabulary = probe[0].get_feature_names_out()
    model = probe[-1]
    coefficients = model.coef_ if len(model.classes_) > 2 else np.vstack([-model.coef_[0], model.coef_[0]])
    return {corpus: [(str(vocabulary[i]), float(weights[i])) for i in np.argsort(-weights)[:k]]
            for corpus, weights in zip(model.classes_, coefficients)}


def top_fingerprints(emails: Sequence[Email], k: int, seed: int = 0) -> dict[str, list[str]]:
    """Per corpus, its top k fingerprint words (what fingerprint masking removes)."""
    return {corpus: [word for word, _ in features] for corpus, features in fingerprint_weights(emails, k).items()}


class FingerprintAudit(SampleDiagnostic):
    name = "corpus-fingerprint"

    corpus = ALL_CORPORA

    def measure(self, model: LoadedModel, part: SamplePart, on_progress: Progress | None = None) -> np.ndarray:
        return answer_states(model, part.emails, self.request.max_tokens, self.request.batch_size, all_layers=True,
                             on_batch=on_progress)[1]

    def summarize(self, emails: Sequence[Email], measured: Sequence, context: dict) -> pd.DataFrame:
        return fingerprint_grid(emails, np.concatenate(measured), self.request.seed)
