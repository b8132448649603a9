"""HTML helpers shared by the report's pages: one stylesheet (scoped to ``.relift``, so that a
page embedded in the Snakemake report leaves the report's own styles alone), escaping, numbers
and tables."""

from __future__ import annotations

import base64
import html
from pathlib import Path

CSS = """
.relift { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
  color: #1f2328; line-height: 1.45; font-size: 14px; }
.relift h1 { font-size: 1.45rem; margin: 0 0 .4rem; font-weight: 650; }
.relift h2 { font-size: 1.15rem; margin: 1.1rem 0 .35rem; font-weight: 650; }
.relift h3 { font-size: 1rem; margin: .9rem 0 .3rem; font-weight: 600; }
.relift p { margin: .3rem 0; }
.relift table { border-collapse: collapse; margin: .3rem 0 .8rem; font-size: 13px; }
.relift th, .relift td { padding: 3px 9px; border-bottom: 1px solid #d8dee4;
  text-align: left; vertical-align: top; }
.relift th { background: #f6f8fa; font-weight: 600; white-space: nowrap; }
.relift td.num, .relift th.num { text-align: right; font-variant-numeric: tabular-nums;
  white-space: nowrap; }
.relift tr.baseline td { background: #f6f8fa; }
.relift tr.reference td { background: #ddf4ff; }
.relift tr.diagnostic td { color: #59636e; font-style: italic; }
.relift .flag { border-left: 4px solid #cf222e; background: #ffebe9; padding: .35rem .7rem;
  margin: .3rem 0; }
.relift .flag.ok { border-left-color: #1a7f37; background: #dafbe1; }
.relift .verdict { border-left: 4px solid #0969da; background: #f6f8fa; padding: .35rem .7rem;
  margin: .3rem 0; }
.relift .holds { color: #1a7f37; font-weight: 600; }
.relift .fails { color: #cf222e; font-weight: 600; }
.relift .neg { color: #cf222e; }
.relift .pos { color: #1a7f37; }
.relift .sig { font-weight: 650; }
.relift .muted { color: #59636e; font-size: 12px; }
.relift img { max-width: 100%; height: auto; }
.relift details { margin: .4rem 0 1rem; }
.relift summary { cursor: pointer; font-weight: 600; }
"""


class Raw(str):
    """Pre-rendered HTML: a table cell that is not escaped."""


def esc(x) -> str:
    return x if isinstance(x, Raw) else html.escape(str(x))


def num(x, spec: str = ".2f", signed: bool = False) -> str:
    if x is None or x == "":
        return "–"
    text = format(float(x), ("+" if signed else "") + spec)
    if float(text) == 0:  # no negative zero
        text = text.replace("-", "+" if signed else "", 1)
    return text


def signed_cell(delta, p=None, ci=None, lower_is_better: bool = False, spec=".2f") -> Raw:
    """A difference, green when it is better and red when it is worse, bold when p < 0.05."""
    if delta is None:
        return Raw("–")
    better = delta < 0 if lower_is_better else delta > 0
    cls = "" if delta == 0 else "pos" if better else "neg"
    if p is not None and p < 0.05:
        cls += " sig"
    text = num(delta, spec, signed=True)
    if p is not None:
        text += f" (p {p:.3f})"
    if ci:
        text += f" [{num(ci[0], signed=True)}, {num(ci[1], signed=True)}]"
    return Raw(f"<span class='{cls.strip()}'>{html.escape(text)}</span>")


def table(head: list[str], body: list[list], numeric: set[int] = frozenset(), row_classes=None):
    """An HTML table; columns in ``numeric`` are right-aligned; ``row_classes``: one CSS class
    (or '') per body row."""

    def cell(tag: str, i: int, x) -> str:
        cls = " class='num'" if i in numeric else ""
        return f"<{tag}{cls}>{esc(x)}</{tag}>"

    out = ["<table>", "<tr>" + "".join(cell("th", i, h) for i, h in enumerate(head)) + "</tr>"]
    for k, row in enumerate(body):
        cls = row_classes[k] if row_classes else ""
        attr = f" class='{cls}'" if cls else ""
        out.append(f"<tr{attr}>" + "".join(cell("td", i, x) for i, x in enumerate(row)) + "</tr>")
    out.append("</table>")
    return Raw("\n".join(out))


def png_data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode()


def page(title: str, body: str) -> str:
    """A standalone page with the stylesheet."""
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{html.escape(title)}</title><style>{CSS}</style></head>"
        f"<body class='relift' style='margin: 1.2rem 1.6rem; max-width: 78rem'>{body}"
        "</body></html>\n"
    )
