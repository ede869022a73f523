"""The head sweep job: one adapter, a seeded sample of one corpus' test split, stored.

Skips a sweep the store already holds with the same adapter and parameters.
"""

from __future__ import annotations

from collections.abc import Callable

from data.store import Store
from diagnostics.drivers import sample_test_emails
from diagnostics.heads import HeadModel, HeadSweep, email_prompt, prompt_builder, sweep_heads, sweep_params


def sweep_corpus(store: Store, hm: HeadModel, corpus: str, sample_size: int = 200,
                 max_tokens: int = 256, seed: int = 0, ablation: str = "mean", top_k: int = 10,
                 batch_size: int = 4, on_progress: Callable[[str, int, int], None] | None = None) -> HeadSweep | None:
    """Sweep every head of `hm` over a corpus sample and store it; None if already stored."""
    params = sweep_params(corpus, sample_size, max_tokens, seed, ablation, top_k)
    if store.has_head_sweep(hm.adapter_id, params):
        return None
    emails = store.emails_by_ids(sample_test_emails(store, corpus, sample_size, seed))
    builder = prompt_builder(hm, max_tokens)
    prompts = [email_prompt(builder, mail)[0] for mail in emails]
    with store.run("heads", {"adapter": hm.adapter_id, **{"corpus": corpus, "sample": sample_size,
                                                          "ablation": ablation, "top_k": top_k}}) as run_id:
        sweep = sweep_heads(hm, prompts, [m.label for m in emails], ablation, "attribution", top_k, batch_size,
                            on_progress)
        store.add_head_sweep(run_id, corpus, params, sweep)
    return sweep
