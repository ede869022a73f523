"""A study's report: the F1 matrix per model (mean ± std over LoRA seeds, bootstrap interval of
each run in the hover), the in-domain vs out-of-domain bars per model and paradigm, and the
findings, as plotly figures and as one self-contained HTML file (plotly.js inlined, every
text escaped: model and corpus names come from user files)."""

from __future__ import annotations

import html
from datetime import datetime, timezone

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio

from data.records import ZERO_SHOT, StudySpec


def study_matrix(results: pd.DataFrame) -> pd.DataFrame:
    """Per (model, training set, corpus): mean and std of F1 (recall where F1 is undefined) over
    seeds, and the mean share of test emails the token budget cut (NaN where not recorded)."""
    value = results["f1"].where(results["f1"].notna(), results["recall"])
    held_out = results["held_out"] if "held_out" in results else False
    cut_share = results["cut_share"] if "cut_share" in results else np.nan
    frame = results.assign(value=value, measure=np.where(results["f1"].notna(), "F1", "R"), held_out=held_out,
                           cut_share=cut_share,
                           interval=[f"[{lo:.2f}, {hi:.2f}]" if lo == lo else "" for lo, hi
                                     in zip(results["f1_low"], results["f1_high"])])
    return (frame.groupby(["model", "training_set", "corpus", "in_domain", "held_out", "paradigm", "measure"],
                          dropna=False)
            .agg(mean=("value", "mean"), std=("value", "std"), runs=("value", "count"), cut_share=("cut_share", "mean"),
                 intervals=("interval", lambda v: " ".join(x for x in v if x)))
            .reset_index())


def matrix_figure(matrix: pd.DataFrame, model: str) -> go.Figure:
    """Training set × corpus for one model: zero-shot, specialists, generalist, FTICL, then the
    bag-of-words rows."""
    shown = matrix[matrix["model"] == model]
    order = (ZERO_SHOT, "specialist-", "generalist", "fticl-", "bag of words")
    rows = sorted(set(shown["training_set"]),
                  key=lambda t: (next((i for i, p in enumerate(order) if t.startswith(p)), len(order)), t))
    held_out = set(matrix.loc[matrix["held_out"].astype(bool), "corpus"]) if "held_out" in matrix else set()
    cols = sorted(set(matrix["corpus"]), key=lambda c: (c in held_out, c))  # held-out columns last, as a group
    z = np.full((len(rows), len(cols)), np.nan)
    text = [["" for _ in cols] for _ in rows]
    hover = [["" for _ in cols] for _ in rows]
    for r in shown.itertuples():
        i, j = rows.index(r.training_set), cols.index(r.corpus)
        spread = f" ± {r.std:.2f}" if r.std == r.std else ""
        mark = " ◆" if r.in_domain else ""
        text[i][j] = f"{'R ' if r.measure == 'R' else ''}{r.mean:.2f}{spread}{mark}"
        if r.measure == "F1":
            z[i, j] = r.mean
        cut_share = getattr(r, "cut_share", np.nan)
        cut = f"; the token budget cut {cut_share:.0%} of these emails (mean over runs)" if cut_share > 0 else ""
        hover[i][j] = html.escape(f"{r.training_set} → {r.corpus}: {r.measure} {r.mean:.3f}{spread} over "
                                  f"{r.runs} run(s); 95% bootstrap intervals {r.intervals or 'n/a'}{cut}")
    labels = [html.escape(c) + (" (held out)" if c in held_out else "") for c in cols]
    fig = go.Figure(go.Heatmap(z=z, x=labels, y=[html.escape(t) for t in rows], text=text,
                               texttemplate="%{text}", hovertext=hover, hoverinfo="text", zmin=0, zmax=1,
                               colorscale="RdYlGn", colorbar={"title": "F1"}))
    fig.update_layout(title=html.escape(f"{model}: F1 (mean ± std over seeds; R = recall, ◆ = in-domain)"),
                      height=140 + 60 * len(rows), margin=dict(l=10, r=10, t=50, b=10),
                      yaxis={"autorange": "reversed"})
    return fig


def gap_figure(summary: pd.DataFrame) -> go.Figure:
    """In-domain vs out-of-domain mean F1 per model and paradigm, ± std over seeds."""
    labels = [html.escape(f"{m} · {p}") for m, p in zip(summary["model"], summary["paradigm"])]
    fig = go.Figure()
    for scope, name, color in (("in_domain", "in-domain", "#2a9d8f"), ("out_domain", "out-of-domain", "#e76f51"),
                               ("held_out", "held out", "#6d597a")):
        mean, std = summary.get(f"{scope}_f1_mean"), summary.get(f"{scope}_f1_std")
        if mean is None or mean.isna().all():
            continue
        fig.add_bar(x=labels, y=mean, name=name, marker_color=color,
                    error_y={"type": "data", "array": std.fillna(0) if std is not None else None})
    fig.update_layout(barmode="group", title="In-domain vs out-of-domain F1 per model and paradigm",
                      yaxis={"range": [0, 1.05], "title": "mean F1"}, height=420,
                      margin=dict(l=10, r=10, t=50, b=10), legend={"orientation": "h"})
    return fig


def study_figures(results: pd.DataFrame, summary: pd.DataFrame) -> list[go.Figure]:
    matrix = study_matrix(results)
    models = [m for m in dict.fromkeys(matrix["model"]) if m != "tfidf-lr"] or ["tfidf-lr"]
    figures = []
    for model in models:
        with_reference = pd.concat([matrix[matrix["model"] == model],
                                    matrix[matrix["model"] == "tfidf-lr"].assign(
                                        model=model, training_set="bag of words · " +
                                        matrix.loc[matrix["model"] == "tfidf-lr", "training_set"])])
        figures.append(matrix_figure(with_reference, model))
    figures.append(gap_figure(summary))
    return figures


# What a spec field left unset (None) stands for (data.records.StudySpec).
UNSET_MEANS = {"specialists": "every corpus with both labels", "test_corpora": "every corpus",
               "eval_size": "the whole test split"}


def spec_fields(spec: StudySpec) -> dict[str, str]:
    """The spec as the Study page and the HTML report show it: one row per field, and one LoRA row
    per model with its own table, each without the fields the spec sets elsewhere (seeds; fticl_examples)."""
    def lora_line(lora) -> str:
        shown = {**lora.__dict__, "target_modules": lora.target_modules or "the family's default"}
        return ", ".join(f"{k}={v}" for k, v in shown.items() if k not in ("seed", "context_examples"))

    def value(field: str, v) -> str:
        if v is None:
            return UNSET_MEANS[field]
        return (", ".join(map(str, v)) or "none") if isinstance(v, tuple) else str(v)

    shown = {k: value(k, v) for k, v in spec.__dict__.items() if k not in ("lora", "lora_by_model")}
    shown["lora"] = lora_line(spec.lora)
    shown.update({f"lora ({model})": lora_line(lora) for model, lora in spec.lora_by_model})
    return shown


def study_html(spec: StudySpec, summary: pd.DataFrame, findings: list[str], figures: list[go.Figure],
               labels: str = "as the corpora label them") -> str:
    """One self-contained HTML page: spec, findings, figures (plotly.js inlined once), summary table;
    `labels`: which labels the figures are computed over (data.schema.LABEL_VIEW_TITLES)."""
    charts = [pio.to_html(fig, full_html=False, include_plotlyjs="inline" if i == 0 else False)
              for i, fig in enumerate(figures)]
    spec_rows = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>"
                        for k, v in spec_fields(spec).items())
    findings_html = "".join(f"<li>{html.escape(line)}</li>" for line in findings)
    table = summary.to_html(index=False, float_format=lambda v: f"{v:.3f}", escape=True, border=0)
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>PhishLens study: {html.escape(spec.name)}"
            "</title><style>body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}"
            "table{border-collapse:collapse}td,th{padding:4px 8px;border-bottom:1px solid #ddd;text-align:left}"
            "</style></head><body>"
            f"<h1>PhishLens study: {html.escape(spec.name)}</h1><p>Generated {stamp}. Labels: "
            f"{html.escape(labels)}.</p>"
            f"<h2>Findings</h2><ul>{findings_html}</ul>"
            f"<h2>Figures</h2>{''.join(charts)}"
            f"<h2>Summary</h2>{table}<h2>Spec</h2><table>{spec_rows}</table></body></html>")
