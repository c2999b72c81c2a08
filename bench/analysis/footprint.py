"""Memory footprint per method: parameters, bytes of the training state, peak memory per phase, and
the overhead over one plain model, alone and against PaMaL's.

Definitions (all read from run records):

- ``× single`` = trainable parameters / parameters of one plain multi-task model (the backbone with
  its heads), and ``overhead`` = ``× single`` − 1: the official code's definition
  (``CountParametersCallback`` in nik-dim/palora ``src/callbacks/utils/count_params_callback.py``:
  trainable parameters / the vanilla MTL model's − 1). The PaLoRA paper's memory claim (an overhead
  23.8–31.7× smaller than the other PFL methods' on Cityscapes and NYUv2) compares this overhead
  between methods; ``PaMaL / this`` is PaMaL's overhead divided by the method's (blank for a method
  that adds nothing, or when no PaMaL run exists).
- ``training state`` = bytes of parameters + gradients + optimizer state, counted from the live
  tensors at the end of training (:func:`bench.train.memory.training_state_bytes`).
- ``peak train`` / ``peak eval``: the run's peak memory per phase, CUDA's peak-allocated counter on a
  GPU, the process's peak RSS on CPU (the column ``peak kind`` says which).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from bench.analysis.records import Run, variant_labels

REFERENCE_METHOD = "pamal"


def footprint_table(runs: list[Run]) -> pd.DataFrame:
    """Per (dataset, label): parameter counts, overhead ratios, training-state bytes and peak
    memory (means over the usable seeds)."""
    labels = variant_labels(runs)
    rows = []
    for run in runs:
        if not run.usable:
            continue
        summary = run.summary or {}
        params = summary["parameters"]
        state = summary.get("training_state_bytes", {})
        peaks = summary.get("peak_memory_bytes", {})
        rows.append(
            {
                "dataset": run.dataset,
                "label": labels[run.variant],
                "method": run.method,
                "total": params["total"],
                "trainable": params["trainable"],
                "inference": params["inference"],
                "single_model": params.get("single_model", np.nan),
                "state_bytes": state.get("total", np.nan),
                "parameter_bytes": state.get("parameters", np.nan),
                "gradient_bytes": state.get("gradients", np.nan),
                "optimizer_bytes": state.get("optimizer_state", np.nan),
                "peak_train_bytes": peaks.get("train", np.nan),
                "peak_eval_bytes": peaks.get("eval", np.nan),
                "peak_kind": peaks.get("kind", ""),
            }
        )
    if not rows:
        return pd.DataFrame()
    per_run = pd.DataFrame(rows)
    numeric = [c for c in per_run.columns if c not in ("dataset", "label", "method", "peak_kind")]
    table = per_run.groupby(["dataset", "label"], as_index=False).agg(
        {"method": "first", "peak_kind": "first", **dict.fromkeys(numeric, "mean")}
    )
    table["x_single"] = table["trainable"] / table["single_model"]
    table["overhead"] = table["x_single"] - 1.0
    table["pamal_ratio"] = np.nan
    for _, group in table.groupby("dataset"):
        reference = group[group["method"] == REFERENCE_METHOD]
        if len(reference) != 1:
            continue
        pamal = float(reference["overhead"].iloc[0])
        index = group.index[group["overhead"] > 0]
        table.loc[index, "pamal_ratio"] = pamal / table.loc[index, "overhead"]
    return table
