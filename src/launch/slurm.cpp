#include "shardsim/launch/slurm.hpp"

#include <algorithm>
#include <cmath>
#include <regex>

#include "shardsim/config/embedded.hpp"
#include "shardsim/core/error.hpp"
#include "shardsim/core/format.hpp"
#include "shardsim/core/version.hpp"
#include "shardsim/plan/plan.hpp"
#include "shardsim/plan/schedule.hpp"
#include "shardsim/report/summary.hpp"
#include "shardsim/sim/predict.hpp"

namespace shardsim::launch {

const std::vector<std::string>& slurm_mode_names() {
    static const std::vector<std::string> names = {"run", "simulate", "validate", "bench"};
    return names;
}

std::string slurm_mode_name(SlurmMode m) { return slurm_mode_names().at(static_cast<std::size_t>(m)); }

std::optional<SlurmMode> parse_slurm_mode(const std::string& s) {
    const auto& names = slurm_mode_names();
    for (std::size_t i = 0; i < names.size(); ++i)
        if (names[i] == s) return static_cast<SlurmMode>(i);
    return std::nullopt;
}

std::string shell_quote(const std::string& s) {
    static const std::regex plain("[A-Za-z0-9_./=,:+@%-]+");
    if (std::regex_match(s, plain)) return s;
    std::string out = "'";
    for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
    return out + "'";
}

namespace {

// What the simulator predicts for one rank: the figures the memory request is made of.
struct ResourcePrediction {
    std::int64_t device_peak = 0;  // the largest rank's
    std::int64_t host_peak = 0;    // offloaded states on the host, per rank
    double step_time = 0;
    // The host figure simulate prints and --json says (report::summary_json): the fullest node's
    // offloaded bytes, processes, pinned rounding and, on a CPU host, device peaks.
    std::int64_t host_node = 0;
    std::int64_t process = 0;       // per rank
    std::int64_t pinned_slack = 0;  // per rank
};

ResourcePrediction predict_resources(const model::Scenario& s) {
    const timeline::RunTimeline run = sim::predict(s).run;  // refuses impossible plans
    ResourcePrediction p;
    for (const auto& tl : run.timelines) {
        const timeline::RankSummary sum = tl.summarize();
        p.device_peak = std::max(p.device_peak, sum.peak_bytes);
        p.host_peak = std::max(p.host_peak, sum.host_peak_bytes);
        p.step_time = std::max(p.step_time, sum.step_time);
    }
    const io::Json j = report::summary_json(run);
    p.host_node = j.at("host_peak_bytes_per_node").as_int();
    p.process = j.at("host_process_bytes_per_rank").as_int();
    p.pinned_slack = j.at("host_pinned_slack_bytes_per_rank").as_int();
    return p;
}

std::string gib(std::int64_t bytes) { return format_bytes(bytes); }

std::string plural(std::int64_t n, const std::string& word) {
    return std::to_string(n) + " " + word + (n == 1 ? "" : "s");
}

// "topology 6x-a100-40g: 1 node x 6 A100-PCIE-40GB, parallel.world_size = 0 (every GPU): 6 ranks"
std::string shape_factors(const model::Scenario& s) {
    const auto& t = s.topology;
    const std::string unit = t.gpu.is_cpu ? "rank" : "GPU";
    std::string out = "topology " + t.name + ": " + plural(t.nodes, "node") + " x " +
                      plural(t.gpus_per_node, unit) + (t.gpu.is_cpu ? " on CPU cores" : "");
    out += ", parallel.world_size = " + std::to_string(s.job.world_size) +
           (s.job.world_size == 0 ? " (all of them)" : "") + ": " + plural(s.world_size(), "rank");
    return out;
}

// "--gpus-per-node: bad value '6': <why> (allowed: <what>)": the shape of every refusal.
std::string bad(const std::string& option, const std::string& value, const std::string& why,
                const std::string& allowed) {
    return option + ": bad value '" + value + "': " + why + " (allowed: " + allowed + ")";
}

// Slurm's size spelling: digits with an optional K, M, G or T suffix (binary units; M without
// one). Returns bytes, 0 for "0" (all the memory of the node), nullopt when malformed.
std::optional<std::int64_t> parse_slurm_mem(const std::string& s) {
    static const std::regex re("([0-9]{1,12})([KMGTkmgt]?)");
    std::smatch m;
    if (!std::regex_match(s, m, re)) return std::nullopt;
    const std::int64_t n = std::stoll(m[1].str());
    const char unit = m[2].str().empty() ? 'M' : static_cast<char>(std::toupper(m[2].str()[0]));
    const std::int64_t scale = unit == 'K' ? kKiB : unit == 'M' ? kMiB : unit == 'G' ? kGiB : kGiB * 1024;
    return n * scale;
}

bool valid_slurm_time(const std::string& s) {
    // minutes, minutes:seconds, hours:minutes:seconds, days-hours, days-hours:minutes,
    // days-hours:minutes:seconds (sbatch --time), or no limit.
    static const std::regex re("([0-9]+-[0-9]+(:[0-9]+){0,2}|[0-9]+(:[0-9]+){0,2}|UNLIMITED|unlimited|INFINITE|infinite)");
    return std::regex_match(s, re);
}

struct Shape {
    std::int64_t nodes = 1, tasks_per_node = 1, gpus_per_node = 0;
    std::string origin;
};

// Nodes, ranks per node and GPUs per node of a parallel mode: the topology's nodes, one rank per
// GPU (or per topology "GPU" on a CPU host); explicit options must say the same.
Shape parallel_shape(const model::Scenario& s, const SlurmOptions& o, Problems& problems) {
    const auto& t = s.topology;
    Shape d;
    d.nodes = t.nodes;
    d.tasks_per_node = t.nodes > 1 ? t.gpus_per_node : s.world_size();
    d.gpus_per_node = t.gpu.is_cpu ? 0 : d.tasks_per_node;
    d.origin = shape_factors(s);
    const std::string factors = d.origin;
    const std::string asked_gpus = o.gpus_per_node ? std::to_string(*o.gpus_per_node) : "";
    if (o.gpus_per_node && t.gpu.is_cpu && *o.gpus_per_node != 0) {
        problems.add(bad("--gpus-per-node", asked_gpus,
                         "topology " + t.name + " is a CPU host (gpu.kind = cpu): its ranks run on cores and use no GPU",
                         "0, or leave it out"));
    } else if (o.gpus_per_node && !t.gpu.is_cpu && *o.gpus_per_node == 0) {
        problems.add(bad("--gpus-per-node", asked_gpus,
                         "one rank per GPU (" + t.gpu.name + "): " + factors,
                         std::to_string(d.gpus_per_node)));
    } else if (o.gpus_per_node && *o.gpus_per_node > t.gpus_per_node) {
        problems.add(bad("--gpus-per-node", asked_gpus,
                         asked_gpus + " GPUs per node asked on topology " + t.name + ", which has " +
                             std::to_string(t.gpus_per_node) + " (cluster.gpus_per_node; --set "
                             "topology.cluster.gpus_per_node=" + asked_gpus + " to simulate such nodes)",
                         std::to_string(d.gpus_per_node)));
    } else if (o.nodes && o.gpus_per_node && !t.gpu.is_cpu &&
               *o.nodes * *o.gpus_per_node != d.nodes * d.gpus_per_node) {
        problems.add(bad("--nodes x --gpus-per-node", std::to_string(*o.nodes) + " x " + asked_gpus,
                         std::to_string(*o.nodes * *o.gpus_per_node) + " GPUs for " +
                             plural(s.world_size(), "rank") + " (one GPU per rank); " + factors,
                         std::to_string(d.nodes) + " x " + std::to_string(d.gpus_per_node)));
    } else if (o.nodes && *o.nodes != d.nodes) {
        problems.add(bad("--nodes", std::to_string(*o.nodes),
                         "the job's nodes are the topology's; " + factors +
                             " (--set topology.cluster.nodes=N to simulate another node count)",
                         std::to_string(d.nodes)));
    } else if (o.gpus_per_node && *o.gpus_per_node != d.gpus_per_node) {
        problems.add(bad("--gpus-per-node", asked_gpus,
                         plural(s.world_size(), "rank") + " on " + plural(d.nodes, "node") + " need " +
                             std::to_string(d.gpus_per_node) + " GPUs per node (one per rank); " + factors,
                         std::to_string(d.gpus_per_node)));
    }
    return d;
}

// Host memory one node needs: its ranks' predicted host bytes (and, on a CPU host, their device
// bytes, which are host memory too) plus each process's own overhead.
struct MemNeed {
    std::int64_t bytes = 0;
    std::string factors;
};

MemNeed memory_need(const model::Scenario& s, const Shape& shape, const ResourcePrediction& p, bool simulate_only) {
    MemNeed n;
    if (simulate_only) {
        n.bytes = kGiB;
        n.factors = "the simulator: one process, ~1 GiB";
        return n;
    }
    // The figure simulate prints as "host per node", for the ranks of one node.
    const bool cpu = s.topology.gpu.is_cpu;
    (void)shape;
    n.bytes = p.host_node;
    n.factors = "the predicted host use per node, " + gib(n.bytes) + " (per rank: " +
                (cpu ? gib(p.device_peak) + " device peak (the device is host memory) + " : std::string()) + gib(p.host_peak) +
                " offloaded + " + gib(p.process) + " process (host.process_gib)" +
                (p.pinned_slack > 0 ? " + " + gib(p.pinned_slack) + " pinned rounding" : std::string()) + ")";
    return n;
}

std::string mem_request(std::int64_t bytes) { return std::to_string(ceil_div(bytes, kGiB)) + "G"; }

void check_name(const std::string& option, const std::string& value, const char* pattern, const char* allowed,
                Problems& problems) {
    if (value.empty()) return;
    if (!std::regex_match(value, std::regex(pattern))) problems.add(bad(option, value, "not a Slurm name", allowed));
}

// A derived value with where it came from, for the script's table.
struct Derived {
    std::string value;
    std::string origin;
};

// The simulator: one process on one node, no GPU, no MPI launcher.
Shape simulate_shape(const SlurmOptions& o, const std::string& topology, Problems& problems) {
    const std::string mode = "--mode simulate";
    Shape shape;
    shape.origin = mode + ": the simulator is one process and needs no GPU";
    if (o.nodes && *o.nodes != 1)
        problems.add(bad("--nodes", std::to_string(*o.nodes), mode + " runs one process on one node", "1"));
    if (o.gpus_per_node && *o.gpus_per_node != 0)
        problems.add(bad("--gpus-per-node", std::to_string(*o.gpus_per_node),
                         mode + " predicts " + topology + " without using a GPU", "0, or leave it out"));
    if (o.launcher && *o.launcher == SlurmLauncher::mpirun)
        problems.add(bad("--launcher", "mpirun", mode + " runs one process, without an MPI launcher", "srun"));
    return shape;
}

// A CPU rank is one core (the CPU device runs one thread per rank); a GPU rank needs a core for
// its host thread and one for MPI progress and HDF5, two more for the CPU optimizer step when the
// optimizer is offloaded.
struct Cpus {
    std::int64_t count = 1;
    std::string origin;
};

Cpus cpus_per_task(const model::Scenario& s, const SlurmOptions& o, Problems& problems) {
    if (o.cpus_per_task) {
        if (*o.cpus_per_task < 1)
            problems.add(bad("--cpus-per-task", std::to_string(*o.cpus_per_task), "every task needs a CPU", "integer >= 1"));
        return {*o.cpus_per_task, "--cpus-per-task"};
    }
    if (o.mode == SlurmMode::simulate) return {1, "the simulator is single-threaded"};
    if (s.topology.gpu.is_cpu) return {1, "a CPU rank runs on one core"};
    if (s.job.offload_optimizer || s.job.offload_params)
        return {4, "GPU rank: host thread, MPI progress, and 2 for the offloaded optimizer step"};
    return {2, "GPU rank: host thread, MPI progress and HDF5"};
}

// Memory per node: the predicted need with headroom, capped at the topology's host memory; a need
// above that is requested anyway, with a warning (the nodes may have more than the topology says).
Derived memory_per_node(const model::Scenario& s, const SlurmOptions& o, const MemNeed& need, Problems& problems,
                        std::vector<std::string>& warnings) {
    const std::int64_t host = s.topology.host.memory_bytes;
    if (!o.mem.empty()) {
        const auto asked = parse_slurm_mem(o.mem);
        if (!asked)
            problems.add(bad("--mem", o.mem, "not a Slurm size", "a size per node such as 64G, 32000M or 0 for all of the node's memory"));
        else if (*asked != 0 && *asked < need.bytes)
            problems.add(bad("--mem", o.mem, "the job needs " + need.factors + " per node",
                             "at least " + mem_request(need.bytes) + ", or 0 for all of the node's memory"));
        return {o.mem, "--mem; the job needs " + need.factors};
    }
    if (o.mode != SlurmMode::simulate && need.bytes > host) {
        const std::string mem = mem_request(need.bytes);
        warnings.push_back("host memory: the job needs " + need.factors + " per node, but topology " + s.topology.name +
                           " has " + gib(host) + " (host.memory_gib); requested " + mem);
        return {mem, need.factors + ", more than the topology's " + gib(host)};
    }
    const auto wanted = static_cast<std::int64_t>(std::ceil(static_cast<double>(need.bytes) * kMemHeadroom));
    const std::int64_t capped = o.mode == SlurmMode::simulate ? wanted : std::min(wanted, host);
    return {mem_request(std::max(capped, need.bytes)),
            need.factors + ", x" + format_fixed(kMemHeadroom, 2) + " headroom" +
                (capped < wanted ? ", capped at the topology's " + gib(host) : std::string())};
}

// The options that shape the launch rather than the allocation.
void check_launch_options(const model::Scenario& s, const SlurmOptions& o, Problems& problems) {
    const bool parallel = o.mode != SlurmMode::simulate;
    const bool srun = o.launcher.value_or(SlurmLauncher::srun) == SlurmLauncher::srun;
    const std::pair<const char*, const std::string*> binds[] = {{"--gpu-bind", &o.gpu_bind}, {"--cpu-bind", &o.cpu_bind}};
    for (const auto& [option, value] : binds) {
        if (value->empty()) continue;
        if (!std::regex_match(*value, std::regex("[A-Za-z0-9_:,.=+-]+")))
            problems.add(bad(option, *value, "not an srun binding", std::string("srun's spelling, e.g. ") +
                                                                    (option[2] == 'g' ? "closest, none, single:1" : "cores, none, rank")));
        else if (!parallel || !srun)
            problems.add(bad(option, *value, std::string("srun binds the ranks it starts; this script ") +
                                                 (!parallel ? "runs one process" : "starts them with mpirun"),
                             std::string("--launcher srun, or mpirun's own binding in SHARDSIM_MPIRUN_ARGS")));
    }
    if (o.gpu_bind.size() && s.topology.gpu.is_cpu)
        problems.add(bad("--gpu-bind", o.gpu_bind, "topology " + s.topology.name + " is a CPU host: no GPU to bind", "leave it out"));
    if (!o.nccl_debug.empty()) {
        static const std::vector<std::string> levels = {"VERSION", "WARN", "INFO", "TRACE"};
        if (std::find(levels.begin(), levels.end(), o.nccl_debug) == levels.end())
            problems.add(bad("--nccl-debug", o.nccl_debug, "not an NCCL_DEBUG level", join(levels, ", ")));
        else if (s.topology.gpu.is_cpu || !parallel)
            problems.add(bad("--nccl-debug", o.nccl_debug,
                             s.topology.gpu.is_cpu ? "topology " + s.topology.name + " is a CPU host: its ranks use MPI, not NCCL"
                                                   : "--mode simulate uses no NCCL",
                             "leave it out"));
    }
    if (o.requeue && o.mode != SlurmMode::run)
        problems.add(bad("--requeue", slurm_mode_name(o.mode),
                         "only shardsim run stops at a step boundary and keeps what it measured when signalled",
                         "--mode run"));
    if (o.signal_grace_s < 1 || o.signal_grace_s > 65535)
        problems.add(bad("--signal-grace", std::to_string(o.signal_grace_s), "Slurm's --signal takes 1 to 65535 seconds",
                         "seconds from 1 to 65535"));
}

void check_time_and_names(const SlurmOptions& o, const std::string& time, Problems& problems) {
    if (!valid_slurm_time(time))
        problems.add(bad("--time", o.time, "not a Slurm time limit",
                         "minutes, minutes:seconds, hours:minutes:seconds, days-hours, days-hours:minutes, days-hours:minutes:seconds"));
    check_name("--partition", o.partition, "[A-Za-z0-9_.,-]+", "letters, digits, _ . - and , between partitions", problems);
    check_name("--account", o.account, "[A-Za-z0-9_.-]+", "letters, digits, _ . -", problems);
}

}  // namespace

SlurmResources derive_slurm_resources(const model::Scenario& s, const SlurmOptions& o) {
    Problems problems;
    const auto& t = s.topology;
    const bool simulate_only = o.mode == SlurmMode::simulate;
    const ResourcePrediction p = predict_resources(s);
    const Shape shape = simulate_only ? simulate_shape(o, t.name, problems) : parallel_shape(s, o, problems);
    SlurmResources r;
    r.launcher = o.launcher.value_or(SlurmLauncher::srun);
    r.nodes = shape.nodes;
    r.tasks_per_node = shape.tasks_per_node;
    r.gpus_per_node = shape.gpus_per_node;
    const Cpus cpus = cpus_per_task(s, o, problems);
    r.cpus_per_task = cpus.count;
    const Derived mem = memory_per_node(s, o, memory_need(s, shape, p, simulate_only), problems, r.warnings);
    r.mem = mem.value;
    r.time = o.time.empty() ? std::string(simulate_only ? kDefaultSimulateTime : kDefaultTime) : o.time;
    check_time_and_names(o, r.time, problems);
    check_launch_options(s, o, problems);
    problems.throw_if_any();

    r.table.push_back({"nodes", std::to_string(r.nodes), o.nodes ? "--nodes; " + shape.origin : shape.origin});
    r.table.push_back({"tasks per node", std::to_string(r.tasks_per_node),
                       simulate_only ? "one process" : t.gpu.is_cpu ? "one rank per core" : "one rank per GPU"});
    r.table.push_back({"GPUs per node", std::to_string(r.gpus_per_node),
                       o.gpus_per_node ? "--gpus-per-node" : simulate_only || t.gpu.is_cpu ? "none needed" : "one per rank"});
    r.table.push_back({"CPUs per task", std::to_string(cpus.count), cpus.origin});
    r.table.push_back({"memory per node", mem.value, mem.origin});
    r.table.push_back({"time", r.time, o.time.empty() ? "default (--time to change)" : "--time"});
    if (!o.partition.empty()) r.table.push_back({"partition", o.partition, "--partition"});
    if (!o.account.empty()) r.table.push_back({"account", o.account, "--account"});

    r.predictions.push_back("peak device memory per rank " + gib(p.device_peak) + " of " + gib(t.gpu.memory_bytes) +
                            (p.device_peak <= t.gpu.memory_bytes ? " (fits)" : " (DOES NOT FIT)"));
    if (!simulate_only && p.device_peak > t.gpu.memory_bytes)
        r.warnings.push_back("device memory: the simulator predicts a peak of " + gib(p.device_peak) + " per rank on " +
                             gib(t.gpu.memory_bytes) + " " + (t.gpu.is_cpu ? "CPU rank" : "GPU") + "s (gpu.memory_gib)");
    if (p.host_peak > 0) r.predictions.push_back("host memory per rank (offloaded) " + gib(p.host_peak));
    r.predictions.push_back("step time " + format_seconds(p.step_time) + " x " + plural(s.job.steps, "step"));
    return r;
}

namespace {

// Shipped topologies with several nodes: what to suggest when a single-node one is asked for more.
std::vector<std::string> multi_node_topologies() {
    std::vector<std::string> names;
    for (const auto& name : config::embedded_names("topologies")) {
        try {
            if (config::load_topology(name, "", "shipped", {}).nodes > 1) names.push_back(name);
        } catch (const InputError&) {
        }
    }
    return names;
}

bool overridden(const config::Values& v, const std::string& key) { return v.where(key).rfind("--set", 0) == 0; }

}  // namespace

std::vector<std::string> shape_overrides(const model::Scenario& s, const SlurmOptions& o) {
    const auto& t = s.topology;
    if (o.mode == SlurmMode::simulate || (!o.nodes && !o.gpus_per_node)) return {};
    if ((o.nodes && *o.nodes < 1) || (o.gpus_per_node && (t.gpu.is_cpu ? *o.gpus_per_node != 0 : *o.gpus_per_node < 1)))
        return {};  // derive_slurm_resources says why
    Problems ignored;
    const Shape now = parallel_shape(s, SlurmOptions{}, ignored);
    const std::int64_t nodes = o.nodes.value_or(now.nodes);
    // Ranks per node: one per GPU asked for; on a CPU host the topology's "GPUs" are its ranks.
    const std::int64_t per_node = t.gpu.is_cpu ? now.tasks_per_node : o.gpus_per_node.value_or(now.gpus_per_node);
    if (nodes == now.nodes && per_node == now.tasks_per_node) return {};
    std::vector<std::string> sets;
    if (nodes != t.nodes) sets.push_back("topology.cluster.nodes=" + std::to_string(nodes));
    if (per_node != t.gpus_per_node) sets.push_back("topology.cluster.gpus_per_node=" + std::to_string(per_node));
    if (s.job.world_size != 0 && s.job.world_size != nodes * per_node) sets.push_back("parallel.world_size=0");
    if (nodes > 1 && (t.inter.kind == config::LinkKind::none || t.inter.bandwidth_gbps <= 0)) {
        // Everything the next try needs, in one line: the network's kind and bandwidth (whichever
        // the topology lacks), or a topology that has nodes.
        std::vector<std::string> add;
        if (t.inter.kind == config::LinkKind::none) add.push_back("--set topology.inter_node.kind=infiniband|ethernet");
        if (t.inter.bandwidth_gbps <= 0) add.push_back("--set topology.inter_node.bandwidth_gbps=<GB/s per NIC>");
        const auto multi = multi_node_topologies();
        const std::string asked = o.nodes ? "--nodes" : "--gpus-per-node";
        throw InputError(bad(
            asked, std::to_string(o.nodes ? *o.nodes : *o.gpus_per_node),
            std::to_string(nodes) + " nodes of topology " + t.name + ", which has no network between nodes (inter_node.kind = " +
                config::link_kind_name(t.inter.kind) + ", inter_node.bandwidth_gbps = " + format_fixed(t.inter.bandwidth_gbps, 1) +
                "): the simulator and the plan need one",
            "in the same command, " + join(add, " ") + " (and topology.inter_node.nics, NICs per node, default 1)" +
                (multi.empty() ? std::string() : ", or a topology with nodes: --set job.topology=" + join(multi, " | "))));
    }
    return sets;
}

std::string slurm_job_name(const model::Scenario& s) {
    const auto& jv = s.job.values;
    const auto& tv = s.topology.values;
    const bool changed = overridden(jv, "job.model") || overridden(jv, "job.topology") || overridden(jv, "parallel.strategy") ||
                         overridden(tv, "cluster.nodes") || overridden(tv, "cluster.gpus_per_node");
    std::string n = "shardsim-" + s.job.name;
    if (changed && !overridden(jv, "job.name")) {
        // Nodes x GPUs of the device when the cluster's shape was changed (the topology's own name
        // would state the old one), else the topology's name.
        const bool shape = overridden(tv, "cluster.nodes") || overridden(tv, "cluster.gpus_per_node");
        std::string device = s.topology.gpu.name;
        for (char& c : device) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        n = "shardsim-" + s.model.name + "-" + config::strategy_name(s.job.strategy) + "-" +
            (shape ? std::to_string(s.topology.nodes) + "x" + std::to_string(s.topology.gpus_per_node) + "-" + device
                   : s.topology.name);
    }
    for (char& c : n)
        if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_' && c != '.') c = '_';
    return n;
}

namespace {

// The command each mode runs and the files it writes under the job's output folder.
struct ModeOutput {
    const char* option;  // "--out"
    const char* file;    // "run.h5"
};
struct ModeCommand {
    const char* subcommand;
    bool takes_job;  // --job and --set; bench measures the collectives of the allocation alone
    std::vector<ModeOutput> outputs;
    bool parallel;   // launched on every rank (srun/mpirun), or one process in the batch step
};

ModeCommand mode_command(SlurmMode m) {
    switch (m) {
        case SlurmMode::run: return {"run", true, {{"--out", "run.h5"}}, true};
        case SlurmMode::simulate: return {"simulate", true, {{"--out", "simulate.h5"}}, false};
        case SlurmMode::validate:
            return {"validate", true, {{"--out-sim", "simulate.h5"}, {"--out-run", "run.h5"}}, true};
        case SlurmMode::bench: return {"bench", false, {{"--out", "bench.h5"}}, true};
    }
    return {"run", true, {{"--out", "run.h5"}}, true};
}

std::string output_files(const ModeCommand& mc) {
    std::vector<std::string> files;
    for (const auto& f : mc.outputs) files.push_back(std::string("$SHARDSIM_OUT_DIR/$SLURM_JOB_ID/") + f.file);
    return join(files, " and ");
}

// Every line of `text` as a comment; "#SBATCH" can never start a line of it.
std::string commented(std::string text, const std::string& indent = "   ") {
    while (!text.empty() && text.back() == '\n') text.pop_back();
    std::string out;
    for (std::string line : split(text, '\n')) {
        while (!line.empty() && (line.back() == ' ' || line.back() == '\t')) line.pop_back();
        out += line.empty() ? "#\n" : "#" + indent + line + "\n";
    }
    return out;
}

std::string generator_command(const SlurmOptions& o) {
    std::string cmd = "shardsim slurm --job " + shell_quote(o.job);
    for (const auto& s : o.sets) cmd += " --set " + shell_quote(s);
    cmd += " --mode " + slurm_mode_name(o.mode);
    if (o.launcher) cmd += std::string(" --launcher ") + (*o.launcher == SlurmLauncher::srun ? "srun" : "mpirun");
    if (o.nodes) cmd += " --nodes " + std::to_string(*o.nodes);
    if (o.gpus_per_node) cmd += " --gpus-per-node " + std::to_string(*o.gpus_per_node);
    if (o.cpus_per_task) cmd += " --cpus-per-task " + std::to_string(*o.cpus_per_task);
    if (!o.mem.empty()) cmd += " --mem " + o.mem;
    if (!o.time.empty()) cmd += " --time " + o.time;
    if (!o.partition.empty()) cmd += " --partition " + o.partition;
    if (!o.account.empty()) cmd += " --account " + o.account;
    if (o.exclusive) cmd += " --exclusive";
    if (!o.gpu_bind.empty()) cmd += " --gpu-bind " + o.gpu_bind;
    if (!o.cpu_bind.empty()) cmd += " --cpu-bind " + o.cpu_bind;
    if (!o.nccl_debug.empty()) cmd += " --nccl-debug " + o.nccl_debug;
    for (const auto& line : o.setup) cmd += " --setup " + shell_quote(line);
    if (o.requeue) cmd += " --requeue --signal-grace " + std::to_string(o.signal_grace_s);
    return cmd;
}

// The job's --set arguments as the ranks get them: the user's, then those --nodes and
// --gpus-per-node imply.
std::vector<std::string> all_sets(const SlurmOptions& o) {
    std::vector<std::string> sets = o.sets;
    sets.insert(sets.end(), o.shape_sets.begin(), o.shape_sets.end());
    return sets;
}

std::string launcher_name(SlurmLauncher l) { return l == SlurmLauncher::srun ? "srun" : "mpirun"; }

// The #SBATCH block, then comments only: what was derived and why, the prediction, the variables
// the script reads, and the effective configuration. Everything user-given goes through
// `commented`, so no value can start a line of its own (an #SBATCH line above all).
std::string script_header(const model::Scenario& s, const SlurmOptions& o, const SlurmResources& r,
                          const ModeCommand& mc) {
    std::string out = "#!/bin/bash\n";
    out += commented("shardsim " + slurm_mode_name(o.mode) + " of job " + s.job.name + ", written by shardsim " +
                         version() + ". Submit: sbatch THIS_FILE\nMade with: " + generator_command(o), " ");
    out += "#SBATCH --job-name=" + slurm_job_name(s) + "\n";
    out += "#SBATCH --nodes=" + std::to_string(r.nodes) + "\n";
    out += "#SBATCH --ntasks-per-node=" + std::to_string(r.tasks_per_node) + "\n";
    if (r.gpus_per_node > 0) out += "#SBATCH --gpus-per-node=" + std::to_string(r.gpus_per_node) + "\n";
    out += "#SBATCH --cpus-per-task=" + std::to_string(r.cpus_per_task) + "\n";
    out += "#SBATCH --mem=" + r.mem + "\n";
    out += "#SBATCH --time=" + r.time + "\n";
    if (!o.partition.empty()) out += "#SBATCH --partition=" + o.partition + "\n";
    if (!o.account.empty()) out += "#SBATCH --account=" + o.account + "\n";
    if (o.exclusive) out += "#SBATCH --exclusive\n";
    if (o.requeue) {
        out += "#SBATCH --requeue\n";
        out += "#SBATCH --signal=TERM@" + std::to_string(o.signal_grace_s) + "\n";
        out += "#SBATCH --open-mode=append\n";
    }
    out += "#SBATCH --output=%x-%j.out\n";
    out += "#\n# Options given to sbatch override the #SBATCH lines (sbatch --partition=gpu THIS_FILE).\n";

    if (!o.shape_sets.empty())
        out += commented("From --nodes / --gpus-per-node, the job runs with: --set " + join(o.shape_sets, " --set "), " ");
    out += "#\n# Resources, derived from the job and its topology:\n";
    TextTable table({"resource", "value", "from"});
    table.align_left(1);
    table.align_left(2);
    for (const auto& row : r.table) table.add_row({row.name, row.value, row.origin});
    out += commented(table.str());
    out += "#\n# Predicted by shardsim simulate:\n";
    std::string predicted;
    for (const auto& line : r.predictions) predicted += line + "\n";
    for (const auto& line : r.warnings) predicted += "warning: " + line + "\n";
    out += commented(predicted);

    out += "#\n# Environment read when the job runs:\n";
    std::string env = "SHARDSIM           the shardsim binary (default: shardsim on PATH)\n";
    if (mc.takes_job)
        env += "SHARDSIM_JOB       job .ini or shipped job name (default: " + o.job + ";\n"
               "                   a relative path resolves from the submission folder)\n";
    else
        env += "                   (bench measures the collectives of this allocation: the job's shape)\n";
    env +=
        "SHARDSIM_OUT_DIR   output base folder (default: $SLURM_SUBMIT_DIR/shardsim-out); this job\n"
        "                   writes " + output_files(mc) + "\n"
        "SHARDSIM_ARGS      more arguments for shardsim " + std::string(mc.subcommand) +
        (mc.takes_job ? " (e.g. \"--set job.steps=3\")\n" : " (e.g. \"--op all_gather --max-bytes 1G\")\n") +
        "SHARDSIM_SETUP     a file to source first (site set-up: module load, conda or venv activation),\n"
        "                   after the script's own set-up lines; it may set the variables above\n";
    if (r.gpus_per_node > 0)
        env += "NCCL_DEBUG         passed to the ranks (" +
               (o.nccl_debug.empty() ? std::string("unset by default; e.g. INFO") : "default here: " + o.nccl_debug) + ")\n";
    if (o.requeue)
        env += "SHARDSIM_MAX_RESTARTS  times this script requeues the job itself (default " + std::to_string(kDefaultMaxRestarts) +
               ")\nSHARDSIM_CHECKPOINT_DIR    where the checkpoints go (default: $OUT_DIR/checkpoints, kept across restarts)\n"
               "SHARDSIM_CHECKPOINT_EVERY  steps between checkpoints (default 0: when stopped and at the end)\n";
    if (mc.parallel)
        env += "SHARDSIM_LAUNCHER  srun (PMIx) or mpirun (Open MPI's, inside this allocation); default: " +
               launcher_name(r.launcher) + "\n"
               "SHARDSIM_SRUN_ARGS, SHARDSIM_MPIRUN_ARGS  more launcher arguments, after the script's own\n"
               "                   (e.g. SHARDSIM_SRUN_ARGS=--mpi=pmi2 for an MPI built with Slurm's PMI-2)\n";
    out += commented(env);

    out += "#\n" + commented("Effective job configuration (" + s.job.source.path + "):", " ");
    out += commented(s.job.effective_ini());
    out += "#\n" + commented("Effective topology configuration (" + s.topology.source.path + "):", " ");
    out += commented(s.topology.effective_ini());
    return out;
}

// The site set-up first (it may put shardsim on PATH or set the variables below).
std::string setup_section(const SlurmOptions& o) {
    std::string out =
        "\n# Site set-up: the lines given to shardsim slurm --setup, then the file $SHARDSIM_SETUP names.\n"
        "# nounset is off while they run (module and conda scripts read unset variables); a failing\n"
        "# line ends the job here.\n"
        "set +u\n";
    for (const auto& line : o.setup) out += line + "\n";
    out += "if [ -n \"${SHARDSIM_SETUP:-}\" ]; then\n"
           "    source \"$SHARDSIM_SETUP\"\n"
           "fi\n"
           "set -u\n";
    return out;
}

// Variables with their defaults and the output folder. Arrays are expanded as ${A[@]+"${A[@]}"}:
// bash before 4.4 (RHEL 7's 4.2) calls an empty "${A[@]}" unbound under set -u.
std::string variables_section(const SlurmOptions& o, const SlurmResources& r, const ModeCommand& mc) {
    std::string out = "\nSHARDSIM=${SHARDSIM:-shardsim}\n";
    if (mc.takes_job) out += "SHARDSIM_JOB=${SHARDSIM_JOB:-" + shell_quote(o.job) + "}\n";
    out += "OUT_DIR=${SHARDSIM_OUT_DIR:-${SLURM_SUBMIT_DIR:-$PWD}/shardsim-out}/${SLURM_JOB_ID:-local}\n";
    if (o.requeue)
        out += "# Checkpoints outlive the restarts: each attempt resumes from the newest (run --resume), writes\n"
               "# one when it is stopped, when it ends, and every SHARDSIM_CHECKPOINT_EVERY steps (0: only then).\n"
               "CKPT_DIR=${SHARDSIM_CHECKPOINT_DIR:-$OUT_DIR/checkpoints}\n"
               "RESUME_ARGS=()\n"
               "if [ -f \"$CKPT_DIR/latest\" ]; then RESUME_ARGS=(--resume \"$CKPT_DIR\"); fi\n"
               "# A requeued job keeps its id: each restart writes beside the earlier attempts' files.\n"
               "if [ \"${SLURM_RESTART_COUNT:-0}\" != 0 ]; then OUT_DIR=$OUT_DIR/restart-$SLURM_RESTART_COUNT; fi\n";
    out += "read -r -a EXTRA_ARGS <<<\"${SHARDSIM_ARGS:-}\"\n";
    if (mc.parallel) {
        out += "SHARDSIM_LAUNCHER=${SHARDSIM_LAUNCHER:-" + launcher_name(r.launcher) + "}\n";
        out += "read -r -a SRUN_ARGS <<<\"${SHARDSIM_SRUN_ARGS:-}\"\n";
        out += "read -r -a MPIRUN_ARGS <<<\"${SHARDSIM_MPIRUN_ARGS:-}\"\n";
    }
    out += "\nif ! command -v \"$SHARDSIM\" >/dev/null; then\n"
           "    echo \"shardsim: binary '$SHARDSIM' not found: put it on PATH (--setup, SHARDSIM_SETUP) or set SHARDSIM=/path/to/shardsim\" >&2\n"
           "    exit 2\n"
           "fi\n"
           "mkdir -p \"$OUT_DIR\"\n";
    if (mc.parallel && r.gpus_per_node == 0)
        out += "\n# Open MPI allocates reduction buffers with malloc on every call; with glibc's default mmap\n"
               "# threshold each call page-faults them again (reduce-scatter 20-100x slower). Keep them on the heap.\n"
               "# (CPU ranks only: on GPUs NCCL reduces, in device memory.)\n"
               "export MALLOC_MMAP_THRESHOLD_=${MALLOC_MMAP_THRESHOLD_:-1073741824}\n"
               "export MALLOC_TRIM_THRESHOLD_=${MALLOC_TRIM_THRESHOLD_:-4294967295}\n";
    if (!o.nccl_debug.empty()) out += "export NCCL_DEBUG=${NCCL_DEBUG:-" + o.nccl_debug + "}\n";
    out += "export OMP_NUM_THREADS=${OMP_NUM_THREADS:-${SLURM_CPUS_PER_TASK:-1}}\n";
    return out;
}

// With --requeue: who stopped the run decides whether this script requeues the job.
std::string requeue_trap(const SlurmOptions& o) {
    if (!o.requeue) return "";
    return "\n# Requeue. Slurm sends SIGTERM to the ranks " + std::to_string(o.signal_grace_s) +
           " s before the time limit (#SBATCH --signal); they finish\n"
           "# their step, close the timeline file (complete = 0) and exit 143, and this script, which that\n"
           "# signal does not reach and whose job is still RUNNING, requeues the job. When Slurm ends the\n"
           "# job itself (preemption, scontrol requeue, scancel) the job is no longer RUNNING by then and\n"
           "# this script is signalled too: it leaves the job to Slurm, which requeues a --requeue job after\n"
           "# preemption or scontrol requeue and not after scancel.\n"
           "signalled=0\n"
           "trap 'signalled=1' TERM\n";
}

std::string requeue_after(const SlurmOptions& o) {
    if (!o.requeue) return "";
    return "if [ \"$status\" = 143 ] && [ \"$signalled\" = 0 ] && [ -n \"${SLURM_JOB_ID:-}\" ]; then\n"
           "    restarts=${SLURM_RESTART_COUNT:-0}\n"
           "    state=$(squeue -h -j \"$SLURM_JOB_ID\" -o %T 2>/dev/null || true)\n"
           "    if [ \"$state\" != RUNNING ]; then\n"
           "        echo \"shardsim: the run stopped; job $SLURM_JOB_ID is ${state:-gone}: Slurm decides whether it runs again\"\n"
           "    elif [ \"$restarts\" -lt \"${SHARDSIM_MAX_RESTARTS:-" + std::to_string(kDefaultMaxRestarts) + "}\" ]; then\n"
           "        echo \"shardsim: the run stopped before the time limit; requeueing job $SLURM_JOB_ID (restart $((restarts + 1)))\"\n"
           "        scontrol requeue \"$SLURM_JOB_ID\" || echo \"shardsim: scontrol requeue $SLURM_JOB_ID failed\" >&2\n"
           "    else\n"
           "        echo \"shardsim: the run stopped before the time limit; not requeued: $restarts restart(s) already (SHARDSIM_MAX_RESTARTS)\"\n"
           "    fi\n"
           "fi\n";
}

std::string launch_section(const SlurmOptions& o, const SlurmResources& r, const ModeCommand& mc) {
    std::string out = "\nCMD=(\"$SHARDSIM\" " + std::string(mc.subcommand);
    if (mc.takes_job) {
        out += " --job \"$SHARDSIM_JOB\"";
        for (const auto& set : all_sets(o)) out += " --set " + shell_quote(set);
    }
    for (const auto& f : mc.outputs) out += " " + std::string(f.option) + " \"$OUT_DIR/" + f.file + "\"";
    if (o.requeue)
        out += " --checkpoint \"$CKPT_DIR\" --checkpoint-every \"${SHARDSIM_CHECKPOINT_EVERY:-0}\" ${RESUME_ARGS[@]+\"${RESUME_ARGS[@]}\"}";
    out += " ${EXTRA_ARGS[@]+\"${EXTRA_ARGS[@]}\"})\n";
    out += "echo \"shardsim: Slurm job ${SLURM_JOB_ID:-none} on ${SLURM_JOB_NODELIST:-$(hostname)}: ${CMD[*]}\"\n";
    out += "status=0\n";
    if (!mc.parallel) return out + "\"${CMD[@]}\" || status=$?\n";
    const std::string t = std::to_string(r.tasks_per_node);
    std::string binds;
    if (!o.gpu_bind.empty()) binds += " --gpu-bind=" + o.gpu_bind;
    if (!o.cpu_bind.empty()) binds += " --cpu-bind=" + o.cpu_bind;
    out += "case \"$SHARDSIM_LAUNCHER\" in\n"
           "    srun)\n"
           "        # PMIx: Open MPI builds such as Debian's have no Slurm PMI-1/2. --kill-on-bad-exit ends the\n"
           "        # step as soon as one rank fails, instead of leaving the others in a collective until the\n"
           "        # time limit. Each rank binds GPU SLURM_LOCALID of the CUDA_VISIBLE_DEVICES Slurm sets.\n"
           "        srun --mpi=pmix --kill-on-bad-exit=1 --nodes=" + std::to_string(r.nodes) + " --ntasks-per-node=" + t +
           " --cpus-per-task=" + std::to_string(r.cpus_per_task) + binds + " \\\n"
           "            ${SRUN_ARGS[@]+\"${SRUN_ARGS[@]}\"} \"${CMD[@]}\" || status=$?\n"
           "        ;;\n"
           "    mpirun)\n"
           "        # Open MPI's mpirun reads the allocation from Slurm (and starts its daemons on the other\n"
           "        # nodes with srun); a rank that fails ends the job. Ranks bind GPU\n"
           "        # OMPI_COMM_WORLD_LOCAL_RANK: SLURM_LOCALID is the daemon's there, 0 on every rank.\n"
           "        mpirun -np " + std::to_string(r.nodes * r.tasks_per_node) + " --map-by ppr:" + t +
           ":node --bind-to none \\\n"
           "            ${MPIRUN_ARGS[@]+\"${MPIRUN_ARGS[@]}\"} \"${CMD[@]}\" || status=$?\n"
           "        ;;\n"
           "    *)\n"
           "        echo \"SHARDSIM_LAUNCHER: bad value '$SHARDSIM_LAUNCHER' (allowed: srun, mpirun)\" >&2\n"
           "        exit 2\n"
           "        ;;\n"
           "esac\n";
    return out;
}

// The commands: the site set-up, the variables and the output folder, then the mode's command,
// launched on every rank (srun or mpirun) or run once in the batch step. Bash 4.2 (RHEL 7) runs it.
std::string script_body(const SlurmOptions& o, const SlurmResources& r, const ModeCommand& mc) {
    std::string out = "\nset -euo pipefail\n";
    out += setup_section(o);
    out += variables_section(o, r, mc);
    out += requeue_trap(o);
    out += launch_section(o, r, mc);
    out += "echo \"shardsim: exit status $status; output in $OUT_DIR\"\n";
    out += requeue_after(o);
    out += "exit \"$status\"\n";
    return out;
}

}  // namespace

std::string slurm_script(const model::Scenario& s, const SlurmOptions& o) {
    return slurm_script(s, o, derive_slurm_resources(s, o));
}

std::string slurm_script(const model::Scenario& s, const SlurmOptions& o, const SlurmResources& r) {
    const ModeCommand mc = mode_command(o.mode);
    return script_header(s, o, r, mc) + script_body(o, r, mc);
}

}  // namespace shardsim::launch
