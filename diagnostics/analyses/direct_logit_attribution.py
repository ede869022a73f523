"""Direct logit attribution per head: how much of the score each attention head writes straight
into the answer position's residual stream, read along the unembedding direction of
(positive label word − negative label word) after the final norm's scaling. Heads with a large
value push the verdict directly; a head can matter by ablation (Head effects tab) without a
direct write, through the heads and MLPs after it.

Computed by transformer_lens.tools.analysis.direct_logit_attribution on a bridge in
compatibility mode (final norm folded into the unembedding, which leaves the logit difference
unchanged); one prompt per forward pass, since the library reads the cache at position −1 and a
left-padded batch would need its own masking. The heads' values plus the remainder (embedding,
MLPs, biases) add up to the score before any final logit soft-capping (Gemma 2).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from data.records import ScorerRef
from diagnostics.analyses.bridge import HeadModel
from diagnostics.contracts.job import Progress, WorkerEnv
from diagnostics.analyses.per_head import HeadValues, PerHeadDiagnostic


class DirectLogitAttribution(PerHeadDiagnostic):
    name = "direct-logit-attribution"
    unit = "Δ score"

    def open(self, scorer: ScorerRef, adapter_dir: Path | None, env: WorkerEnv) -> HeadModel:
        hm = super().open(scorer, adapter_dir, env)
        hm.bridge.enable_compatibility_mode()  # the library's precondition for correct DLA numbers
        return hm

    def values(self, model: HeadModel, prompts: Sequence[list[int]], batch_size: int,
               on_progress: Progress | None = None) -> HeadValues:
        from transformer_lens.tools.analysis import direct_logit_attribution

        positive, negative = torch.tensor([model.positive]), torch.tensor([model.negative])
        per_head = np.zeros((len(prompts), model.n_layers, model.n_heads))
        remainder = np.zeros(len(prompts))
        with torch.inference_mode():
            for i, prompt in enumerate(prompts):
                result = direct_logit_attribution(model.bridge, torch.tensor([prompt], device=model.device),
                                                  answer_tokens=positive, incorrect_tokens=negative, unit="head")
                values = result.attribution[:, 0].double().cpu().numpy()  # heads L0H0 … then the remainder
                per_head[i] = values[:-1].reshape(model.n_layers, model.n_heads)
                remainder[i] = values[-1]
                if on_progress:
                    on_progress(1)
        return HeadValues(per_head, remainder)
