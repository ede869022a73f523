"""Why an adapter scored an email as it did: SHAP values over the email's own structure.

The text the model reads (models.scoring.render_email) is cut into a tree: fields
(sender, subject, body) → sentences → words, every URL one word. shap's Partition
explainer computes Owen values over that tree, so its evaluation budget goes to
coalitions a reader can name ("the signature line", "the second URL") instead of to
arbitrary token runs, and a coarse (field or sentence) map comes first and cheaply.

What one evaluation costs is cut too: a removed unit is dropped from the prompt rather
than replaced by a mask token (shorter prompts); the instruction and question are never
removed; and every coalition reuses the full prompt's key/value cache up to its first
removed token, batched with coalitions of similar prefix. Identical coalitions (the
coarse pass's, again in the word pass) are scored once.

SHAP values are additive: base_value + sum(values) == score. Gradient × input is the
fast, non-additive baseline.
"""

from __future__ import annotations

import json
import re
import time
from bisect import bisect_right
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from data.defang import defang
from data.records import Email, Explanation, Faithfulness
from models.scoring import PromptBuilder, label_token_ids, prompt_builder, render_email

METHODS = ("shap", "gradxinput")
URL_START = re.compile(r"(?:https?://|www\.)", re.IGNORECASE)
# Budgets (model evaluations, shap's max_evals) per level, chosen with benchmarks/bench_explain.py.
# Each finer pass first re-walks the coarser pass's coalitions, which are memoised.
DEFAULT_MAX_EVALS = {"field": 8, "sentence": 24, "word": 120}
# shap's fixed_context=1: each group is expanded with the rest of the email present, so a
# coalition removes one subtree (half the evaluations of the default, each sharing the
# cached prefix up to that subtree); it gave better deletion curves on real emails.
DEFAULT_FIXED_CONTEXT = 1


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


def _owning_word(words: list[Word], starts: list[int], text: str, span: tuple[int, int]) -> int | None:
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
        at = _owning_word(words, starts, text, span)
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


class CoalitionScorer:
    """Scores one email with some of its tokens removed; many coalitions per batch.

    Every prompt shares the full prompt's first tokens up to its first removed token;
    those reuse the full prompt's key/value cache. Results are memoised per coalition.
    """

    def __init__(self, loaded, layout: EmailLayout, batch_size: int = 16, max_prefix_gap: int | None = None):
        self.loaded = loaded
        self.layout = layout
        self.batch_size = batch_size
        # On a GPU, wide batches matter more than recomputing a few shared tokens.
        self.max_prefix_gap = max_prefix_gap if max_prefix_gap is not None else (
            8 if loaded.device.type == "cpu" else 64)
        self.negative, self.positive = label_token_ids(loaded.tokenizer, loaded.spec)
        self.full = layout.head + layout.email_ids + layout.tail
        self.memo: dict[bytes, float] = {}
        self.evaluations = 0
        with torch.inference_mode():
            ids = torch.tensor([self.full], device=loaded.device)
            out = loaded.model(input_ids=ids, use_cache=True, logits_to_keep=1)
        self.evaluations += 1
        self.kv = [(layer.keys, layer.values) for layer in out.past_key_values.layers]
        self.score = self._difference(out.logits[:, -1, :])[0]
        self.memo[np.ones(len(layout.email_ids), dtype=bool).tobytes()] = self.score

    def _difference(self, logits: torch.Tensor) -> np.ndarray:
        logits = logits.float()
        return (logits[:, self.positive] - logits[:, self.negative]).cpu().numpy().astype(np.float64)

    def prompt(self, keep: np.ndarray) -> list[int]:
        email = [t for t, k in zip(self.layout.email_ids, keep) if k]
        return self.layout.head + email + self.layout.tail

    def _shared_prefix(self, keep: np.ndarray) -> int:
        removed = np.flatnonzero(~keep)
        return len(self.layout.head) + (int(removed[0]) if len(removed) else len(keep))

    def scores(self, keeps: np.ndarray) -> np.ndarray:
        """Scores for rows of a (n, email tokens) boolean keep-matrix."""
        keys = [row.tobytes() for row in keeps]
        todo = {key: row for key, row in zip(keys, keeps) if key not in self.memo}
        for batch in self._prefix_batches(list(todo.items())):
            prompts = [self.prompt(row) for _, row in batch]
            shared = min(min(self._shared_prefix(row) for _, row in batch), min(map(len, prompts)) - 1)
            for (key, _), value in zip(batch, self._forward(prompts, shared)):
                self.memo[key] = float(value)
        return np.array([self.memo[key] for key in keys])

    def _prefix_batches(self, items: list) -> Iterator[list]:
        """Batches of coalitions whose shared prefixes differ by at most max_prefix_gap tokens.

        A batch reuses the cache only up to its shortest prefix, so mixing a coalition that
        removes the first word with one that removes the last would recompute the whole
        email for both. On a CPU a small batch costs about the same per token as a large one.
        """
        items.sort(key=lambda kv: -self._shared_prefix(kv[1]))
        batch: list = []
        for item in items:
            if batch and (len(batch) == self.batch_size or
                          self._shared_prefix(batch[0][1]) - self._shared_prefix(item[1]) > self.max_prefix_gap):
                yield batch
                batch = []
            batch.append(item)
        if batch:
            yield batch

    def _forward(self, prompts: list[list[int]], shared: int) -> np.ndarray:
        """Scores of prompts that all start with the full prompt's first `shared` tokens."""
        from transformers import DynamicCache

        rows, device = len(prompts), self.loaded.device
        suffixes = [p[shared:] for p in prompts]
        width = max(map(len, suffixes))
        input_ids = torch.full((rows, width), self.loaded.tokenizer.pad_token_id, dtype=torch.long)
        mask = torch.zeros((rows, shared + width), dtype=torch.long)
        mask[:, :shared] = 1
        positions = torch.zeros((rows, width), dtype=torch.long)
        for r, suffix in enumerate(suffixes):
            # Pad between the cached prefix and the suffix, so every row ends at the last column.
            input_ids[r, width - len(suffix):] = torch.tensor(suffix)
            mask[r, shared + width - len(suffix):] = 1
            positions[r, width - len(suffix):] = torch.arange(shared, shared + len(suffix))
        cache = None
        if shared:
            cache = DynamicCache(ddp_cache_data=[(k[:, :, :shared].expand(rows, -1, -1, -1),
                                                  v[:, :, :shared].expand(rows, -1, -1, -1)) for k, v in self.kv],
                                 config=self.loaded.model.config)
        with torch.inference_mode():
            logits = self.loaded.model(input_ids=input_ids.to(device), attention_mask=mask.to(device),
                                       position_ids=positions.to(device), past_key_values=cache,
                                       use_cache=cache is not None, logits_to_keep=1).logits[:, -1, :]
        self.evaluations += rows
        return self._difference(logits)


def _fixed_tokens(n_tokens: int, unit_tokens: list[np.ndarray]) -> np.ndarray:
    """Email tokens in no unit (field labels, whitespace): kept in every prompt."""
    fixed = np.ones(n_tokens, dtype=bool)
    for tokens in unit_tokens:
        fixed[tokens] = False
    return fixed


def _unit_keeps(unit_masks: np.ndarray, unit_tokens: list[np.ndarray], fixed: np.ndarray) -> np.ndarray:
    """(n, units) presence → (n, email tokens) keep-matrix; tokens in no word are always kept."""
    keeps = np.repeat(fixed[None, :], len(unit_masks), axis=0)
    for u, tokens in enumerate(unit_tokens):
        keeps[np.ix_(unit_masks[:, u].astype(bool), tokens)] = True
    return keeps


@dataclass
class _Units:
    """The units of one level and how to score a coalition of them."""

    words: list[list[int]]
    tree: list
    tokens: list[np.ndarray]
    fixed: np.ndarray

    @classmethod
    def of(cls, layout: EmailLayout, level: str) -> "_Units":
        words, tree = layout.units(level)
        tokens = [np.array([t for w in ws for t in layout.words[w].tokens]) for ws in words]
        return cls(words, tree, tokens, _fixed_tokens(len(layout.email_ids), tokens))

    def keeps(self, unit_masks: np.ndarray) -> np.ndarray:
        return _unit_keeps(unit_masks, self.tokens, self.fixed)


class _UnitMasker:
    """A shap masker whose "masked input" is the unit mask itself; the model maps it to tokens."""

    def __init__(self, clustering: np.ndarray, n_units: int):
        self.clustering = clustering
        self.shape = (1, n_units)

    def __call__(self, mask, x):
        return np.asarray(mask, dtype=bool).reshape(1, -1).copy()


def _spans_and_fields(layout: EmailLayout, unit_words: list[list[int]]):
    spans, fields = [], []
    for ws in unit_words:
        first, last = layout.words[ws[0]], layout.words[ws[-1]]
        spans.append((first.start, last.end))
        kinds = {layout.words[w].field for w in ws}
        fields.append(kinds.pop() if len(kinds) == 1 else "body")
    return tuple(spans), tuple(fields)


def params_key(method: str, level: str, max_tokens: int, **extra) -> str:
    """Canonical JSON of what determines an explanation (with adapter and email: the cache key)."""
    return json.dumps({"method": method, "level": level, "max_tokens": max_tokens, **extra}, sort_keys=True)


def method_params(method: str, max_tokens: int, seed: int = 0) -> str:
    """The params key of a final (word-level) explanation by `method` with default budgets."""
    if method == "shap":
        return params_key("shap", "word", max_tokens, max_evals=DEFAULT_MAX_EVALS["word"], seed=seed,
                          fixed_context=DEFAULT_FIXED_CONTEXT)
    if method == "gradxinput":
        return params_key("gradxinput", "word", max_tokens)
    raise ValueError(f"method must be one of {METHODS}")


def explain_shap(scorer: CoalitionScorer, email_id: str, adapter_id: str, max_tokens: int,
                 level: str = "word", max_evals: int | None = None, seed: int = 0,
                 fixed_context: int | None = DEFAULT_FIXED_CONTEXT) -> Explanation:
    """Owen values (shap.PartitionExplainer) over the email's field → sentence → word tree.

    fixed_context=1 expands each group only with the rest of the email present (shap's
    fast text setting): half the evaluations, each sharing a longer cached prefix.
    """
    import shap

    layout = scorer.layout
    max_evals = max_evals or DEFAULT_MAX_EVALS[level]
    units = _Units.of(layout, level)
    n = len(units.words)
    if n == 0:
        raise ValueError("the email has no words to explain")
    started, evaluations_before = time.perf_counter(), scorer.evaluations

    def model(unit_masks: np.ndarray) -> np.ndarray:
        return scorer.scores(units.keeps(unit_masks))

    if n == 1:
        base = float(model(np.zeros((1, 1), dtype=bool))[0])
        values = np.array([scorer.score - base])
    else:
        explainer = shap.explainers.PartitionExplainer(model, _UnitMasker(linkage(units.tree, n), n))
        np.random.seed(seed)  # shap breaks priority ties at random
        result = explainer(np.ones((1, n)), max_evals=max(max_evals, 4), batch_size=32, silent=True,
                           fixed_context=fixed_context)
        values, base = np.asarray(result.values[0], dtype=float), float(np.ravel(result.base_values)[0])
    spans, fields = _spans_and_fields(layout, units.words)
    return Explanation(adapter_id, email_id, "shap", level,
                       params_key("shap", level, max_tokens, max_evals=max_evals, seed=seed,
                                  fixed_context=fixed_context),
                       layout.text, spans, fields, tuple(map(float, values)), float(base), float(scorer.score),
                       scorer.evaluations - evaluations_before, time.perf_counter() - started)


def explain_gradient(loaded, layout: EmailLayout, email_id: str, max_tokens: int) -> Explanation:
    """Gradient × input of the score w.r.t. the input embeddings, summed per word (one backward)."""
    started = time.perf_counter()
    negative, positive = label_token_ids(loaded.tokenizer, loaded.spec)
    ids = torch.tensor([layout.head + layout.email_ids + layout.tail], device=loaded.device)
    with torch.enable_grad():
        embeddings = loaded.model.get_input_embeddings()(ids).detach().requires_grad_(True)
        logits = loaded.model(inputs_embeds=embeddings, logits_to_keep=1, use_cache=False).logits[0, -1].float()
        score = logits[positive] - logits[negative]
        score.backward()
    per_token = (embeddings.grad * embeddings).sum(-1)[0].detach().float().cpu().numpy()
    per_token = per_token[len(layout.head): len(layout.head) + len(layout.email_ids)]
    words = [[i] for i in range(len(layout.words))]
    values = [float(per_token[w.tokens].sum()) for w in layout.words]
    spans, fields = _spans_and_fields(layout, words)
    score_value = float(score.detach())
    return Explanation(loaded.adapter_id, email_id, "gradxinput", "word",
                       params_key("gradxinput", "word", max_tokens), layout.text, spans, fields,
                       tuple(values), score_value - float(np.sum(values)), score_value, 1,
                       time.perf_counter() - started)


def explain_shap_text(loaded, layout: EmailLayout, email_id: str, max_tokens: int, max_evals: int = 500,
                      seed: int = 0, batch_size: int = 16) -> tuple[Explanation, np.ndarray]:
    """shap's default for text, as a reference: PartitionExplainer with shap.maskers.Text.

    Masked tokens become "..." (collapsed), every masked text is tokenized and scored
    whole. Returns the token-level explanation and its values summed per word of `layout`.
    """
    import shap

    from models.scoring import score_prompts

    started = time.perf_counter()
    tokenizer = loaded.tokenizer
    budget = len(layout.email_ids)
    evaluations = 0

    def model(texts) -> np.ndarray:
        nonlocal evaluations
        prompts = [layout.head + tokenizer(str(t), add_special_tokens=False).input_ids[:budget] + layout.tail
                   for t in texts]
        evaluations += len(prompts)
        return score_prompts(loaded, prompts, batch_size=batch_size)

    # Explain exactly the text the model read: the email cut at the token budget.
    encoded = tokenizer(layout.text, add_special_tokens=False, return_offsets_mapping=True)
    end = encoded["offset_mapping"][budget - 1][1] if budget else 0
    text = layout.text[:end]
    explainer = shap.Explainer(model, shap.maskers.Text(tokenizer))
    np.random.seed(seed)
    result = explainer([text], max_evals=max_evals, batch_size=batch_size, silent=True)
    values = np.asarray(result.values[0], dtype=float)
    offsets = tokenizer(text, return_offsets_mapping=True)["offset_mapping"]
    if len(offsets) != len(values):
        raise RuntimeError(f"shap returned {len(values)} values for {len(offsets)} tokens")
    spans = tuple((int(s), int(e)) for s, e in offsets)
    starts = [w.start for w in layout.words]
    per_word = np.zeros(len(layout.words))
    for span, v in zip(spans, values):
        at = _owning_word(layout.words, starts, text, span)
        if at is not None:
            per_word[at] += v
    fields = tuple("body" for _ in spans)
    explanation = Explanation(loaded.adapter_id, email_id, "shap-text", "token",
                              params_key("shap-text", "token", max_tokens, max_evals=max_evals, seed=seed),
                              layout.text, spans, fields, tuple(map(float, values)),
                              float(np.ravel(result.base_values)[0]), float(model([text])[0]), evaluations,
                              time.perf_counter() - started)
    return explanation, per_word


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


def faithfulness(scorer: CoalitionScorer, values: Sequence[float], unit_tokens: list[np.ndarray] | None = None,
                 steps: int = 10, seed: int = 0, random_orders: int = 2) -> Faithfulness:
    """Deletion and insertion curves over units ranked by attribution, and a random-order reference.

    Units default to the layout's words (values then given per word).
    """
    layout = scorer.layout
    if unit_tokens is None:
        unit_tokens = [np.array(w.tokens) for w in layout.words]
    fixed = _fixed_tokens(len(layout.email_ids), unit_tokens)
    n = len(unit_tokens)
    sign = 1.0 if scorer.score >= 0 else -1.0
    order = np.argsort(-sign * np.asarray(values), kind="stable")
    fractions = np.linspace(0.0, 1.0, steps + 1)
    counts = np.round(fractions * n).astype(int)

    def curve(ranking: np.ndarray, insert: bool) -> np.ndarray:
        masks = np.zeros((len(counts), n), dtype=bool)
        for row, k in enumerate(counts):
            masks[row, ranking[:k]] = True
        if not insert:
            masks = ~masks
        return sign * scorer.scores(_unit_keeps(masks, unit_tokens, fixed))

    rng = np.random.default_rng(seed)
    deletion, insertion = curve(order, False), curve(order, True)
    random_deletion = np.mean([curve(rng.permutation(n), False) for _ in range(random_orders)], axis=0)
    area = lambda ys: float(np.trapezoid(ys, fractions))  # noqa: E731
    return Faithfulness(tuple(fractions), tuple(deletion), tuple(insertion), tuple(random_deletion),
                        area(deletion), area(insertion), area(random_deletion))


def field_totals(explanation: Explanation) -> list[tuple[str, float]]:
    """Per-field sums (sender, subject, body, then each URL, defanged) in reading order."""
    totals: dict[str, float] = {}
    for (s, e), kind, value in zip(explanation.spans, explanation.fields, explanation.values):
        name = f"url {defang(explanation.text[s:e])}" if kind == "url" else kind
        totals[name] = totals.get(name, 0.0) + value
    return list(totals.items())


def lora_delta(adapted: Explanation, base: Explanation) -> Explanation:
    """Adapter minus base model, unit by unit: what fine-tuning changed (same units required)."""
    if adapted.spans != base.spans:
        raise ValueError("the two explanations cover different units; explain both at the same level")
    values = tuple(a - b for a, b in zip(adapted.values, base.values))
    return Explanation(adapted.adapter_id, adapted.email_id, f"{adapted.method}-delta", adapted.level,
                       adapted.params, adapted.text, adapted.spans, adapted.fields, values,
                       adapted.base_value - base.base_value, adapted.score - base.score,
                       adapted.evaluations + base.evaluations, adapted.seconds + base.seconds)


def explain_progressively(loaded, mail: Email, max_tokens: int, levels: Sequence[str] = ("field", "sentence", "word"),
                          with_faithfulness: bool = True, seed: int = 0) -> Iterator[Explanation]:
    """Ever finer SHAP explanations of one email; they share one scorer, so each level
    reuses the coarser levels' evaluations. The last one carries its faithfulness curves."""
    builder = prompt_builder(loaded, max_tokens)
    scorer = CoalitionScorer(loaded, layout_email(builder, mail))
    for i, level in enumerate(levels):
        explanation = explain_shap(scorer, mail.id, loaded.adapter_id, max_tokens, level, seed=seed)
        if with_faithfulness and i == len(levels) - 1:
            explanation = with_faithfulness_curves(scorer, explanation, seed)
        yield explanation


def with_faithfulness_curves(scorer: CoalitionScorer, explanation: Explanation, seed: int = 0) -> Explanation:
    """The explanation with its deletion/insertion curves, over its own units."""
    started, evaluations = time.perf_counter(), scorer.evaluations
    units = _Units.of(scorer.layout, explanation.level)
    spans, _ = _spans_and_fields(scorer.layout, units.words)
    if spans != explanation.spans:
        raise ValueError("the explanation was made on another layout of this email")
    curves = faithfulness(scorer, explanation.values, units.tokens, seed=seed)
    return replace(explanation, faithfulness=curves, seconds=explanation.seconds + time.perf_counter() - started,
                   evaluations=explanation.evaluations + scorer.evaluations - evaluations)


@contextmanager
def adapter_disabled(loaded) -> Iterator[object]:
    """The same model with its LoRA adapter switched off (peft), as a zero-shot LoadedModel."""
    if loaded.adapter is None:
        yield loaded
        return
    with loaded.model.disable_adapter():
        yield replace(loaded, adapter=None)


def character_values(explanation: Explanation) -> np.ndarray:
    """Per character of the text: its span's value spread evenly over the span; 0 outside spans.

    Explanations from different tokenizers or levels become comparable on the same characters.
    """
    values = np.zeros(len(explanation.text))
    for (start, end), value in zip(explanation.spans, explanation.values):
        if end > start:
            values[start:end] += value / (end - start)
    return values


def agreement(first: Explanation, second: Explanation) -> float:
    """Spearman rank correlation of two explanations' character values of the same email,
    over the characters either of them attributes (NaN when nothing varies)."""
    from scipy.stats import spearmanr

    if first.text != second.text:
        raise ValueError("agreement compares explanations of the same email text")
    a, b = character_values(first), character_values(second)
    covered = (a != 0) | (b != 0)
    if covered.sum() < 3 or np.ptp(a[covered]) == 0 or np.ptp(b[covered]) == 0:
        return float("nan")
    return float(spearmanr(a[covered], b[covered]).statistic)


def warm_up() -> None:
    """Import shap and compile its numba helpers on a toy four-word game (several seconds,
    once per process), so that the first explanation a user asks for does not pay it."""
    import shap

    masker = _UnitMasker(linkage([[0, 1], [2, 3]], 4), 4)
    explainer = shap.explainers.PartitionExplainer(lambda masks: masks.sum(axis=1).astype(float), masker)
    explainer(np.ones((1, 4)), max_evals=10, silent=True, fixed_context=DEFAULT_FIXED_CONTEXT)
