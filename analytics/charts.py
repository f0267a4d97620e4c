"""Plotly figures as plain dicts ({data, layout}) for plotly.js; no plotly import in the web process."""

from __future__ import annotations

PALETTE = ["#1f6feb", "#d1242f", "#1a7f37", "#9a6700", "#8250df", "#bf3989", "#0a7c86"]
SPLIT_COLOURS = {"train": "#1f6feb", "val": "#d1242f", "test": "#1a7f37"}


def _diagonal(name):
    """The dashed y = x reference line (chance on a ROC plot, perfect calibration)."""
    return {
        "type": "scatter",
        "mode": "lines",
        "name": name,
        "x": [0, 1],
        "y": [0, 1],
        "line": {"color": "#999", "dash": "dash"},
    }


def _layout(title, **extra):
    layout = {
        "title": {"text": title, "font": {"size": 15}},
        "margin": {"l": 60, "r": 20, "t": 45, "b": 50},
        "height": 340,
        "paper_bgcolor": "#fff",
        "plot_bgcolor": "#fff",
        "legend": {"orientation": "h", "y": -0.2},
    }
    layout.update(extra)
    return layout


def bar(title, x, y, *, xaxis="", yaxis="images", text=None):
    return {
        "data": [
            {
                "type": "bar",
                "x": x,
                "y": y,
                "text": text or y,
                "textposition": "auto",
                "marker": {"color": PALETTE[0]},
            }
        ],
        "layout": _layout(title, xaxis={"title": {"text": xaxis}}, yaxis={"title": {"text": yaxis}}),
    }


def grouped_bars(title, x, series: dict[str, list], *, stacked=False, yaxis="images", colours=None):
    data = [
        {
            "type": "bar",
            "name": name,
            "x": x,
            "y": values,
            "marker": {"color": (colours or {}).get(name, PALETTE[index % len(PALETTE)])},
        }
        for index, (name, values) in enumerate(series.items())
    ]
    return {
        "data": data,
        "layout": _layout(title, barmode="stack" if stacked else "group", yaxis={"title": {"text": yaxis}}),
    }


def heatmap_matrix(title, matrix, rows, columns, *, row_title, column_title, colorscale="Blues"):
    """A confusion-matrix style heatmap with the count written in each cell."""
    peak = max((value for line in matrix for value in line), default=0) or 1
    annotations = [
        {
            "x": column,
            "y": row,
            "text": str(matrix[i][j]),
            "showarrow": False,
            "font": {"color": "#fff" if matrix[i][j] > peak / 2 else "#000"},
        }
        for i, row in enumerate(rows)
        for j, column in enumerate(columns)
    ]
    return {
        "data": [
            {
                "type": "heatmap",
                "z": matrix,
                "x": columns,
                "y": rows,
                "colorscale": colorscale,
                # Plotly's named sequential scales run dark to light; more should look darker.
                "reversescale": True,
                "hovertemplate": f"{row_title} %{{y}}<br>{column_title} %{{x}}<br>%{{z}}<extra></extra>",
            }
        ],
        "layout": _layout(
            title,
            height=380,
            annotations=annotations,
            xaxis={"title": {"text": column_title}, "side": "bottom"},
            yaxis={"title": {"text": row_title}, "autorange": "reversed"},
        ),
    }


def lines(title, series: dict[str, tuple[list, list]], *, xaxis, yaxis, dashed=(), yrange=None):
    data = []
    for index, (name, (x, y)) in enumerate(series.items()):
        data.append(
            {
                "type": "scatter",
                "mode": "lines+markers" if len(x) < 40 else "lines",
                "name": name,
                "x": x,
                "y": y,
                "line": {
                    "color": PALETTE[index % len(PALETTE)],
                    "dash": "dash" if name in dashed else "solid",
                },
            }
        )
    yaxis_spec = {"title": {"text": yaxis}}
    if yrange:
        yaxis_spec["range"] = yrange
    return {"data": data, "layout": _layout(title, xaxis={"title": {"text": xaxis}}, yaxis=yaxis_spec)}


def roc_curves(curves: dict) -> dict:
    data = [
        {
            "type": "scatter",
            "mode": "lines",
            "name": f"{name} (AUC {curve.get('auc', float('nan')):.3f})",
            "x": curve["fpr"],
            "y": curve["tpr"],
            "line": {
                "color": PALETTE[index % len(PALETTE)],
                "dash": "dot" if name == "tumour_present" else "solid",
            },
        }
        for index, (name, curve) in enumerate(curves.items())
    ]
    data.append(_diagonal("chance"))
    return {
        "data": data,
        "layout": _layout(
            "ROC curves (one class against the rest)",
            height=420,
            xaxis={"title": {"text": "false positive rate"}, "range": [0, 1]},
            yaxis={"title": {"text": "true positive rate"}, "range": [0, 1.02]},
        ),
    }


def reliability(bins: list[dict], ece) -> dict:
    used = [b for b in bins if b.get("count")]
    centres = [(b["bin_low"] + b["bin_high"]) / 2 for b in used]
    widths = [b["bin_high"] - b["bin_low"] for b in used]
    title = "Reliability diagram" + (f" (ECE {ece:.3f})" if isinstance(ece, int | float) else "")
    return {
        "data": [
            {
                "type": "bar",
                "name": "accuracy in bin",
                "x": centres,
                "y": [b["accuracy"] for b in used],
                "width": widths,
                "customdata": [[b["count"], b["confidence"]] for b in used],
                "hovertemplate": (
                    "confidence %{customdata[1]:.3f}<br>accuracy %{y:.3f}<br>"
                    "%{customdata[0]} images<extra></extra>"
                ),
                "marker": {"color": PALETTE[0], "line": {"color": "#fff", "width": 1}},
            },
            {
                "type": "scatter",
                "mode": "markers",
                "name": "mean confidence",
                "x": centres,
                "y": [b["confidence"] for b in used],
                "marker": {"color": PALETTE[1], "symbol": "diamond"},
            },
            _diagonal("perfect calibration"),
        ],
        "layout": _layout(
            title,
            height=400,
            xaxis={"title": {"text": "confidence (top class, calibrated)"}, "range": [0, 1]},
            yaxis={"title": {"text": "accuracy"}, "range": [0, 1.02]},
        ),
    }
