"""End to end on the real corpora with the real default model (several minutes on 2 CPU cores).

Ingests every corpus of ../shared/data, fine-tunes SmolLM2-135M briefly on a specialist
(Enron-Spam) and a generalist set, evaluates both and the zero-shot base on a seeded
sample of every corpus' test split, and checks that each adapter beats the base model
on its own in-domain test emails.
"""

import json
from pathlib import Path

import pytest

from data.records import LoraSettings
from data.settings import load_settings
from diagnostics.runners.pipeline import ProtocolPlan, run_protocol

PLAN = ProtocolPlan(specialists=("EnronSpam",), train_size=256, eval_size=48,
                    lora=LoraSettings(max_tokens=128, epochs=1, batch_size=8))
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"


def _pooled_f1(store, adapter_id: str, corpora: list[str]) -> float:
    return store.scalar(
        "SELECT 2.0 * count(*) FILTER (true_label = 1 AND predicted = 1) / "
        "nullif(2 * count(*) FILTER (true_label = 1 AND predicted = 1) + count(*) FILTER (true_label <> predicted), 0) "
        "FROM predictions WHERE adapter_id = ? AND list_contains(?, corpus)", [adapter_id, corpora])


@pytest.mark.slow
def test_adapters_beat_zero_shot_in_domain(real_store, default_model_dir):
    settings = load_settings(home=real_store.path.parent, store_path=real_store.path, device="cpu")
    run_protocol(real_store, settings, PLAN, progress=True)

    assert real_store.leaked_test_emails() == 0
    metrics = real_store.metrics()
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "integration_f1_matrix.json").write_text(json.dumps(
        metrics[["training_set", "corpus", "n", "f1", "recall", "precision", "accuracy", "in_domain"]]
        .to_dict("records"), indent=1, default=str))
    print(metrics[["training_set", "corpus", "n", "f1", "recall", "accuracy", "in_domain"]].to_string())

    adapters = real_store.adapters("smollm2-135m")
    assert set(adapters["training_set"]) == {"specialist-EnronSpam", "generalist"}
    zero_shot = "zero-shot:smollm2-135m"
    for adapter in adapters.to_dict("records"):
        corpora = list(real_store.training_set(adapter["training_set"])["corpora"])
        tuned, base = _pooled_f1(real_store, adapter["id"], corpora), _pooled_f1(real_store, zero_shot, corpora)
        assert tuned > base, f"{adapter['training_set']}: F1 {tuned:.3f} on its in-domain tests, zero-shot {base:.3f}"
    # The bag-of-words reference scored the same test emails and is strong in its own domain.
    reference = metrics[metrics["model"] == "tfidf-lr"].set_index(["training_set", "corpus"])
    assert len(reference) == 2 * len(real_store.corpus_names())
    assert reference.loc[("specialist-EnronSpam", "EnronSpam"), "f1"] > 0.8
    assert (reference["n"] == metrics[metrics["adapter_id"] == zero_shot].set_index("corpus")["n"]
            .reindex(reference.index.get_level_values("corpus")).to_numpy()).all()
    # Nazario is phishing only: the matrix reports its recall and leaves F1 empty
    nazario = metrics[metrics["corpus"] == "Nazario"]
    assert nazario["f1"].isna().all() and nazario["recall"].notna().all()
