#!/usr/bin/env bash
# A private Slurm cluster for tests: munged, slurmctld and one slurmd per node started as root
# under one directory, no systemd, no cgroups, on ports of their own so that it can run beside
# another cluster (a real one, or a second test). Fake GPUs are GRES whose device files are
# symlinks to /dev/null (character devices), so `--gpus-per-node=6` is accepted and Slurm sets
# CUDA_VISIBLE_DEVICES as it does on a GPU node.
#
# Several nodes (SLURM_TEST_NODES > 1) are several slurmd on this one host, each started for its
# own node name (slurmd -N), on its own port, with its own spool, log, pid file and TmpFS (PMIx
# keeps its per-step folders there: shared, the second node's step fails to start). Their jobs
# are multi-node jobs to Slurm and to MPI; only Open MPI's shared-memory transport is fooled: the
# "nodes" share a host name, so ranks on different nodes name their shared-memory segments alike
# and crash. Multi-node jobs here use OMPI_MCA_btl=self,tcp on the loopback interface.
#
#   cluster.sh start DIR   start the daemons; config, state, spool, logs and pid files under DIR
#   cluster.sh stop DIR    cancel what is left, `scontrol shutdown`, then munged by its pid;
#                          any daemon still alive after that is killed by its pid
#   cluster.sh env DIR     print the `export` lines clients need (SLURM_CONF)
#   cluster.sh pids DIR    print the pids of the daemons started under DIR that are still alive
#   cluster.sh leftovers DIR   print every process of this cluster still alive: its daemons and
#                          what its jobs started (stop kills those by pid after the shutdown)
#
# Settings (environment): SLURM_TEST_NODES (1: nodes; one is named as this host, several are
# n1, n2, ...), SLURM_TEST_CPUS (16: CPUs each node declares, more than the machine has is fine),
# SLURM_TEST_GPUS (8, per node), SLURM_TEST_MEM_MB (262144: memory each node declares; nothing
# enforces it here, so that jobs asking for a real node's memory are accepted on a small machine),
# SLURM_TEST_PORT (first of the ports, slurmctld's; each node's slurmd takes the next one;
# default: free ports from 20000-59999).
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

# The first of $1 consecutive free ports.
pick_ports() {
    local n=$1
    if [[ -n ${SLURM_TEST_PORT:-} ]]; then
        echo "$SLURM_TEST_PORT"
        return
    fi
    local used p i _ free
    used=" $(ports_in_use | tr '\n' ' ') "
    for _ in $(seq 1 50); do
        p=$((20000 + (RANDOM * 32768 + RANDOM) % 40000))
        free=1
        for ((i = 0; i < n; i++)); do [[ $used == *" $((p + i)) "* ]] && free=0; done
        if ((free)); then
            echo "$p"
            return
        fi
    done
    die "no $n free ports found"
}

# The node names of a cluster of $2 nodes on host $1.
node_names() {
    local i
    if (($2 == 1)); then echo "$1"; else for ((i = 1; i <= $2; i++)); do echo "n$i"; done; fi
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

node_idle() { [[ "$(sinfo -h -N -o %T 2>/dev/null | sort -u)" == idle ]]; }
queue_empty() { [[ -z "$(squeue -h -o %i 2>/dev/null)" ]]; }

alive() { [[ -n $1 ]] && kill -0 "$1" 2>/dev/null; }
gone() { ! alive "$1"; }

write_config() {
    local dir=$1 host=$2 port=$3 nodes=$4 cpus=$5 gpus=$6
    local mem_mib=${SLURM_TEST_MEM_MB:-262144}
    local names i name
    names=$(node_names "$host" "$nodes")
    mkdir -p "$dir"/{etc,state,spool,log,run,tmp,dev}
    for name in $names; do mkdir -p "$dir/tmp/$name"; done
    for ((i = 0; i < gpus; i++)); do ln -sf /dev/null "$dir/dev/nvidia$i"; done
    cat >"$dir/etc/slurm.conf" <<EOF
# Written by tests/slurm/cluster.sh for a private test cluster; removed with its directory.
ClusterName=shardsimtest
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$port
SlurmdPort=$((port + 1))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
# cred_expire: a requeued job waits this long before it may start again (default 120 s).
AuthInfo=socket=$dir/munge/munge.socket,cred_expire=5
CredType=cred/munge
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool/slurmd-%n
SlurmctldPidFile=$dir/run/slurmctld.pid
SlurmdPidFile=$dir/run/slurmd-%n.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd-%n.log
SlurmctldDebug=info
SlurmdDebug=info
TmpFS=$dir/tmp/%n
# No systemd and no cgroups here: track processes through /proc, bind nothing.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
# Debian's Open MPI has no Slurm PMI-1/2: PMIx is the one that launches MPI programs.
MpiDefault=pmix
# GPUs are allocated (cons_tres) only with a consumable-resource selector.
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
GresTypes=gpu
# Start jobs at once (~0.5 s) instead of after the default batch delay (~3 s); look for jobs that
# became eligible (a requeued job, after cred_expire) every second, not every 30 to 60.
SchedulerParameters=batch_sched_delay=0,sched_interval=1,bf_interval=1
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
EOF
    i=0
    for name in $names; do
        echo "NodeName=$name NodeHostname=$host NodeAddr=127.0.0.1 Port=$((port + 1 + i)) CPUs=$cpus RealMemory=$mem_mib Gres=gpu:$gpus State=UNKNOWN" \
            >>"$dir/etc/slurm.conf"
        i=$((i + 1))
    done
    names=$(echo $names | tr ' ' ',')
    echo "PartitionName=debug Nodes=$names Default=YES MaxTime=INFINITE State=UP" >>"$dir/etc/slurm.conf"
    local files=""
    ((gpus > 0)) && files="NodeName=$names Name=gpu File=$dir/dev/nvidia[0-$((gpus - 1))]"
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
    local host port nodes=${SLURM_TEST_NODES:-1} cpus=${SLURM_TEST_CPUS:-16} gpus=${SLURM_TEST_GPUS:-8} name
    host=$(hostname -s)
    port=$(pick_ports $((nodes + 1)))
    write_config "$dir" "$host" "$port" "$nodes" "$cpus" "$gpus"
    export SLURM_CONF=$dir/etc/slurm.conf
    start_munge "$dir"
    # The Slurm daemons daemonise and write their pid files.
    slurmctld -f "$SLURM_CONF" || die "slurmctld did not start (log: $dir/log/slurmctld.log)"
    wait_for 10 test -s "$dir/run/slurmctld.pid" || die "slurmctld wrote no pid file (log: $dir/log/slurmctld.log)"
    cat "$dir/run/slurmctld.pid" >"$dir/run/slurmctld.started"
    for name in $(node_names "$host" "$nodes"); do
        slurmd -f "$SLURM_CONF" -N "$name" || die "slurmd of $name did not start (log: $dir/log/slurmd-$name.log)"
        wait_for 10 test -s "$dir/run/slurmd-$name.pid" || die "slurmd of $name wrote no pid file (log: $dir/log/slurmd-$name.log)"
        cat "$dir/run/slurmd-$name.pid" >"$dir/run/slurmd-$name.started"
    done
    if ! wait_for 20 node_idle; then
        sinfo -N -l >&2 || true
        tail -n 20 "$dir"/log/*.log >&2 || true
        die "the nodes did not become idle"
    fi
    echo "cluster.sh: cluster up in $dir (ports $port-$((port + nodes)), $nodes node(s) $(node_names "$host" "$nodes" | paste -sd ,) on $host: $cpus CPUs and $gpus fake GPUs each)" >&2
}

started_pids() {
    local dir=$1 f
    for f in "$dir"/run/slurmctld.started "$dir"/run/slurmd*.started "$dir"/run/munged.started; do
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
    local ctld slurmd="" munge f
    ctld=$(cat "$dir/run/slurmctld.started" 2>/dev/null || true)
    for f in "$dir"/run/slurmd*.started; do
        [[ -s $f ]] && slurmd="$slurmd $(cat "$f")" || true
    done
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
    else
        for pid in $slurmd; do alive "$pid" && kill -TERM "$pid" 2>/dev/null || true; done
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
