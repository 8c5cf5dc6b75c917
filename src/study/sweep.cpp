#include "shardsim/study/sweep.hpp"

#include "shardsim/core/error.hpp"
#include "shardsim/core/format.hpp"
#include "shardsim/model/scenario.hpp"
#include "shardsim/plan/schedule.hpp"
#include "shardsim/report/summary.hpp"
#include "shardsim/sim/predict.hpp"

namespace shardsim::study {

namespace {

// The problems of one value, said as --sweep (the value travels as a --set).
InputError as_sweep_error(const InputError& e, const std::string& key, const std::string& value) {
    const std::string set = "--set " + key + "=" + value;
    std::vector<std::string> lines;
    for (std::string p : e.problems()) {
        if (const auto at = p.find(set); at != std::string::npos) p.replace(at, set.size(), "--sweep " + key + "=" + value);
        lines.push_back(p);
    }
    return InputError(lines);
}

io::Json row_of(const std::string& value, const io::Json& s) {
    std::int64_t peak = 0;
    for (const auto& r : s.at("ranks").as_array()) peak = std::max(peak, r.at("peak_bytes").as_int());
    io::Json row = io::Json::object();
    row["value"] = value;
    row["world_size"] = s.at("world_size");
    row["peak_bytes"] = peak;
    row["gpu_memory_bytes"] = s.at("gpu_memory_bytes");
    row["fits"] = s.at("fits");
    row["step_time_s"] = s.at("step_time_s");
    row["comm_time_s"] = s.at("comm_time_s");
    row["exposed_comm_s"] = s.at("exposed_comm_s");
    row["exposed_comm_fraction"] = s.at("exposed_comm_fraction");
    if (s.contains("worst_exposed_op")) row["worst_exposed_op"] = s.at("worst_exposed_op");
    return row;
}

}  // namespace

Sweep parse_sweep(const std::string& arg) {
    const auto eq = arg.find('=');
    const std::string allowed = " (expected: key=v1,v2,... with a job key section.key or topology.section.key, "
                                "e.g. batch.micro_batch=1,2,4)";
    if (eq == std::string::npos || eq == 0) throw InputError("--sweep: bad value '" + arg + "'" + allowed);
    Sweep s;
    s.key = trim(arg.substr(0, eq));
    if (s.key.find('.') == std::string::npos) throw InputError("--sweep: bad key '" + s.key + "'" + allowed);
    for (const auto& v : split(arg.substr(eq + 1), ',')) {
        if (trim(v).empty()) throw InputError("--sweep: bad value '" + arg + "': empty value in the list" + allowed);
        s.values.push_back(trim(v));
    }
    if (s.values.empty()) throw InputError("--sweep: bad value '" + arg + "': no values" + allowed);
    return s;
}

SweepReport run_sweep(const std::string& job, const std::vector<std::string>& sets, const Sweep& sweep) {
    SweepReport out;
    io::Json rows = io::Json::array();
    std::string job_name;
    TextTable t({sweep.key, "ranks", "peak/rank", "fits", "step", "comm", "exposed comm", "share", "most exposed op"});
    t.add_units({"", "", "GiB", "", "", "", "", "of step", "(its exposed time)"});
    t.align_left(8);
    for (const auto& value : sweep.values) {
        std::vector<std::string> s = sets;
        s.push_back(sweep.key + "=" + value);
        timeline::RunTimeline run;
        try {
            run = sim::predict(model::load_scenario(job, s)).run;
        } catch (const InputError& e) {
            throw as_sweep_error(e, sweep.key, value);
        }
        job_name = run.job_name;
        const io::Json row = row_of(value, report::summary_json(run));
        std::string worst = "-";
        if (row.contains("worst_exposed_op"))
            worst = row.at("worst_exposed_op").at("op").as_string() + " (" +
                    format_seconds(row.at("worst_exposed_op").at("exposed_s").as_number()) + ")";
        t.add_row({value, std::to_string(row.at("world_size").as_int()),
                   format_gib(static_cast<double>(row.at("peak_bytes").as_int()), 2), row.at("fits").as_bool() ? "yes" : "NO",
                   format_seconds(row.at("step_time_s").as_number()), format_seconds(row.at("comm_time_s").as_number()),
                   format_seconds(row.at("exposed_comm_s").as_number()),
                   format_fixed(100 * row.at("exposed_comm_fraction").as_number(), 1) + "%", worst});
        rows.push_back(row);
    }
    out.json = io::Json::object();
    out.json["job"] = job_name;
    out.json["key"] = sweep.key;
    out.json["rows"] = rows;
    out.text = "shardsim simulate: job " + job_name + ", one row per value of " + sweep.key +
               " (exposed comm: collective time not hidden by compute, slowest rank)\n" + t.str();
    return out;
}

}  // namespace shardsim::study
