#include "shardsim/launch/slurm.hpp"

#include <algorithm>
#include <cmath>
#include <regex>

#include "shardsim/core/error.hpp"
#include "shardsim/core/format.hpp"
#include "shardsim/core/version.hpp"
#include "shardsim/plan/plan.hpp"
#include "shardsim/plan/schedule.hpp"
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
    const bool cpu = s.topology.gpu.is_cpu;
    const std::int64_t overhead = cpu ? kCpuRankHostOverhead : kGpuRankHostOverhead;
    const std::int64_t per_rank = p.host_peak + (cpu ? p.device_peak : 0) + overhead;
    n.bytes = shape.tasks_per_node * per_rank;
    n.factors = plural(shape.tasks_per_node, "rank") + " x (" +
                (cpu ? gib(p.device_peak) + " predicted peak (host is the device) + " : std::string()) +
                gib(p.host_peak) + " predicted on the host + " + gib(overhead) + " per process) = " + gib(n.bytes);
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

std::string slurm_job_name(const std::string& job_name) {
    std::string n = "shardsim-" + job_name;
    for (char& c : n)
        if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_' && c != '.') c = '_';
    return n;
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
    return cmd;
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
    out += "#SBATCH --job-name=" + slurm_job_name(s.job.name) + "\n";
    out += "#SBATCH --nodes=" + std::to_string(r.nodes) + "\n";
    out += "#SBATCH --ntasks-per-node=" + std::to_string(r.tasks_per_node) + "\n";
    if (r.gpus_per_node > 0) out += "#SBATCH --gpus-per-node=" + std::to_string(r.gpus_per_node) + "\n";
    out += "#SBATCH --cpus-per-task=" + std::to_string(r.cpus_per_task) + "\n";
    out += "#SBATCH --mem=" + r.mem + "\n";
    out += "#SBATCH --time=" + r.time + "\n";
    if (!o.partition.empty()) out += "#SBATCH --partition=" + o.partition + "\n";
    if (!o.account.empty()) out += "#SBATCH --account=" + o.account + "\n";
    out += "#SBATCH --output=%x-%j.out\n";
    out += "#\n# Options given to sbatch override the #SBATCH lines (sbatch --partition=gpu THIS_FILE).\n";

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
        (mc.takes_job ? " (e.g. \"--set job.steps=3\")\n" : " (e.g. \"--op all_gather --max-bytes 1G\")\n");
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

// The commands: variables with their defaults, the output folder, then the mode's command,
// launched on every rank (srun or mpirun) or run once in the batch step.
std::string script_body(const SlurmOptions& o, const SlurmResources& r, const ModeCommand& mc) {
    std::string out = "\nset -euo pipefail\n\n";
    out += "SHARDSIM=${SHARDSIM:-shardsim}\n";
    if (mc.takes_job) out += "SHARDSIM_JOB=${SHARDSIM_JOB:-" + shell_quote(o.job) + "}\n";
    out += "OUT_DIR=${SHARDSIM_OUT_DIR:-${SLURM_SUBMIT_DIR:-$PWD}/shardsim-out}/${SLURM_JOB_ID:-local}\n";
    out += "read -r -a EXTRA_ARGS <<<\"${SHARDSIM_ARGS:-}\"\n";
    if (mc.parallel) {
        out += "SHARDSIM_LAUNCHER=${SHARDSIM_LAUNCHER:-" + launcher_name(r.launcher) + "}\n";
        out += "read -r -a SRUN_ARGS <<<\"${SHARDSIM_SRUN_ARGS:-}\"\n";
        out += "read -r -a MPIRUN_ARGS <<<\"${SHARDSIM_MPIRUN_ARGS:-}\"\n";
    }
    out += "\nif ! command -v \"$SHARDSIM\" >/dev/null; then\n"
           "    echo \"shardsim: binary '$SHARDSIM' not found: put it on PATH or set SHARDSIM=/path/to/shardsim\" >&2\n"
           "    exit 2\n"
           "fi\n"
           "mkdir -p \"$OUT_DIR\"\n";
    if (mc.parallel)
        out += "\n# Open MPI allocates reduction buffers with malloc on every call; with glibc's default mmap\n"
               "# threshold each call page-faults them again (reduce-scatter 20-100x slower). Keep them on the heap.\n"
               "export MALLOC_MMAP_THRESHOLD_=${MALLOC_MMAP_THRESHOLD_:-1073741824}\n"
               "export MALLOC_TRIM_THRESHOLD_=${MALLOC_TRIM_THRESHOLD_:-4294967295}\n";
    out += "export OMP_NUM_THREADS=${OMP_NUM_THREADS:-${SLURM_CPUS_PER_TASK:-1}}\n\n";

    out += "CMD=(\"$SHARDSIM\" " + std::string(mc.subcommand);
    if (mc.takes_job) {
        out += " --job \"$SHARDSIM_JOB\"";
        for (const auto& set : o.sets) out += " --set " + shell_quote(set);
    }
    for (const auto& f : mc.outputs) out += " " + std::string(f.option) + " \"$OUT_DIR/" + f.file + "\"";
    out += " \"${EXTRA_ARGS[@]}\")\n";
    out += "echo \"shardsim: Slurm job ${SLURM_JOB_ID:-none} on ${SLURM_JOB_NODELIST:-$(hostname)}: ${CMD[*]}\"\n";
    out += "status=0\n";
    if (!mc.parallel) {
        out += "\"${CMD[@]}\" || status=$?\n";
    } else {
        const std::string t = std::to_string(r.tasks_per_node);
        out += "case \"$SHARDSIM_LAUNCHER\" in\n"
               "    srun)\n"
               "        # PMIx: Open MPI builds such as Debian's have no Slurm PMI-1/2. --kill-on-bad-exit ends the\n"
               "        # step as soon as one rank fails, instead of leaving the others in a collective until the\n"
               "        # time limit. Each rank binds GPU SLURM_LOCALID of the CUDA_VISIBLE_DEVICES Slurm sets.\n"
               "        srun --mpi=pmix --kill-on-bad-exit=1 --nodes=" + std::to_string(r.nodes) + " --ntasks-per-node=" + t +
               " --cpus-per-task=" + std::to_string(r.cpus_per_task) + " \\\n"
               "            \"${SRUN_ARGS[@]}\" \"${CMD[@]}\" || status=$?\n"
               "        ;;\n"
               "    mpirun)\n"
               "        # Open MPI's mpirun reads the allocation from Slurm (and starts its daemons on the other\n"
               "        # nodes with srun); a rank that fails ends the job. Ranks bind GPU\n"
               "        # OMPI_COMM_WORLD_LOCAL_RANK: SLURM_LOCALID is the daemon's there, 0 on every rank.\n"
               "        mpirun -np " + std::to_string(r.nodes * r.tasks_per_node) + " --map-by ppr:" + t +
               ":node --bind-to none \\\n"
               "            \"${MPIRUN_ARGS[@]}\" \"${CMD[@]}\" || status=$?\n"
               "        ;;\n"
               "    *)\n"
               "        echo \"SHARDSIM_LAUNCHER: bad value '$SHARDSIM_LAUNCHER' (allowed: srun, mpirun)\" >&2\n"
               "        exit 2\n"
               "        ;;\n"
               "esac\n";
    }
    out += "echo \"shardsim: exit status $status; output in $OUT_DIR\"\n";
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
