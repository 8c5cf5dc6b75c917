#!/usr/bin/env bash
# A private single-node Slurm cluster for tests: munged, slurmctld and slurmd started as root
# under one directory, no systemd, no cgroups, on ports of their own so that it can run beside
# another cluster (a real one, or a second test). Fake GPUs are GRES whose device files are
# symlinks to /dev/null (character devices), so `--gpus-per-node=6` is accepted and Slurm sets
# CUDA_VISIBLE_DEVICES as it does on a GPU node.
#
#   cluster.sh start DIR   start the daemons; config, state, spool, logs and pid files under DIR
#   cluster.sh stop DIR    cancel what is left, `scontrol shutdown`, then munged by its pid;
#                          any daemon still alive after that is killed by its pid
#   cluster.sh env DIR     print the `export` lines clients need (SLURM_CONF)
#   cluster.sh pids DIR    print the pids of the daemons started under DIR that are still alive
#   cluster.sh leftovers DIR   print every process of this cluster still alive: its daemons and
#                          what its jobs started (stop kills those by pid after the shutdown)
#
# Settings (environment): SLURM_TEST_CPUS (16: CPUs the node declares, more than the machine has
# is fine), SLURM_TEST_GPUS (8), SLURM_TEST_MEM_MB (262144: memory the node declares; nothing
# enforces it here, so that jobs asking for a real node's memory are accepted on a small machine),
# SLURM_TEST_PORT (first of the two ports; default: two free ports from 20000-59999).
#
# Why each slurm.conf key is there: ../../../shared/NOTES-environment.md ("Single-node Slurm for
# tests") and the comments below.
set -euo pipefail

die() { echo "cluster.sh: $*" >&2; exit 1; }

# Ports in use (listening TCP, v4 and v6), from /proc so that no tool is needed.
ports_in_use() {
    local f
    for f in /proc/net/tcp /proc/net/tcp6; do
        [[ -r $f ]] || continue
        # local_address is HEXIP:HEXPORT; state 0A is LISTEN
        local _ local_addr _ st _
        while read -r _ local_addr _ st _; do
            [[ $st == 0A ]] && echo $((16#${local_addr##*:}))
        done < <(tail -n +2 "$f")
    done
    return 0
}

pick_ports() {
    if [[ -n ${SLURM_TEST_PORT:-} ]]; then
        echo "$SLURM_TEST_PORT $((SLURM_TEST_PORT + 1))"
        return
    fi
    local used p _
    used=" $(ports_in_use | tr '\n' ' ') "
    for _ in $(seq 1 50); do
        p=$((20000 + (RANDOM * 32768 + RANDOM) % 40000))
        if [[ $used != *" $p "* && $used != *" $((p + 1)) "* ]]; then
            echo "$p $((p + 1))"
            return
        fi
    done
    die "no two free ports found"
}

# Polls `cmd` every 0.1 s for up to `secs` seconds.
wait_for() {
    local secs=$1
    shift
    local i
    for ((i = 0; i < secs * 10; i++)); do
        if "$@" >/dev/null 2>&1; then return 0; fi
        sleep 0.1
    done
    return 1
}

node_idle() { [[ "$(sinfo -h -N -o %T 2>/dev/null)" == idle ]]; }
queue_empty() { [[ -z "$(squeue -h -o %i 2>/dev/null)" ]]; }

alive() { [[ -n $1 ]] && kill -0 "$1" 2>/dev/null; }
gone() { ! alive "$1"; }

write_config() {
    local dir=$1 host=$2 ctld_port=$3 slurmd_port=$4 cpus=$5 gpus=$6
    local mem_mib=${SLURM_TEST_MEM_MB:-262144}
    mkdir -p "$dir"/{etc,state,spool,log,run,tmp,dev}
    local i
    for ((i = 0; i < gpus; i++)); do ln -sf /dev/null "$dir/dev/nvidia$i"; done
    cat >"$dir/etc/slurm.conf" <<EOF
# Written by tests/slurm/cluster.sh for a private test cluster; removed with its directory.
ClusterName=shardsimtest
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$dir/munge/munge.socket
CredType=cred/munge
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool/slurmd-%n
SlurmctldPidFile=$dir/run/slurmctld.pid
SlurmdPidFile=$dir/run/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
TmpFS=$dir/tmp
# No systemd and no cgroups here: track processes through /proc, bind nothing.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
# Debian's Open MPI has no Slurm PMI-1/2: PMIx is the one that launches MPI programs.
MpiDefault=pmix
# GPUs are allocated (cons_tres) only with a consumable-resource selector.
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
GresTypes=gpu
# Start jobs at once (~0.5 s) instead of after the default batch delay (~3 s).
SchedulerParameters=batch_sched_delay=0
# The node may declare more CPUs and memory than the machine has (it would drain otherwise).
# Memory is not a consumable resource here (CR_Core) and no cgroup enforces it.
SlurmdParameters=config_overrides
ReturnToService=2
# A killed step gets SIGKILL 2 s after SIGTERM (default 30 s): failing tests end quickly.
KillWait=2
# Finished jobs stay visible to scontrol/squeue for 5 minutes (their exit code, their times).
MinJobAge=300
MailProg=/bin/true
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem_mib Gres=gpu:$gpus State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
    local files=""
    ((gpus > 0)) && files="NodeName=$host Name=gpu File=$dir/dev/nvidia[0-$((gpus - 1))]"
    cat >"$dir/etc/gres.conf" <<EOF
# Fake GPUs: character devices (symlinks to /dev/null); regular files would set no
# CUDA_VISIBLE_DEVICES, and a count without File= drains the node.
AutoDetect=off
$files
EOF
}

start_munge() {
    local dir=$1
    mkdir -p "$dir/munge"
    chmod 755 "$dir" "$dir/munge"  # munged refuses a socket directory that others cannot enter
    mungekey -c -k "$dir/munge/munge.key" >/dev/null 2>&1 || die "mungekey failed"
    chmod 600 "$dir/munge/munge.key"
    munged -S "$dir/munge/munge.socket" --key-file "$dir/munge/munge.key" \
        --log-file "$dir/log/munged.log" --pid-file "$dir/run/munged.pid" \
        --seed-file "$dir/munge/munge.seed" ||
        die "munged did not start (log: $dir/log/munged.log)"
    wait_for 5 test -s "$dir/run/munged.pid" || die "munged wrote no pid file"
    cat "$dir/run/munged.pid" >"$dir/run/munged.started"
}

cmd_start() {
    local dir=$1
    for b in munged mungekey slurmctld slurmd scontrol sinfo; do
        command -v "$b" >/dev/null || die "$b not found (install slurm-wlm and munge)"
    done
    [[ $(id -u) == 0 ]] || die "must run as root (the daemons run as SlurmUser=root)"
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    local host ports cpus=${SLURM_TEST_CPUS:-16} gpus=${SLURM_TEST_GPUS:-8}
    host=$(hostname -s)
    ports=$(pick_ports)
    # shellcheck disable=SC2086
    write_config "$dir" "$host" $ports "$cpus" "$gpus"
    export SLURM_CONF=$dir/etc/slurm.conf
    start_munge "$dir"
    # Both Slurm daemons daemonise and write their pid files.
    slurmctld -f "$SLURM_CONF" || die "slurmctld did not start (log: $dir/log/slurmctld.log)"
    wait_for 10 test -s "$dir/run/slurmctld.pid" || die "slurmctld wrote no pid file (log: $dir/log/slurmctld.log)"
    cat "$dir/run/slurmctld.pid" >"$dir/run/slurmctld.started"
    slurmd -f "$SLURM_CONF" || die "slurmd did not start (log: $dir/log/slurmd.log)"
    wait_for 10 test -s "$dir/run/slurmd.pid" || die "slurmd wrote no pid file (log: $dir/log/slurmd.log)"
    cat "$dir/run/slurmd.pid" >"$dir/run/slurmd.started"
    if ! wait_for 20 node_idle; then
        sinfo -N -l >&2 || true
        tail -n 20 "$dir/log/slurmctld.log" "$dir/log/slurmd.log" >&2 || true
        die "node $host did not become idle"
    fi
    echo "cluster.sh: cluster up in $dir (ports $ports, node $host: $cpus CPUs, $gpus fake GPUs)" >&2
}

started_pids() {
    local dir=$1 f
    for f in "$dir"/run/{slurmctld,slurmd,munged}.started; do
        [[ -s $f ]] && cat "$f"
    done
    return 0
}

cmd_pids() {
    local dir=$1 pid
    for pid in $(started_pids "$dir"); do alive "$pid" && echo "$pid"; done
    return 0
}

# Every daemon the start of DIR started, stopped by its pid. Safe to call twice, and after a
# start that failed half-way.
cmd_stop() {
    local dir=$1 pid
    [[ -d $dir/run ]] || return 0
    export SLURM_CONF=$dir/etc/slurm.conf
    local ctld slurmd munge
    ctld=$(cat "$dir/run/slurmctld.started" 2>/dev/null || true)
    slurmd=$(cat "$dir/run/slurmd.started" 2>/dev/null || true)
    munge=$(cat "$dir/run/munged.started" 2>/dev/null || true)
    if alive "$ctld"; then
        # Jobs still running (a failed test) are cancelled first, so no step outlives the cluster.
        local jobs
        jobs=$(squeue -h -o %i 2>/dev/null || true)
        if [[ -n $jobs ]]; then
            # shellcheck disable=SC2086
            scancel $jobs 2>/dev/null || true
            wait_for 10 queue_empty || true
        fi
        scontrol shutdown >/dev/null 2>&1 || true
    elif alive "$slurmd"; then
        kill -TERM "$slurmd" 2>/dev/null || true
    fi
    for pid in $ctld $slurmd; do
        wait_for 10 gone "$pid" ||
            { echo "cluster.sh: pid $pid did not stop; killing it" >&2; kill -KILL "$pid" 2>/dev/null || true; }
    done
    # munged last: the Slurm daemons authenticate their shutdown through it. It takes 1-2 s to exit.
    if alive "$munge"; then
        kill -TERM "$munge" 2>/dev/null || true
        wait_for 5 gone "$munge" ||
            { echo "cluster.sh: munged $munge did not stop; killing it" >&2; kill -KILL "$munge" 2>/dev/null || true; }
    fi
    [[ -z "$(cmd_pids "$dir")" ]] || die "daemons still alive: $(cmd_pids "$dir" | tr '\n' ' ')"
    # Job processes that outlived their daemons (a step the shutdown did not reach) go by pid too.
    local line
    while read -r line; do
        [[ -n $line ]] || continue
        echo "cluster.sh: killing leftover process $line" >&2
        kill -KILL "${line%% *}" 2>/dev/null || true
    done < <(cmd_leftovers "$dir")
    return 0
}

cmd_env() { echo "export SLURM_CONF=$(cd "$1" && pwd)/etc/slurm.conf"; }

# Processes of this cluster still alive: its daemons (munged, slurmctld, slurmscriptd, slurmd,
# slurmstepd with DIR on their command line or SLURM_CONF=DIR/etc/slurm.conf in their environment)
# and what its jobs started (that SLURM_CONF and a SLURM_JOB_ID in the environment: batch scripts,
# srun, ranks). Clients such as squeue or a `tail -f` of a log are not counted. Reads /proc with
# shell builtins only, so that no helper process matches itself.
cmd_leftovers() {
    local dir=$1 p pid args envs mine
    dir=$(cd "$dir" && pwd)
    for p in /proc/[0-9]*; do
        pid=${p#/proc/}
        [[ $pid == "$$" || $pid == "$BASHPID" ]] && continue
        mapfile -d "" args 2>/dev/null <"$p/cmdline" || continue
        ((${#args[@]} > 0)) || continue
        mapfile -d "" envs 2>/dev/null <"$p/environ" || envs=()
        mine=0
        [[ " ${envs[*]} " == *" SLURM_CONF=$dir/etc/slurm.conf "* ]] && mine=1
        case "${args[0]##*/}" in
            munged | slurmctld | slurmd | slurmstepd* | *slurmscriptd*)
                [[ " ${args[*]} " == *"$dir/"* ]] && mine=1
                ;;
            *)
                [[ " ${envs[*]} " == *" SLURM_JOB_ID="* ]] || mine=0
                ;;
        esac
        ((mine)) && echo "$pid ${args[*]}"
    done
    return 0
}

case "${1:-}" in
    start | stop | env | pids | leftovers)
        [[ $# == 2 ]] || die "usage: $0 start|stop|env|pids|leftovers DIR"
        "cmd_$1" "$2"
        ;;
    *)
        echo "usage: $0 start|stop|env|pids|leftovers DIR" >&2
        exit 2
        ;;
esac
