"""AppTest: the Explain page explains a stored email progressively and then reads it from the
cache; the Drivers page shows a sweep's drivers and shortcut table."""

from data.store import Store
from diagnostics.analyses.explainers import method_params
from tests.conftest import open_app_page


def _html(at) -> str:
    return "\n".join(str(element.proto.body) for element in at.get("html"))


def test_explain_page_draws_a_map_caches_it_and_reads_the_cache(monkeypatch, evaluated_settings):
    with Store.open(evaluated_settings.store_path, read_only=True) as store:
        adapter = store.adapters().iloc[0]
        email_id = store.split_ids("synthetic-webmail", "test")["id"].iloc[0]
    at = open_app_page(monkeypatch, evaluated_settings, "pages/explain.py", max_tokens=128, email=email_id,
              adapters=adapter["training_set"], method="gradxinput")
    assert not at.exception, at.exception
    page = _html(at)
    assert "<span style=\"background:rgba(" in page and "title=\"" in page  # the coloured, hoverable map
    with Store.open(evaluated_settings.store_path, read_only=True) as store:
        cached = store.explanation(adapter["id"], email_id, "gradxinput", method_params("gradxinput", 128, 13))
    assert cached is not None and cached.faithfulness is not None
    again = open_app_page(monkeypatch, evaluated_settings, "pages/explain.py", max_tokens=128, email=email_id,
                 adapters=adapter["training_set"], method="gradxinput")
    assert not again.exception
    assert any("(cached)" in m.value for m in again.markdown)


def test_explain_page_shap_on_pasted_text_escapes_it(monkeypatch, evaluated_settings):
    from tests.conftest import HOSTILE_EMAIL

    at = open_app_page(monkeypatch, evaluated_settings, "pages/explain.py", max_tokens=128, source="paste",
                       adapters="zero-shot")
    at.text_area(key="explain_text").set_value(HOSTILE_EMAIL).run()
    assert not at.exception, at.exception
    page = _html(at)
    assert "map by words" in "\n".join(m.value for m in at.markdown)
    assert "<script" not in page and "&lt;script&gt;" in page
    assert "onerror=" not in page.replace("onerror=&quot;", "")


def test_drivers_page_shows_drivers_and_shortcuts(monkeypatch, evaluated_settings):
    from data.records import EvaluationTarget
    from diagnostics.analyses.drivers import explain_sample

    with Store.open(evaluated_settings.store_path) as store:
        explain_sample(store, EvaluationTarget(evaluated_settings.model), "synthetic-corporate", size=6,
                       method="gradxinput", max_tokens=128, seed=13, models_dir=evaluated_settings.models_dir)
    at = open_app_page(monkeypatch, evaluated_settings, "pages/drivers.py")
    assert not at.exception, at.exception
    assert len(at.get("plotly_chart")) >= 1
    shortcut_table = next(d.value for d in at.dataframe if "shortcut" in d.value.columns)
    assert len(shortcut_table) > 0 and set(shortcut_table["corpus"]) <= {
        "synthetic-corporate", "synthetic-webmail", "synthetic-listdump"}


def test_drivers_page_compares_two_sweeps_in_the_explanation_shift_tab(monkeypatch, evaluated_copy):
    import json

    from data.records import EvaluationTarget
    from diagnostics.analyses.drivers import explain_sample

    settings = evaluated_copy
    with Store.open(settings.store_path) as store:
        for corpus in ("synthetic-corporate", "synthetic-webmail"):
            explain_sample(store, EvaluationTarget(settings.model), corpus, size=4, method="gradxinput",
                           max_tokens=96, seed=13, models_dir=settings.models_dir)
    at = open_app_page(monkeypatch, settings, "pages/drivers.py")
    assert not at.exception, at.exception
    titles = [json.loads(c.proto.spec)["layout"].get("title", {}).get("text", "") for c in at.get("plotly_chart")]
    assert "Explanation shift: largest changes in mean attribution per email" in titles
    shift = next(d.value for d in at.dataframe if "change" in d.value.columns)
    assert len(shift) > 0 and shift["change"].abs().is_monotonic_decreasing
