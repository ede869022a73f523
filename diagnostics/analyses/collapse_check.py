"""Right after `train`: does the new adapter answer both ways? It scores a few held-back training
emails of each label (from its corpora's training splits, never in its training set) and says at
once when it gives one verdict to all of them, with what to change: the F1 matrix would show the
same collapse only after a full evaluation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from data.records import POSITIVE, verdict
from data.splits import sample_stratified
from data.store import Store

HELD_BACK_PER_LABEL = 16  # 8 per label once called a strongly biased (not collapsed) adapter collapsed


@dataclass(frozen=True)
class CollapseCheck:
    """An adapter's verdicts on held-back training emails of each label."""

    adapter_id: str
    n_phishing: int
    n_legitimate: int
    called_phishing: int  # of all n_phishing + n_legitimate emails
    correct: int
    held_back: bool  # False: no email was left outside the training set, so training emails were used

    @property
    def n(self) -> int:
        return self.n_phishing + self.n_legitimate

    @property
    def collapsed(self) -> bool:
        """One verdict for every email although both labels are there."""
        return self.n_phishing > 0 and self.n_legitimate > 0 and self.called_phishing in (0, self.n)

    def sentence(self) -> str:
        source = "held-back training emails" if self.held_back else "training emails (none were left over)"
        if not self.collapsed:
            return (f"check: {self.correct} of {self.n} {source} right ({self.n_phishing} phishing, "
                    f"{self.n_legitimate} legitimate); it answers both ways")
        answer = "phishing" if self.called_phishing else "legitimate"
        return (f"the adapter {self.adapter_id} collapsed: it calls all {self.n} {source} {answer} "
                f"({self.n_phishing} are phishing, {self.n_legitimate} legitimate). It learnt the label prior, not "
                "the task: retrain with a lower learning rate (--lr, e.g. half), more --epochs or more training "
                "emails; its evaluation would score F1 near 0 on one label")


def held_back_emails(store: Store, training_set: str, per_label: int = HELD_BACK_PER_LABEL,
                     seed: int = 13) -> tuple[list, bool]:
    """Up to `per_label` emails of each label from the training set's corpora's training splits that
    are not in the set (seeded); the set's own emails where none are left. (emails, held_back)."""
    record = store.training_set(training_set)
    members = store.query("SELECT e.id, e.label FROM training_set_emails t JOIN emails e ON e.id = t.email_id "
                          "WHERE t.training_set = ? ORDER BY e.id", [training_set])
    pool = [store.split_ids(corpus, "train") for corpus in record["corpora"]]
    rest = pd.concat([frame[~frame["id"].isin(members["id"])] for frame in pool], ignore_index=True)
    held_back = rest["label"].nunique() == 2
    if not held_back:
        rest = members
    ids = []
    for label in (POSITIVE, 1 - POSITIVE):
        mine = rest[rest["label"] == label]
        ids += sample_stratified(mine, min(per_label, len(mine)), seed) if len(mine) else []
    return store.emails_by_ids(ids), held_back


def check_collapse(loaded, emails, max_tokens: int, held_back: bool = True) -> CollapseCheck:
    """Score `emails` with a loaded adapter and count its verdicts per label."""
    from models.scoring import score_emails

    scores = score_emails(loaded, emails, max_tokens, batch_size=8)
    verdicts = np.array([verdict(float(s)) for s in scores], dtype=int)
    labels = np.array([m.label for m in emails], dtype=int)
    return CollapseCheck(adapter_id=loaded.adapter_id, n_phishing=int((labels == POSITIVE).sum()),
                         n_legitimate=int((labels != POSITIVE).sum()), called_phishing=int(verdicts.sum()),
                         correct=int((verdicts == labels).sum()), held_back=held_back)
