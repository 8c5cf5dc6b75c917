#!/usr/bin/env bash
# The main job: set up, build, and answer the embedded default scenario
# (Llama-7B, FSDP full shard, 6x A100 40G, bf16, micro-batch 1 x 4, context 512).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source tools/setup.sh
mkdir -p out
echo
./build/shardsim simulate --out out/demo-sim.h5
