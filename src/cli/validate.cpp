// shardsim validate: predicted against measured, for the same plan.
//   mpirun -np N shardsim validate --job JOB     simulate and run the plan, then compare
//   shardsim validate SIM.h5 RUN.h5              compare two files
#include <iostream>

#include "shardsim/cli/options.hpp"
#include "shardsim/cli/run_setup.hpp"
#include "shardsim/comm/mpi.hpp"
#include "shardsim/exec/gather.hpp"
#include "shardsim/io/hdf5.hpp"
#include "shardsim/report/report.hpp"
#include "shardsim/report/validate.hpp"

namespace shardsim::cli {

namespace {

struct ValidateOptions {
    std::vector<std::string> files;
    interop::Request req;  // --job, --set and the imported configs
    std::string backend = "auto";
    std::int64_t steps = 2;
    bool json = false, force = false;
    std::string out_sim, out_run;
    bool has_out_sim = false, has_out_run = false;
    bool allow_incomplete = false;
    report::Thresholds th;
    double floor_mib = 0.0625;
};

int report_result(const report::Validation& v, const ValidateOptions& o) {
    if (o.json)
        std::cout << report::validation_json(v, o.th).dump() << "\n";
    else
        std::cout << report::validation_text(v, o.th) << (v.passed ? "validate: PASS\n" : "validate: FAIL\n");
    return v.passed ? 0 : kExitCheckFailed;
}

int compare_after_run(RunContext& ctx, const ValidateOptions& o, int rank);

int run_and_compare(const ValidateOptions& o) {
    return run_mpi_command("shardsim validate", [&](int rank, int size) {
        std::vector<std::pair<std::string, std::string>> outputs;
        if (o.has_out_sim) outputs.emplace_back("--out-sim", o.out_sim);
        if (o.has_out_run) outputs.emplace_back("--out-run", o.out_run);
        check_output_paths(outputs, rank, size);
        RunContext ctx = prepare_run(o.req, parse_backend_option(o.backend), 1, o.force, rank, size);
        try {
            return compare_after_run(ctx, o, rank);
        } catch (const std::exception& e) {
            // Abort while the executor's threads still exist (see run.cpp).
            abort_run(ctx, rank, "shardsim validate", e);
        }
    });
}

int compare_after_run(RunContext& ctx, const ValidateOptions& o, int rank) {
    if (rank == 0 && !o.json) std::cout << ctx.startup_table << std::flush;
    for (int s = 0; s < o.steps; ++s) ctx.executor->run_step(s);
    const timeline::RunTimeline measured = collect_measured(ctx, o.steps, o.out_run);
    int code = 0;
    if (rank == 0) {
        if (!o.out_sim.empty()) io::write_run_file(o.out_sim, ctx.prediction);
        code = report_result(report::validate_runs(ctx.prediction, measured, o.th), o);
        if (!o.json && !o.out_sim.empty()) std::cout << "prediction written to " << o.out_sim << "\n";
        if (!o.json && !o.out_run.empty()) std::cout << "measurement written to " << o.out_run << "\n";
    }
    SHARDSIM_MPI_CHECK(MPI_Bcast(&code, 1, MPI_INT, 0, MPI_COMM_WORLD));
    return code;
}

}  // namespace

int cmd_validate(const Args& args) {
    ValidateOptions o;
    po::options_description desc("options");
    desc.add_options()
        ("job", po::value<std::string>(&o.req.job), "simulate and run this job (under mpirun), then compare")
        ("set", po::value<std::vector<std::string>>(&o.req.sets)->composing(), "override a key (as simulate); repeatable")
        ("backend", po::value<std::string>(&o.backend)->default_value("auto"), kBackendHelp)
        ("steps", po::value<std::int64_t>(&o.steps)->default_value(2), "steps to run; the last one is compared")
        ("force", po::bool_switch(&o.force), "run even when the plan is predicted not to fit")
        ("out-sim", po::value<std::string>(&o.out_sim), "also write the prediction to this HDF5 file")
        ("out-run", po::value<std::string>(&o.out_run), "also write the measurement to this HDF5 file")
        ("memory-tolerance", po::value<double>(&o.th.memory_pct)->default_value(10), "% a category's peak may differ")
        ("memory-floor-mib", po::value<double>(&o.floor_mib)->default_value(0.0625),
         "differences smaller than this (MiB) never fail")
        ("time-tolerance", po::value<double>(&o.th.time_pct)->default_value(100), "% step and comm times may differ (0: off)")
        ("comm-tolerance", po::value<double>(&o.th.comm_pct), "% comm and exposed comm times may differ (default: --time-tolerance; 0: off)")
        ("allow-incomplete", po::bool_switch(&o.allow_incomplete),
         "compare files whose run did not finish (complete = 0): their last recorded step")
        ("json", po::bool_switch(&o.json), "print the comparison as JSON")
        ("files", po::value<std::vector<std::string>>(&o.files), "SIM.h5 RUN.h5");
    add_import_options(desc, o.req);
    po::positional_options_description pos;
    pos.add("files", 2);
    auto vm = parse_options("validate",
                            "mpirun -np N shardsim validate --job JOB [--json] " + std::string(interop::kImportUsage) + "  |  shardsim validate SIM.h5 RUN.h5 [--allow-incomplete] [--json]",
                            desc, args, "", &pos);
    if (!vm) return 0;
    if (o.th.memory_pct < 0) throw InputError("--memory-tolerance: bad value (allowed: number >= 0)");
    if (o.th.time_pct < 0) throw InputError("--time-tolerance: bad value (allowed: number >= 0)");
    if (vm->count("comm-tolerance") && o.th.comm_pct < 0) throw InputError("--comm-tolerance: bad value (allowed: number >= 0)");
    if (o.steps < 1) throw InputError("--steps: bad value '" + std::to_string(o.steps) + "' (allowed: integer >= 1)");
    parse_backend_option(o.backend);  // refused before MPI starts
    o.th.memory_floor_bytes = static_cast<std::int64_t>(o.floor_mib * kMiB);
    o.has_out_sim = vm->count("out-sim") > 0;
    o.has_out_run = vm->count("out-run") > 0;
    const bool planned = !o.req.job.empty() || o.req.imports() || !o.req.model.empty();
    if (planned && !o.files.empty())
        throw InputError("shardsim validate: give either --job (or --deepspeed / --accelerate / --hf-args) or two files, not both");
    if (planned) return run_and_compare(o);
    if (o.files.size() != 2) throw InputError("shardsim validate: expected SIM.h5 RUN.h5 or --job JOB (see shardsim validate --help)");
    const auto a = report::read_timeline_file(o.files[0], o.allow_incomplete);
    const auto b = report::read_timeline_file(o.files[1], o.allow_incomplete);
    // Either order: the simulated file is the prediction.
    const bool a_sim = a.mode == "simulate";
    return report_result(report::validate_runs(a_sim ? a : b, a_sim ? b : a, o.th), o);
}

}  // namespace shardsim::cli
