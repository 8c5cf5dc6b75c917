#include "shardsim/cli/run_setup.hpp"

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <optional>

#include "shardsim/comm/backends.hpp"
#include "shardsim/comm/mpi.hpp"
#include "shardsim/comm/watchdog.hpp"
#include "shardsim/config/launch.hpp"
#include "shardsim/core/format.hpp"
#include "shardsim/exec/gather.hpp"
#include "shardsim/device/backend.hpp"
#include "shardsim/device/memory.hpp"
#include "shardsim/io/hdf5.hpp"
#include "shardsim/report/header.hpp"
#include "shardsim/report/summary.hpp"
#include "shardsim/sim/predict.hpp"

namespace shardsim::cli {

namespace {

std::string env(const char* name) {
    const char* v = std::getenv(name);
    return v ? v : "";
}

void check_world(const RunContext& ctx, int world_size) {
    const auto& plan = *ctx.plan;
    const auto& s = plan.scenario();
    if (plan.groups().world() != world_size)
        throw InputError("this run has " + std::to_string(world_size) + " rank(s) (mpirun -np / srun -n; without a launcher: 1) but job " + s.job.name + " runs on " +
                         std::to_string(plan.groups().world()) + " = " + std::to_string(s.topology.nodes) + " node(s) x " +
                         std::to_string(s.topology.gpus_per_node) + " GPUs of topology " + s.topology.name +
                         " (allowed: mpirun -np " + std::to_string(plan.groups().world()) +
                         ", or --set topology.cluster.gpus_per_node=" + std::to_string(world_size) + ")");
}

// Before allocating anything: does the simulator think it fits?
void check_fit(const RunContext& ctx, bool force) {
    const auto& s = ctx.plan->scenario();
    std::int64_t peak = 0;  // the fullest rank's device peak
    for (const auto& tl : ctx.prediction.timelines) peak = std::max(peak, tl.summarize().peak_bytes);
    const std::int64_t host_node = report::summary_json(ctx.prediction).at("host_peak_bytes_per_node").as_int();
    // The device first: on a CPU each rank stands in for one device of the topology and gets its
    // memory (see set_device_limit in prepare_run).
    if (peak > s.topology.gpu.memory_bytes && !force)
        throw InputError("job " + s.job.name + " is predicted to need " + format_bytes(peak) + " per " +
                         (ctx.backend == device::Backend::mpi ? "rank" : "GPU") + " but " + s.topology.gpu.name + " of topology " + s.topology.name +
                         " has " + format_bytes(s.topology.gpu.memory_bytes) + " (allowed: a plan that fits — see shardsim simulate — or --force to run anyway)");
    // The host: the figure simulate prints (report::summary_json), for the ranks of this node —
    // offloaded states, each process itself, pinned rounding, and on a CPU host the device peaks.
    const std::int64_t have = device::host_available_bytes();
    const std::int64_t local = comm::node_local_size(MPI_COMM_WORLD);
    const std::int64_t per_node = std::max<std::int64_t>(1, std::min(s.topology.gpus_per_node, ctx.plan->groups().world()));
    std::int64_t need = host_node / per_node * local;
    // A GPU topology run on CPU ranks: its devices are this host's memory too.
    if (ctx.backend == device::Backend::mpi && !ctx.prediction.host_is_device) need += peak * local;
    if (need > have && !force)
        throw InputError("job " + s.job.name + " is predicted to need " + format_gib(static_cast<double>(need), 2) +
                         " GiB of host memory on this node (" + std::to_string(local) + " rank(s), as simulate's host per node says) but " +
                         format_gib(static_cast<double>(have), 2) + " GiB are available (allowed: a smaller job, or --force to run anyway)");
}

std::string binding_table(const RunContext& ctx, int world_rank, int world_size) {
    const int local = device::local_rank(MPI_COMM_WORLD).first;
    const std::string mine = std::to_string(world_rank) + "|" + comm::host_name() + "|" + std::to_string(local) + "|" +
                             ctx.device->name() + "|" + (env("CUDA_VISIBLE_DEVICES").empty() ? "-" : env("CUDA_VISIBLE_DEVICES"));
    int len = static_cast<int>(mine.size());
    std::vector<int> lens(static_cast<std::size_t>(world_size)), displs(static_cast<std::size_t>(world_size));
    SHARDSIM_MPI_CHECK(MPI_Gather(&len, 1, MPI_INT, lens.data(), 1, MPI_INT, 0, MPI_COMM_WORLD));
    int total = 0;
    for (int r = 0; r < world_size; ++r) displs[static_cast<std::size_t>(r)] = total, total += lens[static_cast<std::size_t>(r)];
    std::vector<char> all(static_cast<std::size_t>(std::max(1, total)));
    SHARDSIM_MPI_CHECK(MPI_Gatherv(mine.data(), len, MPI_CHAR, all.data(), lens.data(), displs.data(), MPI_CHAR, 0, MPI_COMM_WORLD));
    if (world_rank != 0) return "";
    TextTable t({"rank", "host", "local rank", "device", "CUDA_VISIBLE_DEVICES"});
    for (int r = 0; r < world_size; ++r) {
        const std::string row(all.data() + displs[static_cast<std::size_t>(r)], static_cast<std::size_t>(lens[static_cast<std::size_t>(r)]));
        t.add_row(split(row, '|'));
    }
    for (std::size_t c = 0; c < 5; ++c) t.align_left(c);
    return t.str();
}

timeline::RunTimeline attributes(const RunContext& ctx) {
    timeline::RunTimeline run = ctx.prediction;
    run.mode = "run";
    run.backend = device::backend_name(ctx.backend);
    run.timelines.clear();
    run.class_of_rank.clear();
    // Slurm: where this ran, to find it again.
    for (const auto& [k, v] : config::read_launch_env().attributes()) run.attributes[k] = v;
    return run;
}

}  // namespace

void abort_job(int world_rank, const std::string& message) {
    std::cerr << std::flush;
    comm::say_from_rank(world_rank, message);
    MPI_Abort(MPI_COMM_WORLD, kExitFailure);
    std::_Exit(kExitFailure);
}

void agree_or_stop(const std::optional<InputError>& error, int world_rank, int world_size) {
    const int mine = error ? world_rank : world_size;
    int first = world_size;
    SHARDSIM_MPI_CHECK(MPI_Allreduce(&mine, &first, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD));
    if (first == world_size) return;
    if (world_rank == first) throw *error;
    throw QuietExit{kExitBadInput};
}

bool launched_by_mpi() {
    for (const char* v : {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK"})
        if (std::getenv(v)) return true;
    return false;
}

int run_mpi_command(const std::string& what, const std::function<int(int, int)>& body) {
    comm::keep_large_allocations_in_heap();
    int argc = 0;
    char** argv = nullptr;
    comm::MpiSession session(&argc, &argv);
    int rank = 0, size = 1;
    SHARDSIM_MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &rank));
    SHARDSIM_MPI_CHECK(MPI_Comm_size(MPI_COMM_WORLD, &size));
    try {
        return body(rank, size);
    } catch (const QuietExit& q) {
        return q.code;
    } catch (const InputError& e) {
        for (const auto& p : e.problems()) std::cerr << p << "\n";
        return kExitBadInput;
    } catch (const std::exception& e) {
        abort_job(rank, what + ": error: " + e.what());
    }
}

void abort_run(const RunContext& ctx, int world_rank, const std::string& command, const std::exception& e) {
    const auto* oom = dynamic_cast<const device::OutOfMemory*>(&e);
    if (!oom || oom->op < 0 || static_cast<std::size_t>(oom->op) >= ctx.schedule.ops.size())
        abort_job(world_rank, command + ": error: " + e.what());
    const plan::Op& op = ctx.schedule.ops[static_cast<std::size_t>(oom->op)];
    std::string msg = command + ": error: out of memory at op " + std::to_string(op.id) + " (" + plan::op_label(*ctx.plan, op) +
                      "): it asked for " + format_bytes(oom->bytes) + " of " + std::string(category_name(oom->category)) +
                      " with " + format_bytes(oom->in_use) + " in use";
    // The prediction for this rank: its memory after the op, and its peak.
    const auto& pred = ctx.prediction;
    const std::size_t r = static_cast<std::size_t>(world_rank);
    if (r < pred.class_of_rank.size()) {
        const timeline::RankTimeline& tl = pred.timelines.at(static_cast<std::size_t>(pred.class_of_rank[r]));
        const bool host = oom->category == MemCategory::offloaded;
        std::int64_t after = -1, peak = 0;
        for (const auto& sample : tl.memory) {
            const std::int64_t total = host ? sample.bytes.host_total() : sample.bytes.device_total();
            peak = std::max(peak, total);
            if (sample.op_id == op.id) after = total;
        }
        msg += "; the simulator predicted ";
        if (after >= 0) msg += format_bytes(after) + " after this op and ";
        msg += "a peak of " + format_bytes(peak) + " (" + (host ? "host" : "device") + ")";
    }
    abort_job(world_rank, msg);
}

void check_output_paths(const std::vector<std::pair<std::string, std::string>>& outputs, int world_rank, int world_size) {
    std::optional<InputError> error;
    if (world_rank == 0) {
        try {
            for (const auto& [option, path] : outputs) io::check_output_path(option, path);
        } catch (const InputError& e) {
            error = e;
        }
    }
    agree_or_stop(error, world_rank, world_size);
}

RunContext prepare_run(const std::string& job, const std::vector<std::string>& sets, device::BackendRequest backend,
                       int threads, bool force, int world_rank, int world_size) {
    interop::Request request;
    request.job = job;
    request.sets = sets;
    return prepare_run(request, backend, threads, force, world_rank, world_size);
}

RunContext prepare_run(const interop::Request& request, device::BackendRequest backend, int threads, bool force,
                       int world_rank, int world_size) {
    RunContext ctx;
    std::optional<InputError> error;
    // What `host.cpu_cores = auto` means for these ranks (config/topology.hpp).
    config::set_node_cpu_cores(comm::node_cpu_cores(MPI_COMM_WORLD));
    try {
        interop::Loaded loaded = interop::load(request);
        ctx.imported = std::move(loaded.report);
        sim::Prediction pred = sim::predict(std::move(loaded.scenario));
        ctx.plan = pred.plan;
        ctx.schedule = std::move(pred.schedule);
        ctx.prediction = std::move(pred.run);
        // The files describe the model in full, so that they still do once moved away from its .ini.
        ctx.prediction.attributes["effective_model"] = ctx.plan->scenario().model.effective_ini;
        check_world(ctx, world_size);
    } catch (const InputError& e) {
        error = e;
    }
    agree_or_stop(error, world_rank, world_size);
    try {
        ctx.backend = device::choose_backend(backend, MPI_COMM_WORLD);
        check_fit(ctx, force);
    } catch (const InputError& e) {
        error = e;
    }
    agree_or_stop(error, world_rank, world_size);

    const auto& p = *ctx.plan;
    ctx.host_math = device::make_cpu_device(threads);
    if (ctx.backend == device::Backend::nccl) {
        const config::GpuBinding gpu = device::bind_local_gpu(MPI_COMM_WORLD);
        ctx.device = device::make_cuda_device(gpu.device);
        // The topology's GPU memory is the cap, whatever card this is: a 40 GiB job on an 80 GiB
        // GPU fails where a 40 GiB card would. What the CUDA runtime already holds (context, NCCL
        // later) counts against it, as on the real card.
        ctx.device->allocator().set_device_limit(
            std::max<std::int64_t>(0, p.scenario().topology.gpu.memory_bytes - ctx.device->runtime_bytes()));
        // Communicators issue on the device's communication stream.
        ctx.device->set_stream(device::DeviceStream::comm);
        void* stream = ctx.device->native_stream();
        ctx.device->set_stream(device::DeviceStream::compute);
        ctx.world = comm::make_nccl_communicator(MPI_COMM_WORLD, stream);
    } else {
        ctx.device = device::make_cpu_device(threads);
        // A CPU rank stands in for one GPU of the topology: it gets that GPU's memory and no more,
        // so a job forced past the prediction fails where a GPU would (out of memory, at an op).
        ctx.device->allocator().set_device_limit(p.scenario().topology.gpu.memory_bytes);
        ctx.world = std::make_unique<comm::MpiCommunicator>(MPI_COMM_WORLD, false);
    }
    // One communicator per group of the plan ([Note: rank groups]); the world group is the world.
    // Every call on one is watched as a call of that group; the groups are added to the watchdog
    // in the same order on every rank ([Note: collective watchdog]).
    std::vector<int> everyone(static_cast<std::size_t>(world_size));
    for (int r = 0; r < world_size; ++r) everyone[static_cast<std::size_t>(r)] = r;
    ctx.step_group = comm::watchdog::add_group("the world (the step's loss, stop signal and --out)", everyone);
    if (ctx.backend == device::Backend::nccl) comm::watchdog::set_device_group(comm::watchdog::add_group("the GPU's streams", everyone));
    exec::Communicators comms;
    for (const auto& g : p.groups().all()) {
        comm::Communicator* inner = ctx.world.get();
        if (g.size != world_size) {
            ctx.group_comms.push_back(ctx.world->split(static_cast<int>(g.instance(world_rank)), static_cast<int>(g.member(world_rank))));
            inner = ctx.group_comms.back().get();
        }
        std::vector<int> members;
        for (int r = 0; r < world_size; ++r)
            if (g.instance(r) == g.instance(world_rank)) members.push_back(r);
        const int key = comm::watchdog::add_group(g.name + " group " + std::to_string(g.instance(world_rank)), members);
        ctx.watched_comms.push_back(std::make_unique<comm::WatchedCommunicator>(*inner, key));
        comms.push_back(ctx.watched_comms.back().get());
    }
    if (ctx.backend == device::Backend::nccl) {
        comm::watchdog::abort_on_timeout(ctx.world.get());
        for (const auto& c : ctx.group_comms) comm::watchdog::abort_on_timeout(c.get());
    }
    ctx.executor = std::make_unique<exec::Executor>(ctx.plan, ctx.schedule, *ctx.device,
                                                    ctx.backend == device::Backend::mpi ? *ctx.device : *ctx.host_math, comms, world_rank);
    const std::string bindings = binding_table(ctx, world_rank, world_size);
    if (world_rank == 0)
        ctx.startup_table = ctx.imported.text() + report::scenario_header(p, "shardsim run: " + std::string(device::backend_name(ctx.backend)) + " backend, " + std::to_string(world_size) +
                                                           " rank(s)") + bindings + "\n";
    ctx.run_attributes = attributes(ctx);
    return ctx;
}

}  // namespace shardsim::cli
