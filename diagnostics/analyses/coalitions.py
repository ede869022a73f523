"""Scoring one email with some of its tokens removed, fast: the coalition scorer SHAP and the
faithfulness curves call thousands of times.

A removed unit is dropped from the prompt rather than replaced by a mask token (shorter
prompts); the instruction and question are never removed; and every coalition reuses the
full prompt's key/value cache up to its first removed token, batched with coalitions of
similar prefix. Identical coalitions (the coarse pass's, again in the word pass) are scored once.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from diagnostics.analyses.layout import EmailLayout
from models.classifier import Classifier
from models.scoring import label_token_ids


class CoalitionScorer:
    """Scores one email with some of its tokens removed; many coalitions per batch.

    Every prompt shares the full prompt's first tokens up to its first removed token;
    those reuse the full prompt's key/value cache. Results are memoised per coalition.
    """

    def __init__(self, loaded: Classifier, layout: EmailLayout, batch_size: int = 16, max_prefix_gap: int | None = None):
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
