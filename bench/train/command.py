"""Train one method on one dataset with one seed, print the test front (per ray: the ray and each
task's metrics) and end with hypervolume=<value>. User mistakes print one line and exit 2.

    python -m bench run --method palora [--dataset multimnist-mini] [--set train.epochs=3 ...]

(``python -m bench.run`` is the same command.) Settings are layered: the dataset's protocol, then
``bench/presets``, then ``--config``, then each ``--set``; an unknown key lists the valid ones. A run
already COMPLETED under ``--out`` is printed, not trained again; ``--force`` trains it again and keeps
the completed record in ``<run>/attempts/<n>/``.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from bench.core.cli import Parser, help_text
from bench.core.errors import RunFailed, UserError
from bench.core.registry import BACKBONES, DATASETS, METHODS, Registry

if TYPE_CHECKING:
    from bench.core.spec import DatasetSpec

USAGE = "%(prog)s --method METHOD [--dataset DATASET] [--seed N] [--set KEY=VALUE ...] [options]"
LISTINGS: dict[str, Registry] = {"methods": METHODS, "datasets": DATASETS, "backbones": BACKBONES}


def build_parser(prog: str = "python -m bench.run") -> Parser:
    parser = Parser(prog=prog, usage=USAGE, description=help_text(__doc__), add_help=False)
    required = parser.add_argument_group("required")
    required.add_argument("--method", help="the method to train (python -m bench list shows every method)")
    options = parser.add_argument_group("options")
    options.add_argument("-h", "--help", action="help", help="show this help and exit")
    options.add_argument("--dataset", default="multimnist-mini", help="dataset name (default: multimnist-mini)")
    options.add_argument("--seed", type=int, default=0, metavar="N", help="seed of the run (default: 0)")
    options.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda or cuda:I")
    options.add_argument(
        "--out", type=Path, default=Path("runs"), metavar="DIR", help="folder of run directories (default: runs/)"
    )
    options.add_argument(
        "--data-root",
        type=Path,
        default=None,
        metavar="ROOT",
        help="dataset folder (default: $PFLBENCH_DATA, else ~/.cache/pfl-bench)",
    )
    options.add_argument(
        "--config", type=Path, default=None, metavar="FILE", help="TOML file with [train], [data], [method] tables"
    )
    options.add_argument(
        "--set",
        dest="assignments",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a setting, e.g. train.epochs=3 or method.rank=4 (repeatable)",
    )
    options.add_argument(
        "--workers",
        type=int,
        default=None,
        metavar="N",
        help="DataLoader processes decoding image datasets (default: one per core, at most 8)",
    )
    options.add_argument(
        "--resume",
        action="store_true",
        help="continue this run from its last checkpoint (a completed run is only printed again)",
    )
    options.add_argument(
        "--force",
        action="store_true",
        help="train a completed run again from scratch; its record is kept in <run>/attempts/<n>/",
    )
    options.add_argument(
        "--print-config",
        action="store_true",
        help="print every setting of the run and the layer it came from, then exit without training",
    )
    options.add_argument("--list", action="store_true", help="list methods, datasets and backbones, then exit")
    options.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    options.add_argument(
        "--log",
        choices=["tensorboard"],
        default="",
        help="also write the training losses and validation metrics for TensorBoard under <run>/tensorboard/ "
        "(needs the tensorboard package)",
    )
    return parser


def print_listing(kinds: list[str] | None = None) -> None:
    """Print each registry's names with their whole descriptions (``kinds``: some of ``LISTINGS``,
    default all), importing none of their modules. Every catalogue is read before anything is
    printed, so an unreadable registration fails alone (a one-line ConfigError)."""
    for title in kinds or LISTINGS:
        LISTINGS[title].names()
    for title in kinds or LISTINGS:
        print(f"{title}:")
        entries = LISTINGS[title].describe()
        width = max(len(name) for name, _ in entries) + 1
        for name, description in entries:
            print(f"  {name:<{width}} {description}")


def check_paths(out: Path, data_root: Path | None) -> None:
    """``--out`` must be a folder this process can write in; ``--data-root``, when it exists, a folder."""
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file; give the folder that holds run directories")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UserError(f"--out {out}: cannot create it ({err.strerror}); give a writable folder") from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise UserError(f"--out {out} is not writable; give a writable folder")
    if data_root is not None and data_root.exists() and not data_root.is_dir():
        raise UserError(f"--data-root {data_root} is a file; give the folder that holds the datasets")


def print_front(summary: dict, directory: Path, spec: DatasetSpec) -> None:
    """The test front, one line per ray, then the parameters, the record and the hypervolume,
    computed from the front (:func:`bench.core.hypervolume.front_hypervolume`)."""
    from bench.core.hypervolume import front_hypervolume

    hv_metric_names = {o.name: o.hv_metric for o in spec.objectives}
    print(f"front on test ({summary['method']} on {summary['dataset']}, seed {summary['seed']}):")
    for entry in summary["front"]:
        ray = ", ".join(f"{v:.2f}" for v in entry["ray"])
        many = len(entry["metrics"]) > 3  # e.g. CelebA's 40 attributes: only the hypervolume metric
        metrics = "  ".join(
            f"{task}: " + " ".join(f"{m}={v:.4f}" for m, v in values.items() if not many or m == hv_metric_names[task])
            for task, values in entry["metrics"].items()
        )
        print(f"  ray=({ray})  {metrics}")
    params = summary["parameters"]
    print(f"parameters: total={params['total']} trainable={params['trainable']} inference={params['inference']}")
    print(f"wall time: {summary['wall_seconds']:.1f} s; run record: {directory}")
    on = ", ".join(f"{task}: {how}" for task, how in summary["hv_metrics"].items())
    print(f"hv reference point: {summary['hv_reference']} on ({on})")
    print(f"hypervolume={front_hypervolume(summary['front'], spec):.6f}")


def fail_on_sigterm(signum: int, frame: object) -> None:
    """SIGTERM (``kill``, a scheduler's time limit) ends the run as FAILED, with its reason recorded,
    instead of leaving it ``RUNNING``; its checkpoints stay for ``--resume``."""
    raise RunFailed(f"terminated by {signal.Signals(signum).name}; --resume continues from the last checkpoint")


def main(argv: list[str] | None = None, prog: str = "python -m bench.run") -> int:
    previous = signal.getsignal(signal.SIGTERM)
    if previous is signal.SIG_DFL:  # not when a parent chose to ignore or handle it
        signal.signal(signal.SIGTERM, fail_on_sigterm)
    try:
        return run_main(argv, prog)
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_main(argv: list[str] | None, prog: str) -> int:
    args = build_parser(prog).parse_args(argv)
    cfg = None
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        if args.list:
            print_listing()
            return 0
        if not args.method:
            raise UserError(f"--method is required; valid methods: {', '.join(METHODS.names())}")
        METHODS.check(args.method)  # name mistakes fail here, before any method's module is imported
        DATASETS.check(args.dataset)
        from bench.core.env import check_device_name
        from bench.train.config import resolve
        from bench.train.record import check_log_sink, completed_summary
        from bench.train.runner import run_experiment

        cfg = resolve(args.method, args.dataset, args.seed, args.config, args.assignments)
        if args.print_config:
            from bench.train.introspect import print_config_lines

            print("\n".join(print_config_lines(cfg, args.config, args.assignments)))
            return 0
        if args.workers is not None and args.workers < 0:
            raise UserError(f"--workers must be >= 0, got {args.workers}")
        check_log_sink(args.log)
        check_paths(args.out, args.data_root)
        if args.force and args.resume:
            raise UserError("--force trains the run again from scratch, --resume continues it: give one of them")
        check_device_name(args.device)  # a mistyped device is an error even when the run is complete
        completed = completed_summary(args.out / cfg.run_id()) is not None
        result = run_experiment(
            cfg,
            args.out,
            args.data_root,
            args.device,
            show_progress=not args.no_progress,
            workers=args.workers,
            resume=args.resume or (completed and not args.force),
            force=args.force,
            log=args.log,
        )
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except RunFailed as err:
        if cfg is None:  # a SIGTERM before the run was resolved: nothing was recorded
            print(f"error: {err}", file=sys.stderr)
        else:
            print(f"error: run {cfg.run_id()} FAILED: {err} (recorded in {args.out / cfg.run_id()})", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    if result.skipped:
        print(f"already completed: {result.directory} (nothing trained; --force trains it again, keeping this record)")
    elif result.kept is not None:
        print(f"trained again; the completed record is kept in {result.kept}")
    elif result.summary.get("resumed"):
        print(f"resumed from step {result.summary['resumed'][-1]['from_step']}")
    print_front(result.summary, result.directory, DATASETS.get(cfg.dataset))
    return 0


if __name__ == "__main__":
    sys.exit(main())
