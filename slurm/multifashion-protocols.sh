#!/usr/bin/env bash
# The MultiFashion comparison under both protocols (results/README.md), on this machine's local
# workers, in the order that gives the front methods their conclusions first: each group of methods
# goes through tuning stage one, stage two, its five tuned seeds and the budget rule's probes, then
# its five official seeds, before the next group starts. Every step resumes (completed runs are skipped, unfinished ones go on
# from their checkpoints), so after a stop run it again. On a SLURM cluster run the same commands by
# hand, each once the jobs of the one before have completed (`python -m bench.sweep status SPEC`).
#   slurm/multifashion-protocols.sh                       # every group, each group ending with both reports
#   slurm/multifashion-protocols.sh phn-ls,palora         # one group of your own
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
TUNE=slurm/multifashion-tune.toml
TABLES=results/multifashion-tuned/tables
if [ $# -gt 0 ]; then
    GROUPS_TO_RUN=("$@")
else
    GROUPS_TO_RUN=("phn-ls,palora,cosmos,padora,pamal,phn-epo,ls"
                   "mean,mgda,mgda-ub,pcgrad,upgrad,dualproj,imtl-g,aligned-mtl,cagrad,nash-mtl")
fi

# The methods of a group that a spec has (bench tune writes stage two's and the tuned grid's specs
# only for the methods whose earlier stage has an outcome).
in_spec() {
    "$PY" -c 'import sys; from pathlib import Path; from bench.sweep.spec import load_spec
names = load_spec(Path(sys.argv[1])).methods
print(",".join(m for m in sys.argv[2].split(",") if m in names))' "$1" "$2"
}

sweep() {  # SPEC OUT METHODS
    [ -f "$1" ] || { echo "pipeline: $1 not written yet (an earlier stage has no outcome): skipped"; return 0; }
    local methods
    methods=$(in_spec "$1" "$3") || exit 2
    [ -n "$methods" ] || { echo "pipeline: none of $3 in $1 yet: skipped"; return 0; }
    echo "pipeline: $1 for $methods -> $2"
    # a failed or diverged run is recorded as such; bench tune and the report read it from its record
    "$PY" -m bench.sweep "$1" --cluster local --out "$2" --methods "$methods" || echo "pipeline: some runs failed (above); going on"
}

select_settings() {
    "$PY" -m bench tune "$TUNE" --runs runs/tune --out "$TABLES" || exit 2
}

# Both reports, after each group: the front methods' conclusions are written (and can be committed)
# while the next group trains; a report names the runs its spec asks for that have no record yet.
reports() {
    "$PY" -m bench report --runs runs/tune --spec slurm/multifashion-tuned.toml --out results/multifashion-tuned \
        || echo "pipeline: the tuned report failed (above); going on"
    "$PY" -m bench report --runs runs/grid --spec slurm/multifashion.toml --protocol official \
        --out results/multifashion-official \
        || echo "pipeline: the official report failed (above); going on"
}

for group in "${GROUPS_TO_RUN[@]}"; do
    sweep "$TUNE" runs/tune "$group"
    select_settings
    sweep slurm/multifashion-tune-2.toml runs/tune "$group"
    select_settings
    sweep slurm/multifashion-tuned.toml runs/tune "$group"
    sweep slurm/multifashion-tune-budget.toml runs/tune "$group"   # a final choice that had not plateaued
    select_settings
    sweep slurm/multifashion.toml runs/grid "$group"
    reports
done
