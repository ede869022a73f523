"""The classic reference every F1 matrix carries: TF-IDF + logistic regression (scikit-learn).

Trained on the same training sets and scored on the same test samples as the fine-tuned
LLMs, so a reader sees at once whether an LLM beats what a bag of words does. It reads the
same rendered email text (sender, subject, body) as the LLM, untruncated. Its score is
the logistic regression's log-odds, thresholded at 0 like the LLM's logit difference.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from data.records import Email
from data.scorers import REFERENCE_MODEL  # noqa: F401 (re-exported)
from models.scoring import render_email

HYPERPARAMETERS = {"ngram_range": [1, 2], "min_df": 2, "sublinear_tf": True, "max_features": 100_000, "C": 4.0,
                   "class_weight": "balanced"}


def reference_id(training_set: str, seed: int) -> str:
    """The id under which the reference trained on `training_set` stores its predictions."""
    return f"{REFERENCE_MODEL}--{training_set}--s{seed}"


def fit_reference(emails: Sequence[Email], seed: int) -> Pipeline:
    """TF-IDF (word 1–2-grams, sublinear tf) + L2 logistic regression on labelled emails."""
    if len({m.label for m in emails}) < 2:
        raise ValueError("the reference model needs both labels in its training set")
    h = HYPERPARAMETERS
    pipeline = Pipeline([
        ("tfidf", TfidfVectorizer(ngram_range=tuple(h["ngram_range"]), min_df=h["min_df"],
                                  sublinear_tf=h["sublinear_tf"], max_features=h["max_features"])),
        ("lr", LogisticRegression(C=h["C"], class_weight=h["class_weight"], max_iter=2000, random_state=seed)),
    ])
    return pipeline.fit([render_email(m) for m in emails], [m.label for m in emails])


def score_reference(pipeline: Pipeline, emails: Sequence[Email]) -> np.ndarray:
    """Log-odds of the positive label (phishing/spam) for each email."""
    return pipeline.decision_function([render_email(m) for m in emails]).astype(np.float64)
