"""Measure how far our lockstep replays land from the official records, and how far a logic change moves them.

    python tools/lockstep_spread.py            # writes tests/lockstep/SPREAD.md

The lockstep tests (``tests/test_lockstep_*.py``) run in a child process per kernel condition: this
machine's own kernels, ATen's generic (non-vectorised) kernels (``ATEN_CPU_CAPABILITY=default``), MKL
restricted to SSE4.2 (``MKL_ENABLE_INSTRUCTIONS=SSE4_2``) and both; each test runs under 1 and 2 torch
threads (the ``lockstep`` fixture). Every comparison goes through one function
(:func:`bench.core.fidelity.assert_close`, which the child wraps to keep each record's worst value per kind of
quantity). Then each mutation below (a deliberate logic change, most of them a relative 1e-6 nudge) runs on this
machine's kernels and the table says which records catch it and by how much they moved at the first
failing comparison. The report justifies :data:`bench.core.fidelity.RTOL`: far above the spread, far
below the smallest mutation.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TESTS = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "tests").glob("test_lockstep_*.py"))
RECORDS = (
    "palora",
    "pamal",
    "ls",
    "mgda",
    "padora",
    "cosmos",
    "phn-ls",
    "phn-epo",
    "palora-resnet18",
    "pamal-resnet18",
    "palora-segnet",
    "pamal-segnet",
    "cosmos-resnet18",
    "phn-ls-resnet18",
)
CONDITIONS: dict[str, dict[str, str]] = {
    "native": {},
    "generic ATen": {"ATEN_CPU_CAPABILITY": "default"},
    "MKL SSE4.2": {"MKL_ENABLE_INSTRUCTIONS": "SSE4_2"},
    "both": {"ATEN_CPU_CAPABILITY": "default", "MKL_ENABLE_INSTRUCTIONS": "SSE4_2"},
}
NUDGE = 1e-6


def _lr_nudge() -> None:
    import torch

    init = torch.optim.Adam.__init__

    def nudged(self: torch.optim.Adam, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        for group in self.param_groups:
            group["lr"] *= 1 + NUDGE

    torch.optim.Adam.__init__ = nudged  # type: ignore[method-assign]


def _t_offset() -> None:
    import bench.train.loop

    bench.train.loop.training_progress = lambda done, total: min(1.0, (done + 1) / total)


def _adapter_lr() -> None:
    import methods.palora

    groups = methods.palora.adapter_param_groups
    methods.palora.adapter_param_groups = lambda cnet, lr, adapter_lr: groups(cnet, lr, lr)


def _mgda_times_t() -> None:
    import methods.mgda

    def backward(self: Any, losses: Any, rays: Any, cnet: Any) -> Any:
        loss = (self.weights(losses[0], cnet) * losses[0]).sum()
        loss.backward()
        return loss.detach()

    methods.mgda.MGDA.backward = backward  # type: ignore[method-assign]


def _upsampler() -> None:
    import methods.cosmos

    forward = methods.cosmos.RayUpsampler.forward
    methods.cosmos.RayUpsampler.forward = lambda self, ray: forward(self, ray) * (1 + NUDGE)  # type: ignore[method-assign]


def _phn_init() -> None:
    import methods.phn

    methods.phn.INIT_STD *= 1 + NUDGE


def _bn_momentum() -> None:
    import torch

    init = torch.nn.modules.batchnorm._BatchNorm.__init__

    def nudged(self: torch.nn.Module, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        self.momentum *= 1 + NUDGE

    torch.nn.modules.batchnorm._BatchNorm.__init__ = nudged  # type: ignore[method-assign]


MUTATIONS: dict[str, tuple[str, Callable[[], None]]] = {
    "lr x (1 + 1e-6)": ("every Adam group's learning rate nudged", _lr_nudge),
    "t offset": ("annealing time t = (k + 1) / K instead of the official (k + 2) / K", _t_offset),
    "adapter lr not x T": ("PaLoRA's adapters at lr instead of lr * T", _adapter_lr),
    "MGDA without x T": ("MGDA's loss sum_k alpha_k L_k instead of T sum_k alpha_k L_k", _mgda_times_t),
    "upsampler x (1 + 1e-6)": ("COSMOS's ray channels nudged", _upsampler),
    "PHN init std x (1 + 1e-6)": ("the hypernetwork heads' init std nudged", _phn_init),
    "BN momentum x (1 + 1e-6)": ("every BatchNorm layer's running-statistics momentum nudged", _bn_momentum),
}


KINDS = ("losses", "parameters", "rays, weights, t")


def kind_of(what: str) -> str:
    """Which column a comparison's label belongs to."""
    if "loss" in what:
        return KINDS[0]
    if any(word in what for word in ("parameters", "final", "member", "init")):
        return KINDS[1]
    return KINDS[2]


def child(out: Path, mutation: str | None) -> int:
    """Run the lockstep tests in this process, writing each record's worst difference per thread count."""
    import pytest

    import bench.core.fidelity

    if mutation:
        MUTATIONS[mutation][1]()
    worst: dict[str, float] = {}
    failed: dict[str, int] = {}
    state: dict[str, Any] = {"records": [], "file": "", "threads": 0}
    check = bench.core.fidelity.assert_close
    load = bench.core.fidelity.load_record

    def record_name() -> str:
        if state["records"]:
            return state["records"][-1]
        return state["file"].removeprefix("test_lockstep_").removesuffix(".py")

    def checking(ours: Any, official: Any, what: str, rtol: float = bench.core.fidelity.RTOL) -> None:
        difference = bench.core.fidelity.relative_difference(ours, official)
        key = f"{record_name()}|{state['threads']}|{kind_of(what)}"
        worst[key] = max(worst.get(key, 0.0), difference)
        check(ours, official, what, rtol)

    def loading(method: str) -> dict[str, Any]:
        state["records"].append(method)
        return load(method)

    bench.core.fidelity.assert_close = checking  # type: ignore[assignment]
    bench.core.fidelity.load_record = loading  # type: ignore[assignment]

    class Recorder:
        @pytest.hookimpl(hookwrapper=True)
        def pytest_runtest_call(self, item: pytest.Item) -> Any:
            state["records"] = []
            state["file"] = Path(str(item.fspath)).name
            callspec = getattr(item, "callspec", None)
            state["threads"] = callspec.params.get("lockstep", 0) if callspec else 0
            yield

        def pytest_collection_modifyitems(self, config: pytest.Config, items: list[pytest.Item]) -> None:
            """Only the replays (the tests under the ``lockstep`` fixture) compare against a record."""
            replays = [item for item in items if "lockstep" in getattr(item, "fixturenames", ())]
            config.hook.pytest_deselected(items=[item for item in items if item not in replays])
            items[:] = replays

        def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
            if report.when == "call" and report.failed:
                key = f"{record_name()}|{state['threads']}|failed"
                failed[key] = failed.get(key, 0) + 1

    code = pytest.main([*TESTS, "-q", "-p", "no:cacheprovider"], plugins=[Recorder()])
    out.write_text(json.dumps({"worst": worst, "failed": failed, "exit": int(code)}))
    return 0


def run_child(env: dict[str, str], mutation: str | None = None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "spread.json"
        command = [sys.executable, __file__, "--child", str(out)] + (["--mutation", mutation] if mutation else [])
        subprocess.run(command, cwd=ROOT, env={**os.environ, **env}, check=False, stdout=subprocess.DEVNULL)
        if not out.exists():
            raise SystemExit(f"error: the lockstep child under {env or 'native'} {mutation or ''} wrote nothing")
        return json.loads(out.read_text())


def per_record(results: dict[str, Any], field: str, kind: str | None = None) -> dict[str, float]:
    """{record: worst over thread counts} (of one kind of comparison, or of all)."""
    merged: dict[str, float] = {}
    for key, value in results[field].items():
        record, _, what = key.split("|")
        if kind is None or what == kind:
            merged[record] = max(merged.get(record, 0.0), value)
    return merged


def report() -> str:
    import torch

    import bench.core.fidelity

    lines = [
        "# Lockstep spread and sensitivity",
        "",
        "Written by `python tools/lockstep_spread.py` (do not edit). Every lockstep record and replay runs in",
        "float64. The difference of a compared quantity is `|ours - official| / max(1, |official|)`; the tests",
        f"fail above `bench.core.fidelity.RTOL` = {bench.core.fidelity.RTOL:g}.",
        "",
        f"Machine: {torch.backends.cpu.get_cpu_capability()} kernels, torch {torch.__version__}, "
        f"{os.cpu_count()} cores.",
        "",
        "## Spread: the worst difference per record, over 1 and 2 torch threads, per kernel condition",
        "",
        "| record | " + " | ".join(CONDITIONS) + " |",
        "|---|" + "---|" * len(CONDITIONS),
    ]
    spread, by_kind = {}, {}
    for name, env in CONDITIONS.items():
        results = run_child(env)
        if results["failed"]:
            lines.insert(4, f"**Failing under {name}: {sorted(results['failed'])}**")
        spread[name] = per_record(results, "worst")
        by_kind[name] = {kind: per_record(results, "worst", kind) for kind in KINDS}
    for record in RECORDS:
        cells = [f"{spread[c].get(record, float('nan')):.1e}" for c in CONDITIONS]
        lines.append(f"| {record} | " + " | ".join(cells) + " |")
    same = [c for c in CONDITIONS if c != "native" and spread[c] == spread["native"]]
    if same:
        lines += ["", f"{', '.join(same)}: the same worst differences as the native kernels (no other kernels ran)."]
    overall = max(v for s in spread.values() for v in s.values())
    lines += [
        "",
        f"Worst over every record and condition: {overall:.1e}. By what is compared, worst over the conditions:",
        "",
        "| record | " + " | ".join(KINDS) + " |",
        "|---|" + "---|" * len(KINDS),
    ]
    for record in RECORDS:
        cells = [max((by_kind[c][kind].get(record, 0.0) for c in CONDITIONS), default=0.0) for kind in KINDS]
        lines.append(f"| {record} | " + " | ".join(f"{v:.1e}" for v in cells) + " |")
    lines += [
        "",
        "## Sensitivity: the difference a logic change reaches at the first failing comparison",
        "",
        "Native kernels, 1 and 2 threads; `-` where the record's tests still pass (the change does not",
        "touch that method).",
        "",
        "| mutation | what it changes | " + " | ".join(RECORDS) + " |",
        "|---|---|" + "---|" * len(RECORDS),
    ]
    for mutation, (what, _) in MUTATIONS.items():
        results = run_child({}, mutation)
        worst, failed = per_record(results, "worst"), per_record(results, "failed")
        cells = [f"{worst[r]:.1e}" if failed.get(r) else "-" for r in RECORDS]
        lines.append(f"| {mutation} | {what} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--mutation", choices=sorted(MUTATIONS), help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=ROOT / "tests" / "lockstep" / "SPREAD.md")
    args = parser.parse_args(argv)
    if args.child:
        return child(args.child, args.mutation)
    text = report()
    args.out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
