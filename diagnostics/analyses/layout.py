"""An email as the classifier reads it, cut into a tree: fields (sender, subject, body) →
sentences → words, every URL one word, each word the prompt tokens it covers. Explainers
attribute to the units of one level of this tree; coalition scoring removes their tokens.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from dataclasses import dataclass, field

import numpy as np

from data.records import Email, Explanation
from models.scoring import PromptBuilder, render_email

URL_START = re.compile(r"(?:https?://|www\.)", re.IGNORECASE)


@dataclass
class Word:
    """One word of the email: a character span and the email-token indices it covers."""

    start: int
    end: int
    field: str  # sender | subject | body | url
    tokens: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class EmailLayout:
    """An email's prompt tokens and their grouping into words, sentences and fields."""

    text: str
    head: list[int]  # instruction tokens (never removed)
    email_ids: list[int]  # the email's tokens within the budget
    tail: list[int]  # question tokens (never removed)
    words: list[Word]
    # fields → sentences → word indices; sender and subject are one sentence each.
    tree: list[list[list[int]]]

    def units(self, level: str) -> tuple[list[list[int]], list]:
        """(word indices of each unit, the unit tree as nested lists of unit indices)."""
        depth = {"field": 1, "sentence": 2, "word": 3}[level]
        units: list[list[int]] = []

        def walk(node, at: int):
            if isinstance(node, int) or at == depth:
                units.append(_flatten(node))
                return len(units) - 1
            return [walk(child, at + 1) for child in node]

        return units, walk(self.tree, 0)


def _flatten(node) -> list[int]:
    return [node] if isinstance(node, int) else [w for child in node for w in _flatten(child)]


def _field_spans(mail: Email) -> list[tuple[str, int, int]]:
    """Character spans of sender, subject and body inside render_email(mail) (its layout:
    tests check that every field's words land in the right field)."""
    sender_start = len("From: ")
    subject_start = sender_start + len(mail.sender) + len("\nSubject: ")
    body_start = subject_start + len(mail.subject) + 2
    return [("sender", sender_start, sender_start + len(mail.sender)),
            ("subject", subject_start, subject_start + len(mail.subject)),
            ("body", body_start, body_start + len(mail.body))]


def _ends_sentence(word: str) -> bool:
    return word.rstrip("\"')]»").endswith((".", "!", "?"))


def owning_word(words: list[Word], starts: list[int], text: str, span: tuple[int, int]) -> int | None:
    """Index of the word holding the first non-space character of a token span (None: whitespace
    or outside every word). `starts` are the words' start offsets, ascending."""
    s, e = span
    chunk = text[s:e]
    first = s + (len(chunk) - len(chunk.lstrip()))
    at = bisect_right(starts, first) - 1
    if first < e and at >= 0 and words[at].start <= first < words[at].end:
        return at
    return None


def layout_email(builder: PromptBuilder, mail: Email) -> EmailLayout:
    """Tokenize the email once and group its tokens into words, sentences and fields.

    A token belongs to the word holding its first non-space character; tokens of the
    field labels ("From:", "Subject:") and pure whitespace stay fixed in every prompt.
    """
    text = render_email(mail)
    encoded = builder.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids = list(encoded["input_ids"][: builder.budget])
    offsets = encoded["offset_mapping"][: len(ids)]

    words: list[Word] = []
    tree: list[list[list[int]]] = []
    for name, start, end in _field_spans(mail):
        sentences: list[list[int]] = []
        previous_end = start
        for match in re.finditer(r"\S+", text[start:end]):
            s, e = start + match.start(), start + match.end()
            kind = "url" if name == "body" and URL_START.match(match.group()) else name
            if not sentences or name == "body" and (
                    "\n" in text[previous_end:s] or _ends_sentence(text[words[-1].start:words[-1].end])):
                sentences.append([])
            words.append(Word(s, e, kind))
            sentences[-1].append(len(words) - 1)
            previous_end = e
        tree.append(sentences)

    starts = [w.start for w in words]
    for index, span in enumerate(offsets):
        at = owning_word(words, starts, text, span)
        if at is not None:
            words[at].tokens.append(index)

    # Words past the token budget were never read: drop them and renumber the tree.
    kept = [i for i, w in enumerate(words) if w.tokens]
    renumber = {old: new for new, old in enumerate(kept)}
    tree = [[[renumber[w] for w in sentence if w in renumber] for sentence in fld] for fld in tree]
    tree = [[sentence for sentence in fld if sentence] for fld in tree]
    tree = [fld for fld in tree if fld]
    return EmailLayout(text, builder.head, ids, builder.tail, [words[i] for i in kept], tree)


def linkage(tree, n_units: int) -> np.ndarray:
    """shap's clustering matrix (left, right, height, size) for a nested list of unit indices.

    Groups with more than two members are merged pairwise into a balanced binary tree.
    """
    rows: list[list[float]] = []

    def node(t) -> tuple[int, int, int]:
        if isinstance(t, int):
            return t, 1, 0
        kids = [node(child) for child in t]
        while len(kids) > 1:
            merged = []
            for i in range(0, len(kids) - 1, 2):
                (a, size_a, h_a), (b, size_b, h_b) = kids[i], kids[i + 1]
                rows.append([a, b, max(h_a, h_b) + 1, size_a + size_b])
                merged.append((n_units + len(rows) - 1, size_a + size_b, max(h_a, h_b) + 1))
            if len(kids) % 2:
                merged.append(kids[-1])
            kids = merged
        return kids[0]

    node(tree)
    return np.array(rows, dtype=float).reshape(-1, 4)


def fixed_tokens(n_tokens: int, unit_tokens: list[np.ndarray]) -> np.ndarray:
    """Email tokens in no unit (field labels, whitespace): kept in every prompt."""
    fixed = np.ones(n_tokens, dtype=bool)
    for tokens in unit_tokens:
        fixed[tokens] = False
    return fixed


def unit_keeps(unit_masks: np.ndarray, unit_tokens: list[np.ndarray], fixed: np.ndarray) -> np.ndarray:
    """(n, units) presence → (n, email tokens) keep-matrix; tokens in no word are always kept."""
    keeps = np.repeat(fixed[None, :], len(unit_masks), axis=0)
    for u, tokens in enumerate(unit_tokens):
        keeps[np.ix_(unit_masks[:, u].astype(bool), tokens)] = True
    return keeps


@dataclass
class Units:
    """The units of one level and how to score a coalition of them."""

    words: list[list[int]]
    tree: list
    tokens: list[np.ndarray]
    fixed: np.ndarray

    @classmethod
    def of(cls, layout: EmailLayout, level: str) -> "Units":
        words, tree = layout.units(level)
        tokens = [np.array([t for w in ws for t in layout.words[w].tokens]) for ws in words]
        return cls(words, tree, tokens, fixed_tokens(len(layout.email_ids), tokens))

    def keeps(self, unit_masks: np.ndarray) -> np.ndarray:
        return unit_keeps(unit_masks, self.tokens, self.fixed)


def spans_and_fields(layout: EmailLayout, unit_words: list[list[int]]):
    spans, fields = [], []
    for ws in unit_words:
        first, last = layout.words[ws[0]], layout.words[ws[-1]]
        spans.append((first.start, last.end))
        kinds = {layout.words[w].field for w in ws}
        fields.append(kinds.pop() if len(kinds) == 1 else "body")
    return tuple(spans), tuple(fields)


def word_values(explanation: Explanation, layout: EmailLayout) -> np.ndarray:
    """An explanation's values per word of `layout` (coarser units are spread evenly over their words)."""
    starts = np.array([w.start for w in layout.words])
    ends = np.array([w.end for w in layout.words])
    values = np.zeros(len(layout.words))
    for (s, e), v in zip(explanation.spans, explanation.values):
        inside = np.flatnonzero((starts >= s) & (ends <= e))
        if len(inside):
            values[inside] += v / len(inside)
    return values
