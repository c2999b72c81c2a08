#!/usr/bin/env bash
# A single-node SLURM cluster on this machine (Debian's slurm-wlm + munge, no systemd), for tests
# and for trying sweeps.
#
#   slurm/local_cluster.sh install   # apt-get install slurm-wlm munge (root; about 15 s)
#   slurm/local_cluster.sh start     # write /etc/slurm/slurm.conf, start munged, slurmctld, slurmd
#   slurm/local_cluster.sh status    # sinfo
#   slurm/local_cluster.sh stop      # stop the daemons by their pid files
#
# State, spool, logs and pid files live in $PFL_SLURM_DIR (default /tmp/pfl-slurm). The partition
# is "debug". Needs root (the daemons run as root; munged as munge). A sweep on it takes the profile
# slurm/profiles/local.toml (no GPU, partition debug):
#   python -m bench.sweep slurm/minimal.toml --cluster slurm --profile slurm/profiles/local.toml
set -euo pipefail

STATE_DIR="${PFL_SLURM_DIR:-/tmp/pfl-slurm}"
CONF=/etc/slurm/slurm.conf
HOST="$(hostname -s)"

die() { echo "local_cluster.sh: $*" >&2; exit 1; }

install() {
    [ "$(id -u)" -eq 0 ] || die "install needs root (apt-get)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge >/dev/null
}

write_conf() {
    local cpus mem
    cpus="$(nproc)"
    # a little under the free memory, in MB, so the node registers
    mem="$(awk '/MemAvailable/ {printf "%d", $2 / 1024 * 0.9}' /proc/meminfo)"
    mkdir -p /etc/slurm "$STATE_DIR/state" "$STATE_DIR/spool" "$STATE_DIR/log"
    cat >"$CONF" <<EOF
# written by pfl-bench slurm/local_cluster.sh
ClusterName=local
SlurmctldHost=$HOST
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=cred_expire=5
StateSaveLocation=$STATE_DIR/state
SlurmdSpoolDir=$STATE_DIR/spool
SlurmctldPidFile=$STATE_DIR/slurmctld.pid
SlurmdPidFile=$STATE_DIR/slurmd.pid
SlurmctldLogFile=$STATE_DIR/log/slurmctld.log
SlurmdLogFile=$STATE_DIR/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1000
ReturnToService=2
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerParameters=bf_interval=1,sched_interval=1
# A job being requeued or cancelled gets SIGTERM and, KillWait s later, SIGKILL. submitit ignores
# SIGTERM, so with the default 30 s a short test run would simply finish; 3 s makes a requeue stop
# the run mid-way, as a preemption stops a long one.
KillWait=3
NodeName=$HOST CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
}

start() {
    [ "$(id -u)" -eq 0 ] || die "start needs root"
    command -v slurmctld >/dev/null || die "slurmctld not found; run: $0 install"
    stop quiet
    write_conf
    mkdir -p /run/munge && chown munge:munge /run/munge
    runuser -u munge -- /usr/sbin/munged --pid-file=/run/munge/munged.pid
    /usr/sbin/slurmctld
    /usr/sbin/slurmd
    for _ in $(seq 1 60); do
        if sinfo -h -o %T 2>/dev/null | grep -qx idle; then
            echo "local SLURM cluster up: node $HOST, partition debug ($(nproc) CPUs); state in $STATE_DIR"
            return 0
        fi
        sleep 0.5
    done
    die "the node did not become idle in 30 s; see $STATE_DIR/log/"
}

kill_pidfile() {
    local file="$1"
    if [ -f "$file" ]; then
        local pid
        pid="$(cat "$file")"
        if kill -0 "$pid" 2>/dev/null; then
            kill "$pid"
            for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
        fi
        rm -f "$file"
    fi
}

stop() {
    kill_pidfile "$STATE_DIR/slurmd.pid"
    kill_pidfile "$STATE_DIR/slurmctld.pid"
    kill_pidfile /run/munge/munged.pid
    [ "${1:-}" = quiet ] || echo "local SLURM cluster stopped"
}

case "${1:-}" in
    install) install ;;
    start) start ;;
    stop) stop ;;
    status) sinfo ;;
    *) die "usage: $0 install|start|status|stop" ;;
esac
