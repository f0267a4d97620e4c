"""The analytics pages' Plotly figures, built with plotly's Python API; templates embed them with
the ``figure_script`` filter (analytics/templatetags/figures.py) and static/js/analytics.js draws them."""

from __future__ import annotations

import plotly.graph_objects as go

PALETTE = ["#1f6feb", "#d1242f", "#1a7f37", "#9a6700", "#8250df", "#bf3989", "#0a7c86"]
SPLIT_COLOURS = {"train": "#1f6feb", "val": "#d1242f", "test": "#1a7f37"}


def _diagonal(name):
    """The dashed y = x reference line (chance on a ROC plot, perfect calibration)."""
    return go.Scatter(mode="lines", name=name, x=[0, 1], y=[0, 1], line={"color": "#999", "dash": "dash"})


def _figure(data, title, **layout):
    # template "none": plotly.js's own look, as the pages had before plotly's Python API drew them.
    base = {
        "template": "none",
        # The title sits just above the plotting area, below the mode bar (top right, shown on
        # hover), so the bar never covers it however long the title is.
        "title": {
            "text": title,
            "font": {"size": 15},
            "x": 0,
            "xref": "paper",
            "xanchor": "left",
            "y": 1,
            "yref": "paper",
            "yanchor": "bottom",
            "pad": {"b": 10},
        },
        "margin": {"l": 60, "r": 20, "t": 60, "b": 50},
        "height": 360,
        "paper_bgcolor": "#fff",
        "plot_bgcolor": "#fff",
        # At the bottom of the chart, below the x axis title (the margin grows to hold it).
        "legend": {"orientation": "h", "yref": "container", "y": 0, "yanchor": "bottom"},
    }
    # Margins grow to fit the tick labels and axis titles ("meningioma", "not classified").
    for axis in ("xaxis", "yaxis"):
        layout[axis] = {"automargin": True} | layout.get(axis, {})
    return go.Figure(data=data, layout=base | layout)


def bar(title, x, y, *, xaxis="", yaxis="images", text=None) -> go.Figure:
    trace = go.Bar(x=x, y=y, text=text or y, textposition="auto", marker={"color": PALETTE[0]})
    return _figure([trace], title, xaxis={"title": {"text": xaxis}}, yaxis={"title": {"text": yaxis}})


def grouped_bars(
    title, x, series: dict[str, list], *, stacked=False, yaxis="images", colours=None
) -> go.Figure:
    data = [
        go.Bar(
            name=name,
            x=x,
            y=values,
            marker={"color": (colours or {}).get(name, PALETTE[index % len(PALETTE)])},
        )
        for index, (name, values) in enumerate(series.items())
    ]
    return _figure(data, title, barmode="stack" if stacked else "group", yaxis={"title": {"text": yaxis}})


def confusion_matrix(title, matrix, true_labels, predicted_labels, *, truth, prediction, colorscale="Blues"):
    """A confusion matrix with the count in each cell, the same way round on every page: one row per
    true label (``matrix[row][column]``), one column per predicted label; ``truth`` and
    ``prediction`` say where each comes from."""
    # plotly's Python named scales (ColorBrewer's) run light to dark: more looks darker; plotly.js
    # writes each count in a colour that contrasts with its cell.
    trace = go.Heatmap(
        z=matrix,
        x=predicted_labels,
        y=true_labels,
        colorscale=colorscale,
        texttemplate="%{z}",
        hovertemplate="true %{y}<br>predicted %{x}<br>%{z}<extra></extra>",
    )
    return _figure(
        [trace],
        title,
        height=400,
        xaxis={"title": {"text": f"predicted label ({prediction})"}, "side": "bottom", "type": "category"},
        yaxis={"title": {"text": f"true label ({truth})"}, "autorange": "reversed", "type": "category"},
    )


def lines(title, series: dict[str, tuple[list, list]], *, xaxis, yaxis, dashed=(), yrange=None) -> go.Figure:
    data = [
        go.Scatter(
            mode="lines+markers" if len(x) < 40 else "lines",
            name=name,
            x=x,
            y=y,
            line={"color": PALETTE[index % len(PALETTE)], "dash": "dash" if name in dashed else "solid"},
        )
        for index, (name, (x, y)) in enumerate(series.items())
    ]
    yaxis_spec = {"title": {"text": yaxis}}
    if yrange:
        yaxis_spec["range"] = yrange
    return _figure(data, title, xaxis={"title": {"text": xaxis}}, yaxis=yaxis_spec)


def agreement_trend(versions: list[dict]) -> go.Figure:
    """Monthly agreement rate of each model version with clinicians' reviews (field performance)."""
    figure = lines(
        "Agreement with clinicians per month",
        {v["name"]: ([m["month"] for m in v["months"]], [m["rate"] for m in v["months"]]) for v in versions},
        xaxis="month of review",
        yaxis="agreement rate",
        yrange=[0, 1.02],
    )
    for trace, version in zip(figure.data, versions, strict=True):
        trace.customdata = [[m["agreed"], m["reviews"]] for m in version["months"]]
        trace.hovertemplate = (
            "%{x}: %{y:.1%} (%{customdata[0]} of %{customdata[1]})<extra>%{fullData.name}</extra>"
        )
        trace.mode = "lines+markers"
    figure.update_xaxes(type="category")
    return figure


def roc_curves(curves: dict, operating_point: dict | None = None) -> go.Figure:
    """One-against-the-rest ROC curves; ``operating_point`` ({threshold, sensitivity,
    specificity}) marks where the shipped tumour threshold sits on the tumour-present curve."""
    data = [
        go.Scatter(
            mode="lines",
            name=f"{name} (AUC {curve.get('auc', float('nan')):.3f})",
            x=curve["fpr"],
            y=curve["tpr"],
            line={
                "color": PALETTE[index % len(PALETTE)],
                "dash": "dot" if name == "tumour_present" else "solid",
            },
        )
        for index, (name, curve) in enumerate(curves.items())
    ]
    if operating_point:
        threshold, sensitivity, specificity = (
            operating_point[key] for key in ("threshold", "sensitivity", "specificity")
        )
        data.append(
            go.Scatter(
                mode="markers",
                name=f"tumour threshold {threshold:.2f}",
                x=[1 - specificity],
                y=[sensitivity],
                marker={"color": "#000", "symbol": "x", "size": 11},
                hovertemplate=(
                    f"threshold {threshold:.2f}: sensitivity {sensitivity:.1%}, "
                    f"specificity {specificity:.1%}<extra></extra>"
                ),
            )
        )
    data.append(_diagonal("chance"))
    return _figure(
        data,
        "ROC curves (one class against the rest)",
        height=440,
        xaxis={"title": {"text": "false positive rate (1 − specificity)"}, "range": [0, 1]},
        yaxis={"title": {"text": "true positive rate (sensitivity)"}, "range": [0, 1.02]},
    )


def reliability(bins: list[dict], ece) -> go.Figure:
    used = [b for b in bins if b.get("count")]
    centres = [(b["bin_low"] + b["bin_high"]) / 2 for b in used]
    widths = [b["bin_high"] - b["bin_low"] for b in used]
    title = "Reliability diagram" + (f" (ECE {ece:.3f})" if isinstance(ece, int | float) else "")
    accuracy = go.Bar(
        name="accuracy in bin",
        x=centres,
        y=[b["accuracy"] for b in used],
        width=widths,
        customdata=[[b["count"], b["confidence"]] for b in used],
        hovertemplate=(
            "confidence %{customdata[1]:.3f}<br>accuracy %{y:.3f}<br>%{customdata[0]} images<extra></extra>"
        ),
        marker={"color": PALETTE[0], "line": {"color": "#fff", "width": 1}},
    )
    confidence = go.Scatter(
        mode="markers",
        name="mean confidence",
        x=centres,
        y=[b["confidence"] for b in used],
        marker={"color": PALETTE[1], "symbol": "diamond"},
    )
    return _figure(
        [accuracy, confidence, _diagonal("perfect calibration")],
        title,
        height=420,
        xaxis={"title": {"text": "confidence (top class, calibrated)"}, "range": [0, 1]},
        yaxis={"title": {"text": "accuracy"}, "range": [0, 1.02]},
    )
