"""Untrusted text made safe for the widgets that render it (pure, but for `int_param`).

Streamlit renders Markdown (GitHub-flavoured, with its own :color[...] and :icon: syntax) in
st.markdown, st.caption, st.error/warning/info/success, titles and headers, and in the
labels of expanders, tabs, radios and buttons: `![x](http://host/t.png)` in a corpus name,
an email id from the URL or an exception message would show a remote image and a live
link. Plotly renders a subset of HTML (<a href>, <b>, <br>) in titles, tick labels, legend
names and hover text. Every value that comes from a URL, an email, a file or corpus name,
or an error message goes through `md` (Markdown) or `label` (plotly) before it is shown.
"""

from __future__ import annotations

import html
import re

# CommonMark lets any ASCII punctuation be backslash-escaped, which disarms links, images,
# emphasis, HTML, Streamlit's ":red[...]" and ":icon:" directives and "$...$" math. It does not
# stop GFM's autolink literals: the browser still turned "http\:\/\/host" and "www\.host"
# into links. A word joiner (U+2060, invisible, zero width) after every ":" and before every
# "." and "@" breaks "http://", "www." and "a@b.c" apart.
_MARKDOWN_PUNCTUATION = re.compile(r"""([!-/:-@\[-`{-~])""")
_AUTOLINK_BREAKS = re.compile(r"(\\:)|(\\[.@])")
WORD_JOINER = "\u2060"
_LINE_BREAKS = re.compile(r"[\r\n\u2028\u2029]+")
MAX_SHOWN_CHARS = 500
# A paste box holds at most this many characters (the browser stops typing and pasting there):
# far below Streamlit's widget-state limit, which a 24 MB paste broke with an error on the page,
# and parsed in well under a second. Larger messages go through the upload (32 MB).
MAX_PASTE_CHARS = 2_000_000
PASTE_HELP = (f"At most {MAX_PASTE_CHARS:,} characters: upload a larger message as a .eml file "
              f"(up to 32 MB) instead.")


def md(value: object, max_chars: int = MAX_SHOWN_CHARS) -> str:
    """`value` as Markdown that renders as exactly its text: one line, at most `max_chars`."""
    text = _LINE_BREAKS.sub(" ", str(value))
    if len(text) > max_chars:
        text = text[:max_chars] + "…"
    escaped = _MARKDOWN_PUNCTUATION.sub(r"\\\1", text)
    return _AUTOLINK_BREAKS.sub(lambda m: m.group(1) + WORD_JOINER if m.group(1) else WORD_JOINER + m.group(2),
                                escaped)


def label(value: object, max_chars: int = 200) -> str:
    """`value` as a plotly label (title, tick, legend, hover): HTML-escaped, one line (⏎ marks breaks)."""
    text = _LINE_BREAKS.sub("⏎", str(value))
    return html.escape(text[:max_chars] + ("…" if len(text) > max_chars else ""), quote=True)


def int_param(name: str, default: int, low: int, high: int) -> int:
    """An integer query parameter clamped to [low, high]; a value that is not a number is
    reported (escaped) and replaced by `default`."""
    import streamlit as st

    raw = st.query_params.get(name)
    if raw is None:
        return max(low, min(default, high))
    try:
        return max(low, min(int(raw), high))
    except ValueError:
        st.warning(f"Ignored {md(name)}\\={md(raw, 60)} in the address: not a whole number; showing {default} instead.")
        return max(low, min(default, high))


def tab_param(tabs: list[str]) -> str | None:
    """The tab named by the address' `tab` parameter (a link opens a page on one tab), if it is one."""
    import streamlit as st

    wanted = st.query_params.get("tab")
    return wanted if wanted in tabs else None


def code(value: object, max_chars: int = MAX_SHOWN_CHARS) -> str:
    """`value` as a Markdown code span: shown literally (no links, images or directives), one line.
    The fence is one backtick longer than the longest run inside, as CommonMark allows."""
    text = _LINE_BREAKS.sub(" ", str(value))[:max_chars]
    fence = "`" * (max((len(run) for run in re.findall(r"`+", text)), default=0) + 1)
    return f"{fence} {text} {fence}"


def started_message(job) -> str:
    """The success line for a job started from a page (its command holds paths and names)."""
    if job.status == "queued":  # another job of this home is running (diagnostics.runners.background)
        return (f"Queued {code(job.command)} (job {md(job.id)}): it starts when the running job ends; "
                "follow it on the Runs page.")
    return f"Started {code(job.command)} (job {md(job.id)}); follow it on the Runs page."
