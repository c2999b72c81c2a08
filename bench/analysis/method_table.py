"""One table row per run from its ``summary.json``: ``python -m bench.analysis.method_table RUNS [--out F]``.

Columns: method, kind, seed, hypervolume (recomputed from the stored test front, as ``bench.analysis.report``
does), each task's accuracy (its HV metric) at its own end of the front
(ray e_k; a single-point method's one point), trainable and inference parameters, training seconds
per epoch, steps. Reads run records only (design.md: scoring reads only logs).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from bench.core.atomic import write_text
from bench.core.hypervolume import front_hypervolume
from bench.core.registry import DATASETS, load_all


def load_summaries(runs: Path) -> list[dict[str, Any]]:
    """Every ``<runs>/*/summary.json`` with its run's ``epochs`` (from ``config.json``), sorted by
    (dataset, method, seed)."""
    summaries = []
    for path in sorted(Path(runs).glob("*/summary.json")):
        summary = json.loads(path.read_text())
        config = json.loads((path.parent / "config.json").read_text())
        summaries.append({**summary, "epochs": config["config"]["train"]["epochs"]})
    return sorted(summaries, key=lambda s: (s["dataset"], s["method"], s["seed"]))


def end_values(summary: dict[str, Any]) -> dict[str, float]:
    """Each objective's HV metric at the ray that puts all weight on it (or the single point)."""
    objectives = list(summary["hv_metrics"])
    front = summary["front"]
    out = {}
    for k, name in enumerate(objectives):
        metric = summary["hv_metrics"][name].split(" - ")[-1]
        if summary["kind"] == "point" or len(front) == 1:
            entry = front[0]
        else:
            entry = max(front, key=lambda e: e["ray"][k])  # called here, with this iteration's k
        out[name] = entry["metrics"][name][metric]
    return out


def row(summary: dict[str, Any]) -> dict[str, Any]:
    """The run's table row; its hypervolume recomputed from the stored test front (the dataset's default)."""
    load_all()
    epochs = max(int(summary["epochs"]), 1)
    return {
        "method": summary["method"],
        "kind": summary["kind"],
        "seed": summary["seed"],
        "hypervolume": front_hypervolume(summary["front"], DATASETS.get(summary["dataset"])),
        "ends": end_values(summary),
        "trainable": summary["parameters"]["trainable"],
        "inference": summary["parameters"]["inference"],
        "seconds_per_epoch": summary["train_seconds"] / epochs,
        "steps": summary["steps"],
    }


def markdown_table(summaries: list[dict[str, Any]]) -> str:
    rows = [row(s) for s in summaries]
    if not rows:
        return "(no runs)\n"
    names = list(rows[0]["ends"])
    header = [
        "method",
        "kind",
        "seed",
        "HV",
        *[f"{n} at its end" for n in names],
        "trainable params",
        "inference params",
    ]
    header += ["train s/epoch", "steps"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in rows:
        cells = [
            f"`{r['method']}`",
            r["kind"],
            str(r["seed"]),
            f"{r['hypervolume']:.4f}",
            *[f"{r['ends'][n]:.4f}" for n in names],
        ]
        cells += [f"{r['trainable']:,}", f"{r['inference']:,}", f"{r['seconds_per_epoch']:.2f}", str(r["steps"])]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.analysis.method_table", description=__doc__)
    parser.add_argument("runs", type=Path, help="folder of run directories")
    parser.add_argument("--out", type=Path, help="write the table here (atomically) instead of printing it")
    args = parser.parse_args(argv)
    table = markdown_table(load_summaries(args.runs))
    if args.out:
        write_text(args.out, table)
    else:
        print(table, end="")


if __name__ == "__main__":
    main()
