"""Attention entropy per head: how spread out the answer position's attention is, in bits, averaged
over a corpus sample. A head near 0 bits reads one token (often the same cue in every email); a
head near log2(prompt length) reads everything evenly. Beside direct logit attribution it tells a
head that decides from one token from one that summarises the whole email. Not additive: there is
no remainder.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from diagnostics.analyses.bridge import HeadModel, hook_pattern
from diagnostics.analyses.per_head import HeadValues, PerHeadDiagnostic
from diagnostics.contracts.job import Progress


class AttentionEntropy(PerHeadDiagnostic):
    name = "attention-entropy"
    unit = "bits"

    def values(self, model: HeadModel, prompts: Sequence[list[int]], batch_size: int,
               on_progress: Progress | None = None) -> HeadValues:
        wanted = {hook_pattern(layer) for layer in range(model.n_layers)}
        per_head = np.zeros((len(prompts), model.n_layers, model.n_heads))
        with torch.inference_mode():
            for i, prompt in enumerate(prompts):  # one prompt per pass: no padding to mask out
                _, cache = model.bridge.run_with_cache(torch.tensor([prompt], device=model.device),
                                                       names_filter=lambda name: name in wanted, use_cache=False)
                for layer in range(model.n_layers):
                    last = cache[hook_pattern(layer)][0, :, -1, :].double().cpu().numpy()  # (heads, positions)
                    per_head[i, layer] = -(last * np.log2(np.clip(last, 1e-12, None))).sum(-1)
                if on_progress:
                    on_progress(1)
        return HeadValues(per_head, np.full(len(prompts), np.nan))
