"""A report as a list of blocks, and the one place that writes it: figures drawn with
matplotlib, Markdown, one self-contained HTML page (figures embedded) and the numbers as JSON.

The report's sections (:mod:`metazoo.analysis.sections`) compute and phrase; they return
blocks, a figure among them as what to draw (:func:`line_figure`, :func:`bar_figure`,
:func:`figure`), and :func:`write_report` writes the files. Cells of numbers are formatted
here too (:func:`fmt`, :func:`cell`), so that every table reads alike.
"""

from __future__ import annotations

import base64
import html
import json
import math
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt
import torch

from metazoo.stats import mean_ci

Block = tuple


def title(text: str) -> Block:
    return ("title", text)


def heading(text: str) -> Block:
    return ("heading", text)


def paragraph(text: str) -> Block:
    return ("paragraph", text)


def bullets(items: Sequence[str]) -> Block:
    return ("bullets", list(items))


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> Block:
    return ("table", list(header), [list(r) for r in rows])


def image(path: Path, caption: str) -> Block:
    return ("image", Path(path), caption)


def figure(name: str, draw: Callable[[Path], object], caption: str) -> Block:
    """A figure to draw into ``name`` (a file name in the report folder) when written."""
    return ("figure", name, draw, caption)


def fmt(mean: float, half: float, digits: int = 3) -> str:
    """A mean ± 95% half-width, or the mean alone where there is no interval."""
    if math.isnan(half):
        return f"{mean:.{digits}g}"
    return f"{mean:.{digits}g} ± {half:.2g}"


def cell(values, unit: str = "tasks") -> str:
    """Mean ± 95% CI, or, where any value is NaN or infinite, the divergence named: a table
    never shows nan or inf for a method that diverged."""
    data = torch.as_tensor(values, dtype=torch.float64).flatten()
    bad = int((~torch.isfinite(data)).sum())
    if bad:
        return f"diverged ({bad} of {data.numel()} {unit})"
    return fmt(*mean_ci(data))


def write_report(folder: Path, blocks: list[Block], page_title: str, numbers: dict) -> Path:
    """Draw the figures into ``folder``, then write ``index.md``, ``index.html`` and
    ``summary.json`` (``numbers``); returns the path of ``index.md``."""
    folder.mkdir(parents=True, exist_ok=True)
    drawn = draw_figures(folder, blocks)
    (folder / "index.md").write_text(to_markdown(drawn))
    (folder / "index.html").write_text(to_html(drawn, page_title))
    (folder / "summary.json").write_text(json.dumps(numbers, indent=2) + "\n")
    return folder / "index.md"


def draw_figures(folder: Path, blocks: list[Block]) -> list[Block]:
    """The blocks with each figure drawn into ``folder`` and replaced by its image."""
    drawn = []
    for block in blocks:
        if block[0] == "figure":
            _, name, draw, caption = block
            draw(folder / name)
            block = image(folder / name, caption)
        drawn.append(block)
    return drawn


def to_markdown(blocks: list[Block]) -> str:
    lines: list[str] = []
    for block in blocks:
        kind = block[0]
        if kind == "title":
            lines += [f"# {block[1]}", ""]
        elif kind == "heading":
            lines += [f"## {block[1]}", ""]
        elif kind == "paragraph":
            lines += [block[1], ""]
        elif kind == "bullets":
            lines += [f"- {item}" for item in block[1]] + [""]
        elif kind == "table":
            header, rows = block[1], block[2]
            lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
            lines += ["| " + " | ".join(row) + " |" for row in rows] + [""]
        elif kind == "image":
            lines += [f"![{block[2]}]({block[1].name})", "", f"*{block[2]}*", ""]
        elif kind == "figure":  # not drawn yet: named as it will be
            lines += [f"![{block[3]}]({block[1]})", "", f"*{block[3]}*", ""]
    return "\n".join(lines)


def to_html(blocks: list[Block], page_title: str) -> str:
    parts = [(f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(page_title)}"
             "</title><style>body{font-family:sans-serif;max-width:70em;margin:2em auto;"
             "line-height:1.4}table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid "
             "#ccc;padding:.25em .5em;text-align:right}td:first-child,th:first-child{text-align:"
             "left}img{max-width:100%}</style></head><body>")]
    for block in blocks:
        kind = block[0]
        if kind == "title":
            parts.append(f"<h1>{html.escape(block[1])}</h1>")
        elif kind == "heading":
            parts.append(f"<h2>{html.escape(block[1])}</h2>")
        elif kind == "paragraph":
            parts.append(f"<p>{html.escape(block[1])}</p>")
        elif kind == "bullets":
            parts.append("<ul>" + "".join(f"<li>{html.escape(i)}</li>" for i in block[1])
                         + "</ul>")
        elif kind == "table":
            head = "".join(f"<th>{_breakable(h)}</th>" for h in block[1])
            body = "".join("<tr>" + "".join(f"<td>{_breakable(c)}</td>" for c in row) + "</tr>"
                           for row in block[2])
            parts.append(f"<table><tr>{head}</tr>{body}</table>")
        elif kind == "image":
            data = base64.b64encode(block[1].read_bytes()).decode()
            parts.append(f"<figure><img src='data:image/png;base64,{data}' alt='"
                         f"{html.escape(block[2])}'><figcaption>{html.escape(block[2])}"
                         "</figcaption></figure>")
    parts.append("</body></html>")
    return "\n".join(parts)


def _breakable(text: str) -> str:
    """Escaped, with a line-break opportunity after each underscore, so that a column headed
    by a long identifier (``consecutive_cosine``) can narrow and its table fit the page."""
    return html.escape(text).replace("_", "_<wbr>")


def line_figure(name: str, caption: str, xs, curves: dict, *, xlabel: str, ylabel: str,
                panels: Sequence | None = None, panel_name: str = "") -> Block:
    """Lines ``curves[label] = ys`` (or ``curves[(label, panel)]`` with ``panels``)."""
    return figure(name, partial(draw_lines, xs=list(xs), curves=curves, xlabel=xlabel,
                                ylabel=ylabel, panels=panels, panel_name=panel_name), caption)


def bar_figure(name: str, caption: str, names: Sequence[str],
               series: dict[str, Sequence[float]], *, ylabel: str, title: str) -> Block:
    """Grouped bars: one group per name, one bar per series."""
    return figure(name, partial(draw_bars, names=list(names), series=series, ylabel=ylabel,
                                title=title), caption)


def draw_lines(path: Path, xs, curves: dict, *, xlabel: str, ylabel: str,
               panels: Sequence | None = None, panel_name: str = "") -> Path:
    panels = list(panels) if panels else [None]
    figure, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.8), squeeze=False)
    for axis, panel in zip(axes[0], panels):
        for key, ys in curves.items():
            label, where = (key if panel is not None else (key, None))
            if where == panel:
                axis.plot(list(xs), ys, marker="o", label=str(label))
        axis.set_xlabel(xlabel)
        axis.set_ylabel(ylabel)
        if panel is not None:
            axis.set_title(f"{panel_name} = {panel}")
        axis.grid(alpha=0.3)
    axes[0][-1].legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return Path(path)


def draw_bars(path: Path, names: Sequence[str], series: dict[str, Sequence[float]], *,
              ylabel: str, title: str) -> Path:
    figure, axis = plt.subplots(figsize=(max(5, 1.1 * len(names)), 3.8))
    width = 0.8 / max(1, len(series))
    for index, (label, values) in enumerate(series.items()):
        axis.bar([i + index * width for i in range(len(names))], values, width, label=label)
    axis.set_xticks([i + 0.4 - width / 2 for i in range(len(names))], names, rotation=20)
    axis.set_ylabel(ylabel)
    axis.set_title(title)
    axis.legend(fontsize=8)
    axis.grid(alpha=0.3, axis="y")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return Path(path)
