"""``python -m bench tune SPEC --runs DIR --out DIR``: select the ``tuned`` protocol's settings
(:mod:`bench.analysis.tuning`) from the tuning sweep's validation curves and write the tuning table
(``tuning.{csv,md,tex}``), stage two's sweep spec (``SPEC`` with ``-tune`` -> ``-tune-2``) for the
methods whose stage one is done, the tuned grid's spec (``-tune`` -> ``-tuned``) for the methods
whose choice is final, and, for a final choice that had not plateaued, the budget probe's spec
(``-tune`` -> ``-tune-budget``, :mod:`bench.analysis.budget_probe`) and table
(``budget-probes.{csv,md,tex}``). Run it again as the sweeps complete.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from bench.analysis.budget_probe import PROBE_FACTOR, probe_display, probe_spec_text, probe_table
from bench.analysis.records import scan
from bench.analysis.tables import write_table
from bench.analysis.tuning import (
    LAST_FRACTION,
    PLATEAU_GAIN,
    budget_violations,
    display,
    select,
    stage_two_spec_text,
    trial_table,
    tuned_spec_text,
)
from bench.core.atomic import write_text
from bench.core.cli import Parser, help_text, parse_seeds
from bench.core.errors import ConfigError
from bench.train.config import read_toml
from bench.train.grid import load_grid

CAPTION = (
    f"Tuning on validation only: each trial's validation hypervolume over the last {LAST_FRACTION:.0%} of "
    f"training (mean over the tuning seeds) and its fitted gain there (plateaued below {PLATEAU_GAIN})."
)


PROBE_CAPTION = (
    f"The budget rule's probes: each final selected trial that had not plateaued, at {PROBE_FACTOR}x the budget's "
    f"epochs on the tuning seeds; validation HV over the last {LAST_FRACTION:.0%} of each (validation only)."
)


def derived_paths(spec: Path) -> tuple[Path, Path, Path]:
    """``slurm/multifashion-tune.toml`` -> ``slurm/multifashion-tune-2.toml``, ``-tuned.toml`` and
    ``-tune-budget.toml``."""
    if not spec.stem.endswith("-tune"):
        raise ConfigError(f"{spec}: a tuning spec's name ends in -tune (e.g. slurm/multifashion-tune.toml)")
    return (
        spec.with_name(f"{spec.stem}-2.toml"),
        spec.with_name(f"{spec.stem}d.toml"),
        spec.with_name(f"{spec.stem}-budget.toml"),
    )


def main(argv: list[str] | None = None, prog: str = "python -m bench tune") -> int:
    parser = Parser(prog=prog, description=help_text(__doc__))
    parser.add_argument("spec", type=Path, help="the tuning sweep spec, e.g. slurm/multifashion-tune.toml")
    parser.add_argument("--runs", type=Path, required=True, metavar="DIR", help="the tuning sweep's --out folder")
    parser.add_argument("--out", type=Path, required=True, metavar="DIR", help="folder of the tuning table")
    parser.add_argument("--seeds", default="0-4", help="seeds of the tuned grid, e.g. 0-4 or 0,1,2 (default: 0-4)")
    args = parser.parse_args(argv)
    try:
        if not args.spec.is_file():
            raise ConfigError(f"tuning spec {args.spec} not found; e.g. slurm/multifashion-tune.toml")
        second, target, budget = derived_paths(args.spec)
        seeds = parse_seeds(args.seeds)  # before any work: a bad --seeds is one line, whatever the runs
        if not args.runs.is_dir():
            raise ConfigError(f"--runs {args.runs} is not a folder; give the tuning sweep's --out folder")
        grid, placement = load_grid(args.spec), read_toml(args.spec)
        with np.errstate(all="ignore"):
            runs = scan(args.runs)
            trials = trial_table(runs, grid)
            selection = select(trials)
            probes = probe_table(runs, grid, selection)
        write_table(selection, display(selection), args.out, "tuning", CAPTION)
        final = selection[selection["selected"] & selection["complete"]]
        tuned = tuned_spec_text(grid, placement, selection, seeds, str(args.spec)) if len(final) else None
        derived = {
            second: stage_two_spec_text(grid, placement, trials, str(args.spec)),
            target: tuned,
            budget: probe_spec_text(grid, placement, probes, str(args.spec)),
        }
        written = []
        stale = [path for path, text in derived.items() if text is None]
        for path, text in derived.items():
            if text is not None:
                write_text(path, text)
                written.append(str(path))
        if derived[budget] is not None:
            write_table(probes, probe_display(probes), args.out, "budget-probes", PROBE_CAPTION)
        else:  # no probe now: a table of earlier probes would describe records that no longer apply
            stale += [args.out / f"budget-probes.{ext}" for ext in ("csv", "md", "tex")]
        present = [path for path in stale if path.is_file()]  # from records that no longer support them
        for path in present:
            path.unlink()
        removed = [str(path) for path in present]
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    waiting = sorted(set(selection["method"]) - set(final["method"]))
    print(f"tuning: {len(final)} method(s) selected -> {args.out}/tuning.md" + "".join(f", {w}" for w in written))
    if removed:
        print(f"  removed, as no record supports it now: {', '.join(removed)}")
    if waiting:
        print(f"  not final (a trial of stage one or two not yet run to an outcome): {', '.join(waiting)}")
    short = budget_violations(selection)
    if len(short):
        gains = ", ".join(f"{r.method} {r.gain:+.4f}" for r in short.itertuples())
        print(f"  budget rule not met (selected, still gaining {PLATEAU_GAIN} or more over the last 20%): {gains}")
    for probe in probes.itertuples():
        where = f"  budget probe of {probe.method} at {probe.probe_epochs} epochs"
        if probe.probe_val_hv != probe.probe_val_hv:
            print(f"{where}: not run yet ({budget})")
        else:
            print(
                f"{where}: validation HV {probe.probe_val_hv:.4f} ({probe.difference:+.4f} over "
                f"{probe.budget_epochs} epochs), last-20% gain {probe.probe_gain:+.4f}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
