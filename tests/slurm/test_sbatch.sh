#!/usr/bin/env bash
# ctest label "slurm": a private two-node Slurm cluster (tests/slurm/cluster.sh: munged,
# slurmctld and a slurmd per node as root under a temp folder, fake GPUs as GRES) runs the sbatch
# scripts that `shardsim slurm` writes and the templates in slurm/, all submitted at once:
#   - a --mode simulate script runs the real binary and leaves its HDF5 under $SHARDSIM_OUT_DIR/<job id>/;
#   - generated --mode run scripts for 2 and 6 GPUs (srun, PMIx) and for 2 CPU ranks (mpirun), and
#     the single-node and CPU-only templates, run with tests/slurm/fake_shardsim.sh in place of the
#     binary: every rank of an MPI program reports its rank, node-local rank and GPUs;
#   - the bench-sweep template runs `shardsim bench` on 2 ranks (the probe on 1 and 2 while bench is
#     not built);
#   - a generated script whose rank 1 fails ends its step at once, not at the time limit;
#   - the 6-GPU and multi-node templates pass `sbatch --test-only`;
#   - once `shardsim run` exists, generated run scripts for a 2- and a 6-rank CPU job write HDF5
#     files with every rank and the Slurm job id, nodes and step in the root attributes;
# then, alone on the cluster, a 2-node x 3-rank job from `shardsim slurm --nodes 2 --exclusive
# --requeue --setup ...` (bash 4.2 syntax, named after the effective job) that finds shardsim only
# through its site set-up, is requeued by Slurm (scontrol requeue: every rank ends its step, writes
# its file complete = 0 and exits 143), then stopped the way --signal stops it before the time limit
# (SIGTERM to the ranks only: the script requeues the job itself), and finishes on its third try.
# Every daemon is stopped by pid at the end, also when a check fails, and the test fails if any
# process of the cluster is left.
#
# Environment (ctest sets it): SHARDSIM (the binary), SHARDSIM_SOURCE_DIR, SHARDSIM_SLURM_PROBE (the
# MPI probe, tests/slurm/mpi_probe.c), and the Open MPI variables for root and oversubscription.
# KEEP_SLURM_TEST=1 keeps the temp folder (cluster logs, job logs, outputs).
set -euo pipefail

readonly SKIP=77
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SOURCE=${SHARDSIM_SOURCE_DIR:-$(cd "$here/../.." && pwd)}
SHARDSIM=${SHARDSIM:-$SOURCE/build/shardsim}
PROBE=${SHARDSIM_SLURM_PROBE:-$SOURCE/build/tests/shardsim_slurm_probe}
FAKE=$here/fake_shardsim.sh

skip() {
    echo "SKIP: $*"
    exit "$SKIP"
}
missing=()
for b in munged mungekey slurmctld slurmd sbatch srun squeue scontrol scancel sinfo; do
    command -v "$b" >/dev/null || missing+=("$b")
done
((${#missing[@]} == 0)) ||
    skip "Slurm binaries not found: ${missing[*]} (Debian: apt-get install slurm-wlm munge libpmix-dev)"
[[ $(id -u) == 0 ]] || skip "the private cluster runs munged, slurmctld and slurmd as root (SlurmUser=root)"
[[ -x $SHARDSIM ]] || { echo "FAIL: shardsim binary not found at $SHARDSIM (set SHARDSIM)"; exit 1; }
[[ -x $PROBE ]] || { echo "FAIL: MPI probe not found at $PROBE (set SHARDSIM_SLURM_PROBE)"; exit 1; }

# Open MPI as root, more ranks than cores (ctest sets these; a manual run gets them here).
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_rmaps_base_oversubscribe=1 OMPI_MCA_mpi_yield_when_idle=1
export OMPI_MCA_btl_vader_single_copy_mechanism=${OMPI_MCA_btl_vader_single_copy_mechanism:-none}

WORK=$(mktemp -d /tmp/shardsim-slurm-test.XXXXXX)
chmod 755 "$WORK"
CLUSTER=$WORK/cluster
SUBMIT=$WORK/submit   # where sbatch runs: job logs (%x-%j.out) land here
OUT=$WORK/out         # SHARDSIM_OUT_DIR
mkdir -p "$SUBMIT" "$OUT"
failures=0
t_start=$EPOCHREALTIME

now() { echo "$EPOCHREALTIME"; }
since() {  # seconds since a `now`, to 0.1 s, without a process
    local us=$((${EPOCHREALTIME/./} - ${1/./}))
    echo "$((us / 1000000)).$((us % 1000000 / 100000))"
}
fail() {
    echo "FAIL: $*"
    failures=$((failures + 1))
}

cleanup() {
    local rc=$? t_stop left
    trap - EXIT
    t_stop=$(now)
    unset SLURM_CONF
    "$here/cluster.sh" stop "$CLUSTER" || { echo "FAIL: cluster.sh stop failed"; rc=1; }
    left=$("$here/cluster.sh" leftovers "$CLUSTER")
    if [[ -n $left ]]; then
        echo "FAIL: processes of the test cluster still alive after stop:"
        echo "$left"
        rc=1
    else
        echo "cluster stopped in $(since "$t_stop") s: no munged, slurmctld, slurmd or job process of it is left"
    fi
    if ((rc != 0)) && [[ -d $CLUSTER/log ]]; then
        for f in "$CLUSTER"/log/*.log; do
            echo "--- last lines of $f"
            tail -n 15 "$f"
        done
    fi
    if [[ ${KEEP_SLURM_TEST:-0} == 1 || $rc != 0 ]]; then
        echo "kept $WORK"
    else
        rm -rf "$WORK"
    fi
    echo "slurm test: $( ((rc == 0)) && echo passed || echo FAILED) in $(since "$t_start") s"
    exit "$rc"
}
trap cleanup EXIT
trap 'echo "FAIL: interrupted"; exit 1' INT TERM HUP

# --- the cluster ---------------------------------------------------------------------------------
t0=$(now)
SLURM_TEST_NODES=2 SLURM_TEST_CPUS=64 SLURM_TEST_GPUS=16 "$here/cluster.sh" start "$CLUSTER"
eval "$("$here/cluster.sh" env "$CLUSTER")"
echo "cluster up in $(since "$t0") s"
# The host name MPI reports for every rank (both nodes are this host).
host=$(hostname)

# --- inputs ---------------------------------------------------------------------------------------
# A tiny job on CPU ranks; `--set topology.cluster.gpus_per_node=N` sets its rank count.
cat >"$WORK/tiny.ini" <<'EOF'
[job]
model = tiny-llama
topology = cpu-host
steps = 1

[parallel]
strategy = zero3

[precision]
params = fp32

[batch]
micro_batch = 2
seq_len = 32
EOF

generate() {  # generate NAME ARGS...: writes $SUBMIT/NAME.sbatch with `shardsim slurm ARGS`
    local name=$1
    shift
    "$SHARDSIM" slurm "$@" --time 5 --out "$SUBMIT/$name.sbatch" ||
        { fail "shardsim slurm $* exited with $?"; return 1; }
}

declare -A JOB_ID JOB_T0 JOB_WALL
submit() {  # submit NAME SCRIPT [sbatch options...]; the environment of the call goes with the job
    local name=$1 script=$2 id
    shift 2
    if ! id=$(cd "$SUBMIT" && sbatch --parsable "$@" "$script"); then
        fail "$name: sbatch refused $script"
        return 0
    fi
    JOB_ID[$name]=${id%%;*}
    JOB_T0[$name]=$(now)
}

wait_all() {  # polls squeue (sbatch --wait adds ~10 s) until every submitted job has left it
    local deadline=$(($(date +%s) + ${1:-90})) name ids running
    while :; do
        ids=$(IFS=,; echo "${JOB_ID[*]}")
        running=" $(squeue -h -j "$ids" -o %i 2>/dev/null | tr '\n' ' ') "
        for name in "${!JOB_ID[@]}"; do
            if [[ -z ${JOB_WALL[$name]:-} && $running != *" ${JOB_ID[$name]} "* ]]; then
                JOB_WALL[$name]=$(since "${JOB_T0[$name]}")
            fi
        done
        [[ -z ${running// /} ]] && return 0
        if (($(date +%s) > deadline)); then
            fail "jobs still queued or running after ${1:-90} s: $running"
            squeue || true
            return 0
        fi
        sleep 0.1
    done
}

declare -A JOB_INFO
load_job_info() {  # one `scontrol show job -o` for every job (finished ones stay MinJobAge = 300 s)
    local line name id
    while read -r line; do
        id=${line#JobId=}
        id=${id%% *}
        for name in "${!JOB_ID[@]}"; do
            [[ ${JOB_ID[$name]} == "$id" ]] && JOB_INFO[$name]=" $line "
        done
    done < <(scontrol show job -o)
    return 0
}

job_field() {  # job_field NAME Key: a field of the job's `scontrol show job` line
    local re=" $2=([^ ]*) "
    if [[ ${JOB_INFO[$1]:-} =~ $re ]]; then echo "${BASH_REMATCH[1]}"; fi
}

job_log() { job_field "$1" StdOut; }

show_log() {
    local log
    log=$(job_log "$1")
    echo "--- $1 (job ${JOB_ID[$1]}): $(job_field "$1" JobState) $(job_field "$1" ExitCode), log $log"
    if [[ -f $log ]]; then sed 's/^/    /' "$log" | tail -n 40; fi
    return 0
}

expect_state() {  # expect_state NAME STATE
    local state
    state=$(job_field "$1" JobState)
    if [[ $state != "$2" ]]; then
        fail "$1: job ${JOB_ID[$1]} ended $state (exit $(job_field "$1" ExitCode)), expected $2"
        show_log "$1"
        return 1
    fi
}

# expect_ranks NAME RANKS LOCAL_VAR GPUS: the probe's lines in NAME's log: ranks 0..RANKS-1 once each,
# all in this Slurm job, the node-local rank the launcher gives in LOCAL_VAR (slurm_localid under srun,
# ompi_local_rank under mpirun) equal to MPI's node-local rank, and GPUS GPUs visible to every rank
# (the same list; 0: none).
expect_ranks() {
    local name=$1 ranks=$2 local_var=$3 gpus=$4 log
    log=$(job_log "$name")
    local problems
    problems=$(awk -v n="$ranks" -v lv="$local_var" -v gpus="$gpus" -v job="${JOB_ID[$name]}" '
        /^probe rank=/ {
            delete f
            for (i = 2; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] }
            seen[f["rank"]]++
            split(f["mpi_local"], ml, "/")
            if (f["size"] != n) printf "rank %s: size %s, expected %s\n", f["rank"], f["size"], n
            if (f[lv] != ml[1]) printf "rank %s: %s=%s but MPI node-local rank %s\n", f["rank"], lv, f[lv], ml[1]
            if (f["slurm_job_id"] != job) printf "rank %s: SLURM_JOB_ID=%s, expected %s\n", f["rank"], f["slurm_job_id"], job
            cvd = f["cuda_visible_devices"]
            if (gpus == 0 && cvd != "-") printf "rank %s: CUDA_VISIBLE_DEVICES=%s without GPUs\n", f["rank"], cvd
            if (gpus > 0) {
                if (split(cvd, g, ",") != gpus) printf "rank %s: CUDA_VISIBLE_DEVICES=%s, expected %d GPUs\n", f["rank"], cvd, gpus
                if (first == "") first = cvd
                else if (cvd != first) printf "rank %s: CUDA_VISIBLE_DEVICES=%s, rank 0 has %s\n", f["rank"], cvd, first
            }
        }
        END {
            for (r = 0; r < n; r++) if (seen[r] != 1) printf "rank %d reported %d times\n", r, seen[r]
            for (r in seen) if (r + 0 >= n) printf "unexpected rank %s\n", r
        }' "$log")
    if [[ -n $problems ]]; then
        fail "$name: $(echo "$problems" | head -n 5 | paste -sd ';')"
        show_log "$name"
    fi
    return 0
}

expect_in_log() {  # expect_in_log NAME TEXT
    if ! grep -qF -- "$2" "$(job_log "$1")"; then
        fail "$1: '$2' not in its log"
        show_log "$1"
    fi
    return 0
}

# --- generated scripts ----------------------------------------------------------------------------
# Written in parallel: a CUDA build of the binary takes about a second to start, even without a GPU.
# Whether `run` and `bench` are built yet is asked at the same time.
t0=$(now)
("$SHARDSIM" run --help >/dev/null 2>&1 && touch "$WORK/run-ready") &
("$SHARDSIM" bench --help >/dev/null 2>&1 && touch "$WORK/bench-ready") &
generate sim --job "$WORK/tiny.ini" --set topology.cluster.gpus_per_node=2 --mode simulate &
generate run2 --job gpt2-xl-fsdp-2x-titan-rtx 2>/dev/null &
generate run6 --job llama-7b-fsdp-6x-a100-40g &
generate mpirun2 --job "$WORK/tiny.ini" --set topology.cluster.gpus_per_node=2 --launcher mpirun &
for n in 2 6; do generate "real$n" --job "$WORK/tiny.ini" --set "topology.cluster.gpus_per_node=$n" & done
wait
for f in sim run2 run6 mpirun2 real2 real6; do
    [[ -s $SUBMIT/$f.sbatch ]] || { fail "shardsim slurm wrote no $f.sbatch"; exit 1; }
done
run_ready=0 bench_ready=0
[[ -e $WORK/run-ready ]] && run_ready=1
[[ -e $WORK/bench-ready ]] && bench_ready=1
# Both are built now: a binary without them is a failure, not a reason to test less.
((run_ready)) || fail "'shardsim run --help' failed: the real 2- and 6-rank submissions cannot run"
((bench_ready)) || fail "'shardsim bench --help' failed: the bench sweep runs with the probe instead"
echo "generated in $(since "$t0") s"

t_jobs=$(now)
SHARDSIM=$SHARDSIM SHARDSIM_OUT_DIR=$OUT submit sim "$SUBMIT/sim.sbatch"
SHARDSIM=$FAKE SHARDSIM_SLURM_PROBE=$PROBE SHARDSIM_OUT_DIR=$OUT submit run2 "$SUBMIT/run2.sbatch"
SHARDSIM=$FAKE SHARDSIM_SLURM_PROBE=$PROBE SHARDSIM_OUT_DIR=$OUT submit run6 "$SUBMIT/run6.sbatch"
SHARDSIM=$FAKE SHARDSIM_SLURM_PROBE=$PROBE SHARDSIM_OUT_DIR=$OUT submit mpirun2 "$SUBMIT/mpirun2.sbatch"
# Rank 1 exits with status 3 while rank 0 waits in a barrier: the step must end at once.
SHARDSIM=$FAKE SHARDSIM_SLURM_PROBE=$PROBE SHARDSIM_OUT_DIR=$OUT FAKE_SHARDSIM_PROBE_ARGS="--fail-rank 1" \
    submit fail2 "$SUBMIT/run2.sbatch" --job-name=shardsim-fail2

# --- templates, as shipped ---------------------------------------------------------------------------
for t in single-node-2gpu cpu-only; do
    SHARDSIM=$FAKE SHARDSIM_SLURM_PROBE=$PROBE SHARDSIM_OUT_DIR=$OUT submit "$t" "$SOURCE/slurm/$t.sbatch"
done
# The bench sweep with the real `shardsim bench` (small sizes); the probe only if bench is broken.
# The cluster's GPUs are fake (/dev/null), so the CPU is asked for: `auto` refuses a GPU allocation
# it cannot use rather than falling back to the CPU silently.
if ((bench_ready)); then
    SHARDSIM=$SHARDSIM SHARDSIM_OUT_DIR=$OUT SHARDSIM_BENCH_RANKS="2" \
        SHARDSIM_ARGS="--backend mpi --max-bytes 64K --iters 2 --warmup 1" submit bench-sweep "$SOURCE/slurm/bench-sweep.sbatch"
else
    SHARDSIM=$FAKE SHARDSIM_SLURM_PROBE=$PROBE SHARDSIM_OUT_DIR=$OUT SHARDSIM_BENCH_RANKS="1 2" \
        submit bench-sweep "$SOURCE/slurm/bench-sweep.sbatch"
fi
# The 6-GPU template has the 2-GPU one's body; the multi-node one needs nodes this cluster lacks.
# sbatch --test-only checks their #SBATCH lines against the cluster without running them.
for t in single-node-6gpu multi-node; do
    bash -n "$SOURCE/slurm/$t.sbatch" || fail "slurm/$t.sbatch: bash -n failed"
done
(cd "$SUBMIT" && sbatch --test-only "$SOURCE/slurm/single-node-6gpu.sbatch" >/dev/null 2>&1) ||
    fail "slurm/single-node-6gpu.sbatch: sbatch --test-only refused it"
(cd "$SUBMIT" && sbatch --test-only --nodes=1 "$SOURCE/slurm/multi-node.sbatch" >/dev/null 2>&1) ||
    fail "slurm/multi-node.sbatch: sbatch --test-only --nodes=1 refused it"

# --- run mode with the real executor ---------------------------------------------------------------
if ((run_ready)); then
    for n in 2 6; do
        SHARDSIM=$SHARDSIM SHARDSIM_OUT_DIR=$OUT submit "real$n" "$SUBMIT/real$n.sbatch"
    done
fi

wait_all 120
echo "jobs done in $(since "$t_jobs") s (wall per job, from submission:$(for n in "${!JOB_WALL[@]}"; do printf ' %s %s s,' "$n" "${JOB_WALL[$n]}"; done))"

# --- checks ----------------------------------------------------------------------------------------
t_checks=$(now)
load_job_info
if expect_state sim COMPLETED; then
    h5=$OUT/${JOB_ID[sim]}/simulate.h5
    [[ -s $h5 ]] || fail "sim: no $h5"
    expect_in_log sim "shardsim simulate"
    expect_in_log sim "exit status 0"
    if command -v h5ls >/dev/null && [[ -s $h5 ]]; then
        for r in 0 1; do
            h5ls "$h5" | grep -q "^rank_$r " || fail "sim: group rank_$r missing in $h5"
        done
    fi
fi

if expect_state run2 COMPLETED; then
    expect_ranks run2 2 slurm_localid 2
    expect_in_log run2 "fake-shardsim argv: run --job gpt2-xl-fsdp-2x-titan-rtx --out $OUT/${JOB_ID[run2]}/run.h5"
    [[ -d $OUT/${JOB_ID[run2]} ]] || fail "run2: output folder $OUT/${JOB_ID[run2]} not made"
fi
if expect_state run6 COMPLETED; then
    expect_ranks run6 6 slurm_localid 6
    expect_in_log run6 "fake-shardsim argv: run --job llama-7b-fsdp-6x-a100-40g --out $OUT/${JOB_ID[run6]}/run.h5"
fi
if expect_state mpirun2 COMPLETED; then
    # Under mpirun SLURM_LOCALID is the launcher daemon's (0 on every rank); OMPI_COMM_WORLD_LOCAL_RANK
    # is the rank's own.
    expect_ranks mpirun2 2 ompi_local_rank 0
    expect_in_log mpirun2 "--set topology.cluster.gpus_per_node=2 --out $OUT/${JOB_ID[mpirun2]}/run.h5"
fi

if expect_state fail2 FAILED; then
    expect_in_log fail2 "probe rank 1 on"
    wall=${JOB_WALL[fail2]:-999}
    # The time limit is 5 minutes: a step left hanging would still be running when wait_all gives up.
    if awk -v w="$wall" 'BEGIN { exit !(w > 20) }'; then
        fail "fail2: the job with a failed rank took $wall s to end (expected well under 20 s)"
    else
        echo "a failed rank ended its job in $wall s (submission to end; time limit 5 minutes)"
    fi
fi

if expect_state single-node-2gpu COMPLETED; then expect_ranks single-node-2gpu 2 slurm_localid 2; fi
if expect_state cpu-only COMPLETED; then
    expect_ranks cpu-only 4 slurm_localid 0
    expect_in_log cpu-only "--set topology.cluster.gpus_per_node=4 --out $OUT/${JOB_ID[cpu-only]}/run.h5"
    [[ -s $OUT/${JOB_ID[cpu-only]}/smoke-job.ini ]] || fail "cpu-only: smoke job not written"
fi
if expect_state bench-sweep COMPLETED; then
    if ((bench_ready)); then
        [[ -s $OUT/${JOB_ID[bench-sweep]}/bench-np2.h5 ]] || fail "bench-sweep: no bench-np2.h5"
        expect_in_log bench-sweep "shardsim: 2 ranks: exit status 0"
        expect_in_log bench-sweep "PASS: 0 wrong element(s)"
    else
        log=$(job_log bench-sweep)
        [[ $(grep -c '^probe rank=' "$log") == 3 ]] || { fail "bench-sweep: expected 1 + 2 rank reports"; show_log bench-sweep; }
        expect_in_log bench-sweep "fake-shardsim argv: bench --out $OUT/${JOB_ID[bench-sweep]}/bench-np2.h5"
    fi
fi

if ((run_ready)); then
    for n in 2 6; do
        name=real$n
        [[ -n ${JOB_ID[$name]:-} ]] || continue
        expect_state "$name" COMPLETED || continue
        h5=$OUT/${JOB_ID[$name]}/run.h5
        [[ -s $h5 ]] || { fail "$name: no $h5"; continue; }
        if ! command -v h5ls >/dev/null || ! command -v h5dump >/dev/null; then
            echo "SKIP ($name HDF5 checks): h5ls/h5dump not found (apt-get install hdf5-tools)"
            continue
        fi
        groups=$(h5ls "$h5" | awk '$1 ~ /^rank_/ { print $1 }' | sort | paste -sd ' ')
        expected=$(for ((r = 0; r < n; r++)); do echo "rank_$r"; done | sort | paste -sd ' ')
        [[ $groups == "$expected" ]] || fail "$name: groups '$groups' in $h5, expected '$expected'"
        # The root attributes that say where it ran, in one h5dump: "key value" lines.
        declare -A attr=()
        while read -r key value; do attr[$key]=$value; done < <(
            h5dump -a /slurm_job_id -a /slurm_job_num_nodes -a /slurm_job_nodelist -a /slurm_step_id "$h5" 2>/dev/null |
                awk '/ATTRIBUTE "/ { split($0, q, "\""); key = q[2] }
                     /\(0\): "/ { split($0, q, "\""); sub(/ +$/, "", q[2]); print key, q[2] }')
        for expect in "slurm_job_id=${JOB_ID[$name]}" slurm_job_num_nodes=1 "slurm_job_nodelist=$(job_field "$name" NodeList)" \
            slurm_step_id=0; do
            key=${expect%%=*}
            [[ ${attr[$key]:-} == "${expect#*=}" ]] ||
                fail "$name: root attribute $key is '${attr[$key]:-}' in $h5, expected '${expect#*=}'"
        done
        unset attr
        # The start-up table binds rank r of this one node to local rank r (SLURM_LOCALID).
        log=$(job_log "$name")
        if grep -q "local rank" "$log"; then
            for ((r = 0; r < n; r++)); do
                grep -qE "^$r +$host +$r( |$)" "$log" || fail "$name: the start-up table has no line 'rank $r, host $host, local rank $r'"
            done
        else
            fail "$name: no start-up table with the local rank of every rank in $log"
        fi
    done
fi

echo "checked in $(since "$t_checks") s"

# --- a 2-node x 3-rank run that is requeued twice -------------------------------------------------------
# Generated for 2 nodes of 3 CPU ranks (--nodes derives topology.cluster.nodes; the network is
# named, as the generator asks), exclusive nodes, requeue, and a set-up line that puts shardsim on
# PATH: SHARDSIM is not set, so the job finds it only if the set-up ran first. The site file
# (SHARDSIM_SETUP) reads an unset variable, as module and conda scripts do, and sets the steps:
# endless for the first two tries, 3 more than the checkpoint it resumes for the third. Each try
# resumes from the checkpoint the one before wrote when it was stopped (run --checkpoint/--resume).
t_req=$(now)
cat >"$WORK/site.sh" <<'EOF'
echo "site set-up sourced: restart ${SLURM_RESTART_COUNT:-0}${SITE_VARIABLE_NOBODY_SET}"
if [ "${SLURM_RESTART_COUNT:-0}" -ge 2 ]; then
    done_steps=$(sed 's/^step-0*//' "$SHARDSIM_OUT_DIR/$SLURM_JOB_ID/checkpoints/latest")
    SHARDSIM_ARGS="--steps $((done_steps + 3))"
else
    SHARDSIM_ARGS="--steps 1000000"
fi
EOF
generate req --job "$WORK/tiny.ini" --set topology.cluster.gpus_per_node=3 --nodes 2 \
    --set topology.inter_node.kind=ethernet --set topology.inter_node.bandwidth_gbps=10 \
    --exclusive --requeue --setup "export PATH=$(dirname "$SHARDSIM"):\$PATH" || exit 1
req_name=$(sed -n 's/^#SBATCH --job-name=//p' "$SUBMIT/req.sbatch")
[[ $req_name == shardsim-tiny-llama-zero3-2x3-* ]] || fail "req: job name '$req_name' does not follow the effective job (2 x 3 ranks)"
bash -n "$SUBMIT/req.sbatch" || fail "req: bash -n failed"
JOB_ID=() JOB_INFO=()
# Two "nodes" on one host share its name: Open MPI's shared-memory segments would collide across
# them, so the ranks talk TCP over the loopback interface (see cluster.sh).
(unset SHARDSIM
 export SHARDSIM_SETUP=$WORK/site.sh SHARDSIM_OUT_DIR=$OUT OMPI_MCA_btl=self,tcp OMPI_MCA_btl_tcp_if_include=lo \
        OMPI_MCA_oob_tcp_if_include=lo
 cd "$SUBMIT" && sbatch --parsable "$SUBMIT/req.sbatch" >"$WORK/req.id") || fail "req: sbatch refused it"
id=$(cut -d';' -f1 "$WORK/req.id")
JOB_ID[req]=$id
JOB_T0[req]=$(now)
req_log=$SUBMIT/$req_name-$id.out

# wait_steps N TRIES: until the log shows TRIES tries that ran N steps each (at most 60 s).
wait_steps() {
    local deadline=$(($(date +%s) + 60)) tries
    while :; do
        tries=$(awk -v n="$1" '/^site set-up sourced: restart /{t++} /^step [0-9]+\/1000000 /{c[t]++} END{k=0; for (i in c) if (c[i] >= n) k++; print k}' \
            "$req_log" 2>/dev/null || true)
        ((${tries:-0} >= $2)) && return 0
        if (($(date +%s) > deadline)); then
            fail "req: try $2 did not reach step $1 in 60 s"
            tail -n 20 "$req_log" 2>/dev/null
            return 1
        fi
        sleep 0.2
    done
}
# 1. Slurm requeues it (as after preemption): SIGTERM to everything, SIGKILL after KillWait.
if wait_steps 3 1; then
    scontrol requeue "$id" 2>"$WORK/requeue.err" || fail "req: scontrol requeue $id failed: $(cat "$WORK/requeue.err")"
    # 2. SIGTERM to the ranks only, as #SBATCH --signal sends it before the time limit.
    if wait_steps 3 2; then
        scancel --signal=TERM "$id" || fail "req: scancel --signal=TERM $id failed"
    fi
fi
wait_all 90
load_job_info
if expect_state req COMPLETED; then
    [[ $(job_field req Restarts) == 2 ]] || fail "req: Restarts=$(job_field req Restarts), expected 2"
    [[ $(job_field req NumNodes) == 2 ]] || fail "req: NumNodes=$(job_field req NumNodes)"
    [[ $(grep -c "^site set-up sourced: restart " "$req_log") == 3 ]] || fail "req: the site set-up did not run on each try"
    [[ $(grep -c "^shardsim: exit status 143;" "$req_log") == 2 ]] || fail "req: two tries should end with status 143"
    expect_in_log req "requeueing job $id (restart 2)"
    [[ $(grep -c "requeueing job" "$req_log") == 1 ]] || fail "req: the script requeued a job Slurm was requeueing itself"
    expect_in_log req "shardsim: exit status 0; output in $OUT/$id/restart-2"
    # The start-up table of each try: 6 ranks, node-local ranks 0-2 on each node.
    [[ $(grep -cE "^[0-5] +$host +[0-2] +cpu" "$req_log") == 18 ]] || fail "req: start-up tables without 3 tries x 6 ranks"
    total=0  # the steps done before this try: what its checkpoint held
    for try in "" restart-1/ restart-2/; do
        h5=$OUT/$id/${try}run.h5
        if [[ ! -s $h5 ]]; then
            fail "req: no $h5 ($(ls -R "$OUT/$id" | tr '\n' ' '))"
            continue
        fi
        read -r complete n ranks nodes completion < <("$SHARDSIM" report "$h5" --allow-incomplete --json | python3 -c '
import json, sys
j = json.load(sys.stdin)
print(int(j["complete"]), len(j["steps_in_file"]), j["world_size"], j.get("slurm_job_num_nodes", "?"), j["completion"])')
        want="0 stopped by SIGTERM after step $((total + n)) of 1000000"
        [[ -z $try || $try == restart-1/ ]] || want="1 finished"
        if [[ -n $try ]]; then
            grep -q "^resumed from $OUT/$id/checkpoints/step-$(printf %06d "$total"): $total step(s) done by zero3 on 6 rank(s)" "$req_log" ||
                fail "req: ${try%/} did not resume from the checkpoint of step $total"
        fi
        [[ $try == restart-2/ ]] && { ((n == 3)) || fail "req: the last try ran $n steps, not the 3 it had left"; }
        total=$((total + n))
        [[ "$complete $completion" == "$want" && $ranks == 6 ]] ||
            fail "req: $h5 says complete=$complete, '$completion', $ranks ranks; expected '$want', 6 ranks"
        h5dump -a /slurm_job_num_nodes "$h5" | grep -q '(0): "2"' || fail "req: $h5 does not say 2 nodes"
        echo "req ${try:-first try/}: complete=$complete, $n step(s): $completion"
    done
fi
echo "requeued job done in $(since "$t_req") s"
((failures == 0)) || exit 1
