"""AppTest: the Study page reports a spec against the test store (synthetic corpora, tiny model,
the bag-of-words reference), and its HTML export is one self-contained, escaped file."""

import json
import re

from tests.conftest import open_app_page, study_toml, tiny_study


def _write_spec(folder, model: str) -> None:
    folder.mkdir(exist_ok=True)
    (folder / "tiny.toml").write_text(study_toml(tiny_study(model, name="tiny <b>study</b>")))
    (folder / "broken.toml").write_text("models = [")


def test_study_page_reports_the_stored_study_and_exports_html(monkeypatch, evaluated_settings, tmp_path):
    studies = tmp_path / "studies"
    _write_spec(studies, evaluated_settings.model)
    monkeypatch.setenv("PHISHLENS_STUDIES", str(studies))
    at = open_app_page(monkeypatch, evaluated_settings, "pages/study.py", spec="tiny")
    assert not at.exception, at.exception
    assert any("specialists reach" in t.value for t in at.text)
    assert len(at.get("plotly_chart")) == 2  # the model's matrix (with bag-of-words rows) and the gap bars
    summary = next(d.value for d in at.dataframe if "gap" in d.value.columns)
    assert set(summary["model"]) == {evaluated_settings.model, "tfidf-lr"}
    power = next(d.value for d in at.dataframe if "f1_half_width" in d.value.columns)
    assert set(power["corpus"]) == {"synthetic-corporate", "synthetic-listdump", "synthetic-webmail"}
    assert power["f1_half_width"].gt(0.04).all() and not power["enough"].any()  # 12 test emails a corpus
    assert any(t.value == "to do: nothing; every adapter is trained and every test email scored" for t in at.text)

    from diagnostics.analyses.study import load_spec, plan_study, study_findings, study_results, summarize_study
    from diagnostics.analyses.study_report import spec_fields, study_figures, study_html
    from data.store import Store

    spec = load_spec(studies / "tiny.toml")
    assert json.loads(at.json[0].value) == spec_fields(spec)  # the page and the report show one spec table
    with Store.open(evaluated_settings.store_path, read_only=True) as store:
        results = study_results(store, spec, plan_study(store, spec), evaluated_settings.seed)
    warned = [w.value for w in at.warning if "of the study's adapters collapsed" in w.value]
    assert bool(warned) == bool(results["collapsed"].any())  # the tiny random-weight adapters may collapse
    summary = summarize_study(results)
    page = study_html(spec, summary, study_findings(summary), study_figures(results, summary))
    assert "tiny &lt;b&gt;study&lt;/b&gt;" in page and "<b>study</b>" not in page
    assert not re.search(r"<script[^>]+src=", page)  # plotly.js inlined: the file opens offline
    assert page.count("Plotly.newPlot") == 2
    assert "context_examples" not in page and "seed=" not in page  # seeds and FTICL are the spec's own fields


def test_study_matrix_rows_follow_the_paradigms():
    import pandas as pd

    from diagnostics.analyses.study_report import matrix_figure

    names = ["bag of words · generalist", "fticl-A", "generalist", "specialist-B", "zero-shot", "specialist-A"]
    matrix = pd.DataFrame({"model": "m", "training_set": names, "corpus": "A", "in_domain": False,
                           "mean": 0.5, "std": 0.1, "runs": 2, "measure": "F1", "intervals": ""})
    rows = list(matrix_figure(matrix, "m").data[0].y)
    assert rows == ["zero-shot", "specialist-A", "specialist-B", "generalist", "fticl-A", "bag of words · generalist"]


def test_study_matrix_hover_says_how_much_the_token_budget_cut():
    import pandas as pd

    from diagnostics.analyses.study_report import matrix_figure, study_matrix

    results = pd.DataFrame({"model": "m", "training_set": ["generalist"] * 4, "corpus": ["A", "A", "B", "B"],
                            "in_domain": False, "held_out": False, "paradigm": "generalist", "f1": 0.9,
                            "recall": 0.9, "f1_low": 0.8, "f1_high": 0.95, "cut_share": [0.5, 0.7, 0.0, None]})
    matrix = study_matrix(results)
    assert matrix.set_index("corpus")["cut_share"].round(3).to_dict() == {"A": 0.6, "B": 0.0}
    hover = matrix_figure(matrix, "m").data[0].hovertext[0]
    assert hover[0].endswith("the token budget cut 60% of these emails (mean over runs)")
    assert "token budget" not in hover[1]  # nothing cut: nothing said


def test_study_page_names_a_broken_spec(monkeypatch, evaluated_settings, tmp_path):
    studies = tmp_path / "studies"
    _write_spec(studies, evaluated_settings.model)
    monkeypatch.setenv("PHISHLENS_STUDIES", str(studies))
    at = open_app_page(monkeypatch, evaluated_settings, "pages/study.py", spec="broken")
    assert not at.exception
    assert any("not valid TOML" in e.value for e in at.error)


def test_study_page_gives_the_power_of_the_spec_and_the_size_a_half_width_needs(monkeypatch, evaluated_settings,
                                                                               tmp_path):
    from diagnostics.analyses.paired import eval_size_for, f1_half_width

    studies = tmp_path / "studies"
    _write_spec(studies, evaluated_settings.model)
    monkeypatch.setenv("PHISHLENS_STUDIES", str(studies))
    at = open_app_page(monkeypatch, evaluated_settings, "pages/study.py", spec="tiny")
    note = next(t.value for t in at.text if t.value.startswith("eval_size = 20"))
    assert f"±{f1_half_width(20):.2f}" in note and f"about {eval_size_for(0.04)} are needed" in note
    at.number_input(key="study_target").set_value(0.2).run()
    note = next(t.value for t in at.text if t.value.startswith("eval_size = 20"))
    assert note.endswith("enough") == (f1_half_width(20) <= 0.2)
