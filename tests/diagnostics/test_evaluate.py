"""The F1 matrix comes from SQL over predictions; check it against an independent count."""

import pandas as pd
import pytest

from data.records import Prediction
from data.store import Store


def _f1(frame: pd.DataFrame) -> float:
    tp = ((frame.true_label == 1) & (frame.predicted == 1)).sum()
    fp = ((frame.true_label == 0) & (frame.predicted == 1)).sum()
    fn = ((frame.true_label == 1) & (frame.predicted == 0)).sum()
    return 2 * tp / (2 * tp + fp + fn)


def test_protocol_writes_one_prediction_per_adapter_and_email(evaluated_settings):
    with Store.open(evaluated_settings.store_path, read_only=True) as store:
        counts = store.query("SELECT adapter_id, corpus, count(*) AS n, count(DISTINCT email_id) AS d "
                             "FROM predictions GROUP BY ALL")
        # zero-shot + specialist + generalist and the bag-of-words reference on both training sets, on 3 corpora
        assert len(counts) == 5 * 3
        test_sizes = store.query("SELECT corpus, count(*) AS n FROM splits WHERE split = 'test' GROUP BY corpus")
        assert (test_sizes["n"] == 12).all()  # 60 emails per corpus, 20% held out; eval_size 20 takes all
        assert (counts["n"] == 12).all() and (counts["n"] == counts["d"]).all()
        # The protocol's own runs (other tests add heads and explain runs to this shared store).
        runs = store.query("SELECT kind, status FROM runs WHERE kind IN ('train', 'evaluate')")
        assert set(runs["status"]) == {"done"}
        # two adapters trained; LLMs then the reference evaluated (later tests may add evaluate runs)
        assert (runs["kind"] == "train").sum() == 2 and (runs["kind"] == "evaluate").sum() >= 2
        # every predicted email is a test email, never a training email
        leaked = store.query("SELECT count(*) AS n FROM predictions p JOIN splits s ON s.email_id = p.email_id "
                             "WHERE s.split <> 'test'")["n"][0]
        assert leaked == 0


def test_metrics_sql_matches_independent_count(evaluated_settings):
    with Store.open(evaluated_settings.store_path, read_only=True) as store:
        metrics = store.metrics().set_index(["adapter_id", "corpus"])
        predictions = store.query("SELECT * FROM predictions")
    for (adapter, corpus), frame in predictions.groupby(["adapter_id", "corpus"]):
        row = metrics.loc[(adapter, corpus)]
        assert row["f1"] == pytest.approx(_f1(frame))
        assert row["accuracy"] == pytest.approx((frame.true_label == frame.predicted).mean())
        assert row["n"] == len(frame)
    in_domain = metrics[metrics["in_domain"]].reset_index()
    assert set(in_domain["training_set"]) == {"specialist-synthetic-corporate", "generalist"}
    assert set(in_domain.loc[in_domain["training_set"] == "generalist", "corpus"]) == {
        "synthetic-corporate", "synthetic-listdump", "synthetic-webmail"}


def test_one_class_corpus_reports_recall_not_f1(store):
    predictions = [Prediction("r", "a", "m", f"e{i}", "Nazario", 1.0 if i < 7 else -1.0, int(i < 7), 1)
                   for i in range(10)]
    store.add_predictions(predictions)
    row = store.metrics().iloc[0]
    assert pd.isna(row["f1"]) and pd.isna(row["precision"])
    assert row["recall"] == pytest.approx(0.7)
    assert not row["both_classes"]


def test_predictions_are_not_duplicated(store):
    rows = [Prediction("r1", "a", "m", "e1", "c", 0.5, 1, 1)]
    assert store.add_predictions(rows) == 1
    assert store.add_predictions([Prediction("r2", "a", "m", "e1", "c", 0.7, 1, 1)]) == 0
    assert store.query("SELECT count(*) AS n FROM predictions")["n"][0] == 1


def test_evaluation_resumes_without_rescoring(evaluated_settings):
    from diagnostics.evaluate import EvaluationTarget, evaluate

    with Store.open(evaluated_settings.store_path) as store:
        before = store.query("SELECT count(*) AS n FROM predictions")["n"][0]
        evaluate(store, [EvaluationTarget(evaluated_settings.model)], store.corpus_names(),
                 evaluated_settings.models_dir, 20, 96, evaluated_settings.seed, "cpu", progress=False)
        after = store.query("SELECT count(*) AS n FROM predictions")["n"][0]
    assert after == before


def test_token_budget_truncation_is_recorded(evaluated_settings):
    from models.loading import load_base
    from models.scoring import PromptBuilder

    with Store.open(evaluated_settings.store_path, read_only=True) as store:
        rows = store.query("SELECT email_id, truncated_tokens FROM predictions WHERE adapter_id LIKE 'zero-shot:%'")
        emails = {m.id: m for m in store.emails_by_ids(rows["email_id"])}
    assert rows["truncated_tokens"].max() > 0  # synthetic mails run past the 96-token budget
    loaded = load_base(evaluated_settings.model, evaluated_settings.models_dir, "cpu")
    builder = PromptBuilder(loaded.tokenizer, loaded.spec, 96)
    for row in rows.head(10).itertuples():
        assert row.truncated_tokens == builder.build(emails[row.email_id]).truncated_tokens
