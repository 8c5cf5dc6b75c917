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
