// Checkpoints of a run (cli/run_checkpoint.hpp).
//   What must match for a resume: the model, the optimizer and its settings' kind, the seed (the
//   data and dropout draws follow from it and the step), the precision of parameters and master
//   weights (the slices' dtypes), and the sequences per optimizer step (the data position is the
//   step times that number). What may change: the strategy, the number of ranks, the split of
//   the step into micro-batches and accumulation, offload, the backend.
#include "shardsim/cli/run_checkpoint.hpp"

#include <filesystem>
#include <iostream>
#include <optional>

#include <mpi.h>

#include "shardsim/comm/mpi.hpp"
#include "shardsim/io/checkpoint.hpp"

namespace shardsim::cli {

namespace {

std::int64_t sequences_per_step(const plan::ShardingPlan& p) {
    return p.scenario().job.micro_batch * p.scenario().job.grad_accum * p.groups().world();
}

io::Json meta_of(const plan::ShardingPlan& p, std::int64_t steps_done) {
    const auto& job = p.scenario().job;
    io::Json m = io::Json::object();
    m["format"] = 1;
    m["steps_done"] = steps_done;
    m["job"] = job.name;
    m["model"] = p.scenario().model.name;
    m["strategy"] = config::strategy_name(job.strategy);
    m["world_size"] = static_cast<std::int64_t>(p.groups().world());
    m["params_dtype"] = std::string(dtype_name(p.precision().params));
    m["master_weights"] = p.precision().master;
    m["optimizer"] = job.optimizer == config::OptimizerKind::adamw ? "adamw" : "sgd";
    m["seed"] = static_cast<std::int64_t>(job.seed);
    m["sequences_per_step"] = sequences_per_step(p);
    return m;
}

}  // namespace

void prepare_checkpoint_dir(const std::string& dir, int world_rank, int world_size) {
    std::optional<InputError> error;
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    if (ec || !std::filesystem::is_directory(dir))
        error = InputError("--checkpoint: bad value '" + dir + "': cannot create the folder" + (ec ? ": " + ec.message() : std::string()) +
                           " (allowed: a writable folder)");
    agree_or_stop(error, world_rank, world_size);
}

std::string save_checkpoint(const RunContext& ctx, const std::string& dir, std::int64_t steps_done, int world_rank) {
    const std::string partial = io::checkpoint::partial_dir(dir, steps_done);
    if (world_rank == 0) {
        std::filesystem::remove_all(partial);  // what an attempt killed while writing left
        std::filesystem::create_directories(partial);
    }
    SHARDSIM_MPI_CHECK(MPI_Barrier(MPI_COMM_WORLD));
    io::checkpoint::write_rank_file(partial, world_rank, ctx.executor->state_slices(true));
    SHARDSIM_MPI_CHECK(MPI_Barrier(MPI_COMM_WORLD));
    std::string published;
    if (world_rank == 0) published = io::checkpoint::publish(dir, steps_done, meta_of(*ctx.plan, steps_done));
    SHARDSIM_MPI_CHECK(MPI_Barrier(MPI_COMM_WORLD));
    return published;
}

std::int64_t resume_from(RunContext& ctx, const std::string& dir, int world_rank, int world_size) {
    std::optional<InputError> error;
    std::unique_ptr<io::checkpoint::Reader> reader;
    try {
        reader = std::make_unique<io::checkpoint::Reader>(dir);
        const io::Json have = reader->meta(), want = meta_of(*ctx.plan, 0);
        for (const char* key : {"model", "optimizer", "seed", "params_dtype", "master_weights", "sequences_per_step"}) {
            if (!have.contains(key)) throw InputError("--resume: " + reader->folder() + "/meta.json: no '" + key + "'");
            const io::Json& a = have.at(key);
            const io::Json& b = want.at(key);
            if (a.dump(-1) != b.dump(-1))
                throw InputError("--resume: " + reader->folder() + ": its " + key + " is " + a.dump(-1) + ", this job's " + b.dump(-1) +
                                 " (allowed: the same model, optimizer, seed, precision and sequences per step; the strategy, ranks, "
                                 "micro-batch split and offload may change)");
        }
    } catch (const InputError& e) {
        error = e;
    } catch (const Error& e) {
        error = InputError("--resume: " + std::string(e.what()));
    }
    agree_or_stop(error, world_rank, world_size);
    try {
        ctx.executor->load_state([&](exec::StateSlice& s) { reader->read(s); });
    } catch (const InputError& e) {
        error = e;
    } catch (const Error& e) {
        error = InputError("--resume: " + std::string(e.what()));
    }
    agree_or_stop(error, world_rank, world_size);
    if (world_rank == 0)
        std::cerr << "resumed from " << reader->folder() << ": " << reader->steps_done() << " step(s) done by "
                  << reader->meta().at("strategy").as_string() << " on " << reader->meta().at("world_size").as_int() << " rank(s)\n";
    return reader->steps_done();
}

}  // namespace shardsim::cli
