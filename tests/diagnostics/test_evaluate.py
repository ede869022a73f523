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
        cut = frame["truncated_tokens"]
        assert row["cut_share"] == pytest.approx((cut > 0).mean())
        assert (pd.isna(row["median_cut_tokens"]) and not (cut > 0).any()) or \
            row["median_cut_tokens"] == pytest.approx(cut[cut > 0].median())
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


def test_the_matrix_says_how_much_of_the_emails_the_budget_cut_and_unrecorded_cuts_are_not_zeros(store):
    cuts = [0, 0, 10, 30]
    store.add_predictions([Prediction("r", "a", "m", f"e{i}", "c", 1.0, 1, i % 2, cut) for i, cut in enumerate(cuts)])
    with store.connection() as con:  # a prediction from before truncation was recorded (schema v1)
        con.execute("UPDATE predictions SET truncated_tokens = NULL WHERE email_id = 'e0'")
    row = store.metrics().iloc[0]
    assert row["n"] == 4 and row["cut_share"] == pytest.approx(2 / 3)
    assert row["median_cut_tokens"] == pytest.approx(20)


def test_predictions_are_not_duplicated(store):
    rows = [Prediction("r1", "a", "m", "e1", "c", 0.5, 1, 1)]
    assert store.add_predictions(rows) == 1
    assert store.add_predictions([Prediction("r2", "a", "m", "e1", "c", 0.7, 1, 1)]) == 0
    assert store.query("SELECT count(*) AS n FROM predictions")["n"][0] == 1


def test_evaluation_resumes_without_rescoring(evaluated_settings):
    from diagnostics.analyses.evaluate import EvaluationTarget, evaluate

    with Store.open(evaluated_settings.store_path) as store:
        before = store.query("SELECT count(*) AS n FROM predictions")["n"][0]
        run_id = evaluate(store, [EvaluationTarget(evaluated_settings.model)], store.corpus_names(),
                          evaluated_settings.models_dir, 20, 96, evaluated_settings.seed, "cpu", progress=False)
        after = store.query("SELECT count(*) AS n FROM predictions")["n"][0]
        params = store.run_params(run_id)
    assert after == before
    assert list(params["already_scored"]) == [f"zero-shot:{evaluated_settings.model}"]  # the run says why


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


def test_evaluation_in_int8_rescores_with_calibration_from_training_emails(evaluated_copy):
    """An int8 evaluation scores the same test emails, calibrated on training-split emails only,
    and its run says it ran in int8 and how far int8 moved scores on other training emails."""
    import numpy as np

    from diagnostics.analyses.evaluate import EvaluationTarget, calibration_emails, evaluate, precision_check_emails

    with Store.open(evaluated_copy.store_path) as store:
        fp32 = store.query("SELECT email_id, score FROM predictions WHERE adapter_id LIKE 'zero-shot:%' "
                           "ORDER BY email_id")
        store.execute("DELETE FROM predictions WHERE adapter_id LIKE 'zero-shot:%'")
        calibration = calibration_emails(store, store.corpus_names(), evaluated_copy.seed)
        train_ids = set(store.query("SELECT email_id FROM splits WHERE split = 'train'")["email_id"])
        assert calibration and {m.id for m in calibration} <= train_ids
        check = precision_check_emails(store, store.corpus_names(), evaluated_copy.seed, calibration)
        assert check and {m.id for m in check} <= train_ids and not {m.id for m in check} & {m.id for m in calibration}
        run_id = evaluate(store, [EvaluationTarget(evaluated_copy.model)], store.corpus_names(),
                          evaluated_copy.models_dir, 20, 96, evaluated_copy.seed, "cpu", progress=False,
                          compile_mode="off", precision="int8")
        int8 = store.query("SELECT email_id, score FROM predictions WHERE adapter_id LIKE 'zero-shot:%' "
                           "ORDER BY email_id")
        params = store.run_params(run_id)
    assert params["precision"] == "int8"
    [(scorer, checked)] = params["precision_checks"].items()
    assert scorer.startswith("zero-shot:") and checked["precision"] == "int8" and checked["emails"] == len(check)
    assert 0 < checked["mean_abs_score_change"] <= checked["max_abs_score_change"] < 2
    assert list(int8["email_id"]) == list(fp32["email_id"])
    assert not np.allclose(int8["score"], fp32["score"], atol=1e-5)
    assert np.corrcoef(int8["score"], fp32["score"])[0, 1] > 0.9


def test_evaluating_a_store_without_test_emails_says_to_ingest_first(tmp_path, settings):
    from diagnostics.analyses.evaluate import EvaluationTarget, evaluate

    with Store.open(tmp_path / "empty.duckdb") as store:
        with pytest.raises(ValueError, match="ingest corpora first"):
            evaluate(store, [EvaluationTarget("smollm2-135m")], store.corpus_names(), settings.models_dir, 20, 96,
                     progress=False)
        assert store.scalar("SELECT count(*) FROM runs") == 0


def test_unknown_precision_fails_before_any_work(evaluated_copy):
    from diagnostics.analyses.evaluate import EvaluationTarget, evaluate
    from models.precision import PrecisionError

    with Store.open(evaluated_copy.store_path) as store:
        runs = store.scalar("SELECT count(*) FROM runs")
        with pytest.raises(PrecisionError, match="fp32, bf16, int8"):
            evaluate(store, [EvaluationTarget(evaluated_copy.model)], store.corpus_names(),
                     evaluated_copy.models_dir, 20, 96, evaluated_copy.seed, "cpu", progress=False, precision="fp8")
        assert store.scalar("SELECT count(*) FROM runs") == runs
