import pandas as pd
import pytest

from diagnostics.matrix import generalization_gap


def test_generalization_gap_is_in_minus_out():
    metrics = pd.DataFrame([
        dict(adapter_id="s", model="m", training_set="spec", paradigm="specialist", in_domain=True, f1=0.9),
        dict(adapter_id="s", model="m", training_set="spec", paradigm="specialist", in_domain=False, f1=0.5),
        dict(adapter_id="s", model="m", training_set="spec", paradigm="specialist", in_domain=False, f1=0.7),
        dict(adapter_id="z", model="m", training_set="zero-shot", paradigm="zero-shot", in_domain=False, f1=0.6),
    ])
    gap = generalization_gap(metrics)
    assert len(gap) == 1
    assert gap.iloc[0]["gap"] == pytest.approx(0.3)
