"""Time and memory of a method's training step, against the same backbone trained plainly.

    python -m bench.profile --method palora [--dataset D] [--device auto|cpu|cuda] [--steps N]
                            [--batch-size B] [--set k=v ...] [--json FILE]

Builds the run through :func:`bench.train.trial.build_trial`, as ``bench run`` does (resolved config,
batches, seeding, model, step options, Adam), warms up, times ``--steps`` training steps (the
learner's own :meth:`bench.train.loop.Learner.step`, the one ``fit`` takes, at the run's annealing time;
the device synchronised before every clock read) and one evaluation pass of the ray grid over the
run's validation batches, then prints one row per method: median and p90 step time,
samples/s, the share of step time spent waiting for data, evaluation time, trainable and inference
parameters, the bytes of the training state (parameters, gradients, optimizer state), the peak memory
a training step adds (CUDA's peak counter, or the growth of the peak RSS on CPU; the largest of
``MEMORY_STEPS`` steps), and each one's ratio to the plain backbone (:class:`PlainBackbone`: one
unconditioned model, as many forwards per step as the method has rays, the same batches), so the
ratio measures what conditioning costs. The two take their timed steps alternately, so a slow spell
of the machine hits both alike. ``--method all`` profiles every registered method.
Benchmarks, not tests: nothing here asserts a time.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from bench.core import atomic
from bench.core.cli import Parser, help_text
from bench.core.conditioning import ray_batching_problem
from bench.core.env import default_data_root, resolve_device
from bench.core.errors import UserError
from bench.core.registry import DATASETS, METHODS, load_all
from bench.core.spec import Method
from bench.data.kit.synthetic import synthetic_split
from bench.train.config import RunConfig, resolve
from bench.train.memory import training_state_bytes
from bench.train.stepper import PlainBackbone, Stepper, rays_per_step, with_train
from bench.train.trial import backbone_factory, build_trial

WARMUP_STEPS = 3
MEMORY_STEPS = 3


def summarize(
    stepper: Stepper, name: str, times: list[float], waits: list[float], peak: tuple[int, str]
) -> dict[str, Any]:
    trial = stepper.trial
    cfg, method, cnet = trial.cfg, trial.method, trial.cnet
    median = float(np.median(times))
    return {
        "method": name,
        "rays_per_step": rays_per_step(method),
        "dataset": cfg.dataset,
        "device": str(trial.device),
        "batch_size": cfg.train.batch_size,
        "steps": len(times),
        "step_ms_median": 1000 * median,
        "step_ms_p90": 1000 * float(np.quantile(times, 0.9)),
        "samples_per_s": cfg.train.batch_size / median,
        "data_wait_share": float(sum(waits) / sum(times)),
        "eval_seconds": stepper.evaluation_seconds(),
        "eval_rays": int(trial.eval_rays.shape[0]),
        "trainable_params": sum(p.numel() for p in cnet.parameters() if p.requires_grad),
        "inference_params": cnet.inference_parameters(),
        "training_state_bytes": training_state_bytes(cnet, trial.optimizer)["total"],
        "step_peak_bytes": peak[0],
        "step_peak_kind": peak[1],
        "threads": torch.get_num_threads(),
        "data": "synthetic" if stepper.synthetic else "real",
    }


def synthetic_data(cfg: RunConfig, root: Path, n: int) -> tuple[Tensor, dict[str, Tensor]]:
    """``n`` random samples shaped like ``cfg.dataset``'s, made once for every stepper of a profile."""
    spec = DATASETS.get(cfg.dataset)
    with torch.random.fork_rng(devices=[]):
        return synthetic_split(spec, backbone_factory(spec, cfg.model, root)(), n, cfg.seed)


def profile(
    method: str,
    dataset: str,
    device: torch.device,
    steps: int,
    batch_size: int,
    sets: list[str],
    root: Path,
    compare_ray_batching: bool = False,
    synthetic: int = 0,
) -> dict[str, Any]:
    """One row: ``method``'s numbers and their ratios to the plain backbone. The two take their timed
    steps alternately, so a slow spell of the machine hits both alike. With ``compare_ray_batching``
    (and a model that can vmap its rays) the method also runs with the other ``train.ray_batching``,
    alternating with the two, and the row gets ``vmap_speedup``: sequential step time / vmap's."""
    assignments = [*sets, *([f"train.batch_size={batch_size}"] if batch_size else [])]
    cfg = resolve(method, dataset, 0, assignments=assignments)
    data = synthetic_data(cfg, root, synthetic) if synthetic else None

    def make_stepper(settings: RunConfig, instead: Method | None = None) -> Stepper:
        return Stepper(build_trial(settings, root, device, method=instead, data=data), synthetic=data is not None)

    steppers = {"ours": make_stepper(cfg)}
    ours = steppers["ours"].trial
    steppers["plain"] = make_stepper(
        with_train(cfg, ray_batching="sequential"), PlainBackbone(ours.spec, rays_per_step(ours.method), device=device)
    )
    if compare_ray_batching and ray_batching_problem(ours.cnet) is None:
        other = "sequential" if cfg.train.ray_batching == "vmap" else "vmap"
        steppers["other"] = make_stepper(with_train(cfg, ray_batching=other))
    for _ in range(WARMUP_STEPS):
        for stepper in steppers.values():
            stepper.step()
    peaks: dict[str, list[tuple[int, str]]] = {key: [] for key in steppers}
    for _ in range(MEMORY_STEPS):
        for key, stepper in steppers.items():
            peaks[key].append(stepper.step_peak())
    timed: dict[str, tuple[list[float], list[float]]] = {key: ([], []) for key in steppers}
    for _ in range(steps):
        for key, stepper in steppers.items():
            seconds, wait = stepper.step()
            timed[key][0].append(seconds)
            timed[key][1].append(wait)
    row = summarize(steppers["ours"], method, *timed["ours"], max(peaks["ours"]))
    base = summarize(steppers["plain"], "plain", *timed["plain"], max(peaks["plain"]))
    row["ray_batching"] = cfg.train.ray_batching
    row["time_ratio_to_plain"] = row["step_ms_median"] / base["step_ms_median"]
    row["state_ratio_to_plain"] = row["training_state_bytes"] / base["training_state_bytes"]
    measured = row["step_peak_bytes"] > 0 and base["step_peak_bytes"] > 0
    row["step_peak_ratio_to_plain"] = row["step_peak_bytes"] / base["step_peak_bytes"] if measured else float("nan")
    row["plain_step_ms_median"] = base["step_ms_median"]
    row["plain_trainable_params"] = base["trainable_params"]
    row["vmap_speedup"] = float("nan")
    if "other" in steppers:
        other_ms = 1000 * float(np.median(timed["other"][0]))
        vmap_ms, sequential_ms = (
            (row["step_ms_median"], other_ms) if row["ray_batching"] == "vmap" else (other_ms, row["step_ms_median"])
        )
        row["vmap_speedup"] = sequential_ms / vmap_ms
    return row


COLUMNS = [
    ("method", "{}"),
    ("device", "{}"),
    ("batch_size", "{}"),
    ("rays_per_step", "{}"),
    ("step_ms_median", "{:.2f}"),
    ("step_ms_p90", "{:.2f}"),
    ("samples_per_s", "{:.0f}"),
    ("data_wait_share", "{:.1%}"),
    ("eval_seconds", "{:.2f}"),
    ("trainable_params", "{:,}"),
    ("inference_params", "{:,}"),
    ("training_state_bytes", "{:,}"),
    ("step_peak_bytes", "{:,}"),
    ("time_ratio_to_plain", "{:.3f}"),
    ("state_ratio_to_plain", "{:.2f}"),
    ("step_peak_ratio_to_plain", "{:.2f}"),
    ("vmap_speedup", "{:.2f}"),
]


def format_row(row: dict[str, Any]) -> str:
    return "  ".join(fmt.format(row[key]) for key, fmt in COLUMNS)


def main(argv: list[str] | None = None, prog: str = "python -m bench.profile") -> int:
    parser = Parser(prog=prog, description=help_text(__doc__))
    parser.add_argument("--method", required=True, help="a method name, or all")
    parser.add_argument("--dataset", default="multimnist-mini", help="dataset name (default: multimnist-mini)")
    parser.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda or cuda:I")
    parser.add_argument("--steps", type=int, default=30, help="timed training steps (default 30)")
    parser.add_argument("--batch-size", type=int, default=0, help="default: the dataset's protocol")
    parser.add_argument(
        "--set", dest="sets", action="append", default=[], metavar="KEY=VALUE", help="a setting, as bench run takes it"
    )
    parser.add_argument(
        "--data-root",
        type=Path,
        default=None,
        help="where datasets live (default: $PFLBENCH_DATA or ~/.cache/pfl-bench)",
    )
    parser.add_argument(
        "--compare-ray-batching",
        action="store_true",
        help="also time the method with the other train.ray_batching (vmap vs sequential) and report the speed-up",
    )
    parser.add_argument(
        "--synthetic",
        type=int,
        default=0,
        metavar="N",
        help="N random samples shaped like the dataset's instead of its files (e.g. CelebA-shaped input on a GPU)",
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here (JSON, atomically)")
    args = parser.parse_args(argv)
    try:
        load_all()
        if args.steps < 1:
            raise UserError(f"--steps must be >= 1, got {args.steps}")
        if args.synthetic < 0 or args.batch_size < 0:
            raise UserError(f"--synthetic and --batch-size must be >= 0, got {args.synthetic} and {args.batch_size}")
        methods = METHODS.names() if args.method == "all" else [args.method]
        METHODS.get(methods[0])
        device = resolve_device(args.device)
        root = args.data_root or default_data_root()
        print("  ".join(key for key, _ in COLUMNS))
        rows = []
        for name in methods:
            rows.append(
                profile(
                    name,
                    args.dataset,
                    device,
                    args.steps,
                    args.batch_size,
                    args.sets,
                    root,
                    args.compare_ray_batching,
                    args.synthetic,
                )
            )
            print(format_row(rows[-1]), flush=True)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.json:
        atomic.write_json(args.json, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
