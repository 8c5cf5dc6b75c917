#include "shardsim/cli/app.hpp"

#include <hdf5.h>
#include <mpi.h>

#include <iostream>

#include "shardsim/core/error.hpp"
#include "shardsim/core/version.hpp"

namespace shardsim::cli {

const std::vector<Command>& commands() {
    static const std::vector<Command> table = {
        {"models", "list the model catalogue with parameter counts (--json)", cmd_models},
        {"simulate", "predict per-rank memory and step time of a job (instant, any scale)", cmd_simulate},
        {"run", "execute a job across MPI ranks: real sharding, collectives, updates", cmd_run},
        {"validate", "simulate and run the same plan (or compare two files): predicted vs measured", cmd_validate},
        {"report", "summarise a timeline file; --html charts, --chrome-trace for Perfetto", cmd_report},
        {"bench", "nccl-tests-style sweep of collectives, against the raw library", cmd_bench},
        {"calibrate", "fit a topology's link latency and bandwidth to a bench sweep", cmd_calibrate},
        {"slurm", "write an sbatch script for a job (nodes, GPUs, binding from the job and topology)", cmd_slurm},
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
    os << "\n  --version   version and the backends of this build\n";
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 2) {
        usage(std::cerr);
        return kExitBadInput;
    }
    const std::string name = argv[1];
    if (name == "--version" || name == "version") {
        std::cout << "shardsim " << version() << "\n" << backends() << "\n";
        return 0;
    }
    if (name == "--help" || name == "-h" || name == "help") {
        usage(std::cout);
        return 0;
    }
    for (const auto& c : commands()) {
        if (c.name != name) continue;
        const Args args(argv + 2, argv + argc);
        try {
            return c.run(args);
        } catch (const InputError& e) {
            for (const auto& p : e.problems()) std::cerr << p << "\n";
            return kExitBadInput;
        } catch (const std::exception& e) {
            std::cerr << "shardsim " << name << ": error: " << e.what() << "\n";
            return kExitFailure;
        }
    }
    std::cerr << "shardsim: unknown command '" << name << "'\n";
    usage(std::cerr);
    return kExitBadInput;
}

}  // namespace shardsim::cli
