"""The typer CLI: help a newcomer understands, clear errors, nothing changed on bad input."""

from typer.testing import CliRunner

from cli import app

runner = CliRunner()


def test_help_lists_every_command():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("ingest", "train", "evaluate", "demo", "serve", "status", "trainset", "prepare-model"):
        assert command in result.output


def test_ingest_without_input_is_a_clear_error(tmp_path):
    result = runner.invoke(app, ["--home", str(tmp_path), "ingest"])
    assert result.exit_code == 1
    assert "give corpus PATHS" in result.output


def test_ingest_bad_path_is_a_clear_error(tmp_path):
    result = runner.invoke(app, ["--home", str(tmp_path), "ingest", str(tmp_path / "nope.csv")])
    assert result.exit_code == 1
    assert "does not exist" in result.output


def test_ingest_and_status_on_a_real_corpus(tmp_path, shared_data):
    result = runner.invoke(app, ["--home", str(tmp_path), "ingest", str(shared_data / "Nazario.csv.gz")])
    assert result.exit_code == 0, result.output
    assert "Nazario: parsed 1563" in result.output
    result = runner.invoke(app, ["--home", str(tmp_path), "trainset", "specialist", "Nazario"])
    assert result.exit_code == 1 and "one class only" in result.output
    result = runner.invoke(app, ["--home", str(tmp_path), "status"])
    assert result.exit_code == 0 and "Nazario" in result.output


def test_train_unknown_training_set_is_a_clear_error(tmp_path):
    result = runner.invoke(app, ["--home", str(tmp_path), "train", "no-such-set"])
    assert result.exit_code == 1
    assert "no-such-set" in result.output and "not in the store" in result.output


def test_serve_binds_to_localhost_unless_told_otherwise(monkeypatch, tmp_path):
    import subprocess

    calls = []
    monkeypatch.setattr(subprocess, "call", lambda command, env: calls.append(command) or 0)
    monkeypatch.delenv("PHISHLENS_HOST", raising=False)
    runner.invoke(app, ["--home", str(tmp_path), "serve"])
    runner.invoke(app, ["--home", str(tmp_path), "serve", "--host", "0.0.0.0"])
    addresses = [c[c.index("--server.address") + 1] for c in calls]
    assert addresses == ["127.0.0.1", "0.0.0.0"]


def test_explain_a_corpus_sample_then_resume_and_reject_unknowns(evaluated_settings):
    settings = evaluated_settings
    common = ["--home", str(settings.home), "--store", str(settings.store_path), "--model", settings.model,
              "--device", "cpu"]
    ts = "specialist-synthetic-corporate"
    args = [*common, "explain", "--corpus", "synthetic-webmail", "--training-set", ts, "--sample-size", "3",
            "--method", "gradxinput", "--max-tokens", "96"]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    assert "explained 3 emails of synthetic-webmail" in first.output
    again = runner.invoke(app, args)
    assert again.exit_code == 0 and "explained 0 emails" in again.output and "3 were cached" in again.output
    unknown = runner.invoke(app, [*common, "explain", "--corpus", "no-such-corpus"])
    assert unknown.exit_code == 1 and "no corpus 'no-such-corpus'" in unknown.output
    bad = runner.invoke(app, [*common, "explain", "--corpus", "synthetic-webmail", "--method", "lime"])
    assert bad.exit_code == 1 and "--method must be one of" in bad.output


def test_status_names_the_scorer_of_every_matrix_row(evaluated_settings):
    result = runner.invoke(app, ["--home", str(evaluated_settings.home), "--store", str(evaluated_settings.store_path),
                                 "status"])
    assert result.exit_code == 0, result.output
    block = result.output.split("F1 matrix per scorer", 1)[1].split("\n\n", 1)[0]
    rows = [line.strip() for line in block.splitlines()[2:] if line.strip()]
    bag = "bag of words (TF-IDF + LR)"
    scorers = {bag if row.startswith(bag) else row.split()[0] for row in rows}
    assert scorers == {bag, evaluated_settings.model}, scorers
    # Each (scorer, training set, corpus) is one row: no two rows share a name.
    keys = [(row.startswith(bag), *row.split()[-6:-4]) for row in rows]  # (is bag, training set, corpus)
    assert len(keys) == len(set(keys))
    assert {k[1:] for k in keys if k[0]} <= {k[1:] for k in keys if not k[0]}  # same sets, told apart


def test_compare_two_architectures_pairs_their_generalists_seed_with_seed(two_family_settings):
    from data.store import Store
    from diagnostics.analyses.paired import compare_on_corpora

    with Store.open(two_family_settings.store_path, read_only=True) as store:
        scorers = store.scorer_catalogue()
        adapters = scorers[scorers["kind"] == "adapter"]
        llama, gemma = sorted(adapters["model"].unique(), key=lambda m: "gemma" in m)
        generalists = adapters[adapters["training_set"] == "generalist"]
        a = generalists[(generalists["model"] == llama) & (generalists["seed"] == 13)]["id"].iloc[0]
        b = generalists[generalists["model"] == gemma]["id"].iloc[0]
        expected = compare_on_corpora(store.paired_verdicts(a, b))
    common = ["--home", str(two_family_settings.home), "--store", str(two_family_settings.store_path)]
    result = runner.invoke(app, [*common, "compare", llama, gemma])
    assert result.exit_code == 0, result.output
    assert f"({a})" in result.output and f"({b})" in result.output
    assert result.output.count("\nA = ") == 1  # Gemma has one generalist seed: one pair, seed 13 with seed 13
    for corpus, c in expected.items():
        line = next(line for line in result.output.splitlines() if line.strip().startswith(f"{corpus}:"))
        assert f"n = {c.n}" in line and (f"p = {c.mcnemar_p:.3g}" in line or "undefined" in line)
    # Two scorers by name; an unknown name says what is known.
    names = dict(zip(scorers["id"], scorers["name"]))
    by_name = runner.invoke(app, [*common, "compare", names[a], names[b]])
    assert by_name.exit_code == 0 and f"({a})" in by_name.output
    unknown = runner.invoke(app, [*common, "compare", "no-such", names[b]])
    assert unknown.exit_code == 1 and "no scorer 'no-such'" in unknown.output and llama in unknown.output


def test_a_training_set_with_two_seeds_is_named_by_scorer_id(two_family_settings):
    common = ["--home", str(two_family_settings.home), "--store", str(two_family_settings.store_path),
              "--model", two_family_settings.model, "--device", "cpu"]
    ambiguous = runner.invoke(app, [*common, "diagnose", "direct-logit-attribution", "--corpus", "synthetic-webmail",
                                    "--training-set", "generalist"])
    assert ambiguous.exit_code == 1 and "2 adapters of" in ambiguous.output and "--scorer" in ambiguous.output
    status = runner.invoke(app, [*common, "status"])
    assert status.exit_code == 0 and "(seed 14)" in status.output
