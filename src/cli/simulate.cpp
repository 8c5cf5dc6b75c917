// shardsim simulate: predict one optimizer step of a job on every rank.
#include <chrono>
#include <iostream>

#include "shardsim/cli/options.hpp"
#include "shardsim/io/hdf5.hpp"
#include "shardsim/report/header.hpp"
#include "shardsim/config/job.hpp"
#include "shardsim/config/topology.hpp"
#include "shardsim/core/format.hpp"
#include "shardsim/plan/schedule.hpp"
#include "shardsim/report/summary.hpp"
#include "shardsim/study/sweep.hpp"
#include "shardsim/sim/predict.hpp"

namespace shardsim::cli {

int cmd_simulate(const Args& args) {
    po::options_description desc("options");
    desc.add_options()
        ("job", po::value<std::string>()->default_value(model::kDefaultJob),
         "job .ini path, or a shipped job name (default: the FSDP Llama-7B on 6x A100 40G seed scenario)")
        ("set", po::value<std::vector<std::string>>()->composing(),
         "override a key: section.key=value (job) or topology.section.key=value; repeatable")
        ("out", po::value<std::string>(), "write the per-rank timelines to this HDF5 file")
        ("sweep", po::value<std::string>(),
         "simulate once per value of one key, one row each: key=v1,v2,... (a job key or topology.* key, "
         "e.g. topology.cluster.nodes=1,2,4 or parallel.strategy=zero2,zero3)")
        ("json", "print the summary as JSON");
    const std::string extra = "\n" + config::describe(config::job_schema(), "job keys ([section] key in the job file, --set section.key=value):") +
                              "\n" + config::describe(config::topology_schema(), "topology keys (--set topology.section.key=value):");
    auto vm = parse_options("simulate",
                            "shardsim simulate [--job JOB] [--set KEY=VALUE]... [--out FILE.h5 | --sweep KEY=V1,V2,...] [--json]",
                            desc, args, extra);
    if (!vm) return 0;
    const auto t0 = std::chrono::steady_clock::now();
    std::vector<std::string> sets;
    if (vm->count("set")) sets = (*vm)["set"].as<std::vector<std::string>>();
    if (vm->count("sweep")) {
        if (vm->count("out")) throw InputError("--out: not with --sweep (allowed: one of them)");
        const study::Sweep sweep = study::parse_sweep((*vm)["sweep"].as<std::string>());
        const study::SweepReport r = study::run_sweep((*vm)["job"].as<std::string>(), sets, sweep);
        std::cout << (vm->count("json") ? r.json.dump() + "\n" : r.text);
        return 0;
    }
    if (vm->count("out")) io::check_output_path("--out", (*vm)["out"].as<std::string>());
    sim::Prediction pred = sim::predict(model::load_scenario((*vm)["job"].as<std::string>(), sets));
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
        std::cout << j.dump() << "\n";
        return 0;
    }
    std::cout << report::scenario_header(*pred.plan, "shardsim simulate") << "\n" << report::summary_text(run);
    std::cout << "\nsimulated " << pred.schedule.ops.size() << " ops per rank in " << format_seconds(elapsed);
    if (vm->count("out")) std::cout << "; timelines written to " << (*vm)["out"].as<std::string>();
    std::cout << "\n";
    return 0;
}

}  // namespace shardsim::cli
