"""No value from a URL, an email, a file or corpus name reaches a Markdown- or HTML-rendering
widget unescaped, on any page; bad query values get a message, not a traceback.

The store is the evaluated fixture with one corpus renamed to a Markdown/HTML payload (a
corpus is named after its file, and file names can hold all of this), so the payload runs
through every heading, caption, label, chart and job form that shows a corpus or a
training-set name. The query string carries more payloads.
"""

import json

import pytest

from data.export import neutralise_cell, spreadsheet_safe_csv
from data.store import Store
from pages._safe import code, label, md
from tests.conftest import open_app_page

EVIL_HOST = "evil.test"
PAYLOAD = f"![t](http://{EVIL_HOST}/t.png)[go](http://{EVIL_HOST}/x)<b>bold</b>:red[red]"
RENAMED = "synthetic-corporate"
PAGES = ["overview", "inbox", "analyze", "explain", "compare", "drivers", "study", "heads", "demo", "corpora", "runs"]
QUERY = {"email": PAYLOAD, "layer": "abc", "head": "<b>1</b>", "adapter": PAYLOAD, "corpus": PAYLOAD,
         "model": PAYLOAD, "spec": PAYLOAD, "compare": PAYLOAD, "sweeps": PAYLOAD, "q": PAYLOAD, "method": PAYLOAD}


@pytest.fixture(scope="module")
def hostile_settings(evaluated_settings, tmp_path_factory):
    """A copy of the evaluated store whose corpus 'synthetic-corporate' is named PAYLOAD everywhere."""
    import shutil

    home = tmp_path_factory.mktemp("hostile") / "home"
    shutil.copytree(evaluated_settings.home, home)
    settings = evaluated_settings.with_overrides(home=home, store_path=home / "store.duckdb")
    with Store.open(settings.store_path) as store, store.transaction() as con:
        columns = con.execute("SELECT table_name, column_name FROM duckdb_columns() WHERE data_type = 'VARCHAR' "
                              "AND column_name NOT IN ('path', 'params') AND NOT internal "
                              "AND table_name IN (SELECT table_name FROM duckdb_tables())").fetchall()
        for table, column in columns:
            con.execute(f'UPDATE "{table}" SET "{column}" = replace("{column}", ?, ?) '
                        f'WHERE contains("{column}", ?)', [RENAMED, PAYLOAD, RENAMED])
    return settings


CODE_SPAN = __import__("re").compile(r"(`+)(?!`)(.+?)(?<!`)\1(?!`)")


def _outside_code_spans(text: str) -> str:
    """Markdown text without its code spans, which render literally (no links, images, directives)."""
    return CODE_SPAN.sub("", text)


def _markdown_texts(at) -> list[str]:
    """Every string the page hands to a Markdown-rendering element or label (code spans removed)."""
    texts = []
    for kind in ("markdown", "caption", "error", "warning", "info", "success", "title", "header", "subheader",
                 "latex", "toast"):
        texts += [str(e.value) for e in getattr(at, kind, [])]
    for kind in ("selectbox", "multiselect", "radio", "slider", "number_input", "text_input", "text_area",
                 "checkbox", "toggle", "button", "expander", "tabs", "metric"):
        texts += [str(getattr(e, "label", "")) for e in getattr(at, kind, [])]
    texts += [str(o) for r in at.radio for o in r.options]  # radio options render Markdown too
    return [_outside_code_spans(t) for t in texts]


def _plotly_strings(at) -> list[str]:
    strings = []

    def walk(node):
        if isinstance(node, str):
            strings.append(node)
        elif isinstance(node, dict):
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    for chart in at.get("plotly_chart"):
        walk(json.loads(chart.proto.spec))
    return strings


@pytest.mark.parametrize("linked", [True, False], ids=["hostile-email-link", "store-email"])
@pytest.mark.parametrize("page", PAGES)
def test_no_page_reflects_markup(monkeypatch, hostile_settings, page, linked):
    # With ?email= a payload, pages that open one email stop at the message saying it is not in
    # the store; without it they go on to draw everything else with the renamed corpus.
    query = QUERY if linked else {k: v for k, v in QUERY.items() if k not in ("email", "layer", "head")}
    at = open_app_page(monkeypatch, hostile_settings, f"pages/{page}.py", **query)
    assert not at.exception, [e.message for e in at.exception]
    for text in _markdown_texts(at):
        assert EVIL_HOST not in text, f"{page}: unescaped payload in {text!r}"
        assert ":red[" not in text and "<b>" not in text, f"{page}: {text!r}"
    for text in _plotly_strings(at):
        assert "<b>bold" not in text and "<a" not in text.lower() and "<img" not in text.lower(), f"{page}: {text!r}"


def test_a_bad_layer_in_the_url_is_a_message(monkeypatch, hostile_settings):
    at = open_app_page(monkeypatch, hostile_settings, "pages/heads.py", layer="abc", head="2")
    assert not at.exception
    assert any("not a whole number" in w.value for w in at.warning)


def test_escapes_render_as_the_same_text():
    # CommonMark drops a backslash before punctuation: what the reader sees is the text itself.
    import re

    shown = re.sub(r"\\(.)", r"\1", md(PAYLOAD)).replace("\u2060", "")  # word joiners are invisible
    assert shown == PAYLOAD and "](" not in md(PAYLOAD).replace("\\]\\(", "")
    # GFM's autolink literals ("http://", "www.", "a@b.c") are broken by invisible word joiners
    assert not re.search(r"https?:/|www\.|\w@\w", md(PAYLOAD + " www.evil.test a@evil.test").replace("\\", ""))
    assert md("line one\nline two") == "line one line two"
    assert "<" not in label(PAYLOAD) and "&lt;b&gt;" in label(PAYLOAD)


def test_code_spans_cannot_be_closed_from_inside():
    span = code("run ``` `x` ![i](http://evil.test/i.png)")
    fence = span.split(" ", 1)[0]
    assert fence == "````" and span.endswith(" " + fence)  # longer than any backtick run inside
    assert _outside_code_spans(f"Started {span} ok") == "Started  ok"


def test_csv_exports_neutralise_formulas():
    import pandas as pd

    for cell in ("=HYPERLINK(\"http://evil.test\",\"x\")", "+1+1", "-2+3", "@SUM(A1)", "\tx", "\rx"):
        assert neutralise_cell(cell) == "'" + cell
    assert neutralise_cell("plain") == "plain" and neutralise_cell(-1.5) == -1.5
    text = spreadsheet_safe_csv(pd.DataFrame({"subject": ["=cmd|'/c calc'!A1", "ok"], "score": [-1.25, 2.0],
                                              "urls": [("=x", "http://a.test"), ()]}))
    rows = text.splitlines()
    assert rows[1].startswith("'=cmd") and ",-1.25," in rows[1] and "'=x; http://a.test" in rows[1]
