"""Evaluation-only (held-out) corpora: ingested next to the real corpora they are all test, no
training set can draw on them, and every matrix shows them as their own column group: the
Overview heatmap, the gap table, the Study findings (first) and its HTML report."""

import json
from dataclasses import replace

import pytest
from typer.testing import CliRunner

from cli import app
from data.corpora import ingest_emails
from data.splits import SplitError, build_generalist, build_specialist, split_corpus
from data.store import Store
from data.synthetic import generate_synthetic_corpora

runner = CliRunner()
HELD_OUT = "LingSpam"


@pytest.fixture(scope="module")
def held_out_home(shared_data, tmp_path_factory):
    """Three real corpora ingested by the CLI from a folder of links to ../shared/data, LingSpam held out."""
    home = tmp_path_factory.mktemp("held-out")
    folder = home / "data"
    folder.mkdir()
    for name in ("LingSpam.csv.gz", "Nazario.csv.gz", "SpamAssassin"):
        (folder / name).symlink_to(shared_data / name)  # read in place, never copied
    result = runner.invoke(app, ["--home", str(home), "ingest", "--data", str(folder), "--held-out", HELD_OUT])
    assert result.exit_code == 0, result.output
    assert f"{HELD_OUT}: parsed" in result.output and "held out: evaluation only" in result.output
    return home


def test_a_held_out_corpus_is_all_test_and_no_training_set_draws_on_it(held_out_home):
    common = ["--home", str(held_out_home)]
    for args in (["trainset", "specialist", "SpamAssassin", "--size", "64"], ["trainset", "generalist", "--size", "64"],
                 ["trainset", "fticl", "SpamAssassin", "--size", "64"]):
        assert runner.invoke(app, common + args).exit_code == 0
    refused = runner.invoke(app, common + ["trainset", "specialist", HELD_OUT])
    assert refused.exit_code == 1 and "held out for evaluation only" in refused.output
    with Store.open(held_out_home / "store.duckdb") as store:
        assert store.held_out_corpora() == [HELD_OUT]
        assert HELD_OUT not in store.training_corpora() and HELD_OUT not in store.two_class_corpora()
        held = set(store.emails_of_corpus(HELD_OUT)["id"])
        splits = store.query("SELECT split, count(*) AS n FROM splits WHERE corpus = ? GROUP BY split", [HELD_OUT])
        assert dict(zip(splits["split"], splits["n"])) == {"test": len(held)} and len(held) > 2000
        for name in store.training_sets()["name"]:
            trained = set(store.query("SELECT email_id FROM training_set_emails WHERE training_set = ?",
                                      [name])["email_id"])
            assert trained and not trained & held, name
        assert "generalist" in set(store.training_sets()["name"])
        generalist = store.training_set("generalist")
        assert HELD_OUT not in generalist["corpora"]
        with pytest.raises(SplitError, match="held out"):
            build_generalist(store, store.corpus_names(), 64)
        with pytest.raises(SplitError, match="held out"):
            build_specialist(store, HELD_OUT, 64, name="sneaky")
        assert store.leaked_test_emails() == 0
        # Splitting again (a resumed ingest) keeps it all test.
        split_corpus(store, HELD_OUT, 0.2, 13)
        assert store.scalar("SELECT count(*) FROM splits WHERE corpus = ? AND split <> 'test'", [HELD_OUT]) == 0


def test_holding_out_a_corpus_the_folder_lacks_or_the_store_trains_on_is_refused(held_out_home, tmp_path):
    folder = held_out_home / "data"
    missing = runner.invoke(app, ["--home", str(tmp_path), "ingest", "--data", str(folder), "--held-out", "Enron"])
    assert missing.exit_code == 1 and "no such corpus in the folder" in missing.output
    trained = runner.invoke(app, ["--home", str(held_out_home), "ingest", "--data", str(folder),
                                  "--held-out", "Nazario"])
    assert trained.exit_code == 1 and "already in the store as a training corpus" in trained.output


@pytest.fixture
def with_held_out(evaluated_copy):
    """The tiny-model evaluated store plus a held-out synthetic corpus, scored by every scorer."""
    from diagnostics.analyses.evaluate import evaluate, evaluate_reference, evaluation_targets

    settings = evaluated_copy
    info, emails = generate_synthetic_corpora(per_corpus=40, seed=99, planted=False)[1]
    info = replace(info, name="held-out-webmail", eval_only=True)
    emails = [replace(m, corpus=info.name) for m in emails]
    with Store.open(settings.store_path) as store:
        ingest_emails(store, info, emails, False)
        split_corpus(store, info.name, 0.2, settings.seed)
        folders = list(store.adapters()["path"])
        evaluate(store, evaluation_targets(settings.model, folders), [info.name], settings.models_dir, 10, 96,
                 settings.seed, "cpu", progress=False)
        evaluate_reference(store, list(store.training_sets()["name"]), [info.name], 10, settings.seed)
    return settings


def test_overview_and_gap_show_the_held_out_columns_last(monkeypatch, with_held_out):
    from diagnostics.analyses.matrix import generalization_gap
    from tests.conftest import open_app_page

    with Store.open(with_held_out.store_path, read_only=True) as store:
        metrics = store.metrics()
    assert set(metrics.loc[metrics["held_out"], "corpus"]) == {"held-out-webmail"}
    assert not metrics.loc[metrics["held_out"], "in_domain"].any()
    gap = generalization_gap(metrics).set_index("adapter_id")
    held = metrics[metrics["held_out"] & metrics["f1"].notna() & metrics["adapter_id"].isin(gap.index)]
    assert len(held)
    for adapter_id, cells in held.groupby("adapter_id"):
        assert gap.loc[adapter_id, "held_out_f1"] == pytest.approx(cells["f1"].mean())
        assert gap.loc[adapter_id, "held_out_gap"] == pytest.approx(gap.loc[adapter_id, "in_domain_f1"]
                                                                    - cells["f1"].mean())
    at = open_app_page(monkeypatch, with_held_out, "pages/overview.py")
    assert not at.exception, at.exception
    matrix = json.loads(at.get("plotly_chart")[0].proto.spec)
    ticks = matrix["layout"]["xaxis"]["ticktext"]
    assert "held out" in ticks[-1] and not any("held out" in t for t in ticks[:-1])


def test_study_findings_name_the_held_out_result_first_and_the_report_includes_it(with_held_out):
    from diagnostics.analyses.study import parse_spec, plan_study, study_findings, study_results, summarize_study
    from diagnostics.analyses.study_report import study_figures, study_html
    from tests.conftest import tiny_study

    spec = parse_spec(tiny_study(with_held_out.model, held_out=["held-out-webmail"]))
    with Store.open(with_held_out.store_path, read_only=True) as store:
        plan = plan_study(store, spec)
        results = study_results(store, spec, plan, with_held_out.seed)
    assert "held-out-webmail" in plan.test_corpora
    summary = summarize_study(results)
    assert summary["held_out_f1_mean"].notna().any()
    findings = study_findings(summary)
    model_line = next(line for line in findings if line.startswith(with_held_out.model))
    assert model_line.split(": ", 1)[1].startswith("on the held-out corpora")
    html = study_html(spec, summary, findings, study_figures(results, summary))
    assert "held-out-webmail (held out)" in html and "on the held-out corpora" in html


def test_a_spec_cannot_hold_out_a_training_corpus(evaluated_settings):
    from diagnostics.analyses.study import SpecError, parse_spec, plan_study
    from tests.conftest import tiny_study

    with pytest.raises(SpecError, match="both a specialist and held out"):
        parse_spec(tiny_study(evaluated_settings.model, held_out=["synthetic-corporate"]))
    spec = parse_spec(tiny_study(evaluated_settings.model, held_out=["synthetic-webmail"]))
    with Store.open(evaluated_settings.store_path, read_only=True) as store, \
            pytest.raises(SpecError, match="training corpus, not held out"):
        plan_study(store, spec)
