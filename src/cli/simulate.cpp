// shardsim simulate: predict one optimizer step of a job on every rank.
#include <chrono>
#include <iostream>

#include "shardsim/cli/options.hpp"
#include "shardsim/io/hdf5.hpp"
#include "shardsim/report/header.hpp"
#include "shardsim/config/job.hpp"
#include "shardsim/config/topology.hpp"
#include "shardsim/core/format.hpp"
#include "shardsim/interop/import.hpp"
#include "shardsim/plan/schedule.hpp"
#include "shardsim/report/summary.hpp"
#include "shardsim/study/sweep.hpp"
#include "shardsim/sim/predict.hpp"

namespace shardsim::cli {

int cmd_simulate(const Args& args) {
    po::options_description desc("options");
    interop::Request req;
    desc.add_options()
        ("job", po::value<std::string>(&req.job),
         "job .ini path, or a shipped job name (default: the FSDP Llama-7B on 6x A100 40G seed scenario, or with "
         "--model and --topology a job of the Hugging Face Trainer's defaults)")
        ("set", po::value<std::vector<std::string>>()->composing(),
         "override a key: section.key=value (job) or topology.section.key=value; repeatable")
        ("out", po::value<std::string>(), "write the per-rank timelines to this HDF5 file")
        ("sweep", po::value<std::vector<std::string>>()->composing(),
         "simulate once per value of a key, one row each: key=v1,v2,... (a job key or topology.* key, e.g. "
         "topology.cluster.nodes=1,2,4 or parallel.strategy=zero2,zero3); several --sweep make a grid, and a point the plan "
         "refuses is a row with the reason; --out DIR writes one timeline file per row")
        ("csv", "with --sweep: print the rows as CSV")
        ("json", "print the summary as JSON");
    add_import_options(desc, req);
    const std::string extra = "\n" + config::describe(config::job_schema(), "job keys ([section] key in the job file, --set section.key=value):") +
                              "\n" + config::describe(config::topology_schema(), "topology keys (--set topology.section.key=value):");
    auto vm = parse_options("simulate",
                            "shardsim simulate [--job JOB] [--set KEY=VALUE]... [--out FILE.h5] [--sweep KEY=V1,V2,...]... [--json | --csv] " +
                                std::string(interop::kImportUsage),
                            desc, args, extra);
    if (!vm) return 0;
    const auto t0 = std::chrono::steady_clock::now();
    if (vm->count("set")) req.sets = (*vm)["set"].as<std::vector<std::string>>();
    if (vm->count("sweep")) {
        if (req.imports() || !req.model.empty() || !req.topology.empty())
            throw InputError("--sweep: not with --deepspeed, --accelerate, --hf-args, --model or --topology (allowed: a --job; "
                             "shardsim export writes a job's configs, --set changes one key of an imported config)");
        if (vm->count("json") && vm->count("csv")) throw InputError("--csv: not with --json (allowed: one of them)");
        std::vector<study::Sweep> sweeps;
        for (const auto& a : (*vm)["sweep"].as<std::vector<std::string>>()) sweeps.push_back(study::parse_sweep(a));
        study::SweepOptions o;
        if (vm->count("out")) o.out_dir = (*vm)["out"].as<std::string>();
        const study::SweepReport r = study::run_sweep(req.job.empty() ? model::kDefaultJob : req.job, req.sets, sweeps, o);
        std::cout << (vm->count("json") ? r.json.dump() + "\n" : vm->count("csv") ? r.csv : r.text);
        return 0;
    }
    if (vm->count("csv")) throw InputError("--csv: only with --sweep (allowed: --json for one simulation)");
    if (vm->count("out")) io::check_output_path("--out", (*vm)["out"].as<std::string>());
    interop::Loaded loaded = interop::load(req);
    sim::Prediction pred = sim::predict(std::move(loaded.scenario));
    const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    // The file describes the model in full, so that it still does once moved away from its .ini.
    pred.run.attributes["effective_model"] = pred.plan->scenario().model.effective_ini;
    const timeline::RunTimeline& run = pred.run;
    if (vm->count("out")) io::write_run_file((*vm)["out"].as<std::string>(), run);
    if (vm->count("json")) {
        io::Json j = report::summary_json(run);
        j["simulation_wall_time_s"] = elapsed;
        io::Json resolved = io::Json::array();
        for (const auto& r : pred.plan->engine_settings().resolved) resolved.push_back(r);
        j["engine"] = plan::engine_name(pred.plan->traits().engine);
        j["resolved"] = resolved;
        if (!loaded.report.empty()) {
            io::Json imported = io::Json::object();
            auto list = [](const std::vector<interop::Note>& notes) {
                io::Json a = io::Json::array();
                for (const auto& n : notes) {
                    io::Json o = io::Json::object();
                    o["key"] = n.key;
                    o["text"] = n.text;
                    a.push_back(o);
                }
                return a;
            };
            imported["mapped"] = list(loaded.report.mapped);
            imported["resolved"] = list(loaded.report.resolved);
            imported["ignored"] = list(loaded.report.ignored);
            imported["unmodelled"] = list(loaded.report.unmodelled);
            j["imported"] = imported;
        }
        std::cout << j.dump() << "\n";
        return 0;
    }
    std::cout << loaded.report.text() << report::scenario_header(*pred.plan, "shardsim simulate") << "\n" << report::summary_text(run);
    std::cout << "\nsimulated " << pred.schedule.ops.size() << " ops per rank in " << format_seconds(elapsed);
    if (vm->count("out")) std::cout << "; timelines written to " << (*vm)["out"].as<std::string>();
    std::cout << "\n";
    return 0;
}

}  // namespace shardsim::cli
