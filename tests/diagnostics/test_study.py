"""Study specs: validation with clear errors, a rerun that does no stored work, resuming after
an interruption, and the report (on the test store: synthetic corpora, tiny model)."""

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from data.store import Store
from diagnostics.analyses.study import (
    eta_sentence,
    remaining_work,
    SpecError,
    load_spec,
    parse_spec,
    plan_study,
    run_study,
    study_findings,
    study_results,
    summarize_study,
    training_lora,
)
from models.finetune import adapter_id
from tests.conftest import study_toml, tiny_study

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def study_copy(evaluated_copy):
    return evaluated_copy


@pytest.mark.parametrize("change,message", [
    ({"colour": "red"}, "unknown field"),
    ({"models": []}, "models must be a non-empty list"),
    ({"seeds": [13, 13]}, "distinct integers"),
    ({"seeds": "13"}, "distinct integers"),
    ({"train_size": 0}, "train_size must be an integer"),
    ({"eval_size": "most"}, "eval_size must be an integer"),
    ({"lora": {"rank": 8}}, "unknown [lora] field"),
    ({"lora": {"seed": 3}}, "the LoRA seed comes from `seeds`"),
    ({"generalist": "yes"}, "generalist must be true or false"),
    ({"fticl_examples": -1}, "fticl_examples must be an integer from 0"),
    ({"fticl_examples": True}, "fticl_examples must be an integer from 0"),
    ({"lora": {"context_examples": 2}}, "unknown [lora] field"),
    ({"lora": {"other-model": {"lr": 1e-3}}}, "[lora.other-model] names no model of this spec"),
    ({"lora": {"m": {"rank": 4}}}, "unknown [lora.m] field"),
])
def test_bad_specs_are_refused_with_the_field_named(change, message):
    with pytest.raises(SpecError, match=message.replace("[", r"\[").replace("`", "`")):
        parse_spec(tiny_study("m", **change))


def test_a_model_table_changes_only_its_model_and_only_the_fields_it_names():
    spec = parse_spec(tiny_study("a", models=["a", "b"], lora={**tiny_study("a")["lora"], "b": {"lr": 1e-3}}))
    assert spec.lora_for("a") == spec.lora and spec.lora.lr == 5e-3
    assert spec.lora_for("b") == replace(spec.lora, lr=1e-3)
    assert training_lora(spec, "b", "generalist", 14) == replace(spec.lora, lr=1e-3, seed=14)
    assert adapter_id("b", "generalist", training_lora(spec, "b", "generalist", 13)) != \
        adapter_id("b", "generalist", training_lora(parse_spec(tiny_study("b")), "b", "generalist", 13))


def test_the_shown_spec_has_one_lora_row_per_model_table_without_the_fields_set_elsewhere():
    from diagnostics.analyses.study_report import spec_fields

    spec = parse_spec(tiny_study("a", models=["a", "b"], lora={**tiny_study("a")["lora"], "b": {"lr": 1e-3}}))
    shown = spec_fields(spec)
    assert shown["lora"].startswith("r=4, alpha=8") and "lr=0.005" in shown["lora"]
    assert "lr=0.001" in shown["lora (b)"] and "lora (a)" not in shown  # a has no table of its own
    assert "target_modules=the family's default" in shown["lora"]
    assert not any("seed=" in v or "context_examples" in v for k, v in shown.items() if k.startswith("lora"))
    assert shown["seeds"] == "13" and shown["models"] == "a, b" and shown["held_out"] == "none"
    assert spec_fields(parse_spec(tiny_study("a", eval_size="all")))["eval_size"] == "the whole test split"


def test_shipped_specs_parse_and_broken_files_are_named(tmp_path):
    default = load_spec(ROOT / "studies" / "default.toml")
    assert default.models == ("smollm2-135m", "gemma3-270m") and len(default.seeds) >= 2 and default.reference
    paper = load_spec(ROOT / "studies" / "paper.toml")
    assert paper.lora.max_tokens == 512 and paper.fticl_examples == 2
    fticl = load_spec(ROOT / "studies" / "fticl.toml")
    # it reuses the default study's data and adapters: same sizes and LoRA settings
    assert (fticl.train_size, fticl.eval_size, fticl.seeds, fticl.lora) == \
        (default.train_size, default.eval_size, default.seeds, default.lora) and fticl.fticl_examples == 2
    full = load_spec(ROOT / "studies" / "cpu-full.toml")
    assert full.lora_for("gemma3-270m").lr < full.lora_for("smollm2-135m").lr == full.lora.lr
    broken = tmp_path / "broken.toml"
    broken.write_text("models = [")
    with pytest.raises(SpecError, match="not valid TOML"):
        load_spec(broken)
    with pytest.raises(SpecError, match="no study spec at"):
        load_spec(tmp_path / "missing.toml")


def test_unknown_corpus_and_a_different_training_set_size_are_named(evaluated_settings):
    with Store.open(evaluated_settings.store_path, read_only=True) as store:
        with pytest.raises(SpecError, match="corpus 'Enron' is not in the store"):
            plan_study(store, parse_spec(tiny_study(evaluated_settings.model, specialists=["Enron"])))
        with pytest.raises(SpecError, match="holds 32 emails but the spec asks for train_size = 64"):
            plan_study(store, parse_spec(tiny_study(evaluated_settings.model, train_size=64)))


def _work(store) -> tuple[int, int]:
    return (store.scalar("SELECT count(*) FROM runs WHERE kind = 'train'"),
            store.scalar("SELECT count(*) FROM predictions"))


def test_rerunning_a_study_does_no_stored_work_and_resumes_after_an_interruption(study_copy, monkeypatch):
    spec = parse_spec(tiny_study(study_copy.model))
    with Store.open(study_copy.store_path) as store:
        before = _work(store)
        run_study(store, study_copy, spec, progress=False)  # the fixture's protocol already did all of it
        assert _work(store) == before

        # A second LoRA seed; the job is interrupted after its first new adapter.
        two_seeds = parse_spec(tiny_study(study_copy.model, seeds=[13, 14]))
        import diagnostics.runners.pipeline as jobs

        real_finetune, calls = jobs.finetune_adapter, []

        def interrupted(*args, **kwargs):
            calls.append(1)
            if len(calls) == 2:
                raise KeyboardInterrupt("killed")
            return real_finetune(*args, **kwargs)

        monkeypatch.setattr(jobs, "finetune_adapter", interrupted)
        with pytest.raises(KeyboardInterrupt):
            run_study(store, study_copy, two_seeds, progress=False)
        monkeypatch.setattr(jobs, "finetune_adapter", real_finetune)
        trained_before_resume = store.scalar("SELECT count(*) FROM adapters")
        from diagnostics.analyses.evaluate import evaluation_samples

        work = remaining_work(store, two_seeds, plan_study(store, two_seeds), study_copy.seed)
        tests = sum(map(len, evaluation_samples(store, plan_study(store, two_seeds).test_corpora, 20,
                                                study_copy.seed).values()))
        assert work["adapters_to_train"].sum() == 1  # the interrupted one; its sibling was saved
        assert work["emails_to_score"].sum() == 2 * tests  # neither new adapter is evaluated yet
        assert work["train_seconds"].gt(0).all() and work["score_seconds"].gt(0).all()  # this store's rates
        assert f"to do: 1 adapters to train, {2 * tests} test-email scorings; about " in eta_sentence(work)
        run_study(store, study_copy, two_seeds, progress=False)
        assert eta_sentence(remaining_work(store, two_seeds, plan_study(store, two_seeds), study_copy.seed)) \
            == "to do: nothing; every adapter is trained and every test email scored"
        assert store.scalar("SELECT count(*) FROM adapters") == trained_before_resume + 1  # only the missing one
        plan = plan_study(store, two_seeds)
        results = study_results(store, two_seeds, plan, study_copy.seed)
        assert set(results["seed"].dropna()) == {13, 14}
        assert set(results["model"]) == {study_copy.model, "tfidf-lr"}
        assert len(results[results["seed"] == 14]) == 2 * 3  # 2 training sets × 3 corpora
        summary = summarize_study(results)
        generalist = summary[(summary["model"] == study_copy.model) & (summary["paradigm"] == "generalist")]
        assert generalist["in_domain_f1_std"].notna().all()  # two seeds: a spread
        assert generalist["noise"].isin(["LoRA seeds", "test sample", "comparable"]).all()
        assert generalist["sample_se"].gt(0).all()
        # collapse counts agree with the store's detector, adapter by adapter
        collapsed = set(store.collapsed_scorers()["adapter_id"]) & set(results["adapter_id"])
        assert summary["collapsed"].fillna(0).sum() == len(collapsed)
        assert summary.loc[summary["model"] == study_copy.model, "adapters"].sum() == 4  # 2 sets × 2 seeds
        said = " ".join(study_findings(summary))
        assert ("adapters collapsed to one verdict" in said) == bool(collapsed)
        after = _work(store)
        run_study(store, study_copy, two_seeds, progress=False)
        assert _work(store) == after


def test_study_command_reports_and_refuses_a_badtiny_study(study_copy, tmp_path):
    from cli import app

    good = tmp_path / "tiny.toml"
    good.write_text(study_toml(tiny_study(study_copy.model)))
    base = ["--home", str(study_copy.home), "--store", str(study_copy.store_path), "--device", "cpu", "study"]
    result = CliRunner().invoke(app, base + [str(good), "--report-only"])
    assert result.exit_code == 0, result.output
    assert "study tiny: 2 adapters" in result.output and "specialists reach" in result.output
    assert "power: eval_size = 20 test emails per corpus: each cell's 95% interval on F1 is about ±" in result.output
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "x"\nmodels = ["a"]\nseeds = []\n')
    result = CliRunner().invoke(app, base + [str(bad)])
    assert result.exit_code == 1 and "seeds must be a non-empty list" in result.output


def test_fticl_is_its_own_paradigm_trained_on_the_specialists_emails(study_copy):
    from data.records import LoraSettings
    from diagnostics.runners.pipeline import train_training_set

    spec = parse_spec(tiny_study(study_copy.model, fticl_examples=2, lora={**tiny_study("m")["lora"],
                                                                           "context_tokens": 24}))
    with Store.open(study_copy.store_path) as store:
        plan = plan_study(store, spec)
        assert "fticl-synthetic-corporate" in plan.training_sets
        before = _work(store)
        run_study(store, study_copy, spec, progress=False)
        assert _work(store)[0] == before[0] + 1  # only the FTICL adapter is new
        fticl = store.training_set("fticl-synthetic-corporate")
        assert fticl["kind"] == "fticl" and list(fticl["corpora"]) == ["synthetic-corporate"]
        same_emails = store.query("SELECT training_set, list_sort(list(email_id)) AS ids FROM training_set_emails "
                                  "WHERE training_set IN ('fticl-synthetic-corporate', 'specialist-synthetic-corporate') "
                                  "GROUP BY training_set")
        assert list(same_emails["ids"].iloc[0]) == list(same_emails["ids"].iloc[1])
        results = study_results(store, spec, plan, study_copy.seed)
        icl = results[results["paradigm"] == "fticl"]
        assert set(icl["model"]) == {study_copy.model}  # no bag-of-words row: it has no context to fill
        assert icl.set_index("corpus")["in_domain"].to_dict()["synthetic-corporate"]
        plain = results[(results["paradigm"] == "specialist") & (results["model"] == study_copy.model)]
        assert len(icl) == 3 and icl.set_index("corpus")["n"].to_dict() == plain.set_index("corpus")["n"].to_dict()
        adapter = store.adapters().set_index("training_set").loc["fticl-synthetic-corporate"]
        assert '"context_examples": 2' in adapter["hyperparameters"]
        summary = summarize_study(results)
        assert "fticl" in set(summary["paradigm"])
        findings = " ".join(study_findings(summary))
        assert "with in-context examples (FTICL)" in findings and "against plain fine-tuning, so the gap" in findings
        after = _work(store)
        run_study(store, study_copy, spec, progress=False)
        assert _work(store) == after
        # the paradigm label must stay true to how an adapter was trained
        with pytest.raises(ValueError, match="train it with in-context examples"):
            train_training_set(store, study_copy, "fticl-synthetic-corporate", LoraSettings(seed=99), progress=False)
        with pytest.raises(ValueError, match="train on an fticl-<corpus> set"):
            train_training_set(store, study_copy, "specialist-synthetic-corporate",
                               LoraSettings(seed=99, context_examples=2), progress=False)


def test_study_on_an_empty_store_says_to_ingest_and_ingests_with_data(tiny_model_dir, real_emails, tmp_path):
    import csv

    from cli import app

    spec = tmp_path / "one.toml"
    spec.write_text(study_toml(tiny_study(str(tiny_model_dir), specialists=["Mini"], generalist=False,
                                          train_size=8, eval_size=4, reference=False)))
    base = ["--home", str(tmp_path / "home"), "--device", "cpu", "study", str(spec)]
    result = CliRunner().invoke(app, base)
    assert result.exit_code == 1 and "the store holds no corpora yet" in result.output

    data = tmp_path / "data"
    data.mkdir()
    picked = [m for m in real_emails if m.label == 0][:12] + [m for m in real_emails if m.label == 1][:12]
    with open(data / "Mini.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["subject", "body", "label"])
        writer.writerows([m.subject, m.body, m.label] for m in picked)
    result = CliRunner().invoke(app, base + ["--data", str(data)])
    assert result.exit_code == 0, result.output
    assert "study tiny: 1 adapters, 1 test corpora" in result.output


def _seeded_cells(seed_f1s: dict[int, float], half_width: float, paradigm: str = "generalist",
                  training_sets: tuple[str, ...] = ("generalist",)) -> pd.DataFrame:
    return pd.DataFrame([{"model": "m", "paradigm": paradigm, "training_set": name, "corpus": corpus, "seed": seed,
                          "f1": f1 + shift + offset, "f1_low": f1 + shift + offset - half_width,
                          "f1_high": f1 + shift + offset + half_width}
                         for name, offset in zip(training_sets, (0.0, -0.4, 0.3))
                         for corpus, shift in (("A", 0.0), ("B", -0.1)) for seed, f1 in seed_f1s.items()])


def test_noise_sources_say_whether_seeds_or_the_test_sample_dominate_and_the_finding_follows():
    from diagnostics.analyses.study import noise_sources

    seeds_spread = noise_sources(_seeded_cells({13: 0.70, 14: 0.90}, half_width=0.04))
    assert seeds_spread.loc[0, "seed_sd"] == pytest.approx(np.std([0.7, 0.9], ddof=1))
    assert seeds_spread.loc[0, "sample_se"] == pytest.approx(0.04 / 1.96)
    assert seeds_spread.loc[0, "noise"] == "LoRA seeds"
    sample_wide = noise_sources(_seeded_cells({13: 0.80, 14: 0.81}, half_width=0.15))
    assert sample_wide.loc[0, "noise"] == "test sample"
    assert noise_sources(_seeded_cells({13: 0.8}, half_width=0.1)).empty  # one seed: no spread to weigh
    # specialists differ from each other by design: only each one's seeds count as noise
    specialists = noise_sources(_seeded_cells({13: 0.80, 14: 0.81}, 0.05, "specialist", ("s-A", "s-B", "s-C")))
    assert specialists.loc[0, "seed_sd"] == pytest.approx(np.std([0.80, 0.81], ddof=1))
    assert specialists.loc[0, "noise"] == "test sample"

    def finding(noise: pd.DataFrame) -> str:
        summary = pd.DataFrame([{"model": "m", "paradigm": "generalist", "in_domain_f1_mean": 0.8,
                                 "out_domain_f1_mean": 0.7, "held_out_f1_mean": np.nan, "gap": 0.1}]).merge(noise)
        return study_findings(summary)[-1]

    assert "the seeds dominate" in finding(seeds_spread) and "varies by 0.141 (sd)" in finding(seeds_spread)
    assert "the test sample dominates" in finding(sample_wide)


def test_cell_power_uses_each_corpus_test_split_so_a_corpus_short_of_phishing_stays_wide(real_store):
    from diagnostics.analyses.paired import f1_half_width
    from diagnostics.analyses.study import cell_power

    spec = parse_spec({**tiny_study("smollm2-135m"), "specialists": ["EnronSpam"], "eval_size": 1200})
    power = cell_power(real_store, spec, plan_study(real_store, spec)).set_index("corpus")
    counts = real_store.split_counts()
    ling = counts[(counts["corpus"] == "LingSpam") & (counts["split"] == "test")]
    assert power.loc["LingSpam", "test_emails"] == ling["n"].sum() < 1200  # the whole split: it is smaller
    share = ling.loc[ling["label"] == 1, "n"].sum() / ling["n"].sum()
    assert power.loc["LingSpam", "f1_half_width"] == pytest.approx(
        f1_half_width(int(ling["n"].sum()), 0.85, share), abs=1e-3)
    assert power.loc["EnronSpam", "test_emails"] == 1200
    assert power.loc["LingSpam", "f1_half_width"] > 0.04 >= power.loc["EnronSpam", "f1_half_width"]
    assert not power.loc["LingSpam", "enough"] and power.loc["EnronSpam", "enough"]


def test_the_budget_finding_weights_cells_by_emails_names_the_corpus_cut_most_and_spares_the_bag_of_words():
    from diagnostics.analyses.study import budget_cuts

    cells = pd.DataFrame([
        {"model": "m", "paradigm": "generalist", "corpus": "A", "n": 300, "cut_share": 0.2, "median_cut_tokens": 40.0},
        {"model": "m", "paradigm": "generalist", "corpus": "B", "n": 100, "cut_share": 0.9, "median_cut_tokens": 390.0},
        {"model": "tfidf-lr", "paradigm": "generalist", "corpus": "A", "n": 300, "cut_share": 0.0,
         "median_cut_tokens": np.nan},
    ])
    cuts = budget_cuts(cells).set_index("model")
    assert cuts.loc["m", "cut_share"] == pytest.approx((0.2 * 300 + 0.9 * 100) / 400)
    assert cuts.loc["m", "most_cut_corpus"] == "B" and cuts.loc["m", "most_cut_median_tokens"] == 390
    summary = pd.DataFrame([{"model": model, "paradigm": "generalist", "in_domain_f1_mean": 0.8,
                             "out_domain_f1_mean": np.nan, "held_out_f1_mean": np.nan, "gap": np.nan}
                            for model in ("m", "tfidf-lr")]).merge(cuts.reset_index())
    lines = study_findings(summary)
    said = [line for line in lines if "token budget" in line]
    assert said == [line for line in lines if line.startswith("m: its token budget cut 38% ")]
    assert "B most: 90%, a median of 390 tokens" in said[0] and "the bag of words reads every token" in said[0]
    assert not any("token budget" in line for line in study_findings(summary[summary["model"] == "tfidf-lr"]))
    assert "bag of words" not in study_findings(summary[summary["model"] == "m"])[-1]
