#pragma once
// run --checkpoint DIR [--checkpoint-every K] and run --resume DIR (io/checkpoint.hpp for the
// files). Every function is collective over MPI_COMM_WORLD.
#include <cstdint>
#include <string>

#include "shardsim/cli/run_setup.hpp"

namespace shardsim::cli {

// Creates DIR on every rank (exit 2 on every rank when it cannot be made).
void prepare_checkpoint_dir(const std::string& dir, int world_rank, int world_size);
// Writes the state after `steps_done` optimizer steps; rank 0 publishes it and returns its folder.
std::string save_checkpoint(const RunContext& ctx, const std::string& dir, std::int64_t steps_done, int world_rank);
// Loads the newest checkpoint of `dir` into the executor, under this run's sharding (which may
// differ from the one that wrote it), and returns the steps it had done. A checkpoint of another
// model, optimizer, seed, precision or number of sequences per step is bad input (exit 2).
std::int64_t resume_from(RunContext& ctx, const std::string& dir, int world_rank, int world_size);

}  // namespace shardsim::cli
