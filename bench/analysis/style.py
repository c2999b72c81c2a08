"""One look for every figure: a fixed colour and marker per method, two-column-paper sizes and fonts.

Rules:

- **Identity.** Each method has one colour and one marker, keyed by its registered name (a variant
  label such as ``palora (rank=4)`` takes its method's), the same in every figure and dataset
  whichever methods are present. Front methods (``kind = "front"``) take saturated, colour-blind
  safe colours (Okabe & Ito's palette) and are drawn as lines with filled markers; single-point
  methods take a muted family and are drawn as muted markers with a dark edge. A method missing
  from :data:`STYLES` gets a deterministic fallback of its kind from a hash of its name.
- **Variants** of one method keep its colour and marker; the k-th (in sorted order) differs by line
  style (fronts) or marker fill (single points).
- **Published numbers** are hollow markers (dashed lines for fronts) in the method's colour.
- **Sizes.** :data:`COLUMN` (3.3 in) for one-panel figures, :data:`FULL` (7 in) for several panels;
  7-8 pt fonts, TrueType fonts in the PDF, tight bounding boxes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import zlib
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, Literal

import matplotlib as mpl
import matplotlib.pyplot as plt
from matplotlib.artist import Artist
from matplotlib.legend import Legend
from matplotlib.lines import Line2D

if TYPE_CHECKING:
    from matplotlib.typing import RcKeyType  # matplotlib >= 3.10 (annotations only)

Kind = Literal["front", "point"]

COLUMN = 3.3
"""Width (inches) of a single-column figure in a two-column paper."""
FULL = 7.0
"""Width (inches) of a full-width figure."""
FONT_SIZE = 8.0
SMALL_FONT_SIZE = 7.0
CHAR_WIDTH = 0.55 * SMALL_FONT_SIZE / 72
"""Approximate width (inches) of one legend character, to choose legend columns."""

PUBLISHED_COLOR = "0.45"
"""Published numbers of methods not run here, and the legend's generic published entries."""
POINT_EDGE = "0.2"
VARIANT_LINESTYLES = ("-", "--", ":", "-.")
VARIANT_FILLS = ("full", "none", "left", "bottom")


@dataclasses.dataclass(frozen=True)
class MethodStyle:
    """How one method is drawn."""

    color: str
    marker: str
    kind: Kind


STYLES: dict[str, MethodStyle] = {
    # fronts: Okabe & Ito's colour-blind safe palette, each with its own filled marker
    "palora": MethodStyle("#D55E00", "o", "front"),
    "padora": MethodStyle("#CC79A7", "D", "front"),
    "pamal": MethodStyle("#0072B2", "s", "front"),
    "phn-ls": MethodStyle("#009E73", "^", "front"),
    "phn-epo": MethodStyle("#56B4E9", "v", "front"),
    "cosmos": MethodStyle("#E69F00", "P", "front"),
    "ls": MethodStyle("#000000", "X", "front"),
    # single points: muted colours of equal lightness (HUSL s=35%, l=62%); the marker tells them apart
    "mean": MethodStyle("#9b9476", "o", "point"),
    "mgda": MethodStyle("#c2838b", "s", "point"),
    "mgda-ub": MethodStyle("#bd81a9", "8", "point"),
    "pcgrad": MethodStyle("#7b98a4", "^", "point"),
    "cagrad": MethodStyle("#869a76", "v", "point"),
    "imtl-g": MethodStyle("#b18c76", "<", "point"),
    "nash-mtl": MethodStyle("#8593ba", ">", "point"),
    "aligned-mtl": MethodStyle("#789c88", "p", "point"),
    "upgrad": MethodStyle("#a788ba", "h", "point"),
    "dualproj": MethodStyle("#799a97", "*", "point"),
}
FALLBACK_COLORS: dict[Kind, tuple[str, ...]] = {
    # Paul Tol's dark colours (distinct from the fronts above) and muted greys
    "front": ("#332288", "#882255", "#117733", "#999933", "#44AA99", "#AA4499"),
    "point": ("#8c8c8c", "#a3a3a3", "#767676", "#b0a89a", "#9aa3b0"),
}
FALLBACK_MARKERS = ("o", "s", "D", "^", "v", "<", ">", "p", "h", "*", "P", "X", "d")

RC: dict[RcKeyType, Any] = {
    "font.size": FONT_SIZE,
    "axes.labelsize": FONT_SIZE,
    "axes.titlesize": FONT_SIZE,
    "xtick.labelsize": SMALL_FONT_SIZE,
    "ytick.labelsize": SMALL_FONT_SIZE,
    "legend.fontsize": SMALL_FONT_SIZE,
    "legend.title_fontsize": SMALL_FONT_SIZE,
    "legend.frameon": False,
    "legend.handlelength": 1.6,
    "legend.columnspacing": 0.9,
    "legend.handletextpad": 0.4,
    "legend.labelspacing": 0.3,
    "axes.linewidth": 0.6,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "xtick.major.width": 0.6,
    "ytick.major.width": 0.6,
    "xtick.minor.width": 0.4,
    "ytick.minor.width": 0.4,
    "grid.linewidth": 0.4,
    "lines.linewidth": 1.1,
    "lines.markersize": 3.5,
    "errorbar.capsize": 0,
    "pdf.fonttype": 42,  # TrueType, not Type 3: what publishers ask for
    "ps.fonttype": 42,
    "savefig.bbox": "tight",
    "savefig.pad_inches": 0.02,
    "savefig.dpi": 300,
}


@contextlib.contextmanager
def paper_rc() -> Iterator[None]:
    """Matplotlib settings for paper figures, restored on exit (create and save the figure inside)."""
    with mpl.rc_context(RC):
        yield


def method_of(label: str) -> str:
    """The method's name in a label: ``palora (rank=4)`` -> ``palora``."""
    return label.split(" (", 1)[0]


def registered_kind(method: str) -> Kind | None:
    """The kind of a registered method (None when it is not registered)."""
    from bench.core.registry import METHODS

    return METHODS.get(method).kind if method in METHODS else None


def method_style(method: str, kind: str | None = None) -> MethodStyle:
    """The fixed style of ``method``; for a method without one, a fallback of its kind (the registry's,
    else ``kind``, else front) chosen by a hash of its name, so it is the same in every figure."""
    if method in STYLES:
        return STYLES[method]
    resolved: Kind = registered_kind(method) or ("point" if kind == "point" else "front")
    digest = zlib.crc32(method.encode())
    colors = FALLBACK_COLORS[resolved]
    return MethodStyle(
        colors[digest % len(colors)], FALLBACK_MARKERS[(digest // len(colors)) % len(FALLBACK_MARKERS)], resolved
    )


def label_style(label: str, labels: Sequence[str] = (), kind: str | None = None) -> dict[str, Any]:
    """Matplotlib keyword arguments for ``label`` (color, marker, linestyle, fillstyle, edge); among
    ``labels``, the k-th variant of the same method gets the k-th line style or marker fill."""
    method = method_of(label)
    style = method_style(method, kind)
    variants = sorted(lab for lab in {*labels, label} if method_of(lab) == method)
    k = variants.index(label) if len(variants) > 1 else 0
    if style.kind == "front":
        return {
            "color": style.color,
            "marker": style.marker,
            "linestyle": VARIANT_LINESTYLES[k % len(VARIANT_LINESTYLES)],
            "fillstyle": "full",
            "markeredgecolor": style.color,
            "markeredgewidth": 0.0,
        }
    return {
        "color": style.color,
        "marker": style.marker,
        "linestyle": "none",
        "fillstyle": VARIANT_FILLS[k % len(VARIANT_FILLS)],
        "markeredgecolor": POINT_EDGE,
        "markeredgewidth": 0.4,
    }


def kind_of(label: str, kind: str | None = None) -> Kind:
    """Front or point: the style table's, the registry's, else ``kind``, else front."""
    return method_style(method_of(label), kind).kind


def ordered(labels: Sequence[str], kinds: dict[str, str] | None = None) -> list[str]:
    """Fronts first, then single points; alphabetical within each."""
    kinds = kinds or {}
    return sorted(set(labels), key=lambda lab: (kind_of(lab, kinds.get(lab)) != "front", lab))


def method_handle(label: str, labels: Sequence[str], kind: str | None = None, point_line: str = "none") -> Line2D:
    """A legend handle that looks like the method in the figure (``point_line``: how single-point
    methods' lines are drawn there, e.g. ``--`` in the convergence figure)."""
    kw = label_style(label, labels, kind)
    if kw["linestyle"] == "none":
        kw["linestyle"] = point_line
    return Line2D([], [], markersize=4.5 if kw["linestyle"] == "none" else 3.5, **kw)


def blank() -> Line2D:
    return Line2D([], [], linestyle="none", marker="none")


def method_legend(
    fig: plt.Figure,
    labels: Sequence[str],
    kinds: dict[str, str] | None = None,
    extra: Sequence[tuple[str, Sequence[tuple[Artist, str]]]] = (),
    width: float | None = None,
    point_line: str = "none",
    names: dict[str, str] | None = None,
) -> Legend:
    """One legend below the axes, in blocks that each start a column under a header: "Pareto fronts",
    "single models", then ``extra`` blocks (header, [(handle, text)]). Columns are chosen to fit
    ``width`` inches (default: the figure's width); ``names`` renames entries (e.g. adds seed counts)."""
    kinds, names = kinds or {}, names or {}
    labels = ordered(labels, kinds)
    blocks: list[tuple[str, list[tuple[Artist, str]]]] = []
    for header, kind in (("Pareto fronts", "front"), ("single models", "point")):
        members = [lab for lab in labels if kind_of(lab, kinds.get(lab)) == kind]
        if members:
            entries: list[tuple[Artist, str]] = [
                (method_handle(lab, labels, kinds.get(lab), point_line), names.get(lab, lab)) for lab in members
            ]
            blocks.append((header, entries))
    blocks += [(header, list(entries)) for header, entries in extra if entries]
    blocks = [(wrap(header), entries) for header, entries in blocks]
    rows = legend_rows([[header, *(t for _, t in entries)] for header, entries in blocks], width or fig.get_figwidth())
    handles: list[Artist] = []
    texts: list[str] = []
    headers: list[int] = []
    for header, entries in blocks:
        headers.append(len(texts))
        items = [(blank(), header), *entries]
        items += [(blank(), "")] * (-len(items) % rows)
        handles += [h for h, _ in items]
        texts += [t for _, t in items]
    legend = fig.legend(
        handles, texts, loc="outside lower center", ncols=len(texts) // rows, handlelength=1.6, borderaxespad=0.2
    )
    for i in headers:
        legend.get_texts()[i].set_fontweight("bold")
        handle = legend.legend_handles[i]
        assert handle is not None  # a header's handle is a blank() Line2D, which has a legend handler
        handle.set_visible(False)
    return legend


def wrap(header: str, limit: int = 16) -> str:
    """A long block header on two lines, broken before its parenthesis."""
    return header.replace(" (", "\n(", 1) if len(header) > limit else header


def legend_rows(blocks: Sequence[Sequence[str]], width: float) -> int:
    """The fewest rows at which the legend's blocks (each its header and texts, in columns of their
    own) fit ``width`` inches; each block in one column when nothing fits."""

    def block_width(texts: Sequence[str], rows: int) -> float:
        longest = max(len(line) for text in texts for line in text.splitlines())
        return math.ceil(len(texts) / rows) * (longest + 5) * CHAR_WIDTH  # text, handle, spacing

    tallest = max(len(texts) for texts in blocks)
    return next(r for r in range(1, tallest + 1) if sum(block_width(t, r) for t in blocks) <= width or r == tallest)


def published_handles(fronts: bool, points: bool, others: bool) -> list[tuple[Artist, str]]:
    """Generic legend entries for published numbers (hollow; coloured as the method where it ran here)."""
    out: list[tuple[Artist, str]] = []
    hollow: dict[str, Any] = {"color": PUBLISHED_COLOR, "markerfacecolor": "none", "markersize": 4}
    if fronts:
        out.append((Line2D([], [], marker="o", linestyle="--", **hollow), "front"))
    if points:
        out.append((Line2D([], [], marker="o", linestyle="none", **hollow), "single model"))
    if others:
        out.append((Line2D([], [], marker="x", linestyle="none", color=PUBLISHED_COLOR), "not run here"))
    return out
