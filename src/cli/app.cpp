#include "shardsim/cli/app.hpp"

#include <hdf5.h>
#include <mpi.h>

#include <cstdlib>
#include <iostream>

#include "shardsim/core/error.hpp"
#include "shardsim/core/format.hpp"
#include "shardsim/core/version.hpp"

namespace shardsim::cli {

const std::vector<Command>& commands() {
    static const std::vector<Command> table = {
        {"models", "list the model catalogue with parameter counts (--json)", cmd_models,
         {{"shardsim models", "every model with its parameters, computed tensor by tensor"},
          {"shardsim models --units llama-7b", "its FSDP / ZeRO-3 wrapping units and their sizes"}}},
        {"simulate", "predict per-rank memory and step time of a job (instant, any scale)", cmd_simulate,
         {{"shardsim simulate", "the default job: Llama-7B, FSDP full shard, 6x A100 40G"},
          {"shardsim simulate --job flan-t5-xl-zero3-8x-a100-40g --sweep batch.micro_batch=1,2,4 --out sims/",
           "another shipped job, one row per value of a key, timelines written for report"},
          {"shardsim simulate --deepspeed ds_config.json --model llama-7b --topology 8x-a100-40g --hf-args \"--max_seq_length 512\"",
           "check the DeepSpeed config you are about to launch (or --accelerate config.yaml): every key imported, resolved, "
           "ignored or named as not modelled"}}},
        {"plan", "search GPU type x count x strategy x batch split x memory knobs for the best setup", cmd_plan,
         {{"shardsim plan --model llama-2-70b --gpus a100-80g --seq-len 2048 --global-batch 64",
           "fewest GPUs and fastest setup, with the reason every other count and strategy lost"},
          {"shardsim plan --model llama-7b --seq-len 2048 --global-batch 256 --objective cost-per-token --emit best/",
           "cheapest per token over every GPU type; the winner written as a job, topology and sbatch script"}}},
        {"run", "execute a job across MPI ranks: real sharding, collectives, updates", cmd_run,
         {{"mpirun -np 2 shardsim run --job tiny-gpt2-cpu --verify", "2 CPU ranks, checked against an unsharded reference"},
          {"mpirun -np 2 shardsim run --job mini-llama-fsdp-2cpu --steps 5 --out run.h5",
           "measure 5 steps into a timeline file (written step by step; SIGTERM stops it after a step, exit 143)"},
          {"srun --mpi=pmix shardsim run --job llama-7b-fsdp-6x-a100-40g --out run.h5",
           "inside a Slurm allocation with 6 GPUs (shardsim slurm writes the script)"}}},
        {"validate", "simulate and run the same plan (or compare two files): predicted vs measured", cmd_validate,
         {{"mpirun -np 2 shardsim validate --job mini-llama-fsdp-2cpu", "simulate and run one plan, compare rank by rank"},
          {"shardsim validate sim.h5 run.h5 --json", "compare two files written earlier"}}},
        {"report", "summarise a timeline file; --html charts, --chrome-trace for Perfetto", cmd_report,
         {{"shardsim report run.h5", "peak memory and where it happens, comm, exposed comm, utilisation"},
          {"shardsim report run.h5 --compare sim.h5 --html report.html", "one page of charts, measured beside predicted"},
          {"shardsim report sim.h5 --chrome-trace trace.json", "a trace for https://ui.perfetto.dev"}}},
        {"bench", "nccl-tests-style sweep of collectives, against the raw library", cmd_bench,
         {{"mpirun -np 2 shardsim bench --op all_gather,reduce_scatter --max-bytes 64M", "busbw per size, ours and MPI's"},
          {"mpirun -np 8 shardsim bench --backend nccl --max-bytes 1G --out bench.h5", "a GPU node's NCCL sweep, for calibrate"}}},
        {"export", "write a job as DeepSpeed / accelerate / torchrun configs and launch line (each value says its key)", cmd_export,
         {{"shardsim export --job flan-t5-xl-zero3-offload-8x-a100-40g --to deepspeed --out ds/",
           "ds_config.json and launch.sh; then: shardsim simulate --deepspeed ds/ds_config.json --job ... gives the same plan"},
          {"shardsim export --job llama-7b-fsdp-6x-a100-40g --to accelerate", "accelerate_config.yaml and the launch line, printed"}}},
        {"calibrate", "fit a topology's link latency and bandwidth to a bench sweep", cmd_calibrate,
         {{"shardsim calibrate bench.h5 --topology 8x-a100-40g --out 8x-a100-40g-calibrated.ini",
           "fit the links to the sweep; then simulate --set job.topology=8x-a100-40g-calibrated.ini"},
          {"shardsim calibrate bench.h5 --topology 8x-a100-40g --min-bytes 1M --out -", "only the sizes training moves, to stdout"}}},
        {"slurm", "write an sbatch script for a job (nodes, GPUs, binding from the job and topology)", cmd_slurm,
         {{"shardsim slurm --job llama-7b-fsdp-6x-a100-40g --partition gpu --time 01:00:00 --out job.sbatch",
           "then: sbatch job.sbatch (output in ./shardsim-out/<job id>/)"},
          {"shardsim slurm --job llama-7b-fsdp-6x-a100-40g --set job.topology=4x8-h100-ib --nodes 2 --exclusive --requeue "
           "--setup 'module load cuda/12.4' --out big.sbatch",
           "2 of the topology's nodes, whole; stopped before the time limit and requeued; the site set-up first"},
          {"shardsim slurm --job tiny-llama-cpu --mode validate --launcher mpirun --out v.sbatch",
           "predicted vs measured on a CPU node, ranks started by mpirun"}}},
    };
    return table;
}

namespace {

std::string backends() {
    char mpi[MPI_MAX_LIBRARY_VERSION_STRING] = {};
    int len = 0;
    MPI_Get_library_version(mpi, &len);
    std::string mpi_name(mpi, static_cast<std::size_t>(len));
    if (auto nl = mpi_name.find_first_of(",\n"); nl != std::string::npos) mpi_name = mpi_name.substr(0, nl);
    unsigned maj = 0, min = 0, rel = 0;
    H5get_libversion(&maj, &min, &rel);
#ifdef H5_HAVE_PARALLEL
    const char* parallel = "parallel";
#else
    const char* parallel = "serial";
#endif
    return "MPI: " + mpi_name + "\nHDF5: " + std::to_string(maj) + "." + std::to_string(min) + "." +
           std::to_string(rel) + " (" + parallel + ")\nCUDA/NCCL: " + (SHARDSIM_HAVE_CUDA ? "yes" : "no") +
           "\nBLAS: OpenBLAS (CBLAS)";
}

void usage(std::ostream& os) {
    os << "usage: shardsim <command> [options]   (shardsim <command> --help for its options)\n\ncommands:\n";
    for (const auto& c : commands()) os << "  " << c.name << std::string(12 - c.name.size(), ' ') << c.summary << "\n";
    os << "\n  --version   version and the backends of this build\n"
          "  --debug     (with any command) errors also say where in shardsim they were raised\n";
}

}  // namespace

int main(int argc, char** argv) {
    // HDF5 shuts itself down at exit unless told not to. After reading a corrupted file it
    // cannot, and says so on stderr ("HDF5: infinite loop closing library" and a line of
    // "FL,FL,..."). Every file shardsim opens is closed by its handle before the process ends,
    // so skipping that shutdown loses nothing. (Under MPI, HDF5 shuts down at MPI_Finalize.)
    H5dont_atexit();
    // `--debug` (anywhere) or SHARDSIM_DEBUG=1: errors also say where in shardsim they were raised.
    const char* env_debug = std::getenv("SHARDSIM_DEBUG");
    bool debug = env_debug != nullptr && *env_debug != '\0' && std::string(env_debug) != "0";
    std::vector<std::string> all;
    for (int i = 1; i < argc; ++i) {
        if (std::string(argv[i]) == "--debug")
            debug = true;
        else
            all.emplace_back(argv[i]);
    }
    if (all.empty()) {
        usage(std::cerr);
        return kExitBadInput;
    }
    const std::string name = all.front();
    if (name == "--version" || name == "version") {
        std::cout << "shardsim " << version() << "\n" << backends() << "\n";
        return 0;
    }
    if (name == "--help" || name == "-h" || name == "help") {
        usage(std::cout);
        return 0;
    }
    // Messages may quote input (file contents, arguments): printed with control characters escaped.
    const auto detail = [&](const Error& e) {
        if (debug && !e.debug_detail().empty()) std::cerr << "  (debug: raised at " << printable(e.debug_detail()) << ")\n";
    };
    for (const auto& c : commands()) {
        if (c.name != name) continue;
        const Args args(all.begin() + 1, all.end());
        try {
            return c.run(args);
        } catch (const InputError& e) {
            for (const auto& p : e.problems()) std::cerr << printable(p) << "\n";
            detail(e);
            return kExitBadInput;
        } catch (const Error& e) {
            std::cerr << "shardsim " << name << ": error: " << printable(e.what()) << "\n";
            detail(e);
            return kExitFailure;
        } catch (const std::exception& e) {
            std::cerr << "shardsim " << name << ": error: " << printable(e.what()) << "\n";
            return kExitFailure;
        }
    }
    std::cerr << "shardsim: unknown command '" << printable(name) << "'\n";
    usage(std::cerr);
    return kExitBadInput;
}

}  // namespace shardsim::cli
