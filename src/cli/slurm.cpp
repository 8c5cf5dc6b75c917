// shardsim slurm: write an sbatch script for a job (report/slurm.hpp derives and checks it).
#include "shardsim/launch/slurm.hpp"

#include <iostream>

#include "shardsim/cli/options.hpp"
#include "shardsim/core/error.hpp"
#include "shardsim/core/format.hpp"

namespace shardsim::cli {

namespace {

template <class T>
std::optional<T> optional_value(const po::variables_map& vm, const char* name) {
    if (!vm.count(name)) return std::nullopt;
    return vm[name].as<T>();
}

std::string text_value(const po::variables_map& vm, const char* name) {
    return vm.count(name) ? vm[name].as<std::string>() : std::string();
}

}  // namespace

int cmd_slurm(const Args& args) {
    po::options_description desc("options");
    desc.add_options()
        ("job", po::value<std::string>()->default_value(model::kDefaultJob),
         "job .ini path, or a shipped job name (as in simulate)")
        ("set", po::value<std::vector<std::string>>()->composing(),
         "override a key: section.key=value (job) or topology.section.key=value; repeatable; "
         "written into the script's command too")
        ("mode", po::value<std::string>()->default_value("run"),
         ("what the job runs: " + join(launch::slurm_mode_names(), " | ") +
          " (simulate: one process, no GPU)").c_str())
        ("nodes", po::value<std::int64_t>(), "nodes (default: the topology's; must agree with it)")
        ("gpus-per-node", po::value<std::int64_t>(),
         "GPUs per node (default: one per rank; 0 on a CPU topology)")
        ("cpus-per-task", po::value<std::int64_t>(),
         "CPUs per rank (default: 1 on a CPU host, 2 per GPU rank, 4 with optimizer offload)")
        ("mem", po::value<std::string>(),
         "memory per node as sbatch spells it, e.g. 64G or 0 for all (default: predicted need x 1.25)")
        ("time", po::value<std::string>(), "time limit, e.g. 00:30:00 or 1-00:00:00 (default: 00:30:00)")
        ("partition", po::value<std::string>(), "Slurm partition")
        ("account", po::value<std::string>(), "Slurm account")
        ("launcher", po::value<std::string>(), "srun (PMIx, default) or mpirun (Open MPI's, inside the allocation)")
        ("exclusive", "whole nodes for the job (#SBATCH --exclusive)")
        ("gpu-bind", po::value<std::string>(), "srun --gpu-bind for the ranks, e.g. closest (default: none given; each rank "
                                               "takes GPU SLURM_LOCALID of those Slurm gives the node)")
        ("cpu-bind", po::value<std::string>(), "srun --cpu-bind for the ranks, e.g. cores")
        ("nccl-debug", po::value<std::string>(), "NCCL_DEBUG for the ranks of a GPU job: VERSION, WARN, INFO or TRACE")
        ("setup", po::value<std::vector<std::string>>()->composing(),
         "a shell line run first in the job, e.g. 'module load cuda/12.4' or 'source ~/venv/bin/activate'; repeatable "
         "(at run time the file $SHARDSIM_SETUP is sourced after them)")
        ("requeue", "--mode run: Slurm signals the ranks --signal-grace seconds before the time limit, the run stops "
                    "after its step and keeps what it measured, and the job is requeued (#SBATCH --requeue)")
        ("signal-grace", po::value<std::int64_t>()->default_value(launch::kDefaultSignalGrace),
         "with --requeue: seconds before the time limit at which Slurm sends SIGTERM (#SBATCH --signal=TERM@S)")
        ("out", po::value<std::string>()->default_value("-"), "write the script to this file (- = stdout)");
    const std::string extra =
        "\nThe script runs $SHARDSIM (default: shardsim on PATH) and writes to\n"
        "$SHARDSIM_OUT_DIR (default: ./shardsim-out)/$SLURM_JOB_ID/; its header lists every variable it reads.\n"
        "--nodes and --gpus-per-node other than the topology's become --set topology.cluster.nodes / gpus_per_node\n"
        "(written into the script; several nodes of a single-node topology also need its network, which the\n"
        "refusal names). Options that do not fit the job (a CPU host asked for GPUs, --gpu-bind under mpirun)\n"
        "are refused with the factors printed (exit 2).\n";
    auto vm = parse_options("slurm",
                            "shardsim slurm [--job JOB] [--set KEY=VALUE]... [--mode run|simulate|validate|bench]\n"
                            "       [--nodes N] [--gpus-per-node G] [--cpus-per-task C] [--mem SIZE] [--time T]\n"
                            "       [--partition P] [--account A] [--launcher srun|mpirun] [--exclusive]\n"
                            "       [--gpu-bind B] [--cpu-bind B] [--nccl-debug LEVEL] [--setup LINE]... [--requeue]\n"
                            "       [--out FILE] > job.sbatch",
                            desc, args, extra);
    if (!vm) return 0;

    launch::SlurmOptions o;
    o.job = (*vm)["job"].as<std::string>();
    if (vm->count("set")) o.sets = (*vm)["set"].as<std::vector<std::string>>();
    const std::string mode = (*vm)["mode"].as<std::string>();
    const auto parsed_mode = launch::parse_slurm_mode(mode);
    if (!parsed_mode)
        throw InputError("--mode: bad value '" + mode + "' (allowed: " + join(launch::slurm_mode_names(), ", ") + ")");
    o.mode = *parsed_mode;
    if (vm->count("launcher")) {
        const std::string l = (*vm)["launcher"].as<std::string>();
        if (l == "srun") o.launcher = launch::SlurmLauncher::srun;
        else if (l == "mpirun") o.launcher = launch::SlurmLauncher::mpirun;
        else throw InputError("--launcher: bad value '" + l + "' (allowed: srun, mpirun)");
    }
    o.nodes = optional_value<std::int64_t>(*vm, "nodes");
    o.gpus_per_node = optional_value<std::int64_t>(*vm, "gpus-per-node");
    o.cpus_per_task = optional_value<std::int64_t>(*vm, "cpus-per-task");
    o.mem = text_value(*vm, "mem");
    o.time = text_value(*vm, "time");
    o.partition = text_value(*vm, "partition");
    o.account = text_value(*vm, "account");
    o.exclusive = vm->count("exclusive") > 0;
    o.gpu_bind = text_value(*vm, "gpu-bind");
    o.cpu_bind = text_value(*vm, "cpu-bind");
    o.nccl_debug = text_value(*vm, "nccl-debug");
    if (vm->count("setup")) o.setup = (*vm)["setup"].as<std::vector<std::string>>();
    o.requeue = vm->count("requeue") > 0;
    o.signal_grace_s = (*vm)["signal-grace"].as<std::int64_t>();

    model::Scenario scenario = model::load_scenario(o.job, o.sets);
    // --nodes 2 --gpus-per-node 8: the job gets that shape, and the script says how.
    o.shape_sets = launch::shape_overrides(scenario, o);
    if (!o.shape_sets.empty()) {
        std::vector<std::string> sets = o.sets;
        sets.insert(sets.end(), o.shape_sets.begin(), o.shape_sets.end());
        scenario = model::load_scenario(o.job, sets);
    }
    const launch::SlurmResources resources = launch::derive_slurm_resources(scenario, o);
    for (const auto& w : resources.warnings) std::cerr << "shardsim slurm: warning: " << w << "\n";
    write_text_file((*vm)["out"].as<std::string>(), launch::slurm_script(scenario, o, resources));
    return 0;
}

}  // namespace shardsim::cli
