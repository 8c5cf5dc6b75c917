#!/usr/bin/env bash
# The users' configs under mpirun: a job exported as a ds_config.json and as an accelerate FSDP
# config, then `shardsim run` / `validate` started from those files (not from the job) train the
# same plan: the start-up lists what each key became, verify passes, validate compares memory and
# sizes (times are off: this runs beside other builds on shared cores).
source "$(dirname "${BASH_SOURCE[0]}")/../lib/harness.sh"
# The Trainer flags export wrote for the launch line (what --hf-args takes).
hf_args() { sed -n 's/.* train\.py //p' "$1/launch.sh" | sed 's/--deepspeed "[^"]*" //'; }

# 1. ZeRO-2 as DeepSpeed: run from the ds_config on a job of the Trainer's defaults.
"$SHARDSIM" export --job "$job" --set parallel.strategy=zero2 --to deepspeed --out "$tmp/ds" >/dev/null 2>"$tmp/err" ||
  fail "export --to deepspeed exited $?: $(tail -3 "$tmp/err")"
args=$(hf_args "$tmp/ds")
"$MPIEXEC" -np 2 --oversubscribe "$SHARDSIM" run --model tiny-llama --topology cpu-host --deepspeed "$tmp/ds/ds_config.json" \
  --hf-args "$args" --set memory.attention=eager --verify >"$tmp/out" 2>&1 || fail "run --deepspeed exited $?: $(tail -5 "$tmp/out")"
grep -q "zero_optimization.stage: -> parallel.strategy = zero2" "$tmp/out" || fail "run --deepspeed: no account of zero_optimization.stage"
grep -qE "^verify: .*passed$" "$tmp/out" || fail "run --deepspeed: verify did not pass: $(grep -i verify "$tmp/out" | head -3)"

# 2. FSDP as accelerate: validate from the accelerate config.
"$SHARDSIM" export --job "$job" --to accelerate --out "$tmp/acc" >/dev/null 2>"$tmp/err" ||
  fail "export --to accelerate exited $?: $(tail -3 "$tmp/err")"
args=$(hf_args "$tmp/acc")
"$MPIEXEC" -np 2 --oversubscribe "$SHARDSIM" validate --model tiny-llama --topology cpu-host --accelerate "$tmp/acc/accelerate_config.yaml" \
  --hf-args "$args" --set memory.attention=eager --time-tolerance 0 >"$tmp/out" 2>&1 || fail "validate --accelerate exited $?: $(tail -5 "$tmp/out")"
grep -q "distributed_type: -> parallel.strategy = ddp\|fsdp_sharding_strategy: -> parallel.strategy = fsdp-full-shard" "$tmp/out" ||
  fail "validate --accelerate: no account of the FSDP strategy"
grep -q "validate: PASS" "$tmp/out" || fail "validate --accelerate did not pass: $(tail -3 "$tmp/out")"

# 3. A bad key stops every rank with exit 2 and one message naming the file and line.
printf '{\n  "zero_optimization": {\n    "stage": 2,\n    "overlap_com": true\n  }\n}\n' >"$tmp/typo.json"
"$MPIEXEC" -np 2 --oversubscribe "$SHARDSIM" run --model tiny-llama --topology cpu-host --set batch.seq_len=16 \
  --deepspeed "$tmp/typo.json" >"$tmp/out" 2>&1
rc=$?
((rc == 2)) || fail "a misspelt key: exit $rc, expected 2"
n=$(grep -c "typo.json:4: zero_optimization.overlap_com: unknown key" "$tmp/out")
((n == 1)) || fail "a misspelt key: said $n times, expected once: $(head -3 "$tmp/out")"

# 4. A CPU host's lanes ([Note: a CPU host's cores]): with 4 cores per rank collectives run on a
# thread beside compute, with the cores this host gives two ranks (at most 1 each in CI) between
# it. The same plan either way: verify passes and the losses are the same to the last digit.
for cores in 8 2; do
  "$MPIEXEC" -np 2 --oversubscribe "$SHARDSIM" run --job tiny-llama-cpu --steps 3 --verify --set topology.host.cpu_cores=$cores \
    >"$tmp/cores-$cores" 2>&1 || fail "run with host.cpu_cores=$cores exited $?: $(tail -3 "$tmp/cores-$cores")"
  grep -qE "^verify: .*passed$" "$tmp/cores-$cores" || fail "host.cpu_cores=$cores: verify did not pass"
done
diff <(grep -o "^step [0-9]*/[0-9]*  loss [0-9.]*" "$tmp/cores-8") <(grep -o "^step [0-9]*/[0-9]*  loss [0-9.]*" "$tmp/cores-2") >/dev/null ||
  fail "the losses differ between the threaded and the one-lane run"
(($(grep -c "^step [0-9]*/3  loss" "$tmp/cores-8") == 3)) || fail "host.cpu_cores=8: not 3 steps printed"

# 5. Checkpointing as people use it: none, full (Hugging Face's) and selective (torchtitan's
# op-level policy) on FSDP, with sdpa: verify passes each time, the losses are the same to the
# last digit (a recompute reads back or rebuilds exactly what forward computed), and validate finds
# every op's memory as the plan says.
for ck in none full selective; do
  "$MPIEXEC" -np 2 --oversubscribe "$SHARDSIM" run --job tiny-llama-cpu --steps 3 --verify --set parallel.strategy=fsdp-full-shard \
    --set memory.attention=sdpa --set memory.activation_checkpointing=$ck >"$tmp/ckpt-$ck" 2>&1 ||
    fail "run with activation_checkpointing=$ck exited $?: $(tail -3 "$tmp/ckpt-$ck")"
  grep -qE "^verify: .*passed$" "$tmp/ckpt-$ck" || fail "activation_checkpointing=$ck: verify did not pass"
done
for ck in full selective; do
  diff <(grep -o "^step [0-9]*/[0-9]*  loss [0-9.]*" "$tmp/ckpt-none") <(grep -o "^step [0-9]*/[0-9]*  loss [0-9.]*" "$tmp/ckpt-$ck") >/dev/null ||
    fail "the losses differ between no checkpointing and $ck"
done
(($(grep -c "^step [0-9]*/3  loss" "$tmp/ckpt-selective") == 3)) || fail "selective: not 3 steps printed"
"$MPIEXEC" -np 2 --oversubscribe "$SHARDSIM" validate --job tiny-llama-cpu --set parallel.strategy=fsdp-full-shard \
  --set memory.attention=sdpa --set memory.activation_checkpointing=selective --time-tolerance 0 >"$tmp/validate-selective" 2>&1 ||
  fail "validate with selective checkpointing exited $?: $(grep -E 'FAIL|error' "$tmp/validate-selective" | head -3)"
grep -q "first memory divergence: none" "$tmp/validate-selective" || fail "selective: an op's memory differs from the plan's"

((failures == 0)) && echo "run_configs: all checks passed"
exit $((failures > 0))
