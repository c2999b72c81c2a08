"""Many runs: sweep specs, the job a worker runs, the local workers' queue, the planner, the runs'
state, and the schedulers (submitit local, SLURM, debug) behind ``python -m bench.sweep``. Imports
``train`` and below."""
