// shardsim bench: an nccl-tests-style sweep of collectives on the plan's groups, each size also
// run on the raw library (bench/collectives.hpp); rank 0 prints, every rank's timings go to HDF5.
#include <algorithm>
#include <climits>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>

#include "shardsim/cli/options.hpp"
#include "shardsim/cli/run_setup.hpp"
#include "shardsim/comm/backends.hpp"
#include "shardsim/comm/mpi.hpp"
#include "shardsim/config/topology.hpp"
#include "shardsim/core/format.hpp"
#include "shardsim/bench/collectives.hpp"
#include "shardsim/io/bench_file.hpp"
#include "shardsim/report/bench.hpp"
#include "shardsim/report/bench_predict.hpp"

namespace shardsim::cli {

namespace {

struct BenchArgs {
    std::string ops = "all_gather,reduce_scatter,all_reduce";
    std::string min_bytes = "8", max_bytes = "64M";
    std::int64_t factor = 2;
    std::string backend = "auto", dtype = "fp32", out, topology;
    int iters = 20, warmup = 5;
    bool json = false;
    bool predict = false;
};

// Every problem of the command line at once (before MPI starts: no rank has done anything yet).
bench::BenchOptions check_args(const BenchArgs& a) {
    Problems p;
    bench::BenchOptions o;
    for (const auto& name : split(a.ops, ',')) {
        const auto k = plan::parse_collective(trim(name));
        if (!k || *k == plan::CollectiveKind::broadcast)
            p.add("--op: bad value '" + trim(name) + "' (allowed: all_gather, reduce_scatter, all_reduce, comma-separated)");
        else if (std::find(o.ops.begin(), o.ops.end(), *k) == o.ops.end())
            o.ops.push_back(*k);
    }
    const auto lo = parse_byte_count(a.min_bytes), hi = parse_byte_count(a.max_bytes);
    if (!lo || *lo < 1) p.add("--min-bytes: bad value '" + a.min_bytes + "' (allowed: " + kByteCountAllowed + ", >= 1)");
    const std::int64_t most = a.predict ? 1024 * kGiB : 4 * kGiB;  // measuring needs the buffers; predicting does not
    if (!hi || *hi < 1 || *hi > most)
        p.add("--max-bytes: bad value '" + a.max_bytes + "' (allowed: " + kByteCountAllowed + ", at most " + (a.predict ? "1024G" : "4G") + ")");
    if (lo && hi && *lo > *hi)
        p.add("--max-bytes: bad value '" + a.max_bytes + "': below --min-bytes " + a.min_bytes + " (allowed: >= --min-bytes)");
    if (a.factor < 2) p.add("--factor: bad value '" + std::to_string(a.factor) + "' (allowed: integer >= 2)");
    if (a.iters < 1) p.add("--iters: bad value '" + std::to_string(a.iters) + "' (allowed: integer >= 1)");
    if (a.warmup < 0) p.add("--warmup: bad value '" + std::to_string(a.warmup) + "' (allowed: integer >= 0)");
    const auto dt = parse_dtype(a.dtype);
    if (!dt) p.add("--dtype: bad value '" + a.dtype + "' (allowed: " + std::string(kDTypeAllowed) + ")");
    if (!device::parse_backend_request(a.backend))
        p.add("--backend: bad value '" + a.backend + "' (allowed: " + device::kBackendChoices + ")");
    if (!a.out.empty()) {
        const auto dir = std::filesystem::path(a.out).parent_path();
        if (!dir.empty() && !std::filesystem::is_directory(dir))
            p.add("--out: bad value '" + a.out + "': folder " + dir.string() + " does not exist");
    }
    p.throw_if_any();
    o.min_bytes = *lo;
    o.max_bytes = *hi;
    o.factor = a.factor;
    o.iters = a.iters;
    o.warmup = a.warmup;
    o.dtype = *dt;
    return o;
}

// The rank mpirun gives this process, before MPI starts: only rank 0 reports command-line errors.
bool launcher_rank_zero() {
    for (const char* v : {"OMPI_COMM_WORLD_RANK", "PMIX_RANK", "PMI_RANK", "SLURM_PROCID"})
        if (const char* s = std::getenv(v)) return std::atoi(s) == 0;
    return true;
}

// Where ranks sit ([Note: bench groups]): the topology's split when given, else the real one.
std::int64_t ranks_per_node(const std::optional<config::TopologyConfig>& topo, const std::string& ref, int size) {
    if (topo) {
        const std::int64_t total = topo->nodes * topo->gpus_per_node;
        if (topo->nodes > 1 && total != size)
            throw InputError("--topology: bad value '" + ref + "': topology " + topo->name + " has " +
                             std::to_string(topo->nodes) + " node(s) x " + std::to_string(topo->gpus_per_node) +
                             " GPUs = " + std::to_string(total) + " ranks, but mpirun started " + std::to_string(size) +
                             " (allowed: mpirun -np " + std::to_string(total) + ", or a topology of " + std::to_string(size) + " ranks)");
        return topo->nodes > 1 ? topo->gpus_per_node : size;
    }
    int rank = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    const int local = comm::node_local_size(MPI_COMM_WORLD);
    const int node_major = comm::node_local_rank(MPI_COMM_WORLD) == rank % local ? 1 : 0;
    int all_major = 0, min_local = 0, max_local = 0;
    SHARDSIM_MPI_CHECK(MPI_Allreduce(&node_major, &all_major, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD));
    SHARDSIM_MPI_CHECK(MPI_Allreduce(&local, &min_local, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD));
    SHARDSIM_MPI_CHECK(MPI_Allreduce(&local, &max_local, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD));
    if (!all_major || min_local != max_local)
        throw InputError("rank " + std::to_string(rank) + " on " + comm::host_name() +
                         ": ranks are not placed node-major with equal counts per node, as the plan assumes "
                         "(allowed: mpirun --map-by slot, or --topology naming the layout)");
    return local;
}

struct Setup {
    bench::BenchOptions options;
    std::optional<config::TopologyConfig> topology;
};

// Checks that need MPI. Every rank checks; the lowest failing rank prints, all stop with exit 2.
void prepare(Setup& s, const BenchArgs& a, int rank, int size) {
    std::optional<InputError> error;
    try {
        if (size < 2)
            throw InputError("shardsim bench: " + std::to_string(size) + " rank: a collective over one rank moves nothing "
                             "(allowed: mpirun -np N shardsim bench ..., N >= 2)");
        if (!a.topology.empty()) s.topology = config::load_topology(a.topology, "", "--topology", {});
        s.options.ranks_per_node = ranks_per_node(s.topology, a.topology, size);
    } catch (const InputError& e) {
        error = e;
    }
    agree_or_stop(error, rank, size);
    try {
        s.options.backend = device::choose_backend(parse_backend_option(a.backend), MPI_COMM_WORLD);
        if (s.options.backend == device::Backend::mpi) {
            if (s.options.max_bytes / dtype_size(s.options.dtype) > INT_MAX)
                throw InputError("--max-bytes: bad value '" + a.max_bytes + "': more than INT_MAX elements in one MPI call (allowed: <= " +
                                 format_bytes(INT_MAX * dtype_size(s.options.dtype)) + " for " +
                                 std::string(dtype_name(s.options.dtype)) + ")");
            // Two buffers of the largest size per rank, for every rank of this node.
            const std::int64_t need = 2 * s.options.max_bytes * comm::node_local_size(MPI_COMM_WORLD);
            const std::int64_t have = device::host_available_bytes();
            if (have > 0 && need > have)
                throw InputError("--max-bytes: bad value '" + a.max_bytes + "': the ranks of " + comm::host_name() + " need " +
                                 format_gib(static_cast<double>(need), 2) + " GiB of buffers, " +
                                 format_gib(static_cast<double>(have), 2) + " GiB are available (allowed: a smaller size)");
        }
    } catch (const InputError& e) {
        error = e;
    }
    agree_or_stop(error, rank, size);
}

int bench(const Setup& s, const BenchArgs& a, int rank) {
    std::unique_ptr<device::Device> device =
        s.options.backend == device::Backend::nccl ? device::make_cuda_device(device::bind_local_gpu(MPI_COMM_WORLD).device)
                                                   : device::make_cpu_device();
    bench::BenchRun run = bench::run_bench(s.options, *device, MPI_COMM_WORLD);
    if (s.topology) run.topology = s.topology->source.text;
    const report::BenchReport r = report::bench_report(run);
    int code = r.passed ? 0 : kExitCheckFailed;
    if (rank == 0) {
        std::cout << (a.json ? r.json.dump() + "\n" : r.text);
        if (!a.out.empty()) {
            try {
                io::write_bench_file(a.out, run);
                if (!a.json) std::cout << "# every rank's timings written to " << a.out << "\n";
            } catch (const std::exception& e) {
                std::cerr << "shardsim bench: error: " << printable(e.what()) << "\n";
                code = kExitFailure;
            }
        }
        std::cout.flush();
    }
    SHARDSIM_MPI_CHECK(MPI_Bcast(&code, 1, MPI_INT, 0, MPI_COMM_WORLD));
    return code;
}

// --predict: the model's table for a topology; no MPI, nothing run.
int predict(const BenchArgs& a, const bench::BenchOptions& o) {
    if (a.topology.empty())
        throw InputError("--predict: needs --topology (allowed: a shipped topology name or a path to a .ini file)");
    const config::TopologyConfig t = config::load_topology(a.topology, "", "--topology", {});
    report::PredictOptions p;
    p.ops = o.ops;
    p.min_bytes = o.min_bytes;
    p.max_bytes = o.max_bytes;
    p.factor = o.factor;
    p.element_bytes = static_cast<std::int64_t>(dtype_size(o.dtype));
    const report::PredictReport r = report::predicted_bench(t, p);
    std::cout << (a.json ? r.json.dump() + "\n" : r.text);
    return 0;
}

}  // namespace

int cmd_bench(const Args& args) {
    BenchArgs a;
    po::options_description desc("options");
    desc.add_options()
        ("op", po::value<std::string>(&a.ops)->default_value(a.ops), "collectives, comma-separated: all_gather, reduce_scatter, all_reduce")
        ("min-bytes", po::value<std::string>(&a.min_bytes)->default_value(a.min_bytes), "smallest size (nccl-tests' size; K, M, G suffixes)")
        ("max-bytes", po::value<std::string>(&a.max_bytes)->default_value(a.max_bytes), "largest size")
        ("factor", po::value<std::int64_t>(&a.factor)->default_value(a.factor), "each size is the previous one times this")
        ("backend", po::value<std::string>(&a.backend)->default_value(a.backend), kBackendHelp)
        ("dtype", po::value<std::string>(&a.dtype)->default_value(a.dtype), "element type: fp32, bf16, fp16")
        ("iters", po::value<int>(&a.iters)->default_value(a.iters), "timed iterations per size")
        ("warmup", po::value<int>(&a.warmup)->default_value(a.warmup), "untimed iterations before them")
        ("topology", po::value<std::string>(&a.topology),
         "place ranks as this topology's nodes (shipped name or .ini path); with several nodes the node and replicate groups are measured too")
        ("out", po::value<std::string>(&a.out), "write every rank's timings to this HDF5 file (input of shardsim calibrate)")
        ("json", po::bool_switch(&a.json), "print JSON instead of the table (same figures)")
        ("predict", po::bool_switch(&a.predict),
         "print the collective model's table for --topology (with the nccl-tests figures it cites) instead of measuring; no MPI needed");
    const std::string usage =
        "shardsim bench --predict --topology T [--op ...] [--min-bytes 8M] [--max-bytes 8G]\n"
        "mpirun -np N shardsim bench [--op all_gather,reduce_scatter,all_reduce] [--min-bytes 8] [--max-bytes 64M] [--factor 2]\n"
        "       [--backend auto|nccl|mpi] [--dtype fp32|bf16|fp16] [--iters 20 --warmup 5] [--topology T] [--out bench.h5] [--json]";
    std::optional<po::variables_map> vm;
    bench::BenchOptions options;
    try {
        vm = parse_options("bench", usage, desc, args);
        if (!vm) return 0;
        options = check_args(a);
        if (a.predict) return predict(a, options);
    } catch (const InputError&) {
        if (launcher_rank_zero()) throw;
        return kExitBadInput;  // rank 0 says it; the other ranks stop quietly
    }

    return run_mpi_command("shardsim bench", [&](int rank, int size) {
        Setup s;
        s.options = options;
        prepare(s, a, rank, size);
        return bench(s, a, rank);
    });
}

}  // namespace shardsim::cli
