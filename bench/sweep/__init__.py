"""Many runs: sweep specs, the job a worker runs, the planner, and the schedulers (submitit local,
SLURM, debug) behind ``python -m bench.sweep``. Imports ``train`` and below."""
