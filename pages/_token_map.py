"""The colored token map of an explanation, as HTML built from escaped text only.

This is the one place email text reaches st.html: every character of it goes through
html.escape first, and the only markup is our own <span> with an inline background and
a title (the hover value). No email HTML, link or image can survive as markup.
"""

from __future__ import annotations

import html

from data.records import Explanation

PHISHING_RGB = (214, 39, 40)  # red: pushes towards phishing/spam
LEGITIMATE_RGB = (31, 119, 180)  # blue: pushes towards legitimate


def _color(value: float, scale: float) -> str:
    rgb = PHISHING_RGB if value > 0 else LEGITIMATE_RGB
    alpha = min(abs(value) / scale, 1.0) * 0.85 if scale > 0 else 0.0
    return f"rgba({rgb[0]},{rgb[1]},{rgb[2]},{alpha:.2f})"


def token_map_html(explanation: Explanation, scale: float | None = None) -> str:
    """The email text with each attributed span shaded by its value (hover: the value).

    scale: the |value| that gets full colour (default: the largest in this explanation),
    so several maps can share one scale.
    """
    text, spans, values = explanation.text, explanation.spans, explanation.values
    scale = scale if scale is not None else max((abs(v) for v in values), default=0.0)
    parts, cursor = [], 0
    for (start, end), value in sorted(zip(spans, values)):
        if start < cursor:  # overlapping spans cannot come from our layouts; never emit broken markup
            continue
        parts.append(html.escape(text[cursor:start]))
        parts.append(f'<span style="background:{_color(value, scale)};border-radius:3px" '
                     f'title="{value:+.4f}">{html.escape(text[start:end])}</span>')
        cursor = end
    parts.append(html.escape(text[cursor:]))
    body = "".join(parts).replace("\n", "<br>")
    return (f'<div style="font-family:ui-monospace,monospace;font-size:0.85rem;line-height:1.7;'
            f'white-space:pre-wrap;word-break:break-word;max-height:32rem;overflow-y:auto;'
            f'border:1px solid rgba(128,128,128,0.3);border-radius:6px;padding:0.6rem">{body}</div>')


def legend_html(scale: float) -> str:
    """A gradient bar: blue (legitimate) ← 0 → red (phishing), with the full-colour value."""
    blue, red = _color(-scale, scale), _color(scale, scale)
    return (f'<div style="display:flex;align-items:center;gap:0.5rem;font-size:0.8rem">'
            f'<span>← legitimate (−{scale:.3f})</span>'
            f'<span style="flex:0 0 12rem;height:0.8rem;border-radius:3px;'
            f'background:linear-gradient(90deg,{blue},rgba(255,255,255,0),{red})"></span>'
            f'<span>phishing (+{scale:.3f}) →</span><span style="opacity:0.7">hover a word for its value</span></div>')
