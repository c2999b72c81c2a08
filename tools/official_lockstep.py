"""Record the official implementation's lockstep numbers for one method.

    python tools/official_lockstep.py --official /path/to/checkout --method palora
    python tools/official_lockstep.py --official /path/to/checkout --method palora --backbone segnet

``--official`` is a checkout of the method's official repository (named in FIDELITY.md); it is
imported at run time from that folder and never copied here. Each family's producer lives in
``tools/lockstep_<family>.py`` and exposes ``produce(official: Path, method: str) -> dict`` with the
keys ``setup`` and ``steps`` (a list of {"losses": [...], "checksum": {...}}) and ``repo``. The
record lands in ``tests/lockstep/<method>.json`` with the checkout's commit and this command line. With
``--backbone`` the method runs on that real backbone (``tools/lockstep_backbones.py``) and the record is
``tests/lockstep/<method>-<backbone>.json``; a producer that ran another repository's code (PaMaL's
from nik-dim/pamal) returns its commit as ``official_commit``, and a producer whose ``--official`` is
another repository than the record's says which in its module constant ``CHECKOUT``. The producer runs under
:func:`bench.core.fidelity.lockstep_precision` (float64 on both sides).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.core.fidelity import load_file_module, lockstep_precision, write_record  # noqa: E402

PRODUCERS = {
    "palora": "lockstep_palora",
    "pamal": "lockstep_palora",
    "ls": "lockstep_palora",
    "mgda": "lockstep_palora",
    "padora": "lockstep_padora",
    "cosmos": "lockstep_cosmos",
    "phn-ls": "lockstep_phn",
    "phn-epo": "lockstep_phn",
}
BACKBONE_PRODUCERS = {
    "palora": "lockstep_backbones",
    "pamal": "lockstep_backbones",
    "cosmos": "lockstep_cosmos_backbones",
    "phn-ls": "lockstep_phn_backbones",
}
"""Methods with lockstep records on the real backbones (``--backbone``)."""
BACKBONES = ("resnet18", "segnet")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--official", type=Path, required=True, help="checkout of the official repository")
    parser.add_argument("--method", required=True, choices=sorted(PRODUCERS))
    parser.add_argument("--backbone", choices=BACKBONES, help="a real backbone (the methods of BACKBONE_PRODUCERS)")
    args = parser.parse_args(argv)
    if not args.official.is_dir():
        print(f"error: --official {args.official} is not a folder", file=sys.stderr)
        return 2
    commit = subprocess.run(
        ["git", "-C", str(args.official), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    name, producer, flags = args.method, PRODUCERS[args.method], ""
    if args.backbone:
        if args.method not in BACKBONE_PRODUCERS:
            print(
                f"error: --backbone is for {', '.join(sorted(BACKBONE_PRODUCERS))}, not {args.method}", file=sys.stderr
            )
            return 2
        name, producer, flags = (
            f"{args.method}-{args.backbone}",
            BACKBONE_PRODUCERS[args.method],
            f" --backbone {args.backbone}",
        )
    module = load_file_module(producer, Path(__file__).resolve().parent / f"{producer}.py")
    with lockstep_precision():
        produced = module.produce(args.official.resolve(), name)
    repo = produced.pop("repo")
    checkout = getattr(module, "CHECKOUT", repo)  # the repository --official names, when not the record's
    commit = produced.pop("official_commit", commit)
    record = {
        "official": {"repo": repo, "commit": commit},
        "produced_by": f"python tools/official_lockstep.py --official <checkout of {checkout}> "
        f"--method {args.method}{flags}",
        **produced,
    }
    path = write_record(name, record)
    print(f"wrote {path.relative_to(ROOT)}: {len(record['steps'])} steps from {repo}@{commit[:7]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
