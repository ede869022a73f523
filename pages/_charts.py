"""Pure plotly figure builders: DataFrames in, figures out. No Streamlit here."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from data.records import ZERO_SHOT
from pages._safe import label as _safe  # corpus, training-set and email text: plotly renders HTML in labels


def corpus_label(name: str, label_meaning: str, synthetic: bool, held_out: bool = False) -> str:
    """Column label: the corpus, what its positive label means, whether it is synthetic or held out."""
    return (f"{_safe(name)}<br>({_safe(label_meaning)}{', synthetic' if synthetic else ''}"
            f"{', held out' if held_out else ''})")


def f1_heatmap(metrics: pd.DataFrame, corpora: pd.DataFrame) -> go.Figure:
    """Training set × test corpus. Colour = F1; one-class corpora show recall (R) uncoloured.

    In-domain cells are outlined and marked ◆.
    """
    rows = list(dict.fromkeys(sorted(metrics["training_set"],
                                     key=lambda t: (t != ZERO_SHOT, t.startswith("bag of words"), t))))
    info = corpora.set_index("name")
    held_out = info["held_out"].astype(bool) if "held_out" in info else pd.Series(False, index=info.index)
    cols = sorted(corpora["name"], key=lambda c: (bool(held_out[c]), c))  # held-out corpora last, as a group
    z = np.full((len(rows), len(cols)), np.nan)
    text = [["" for _ in cols] for _ in rows]
    hover = [["no predictions" for _ in cols] for _ in rows]
    shapes = []
    for rec in metrics.to_dict("records"):
        if rec["corpus"] not in cols:
            continue
        i, j = rows.index(rec["training_set"]), cols.index(rec["corpus"])
        mark = " ◆" if rec["in_domain"] else ""
        if rec["f1"] is not None and not pd.isna(rec["f1"]):
            z[i, j] = rec["f1"]
            text[i][j] = f"{rec['f1']:.2f}{mark}"
        else:
            text[i][j] = f"R {rec['recall']:.2f}{mark}" if not pd.isna(rec["recall"]) else "n/a"
        interval = f" [{rec['f1_low']:.2f}, {rec['f1_high']:.2f}]" if not pd.isna(rec.get("f1_low")) else ""
        hover[i][j] = (f"{_safe(rec['training_set'])} → {_safe(rec['corpus'])}<br>n={rec['n']}  F1={_fmt(rec['f1'])}{interval}  "
                       f"P={_fmt(rec['precision'])}  R={_fmt(rec['recall'])}  acc={_fmt(rec['accuracy'])}"
                       f"<br>{'in-domain' if rec['in_domain'] else 'held out' if held_out[rec['corpus']] else 'out-of-domain'}")
        if not pd.isna(rec.get("cut_share")) and rec["cut_share"] > 0:  # it read part of these emails only
            hover[i][j] += (f"<br>token budget cut {rec['cut_share']:.0%} of these emails "
                            f"(a median of {rec['median_cut_tokens']:.0f} tokens each)")
        if rec["in_domain"]:
            shapes.append(dict(type="rect", x0=j - 0.5, x1=j + 0.5, y0=i - 0.5, y1=i + 0.5,
                               line=dict(color="black", width=3)))
    labels = [corpus_label(c, info.loc[c, "label_meaning"], bool(info.loc[c, "synthetic"]), bool(held_out[c]))
              for c in cols]
    if held_out.any():  # a rule between the corpora adapters train on and the held-out ones
        first = next(j for j, c in enumerate(cols) if held_out[c])
        shapes.append(dict(type="line", x0=first - 0.5, x1=first - 0.5, y0=-0.5, y1=len(rows) - 0.5,
                           line=dict(color="#6d597a", width=4, dash="dot")))
    fig = go.Figure(go.Heatmap(
        z=z, x=list(range(len(cols))), y=list(range(len(rows))), text=text, texttemplate="%{text}",
        hovertext=hover, hoverinfo="text", zmin=0, zmax=1, colorscale="RdYlGn", colorbar=dict(title="F1"),
    ))
    fig.update_layout(
        shapes=shapes, height=120 + 70 * len(rows), margin=dict(l=10, r=10, t=30, b=10),
        xaxis=dict(tickvals=list(range(len(cols))), ticktext=labels, side="top", title="test corpus"),
        yaxis=dict(tickvals=list(range(len(rows))), ticktext=[_safe(r) for r in rows], autorange="reversed", title="training set"),
        plot_bgcolor="#eeeeee",
    )
    return fig


def gap_bars(gap: pd.DataFrame) -> go.Figure:
    """In-domain vs out-of-domain mean F1 per adapter, side by side."""
    fig = go.Figure()
    bars = [("in_domain_f1", "in-domain", "#2a9d8f"), ("out_of_domain_f1", "out-of-domain", "#e76f51"),
            ("held_out_f1", "held out", "#6d597a")]
    for column, name, color in (b for b in bars if b[0] in gap and gap[b[0]].notna().any()):
        fig.add_bar(x=[_safe(t) for t in gap["training_set"]], y=gap[column], name=name, marker_color=color,
                    text=[_fmt(v) for v in gap[column]], textposition="outside")
    fig.update_layout(barmode="group", yaxis=dict(range=[0, 1.1], title="mean F1"), height=360,
                      margin=dict(l=10, r=10, t=30, b=10), legend=dict(orientation="h"))
    return fig


def architecture_bars(summary: pd.DataFrame) -> go.Figure:
    """Mean F1 per (model, paradigm) for each scope, ± the sd across adapters: architectures side by side."""
    fig = go.Figure()
    scopes = [("in_domain_f1", "in domain", "#2a9d8f"), ("out_of_domain_f1", "out of domain", "#e76f51"),
              ("held_out_f1", "held out", "#6d597a")]
    groups = list(dict.fromkeys(zip(summary["model"], summary["paradigm"])))
    labels = [f"{_safe(m.rstrip('/').rsplit('/', 1)[-1])}<br>{_safe(p)}" for m, p in groups]
    for scope, name, color in scopes:
        rows = summary[summary["scope"] == scope].set_index(["model", "paradigm"])
        if rows.empty:
            continue
        cells = [rows.loc[g] if g in rows.index else None for g in groups]
        fig.add_bar(x=labels, y=[c["mean_f1"] if c is not None else None for c in cells], name=name, marker_color=color,
                    error_y=dict(type="data", array=[c["sd_f1"] if c is not None else None for c in cells]),
                    text=[f"{_fmt(c['mean_f1'])}<br>n={int(c['adapters'])} ({int(c['seeds'])})" if c is not None
                          else "" for c in cells], textposition="outside")
    fig.update_layout(barmode="group", yaxis=dict(range=[0, 1.25], title="mean F1"), height=420,
                      margin=dict(l=10, r=10, t=30, b=10), legend=dict(orientation="h"))
    return fig


def reliability_figure(curves: dict[str, pd.DataFrame]) -> go.Figure:
    """Observed phishing rate against predicted probability per corpus; the diagonal is calibrated."""
    fig = go.Figure()
    fig.add_scatter(x=[0, 1], y=[0, 1], mode="lines", name="calibrated", line=dict(color="#999", dash="dot"))
    for corpus, table in curves.items():
        fig.add_scatter(x=table["predicted"], y=table["observed"], mode="lines+markers", name=_safe(corpus),
                        marker=dict(size=[6 + 14 * n / max(table["n"].max(), 1) for n in table["n"]]),
                        hovertext=[f"{_safe(corpus)}: {n} emails predicted {p:.2f}, observed {o:.2f}"
                                   for n, p, o in zip(table["n"], table["predicted"], table["observed"])],
                        hoverinfo="text")
    fig.update_layout(title="Reliability (marker size: emails in the bin)", height=380,
                      xaxis=dict(range=[0, 1], title="predicted P(phishing/spam)"),
                      yaxis=dict(range=[0, 1], title="observed share phishing/spam"), margin=dict(l=10, r=10, t=40, b=10))
    return fig


def retune_figure(transfer: pd.DataFrame, fractions) -> go.Figure:
    """F1 per corpus at the product's threshold (0 %), after re-tuning on k % of the corpus' labelled
    emails (95% range over repeats), and the oracle (dotted)."""
    fig = go.Figure()
    palette = ["#264653", "#2a9d8f", "#e9c46a", "#f4a261", "#e76f51", "#6d597a", "#355070", "#b56576"]
    xs = [0] + [100 * f for f in fractions]
    for i, row in enumerate(transfer.to_dict("records")):  # records: the column names hold dots
        color = palette[i % len(palette)]
        ys = [row["f1_at_0"]] + [row[f"retuned_{f:g}"] for f in fractions]
        lows = [row["f1_at_0"]] + [row[f"retuned_{f:g}_low"] for f in fractions]
        highs = [row["f1_at_0"]] + [row[f"retuned_{f:g}_high"] for f in fractions]
        fig.add_scatter(x=xs, y=ys, mode="lines+markers", name=_safe(row["corpus"]), line=dict(color=color),
                        error_y=dict(type="data", symmetric=False, array=[h - y for h, y in zip(highs, ys)],
                                     arrayminus=[y - lo for y, lo in zip(ys, lows)]))
        fig.add_scatter(x=[0, xs[-1]], y=[row["oracle_f1"]] * 2, mode="lines", showlegend=False,
                        line=dict(color=color, dash="dot"), hoverinfo="text",
                        hovertext=f"{_safe(row['corpus'])}: oracle threshold {row['oracle_threshold']:+.2f}, "
                                  f"F1 {row['oracle_f1']:.2f}")
    fig.update_layout(title="F1 after re-tuning the threshold on k % (dotted: oracle)",
                      height=380, xaxis=dict(title="k: labelled target emails used to pick the threshold (%)"),
                      yaxis=dict(range=[0, 1.05], title="F1 on the other emails"), margin=dict(l=10, r=10, t=40, b=10))
    return fig


def loss_curves(adapters: pd.DataFrame) -> go.Figure:
    """Training loss per step for each adapter."""
    fig = go.Figure()
    for rec in adapters.to_dict("records"):
        losses = list(rec["train_loss"] if rec["train_loss"] is not None else [])
        fig.add_scatter(y=losses, x=list(range(1, len(losses) + 1)), mode="lines", name=_safe(rec["training_set"]))
    fig.update_layout(xaxis_title="step", yaxis_title="loss", height=300, margin=dict(l=10, r=10, t=30, b=10))
    return fig


def _fmt(value) -> str:
    return "–" if value is None or pd.isna(value) else f"{value:.2f}"


def field_waterfall(totals: list[tuple[str, float]], base_value: float, score: float) -> go.Figure:
    """From the empty email's score (base) through each field's total to the email's score."""
    names = ["empty email", *[_safe(name) for name, _ in totals], "score"]
    measures = ["absolute", *["relative"] * len(totals), "total"]
    values = [base_value, *[value for _, value in totals], score]
    fig = go.Figure(go.Waterfall(x=names, y=values, measure=measures, text=[f"{v:+.3f}" for v in values],
                                 increasing={"marker": {"color": "#d62728"}},
                                 decreasing={"marker": {"color": "#1f77b4"}},
                                 totals={"marker": {"color": "#7f7f7f"}}))
    fig.update_layout(height=300, margin=dict(l=10, r=10, t=30, b=10), showlegend=False,
                      yaxis_title="score (logit phishing − legitimate)", title="Fields")
    return fig


def faithfulness_figure(curves) -> go.Figure:
    """Deletion and insertion curves (score towards the verdict) against a random order."""
    x = [100 * f for f in curves.fractions]
    fig = go.Figure()
    fig.add_scatter(x=x, y=curves.deletion, name=f"deletion (area {curves.deletion_area:.2f})", mode="lines+markers")
    fig.add_scatter(x=x, y=curves.insertion, name=f"insertion (area {curves.insertion_area:.2f})",
                    mode="lines+markers")
    fig.add_scatter(x=x, y=curves.random_deletion, name=f"random deletion (area {curves.random_deletion_area:.2f})",
                    mode="lines", line={"dash": "dot"})
    fig.update_layout(height=300, margin=dict(l=10, r=10, t=30, b=10), title="Faithfulness",
                      xaxis_title="% of units removed (deletion) / added (insertion), top-attributed first",
                      yaxis_title="score towards the verdict", legend={"orientation": "h", "y": -0.35})
    return fig


def driver_bars(drivers: pd.DataFrame, n: int = 15, shortcuts: set[str] | None = None) -> go.Figure:
    """Top phishing (red) and legitimate (blue) drivers by mean value per explained email."""
    shortcuts = shortcuts or set()
    top = pd.concat([drivers.nlargest(n, "mean_value"), drivers.nsmallest(n, "mean_value")])
    top = top[top["mean_value"] != 0].drop_duplicates("feature").sort_values("mean_value")
    labels = [f"⚠ {_safe(f)}" if f in shortcuts else _safe(f) for f in top["feature"]]
    fig = go.Figure(go.Bar(x=top["mean_value"], y=labels, orientation="h",
                           marker_color=["#d62728" if v > 0 else "#1f77b4" for v in top["mean_value"]],
                           customdata=top[["emails"]].to_numpy(),
                           hovertemplate="%{y}: %{x:+.4f} per email, in %{customdata[0]} emails<extra></extra>"))
    fig.update_layout(height=max(300, 18 * len(top) + 80), margin=dict(l=10, r=10, t=30, b=10),
                      xaxis_title="mean attribution per explained email (⚠ = shortcut candidate)")
    return fig


def agreement_heatmap(names: list[str], matrix: np.ndarray) -> go.Figure:
    """Pairwise rank correlation of character-level attributions (1 = same ranking)."""
    text = [["–" if v != v else f"{v:.2f}" for v in row] for row in matrix]
    names = [_safe(n) for n in names]
    fig = go.Figure(go.Heatmap(z=matrix, x=names, y=names, zmin=-1, zmax=1, colorscale="RdBu", reversescale=True,
                               text=text, texttemplate="%{text}", colorbar={"title": "ρ"}))
    fig.update_layout(height=120 + 60 * len(names), margin=dict(l=10, r=10, t=30, b=10),
                      title="Agreement: Spearman ρ of character-level attributions")
    return fig


def head_heatmap(values: np.ndarray, title: str, colorbar: str, checked: np.ndarray | None = None,
                 diverging: bool = True, height: int | None = None) -> go.Figure:
    """Layer (rows, first at the bottom) × head. `checked` marks cells verified exactly with ●."""
    layers, heads = values.shape
    text = [["●" if checked is not None and checked[i, j] else "" for j in range(heads)] for i in range(layers)]
    bound = float(np.nanmax(np.abs(values))) if np.isfinite(values).any() else 1.0
    scale = dict(colorscale="RdBu", reversescale=True, zmid=0, zmin=-bound, zmax=bound) if diverging \
        else dict(colorscale="Viridis")
    fig = go.Figure(go.Heatmap(z=values, x=[f"H{h}" for h in range(heads)], y=[f"L{layer}" for layer in range(layers)],
                               text=text, texttemplate="%{text}", colorbar={"title": colorbar},
                               hovertemplate="%{y} %{x}: %{z:+.4f}<extra></extra>", **scale))
    fig.update_layout(height=height or max(300, 16 * layers + 90), margin=dict(l=10, r=10, t=40, b=10), title=_safe(title))
    return fig


def attention_to_tokens(weights: np.ndarray, tokens: list[str], layer: int) -> go.Figure:
    """Heads × tokens: where the answer position looks, in one layer."""
    labels = [f"{i}:{_safe(t)}" for i, t in enumerate(tokens)]
    fig = go.Figure(go.Heatmap(z=weights, x=labels, y=[f"H{h}" for h in range(weights.shape[0])],
                               colorscale="Viridis", colorbar={"title": "weight"},
                               hovertemplate="%{y} → %{x}: %{z:.3f}<extra></extra>"))
    fig.update_layout(height=120 + 28 * weights.shape[0], margin=dict(l=10, r=10, t=40, b=10),
                      title=f"Layer {layer}: attention from the answer position", xaxis={"showticklabels": False})
    return fig


def pattern_heatmap(pattern: np.ndarray, tokens: list[str], layer: int, head: int) -> go.Figure:
    """Query × key attention of one head (rows attend to columns)."""
    labels = [f"{i}:{_safe(t)}" for i, t in enumerate(tokens)]
    fig = go.Figure(go.Heatmap(z=pattern, x=labels, y=labels, colorscale="Viridis", colorbar={"title": "weight"},
                               hovertemplate="%{y} → %{x}: %{z:.3f}<extra></extra>"))
    fig.update_layout(height=560, margin=dict(l=10, r=10, t=40, b=10), title=f"L{layer} H{head}: full pattern",
                      xaxis={"showticklabels": False}, yaxis={"showticklabels": False, "autorange": "reversed"})
    return fig


def logit_lens_figure(curves: list[tuple[str, np.ndarray, np.ndarray | None]]) -> go.Figure:
    """Score read off the residual stream after the embedding (−1) and each block; one line per curve.

    Each curve is (name, values, std or None); a std draws a band (dataset averages).
    """
    fig = go.Figure()
    for name, values, std in curves:
        x = list(range(-1, len(values) - 1))
        line = fig.add_scatter(x=x, y=values, name=_safe(name), mode="lines+markers")
        if std is not None:
            color = line.data[-1].line.color
            fig.add_scatter(x=x + x[::-1], y=list(values + std) + list((values - std)[::-1]), fill="toself",
                            line={"width": 0}, opacity=0.15, showlegend=False, hoverinfo="skip", fillcolor=color)
    fig.add_hline(y=0, line_dash="dot", annotation_text="decision threshold")
    fig.update_layout(height=380, margin=dict(l=10, r=10, t=40, b=10), title="Logit lens",
                      xaxis_title="after layer (−1 = embedding)", yaxis_title="score (logit phishing − legitimate)",
                      legend={"orientation": "h", "y": -0.25})
    return fig


def update_vs_effect(frame: pd.DataFrame) -> go.Figure:
    """Per head: LoRA update norm (x) against the size of its ablation effect (y)."""
    fig = go.Figure(go.Scatter(x=frame["total"], y=frame["delta_logit"].abs(), mode="markers",
                               text=[f"L{r.layer} H{r.head}" for r in frame.itertuples()],
                               marker={"color": frame["layer"], "colorscale": "Viridis", "showscale": True,
                                       "colorbar": {"title": "layer"}},
                               hovertemplate="%{text}: update %{x:.3f}, |Δ score| %{y:.3f}<extra></extra>"))
    fig.update_layout(height=380, margin=dict(l=10, r=10, t=40, b=10), title="Update size vs ablation effect",
                      xaxis_title="‖LoRA update‖ of the head (q, k, v, o)", yaxis_title="|Δ mean score| when ablated")
    return fig


def grid_heatmap(results: list[tuple[str, pd.DataFrame]], measure: str, title: str) -> go.Figure:
    """Rows of a sample diagnostic's grid × the results picked (one column each), coloured by one
    measure; the hover gives the value, its 95% interval and n."""
    rows = list(dict.fromkeys(r for _, frame in results for r in frame.loc[frame["column"] == measure, "row"]))
    z = np.full((len(rows), len(results)), np.nan)
    text = [["" for _ in results] for _ in rows]
    hover = [["" for _ in results] for _ in rows]
    for j, (_, frame) in enumerate(results):
        for record in frame[frame["column"] == measure].itertuples():
            i = rows.index(record.row)
            z[i, j] = record.value
            text[i][j] = f"{record.value:.2f}" if pd.notna(record.value) else "n/a"
            interval = f" [{record.low:.2f}, {record.high:.2f}]" if pd.notna(record.low) else ""
            hover[i][j] = f"{_safe(record.row)}: {text[i][j]}{interval}, n = {record.n}"
    fig = go.Figure(go.Heatmap(z=z, x=[_safe(label) for label, _ in results], y=[_safe(r) for r in rows], text=text,
                               texttemplate="%{text}", customdata=hover, hovertemplate="%{customdata}<extra></extra>",
                               colorscale="Viridis", colorbar={"title": _safe(measure)}))
    fig.update_layout(height=max(300, 30 * len(rows) + 120), margin=dict(l=10, r=10, t=80, b=10), title=_safe(title),
                      yaxis={"autorange": "reversed"}, xaxis={"side": "top"})  # result names above a long grid
    return fig


def shift_bars(shift: pd.DataFrame, first: str, second: str, n: int = 15) -> go.Figure:
    """The features whose mean attribution changed most between two sweeps, both values per feature."""
    top = shift.head(n).iloc[::-1]
    labels = [_safe(f) for f in top["feature"]]
    fig = go.Figure([go.Bar(x=top["mean_value_first"], y=labels, orientation="h", name=_safe(first),
                            marker_color="#9aa5b1"),
                     go.Bar(x=top["mean_value_second"], y=labels, orientation="h", name=_safe(second),
                            marker_color="#d62728")])
    fig.update_layout(barmode="group", height=max(320, 34 * len(top) + 100), margin=dict(l=10, r=10, t=40, b=10),
                      title="Explanation shift: largest changes in mean attribution per email",
                      xaxis_title="mean attribution per explained email (> 0 pushes towards phishing/spam)")
    return fig


def curve_figure(frame: pd.DataFrame, title: str) -> go.Figure:
    """One line per series (x → y) with a shaded 95% band (low, high)."""
    fig = go.Figure()
    for series, rows in frame.groupby("series", sort=False):
        name = _safe(series)
        fig.add_scatter(x=list(rows["x"]) + list(rows["x"])[::-1], y=list(rows["high"]) + list(rows["low"])[::-1],
                        fill="toself", line=dict(width=0), opacity=0.15, showlegend=False, hoverinfo="skip",
                        legendgroup=name)
        fig.add_scatter(x=rows["x"], y=rows["y"], mode="lines", name=name, legendgroup=name)
    fig.add_vline(x=0, line=dict(color="#999", dash="dot"))
    fig.update_layout(title=_safe(title), height=380, xaxis=dict(title="threshold (score)"), yaxis=dict(range=[0, 1]),
                      margin=dict(l=10, r=10, t=40, b=10), legend=dict(orientation="h"))
    return fig


def share_bars(summary: pd.DataFrame, title: str) -> go.Figure:
    """Per corpus (summary: corpus, n, flagged, estimate, low, high): the flagged share with its 95% interval."""
    fig = go.Figure()
    fig.add_bar(x=[_safe(c) for c in summary["corpus"]], y=100 * summary["estimate"], marker_color="#e76f51",
                error_y=dict(type="data", symmetric=False, array=100 * (summary["high"] - summary["estimate"]),
                             arrayminus=100 * (summary["estimate"] - summary["low"])),
                text=[f"{100 * e:.2f}%<br>{k} of {n}" for e, k, n in zip(summary["estimate"], summary["flagged"],
                                                                    summary["n"])],
                textposition="outside", hovertemplate="%{x}: %{y:.2f}%<extra></extra>")
    fig.update_layout(title=_safe(title), yaxis=dict(title="% of the corpus' emails", rangemode="tozero"),
                      height=360, margin=dict(l=10, r=10, t=40, b=10))
    return fig
