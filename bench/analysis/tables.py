"""Write a table three ways, each atomically: CSV (full precision, for scripts), markdown (for the
README and notes) and LaTeX (booktabs, for papers). Cells of the markdown and LaTeX forms are the
already-formatted strings of a display frame; the CSV keeps the raw numbers.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from bench.core.atomic import write_text

LATEX_SPECIALS = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
}
LATEX_UNICODE = {"±": r"$\pm$", "×": r"$\times$", "–": "--", "−": "$-$"}


def text_rows(display: pd.DataFrame) -> list[list[str]]:
    """Every cell as text, a missing one (NaN, None) as an en dash."""
    return [["–" if pd.isna(cell) else str(cell) for cell in row] for row in display.itertuples(index=False)]


def markdown(display: pd.DataFrame) -> str:
    """A GitHub markdown table of the frame's string cells (``|`` escaped)."""
    header = [str(c) for c in display.columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in text_rows(display):
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |")
    return "\n".join(lines) + "\n"


def latex_escape(text: str) -> str:
    escaped = "".join(LATEX_SPECIALS.get(ch, ch) for ch in str(text))
    for plain, command in LATEX_UNICODE.items():
        escaped = escaped.replace(plain, command)
    return escaped


def latex(display: pd.DataFrame, caption: str, label: str) -> str:
    """A booktabs ``table`` environment: first column left-aligned, the others right-aligned."""
    columns = "l" + "r" * (len(display.columns) - 1)
    body = [" & ".join(latex_escape(c) for c in row) + r" \\" for row in text_rows(display)]
    return "\n".join(
        [
            r"\begin{table}[t]",
            r"\centering",
            rf"\caption{{{latex_escape(caption)}}}",
            rf"\label{{{label}}}",
            rf"\begin{{tabular}}{{{columns}}}",
            r"\toprule",
            " & ".join(latex_escape(c) for c in display.columns) + r" \\",
            r"\midrule",
            *body,
            r"\bottomrule",
            r"\end{tabular}",
            r"\end{table}",
            "",
        ]
    )


def write_table(raw: pd.DataFrame, display: pd.DataFrame, directory: Path, name: str, caption: str) -> list[Path]:
    """``<name>.csv`` from ``raw``; ``<name>.md`` and ``<name>.tex`` from ``display``. Returns the paths."""
    directory = Path(directory)
    paths = [directory / f"{name}.csv", directory / f"{name}.md", directory / f"{name}.tex"]
    write_text(paths[0], raw.to_csv(index=False))
    write_text(paths[1], markdown(display))
    write_text(paths[2], latex(display, caption, f"tab:{name}"))
    return paths
