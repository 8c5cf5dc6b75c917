#include "shardsim/study/sweep.hpp"

#include <filesystem>
#include <map>
#include <set>

#include "shardsim/core/error.hpp"
#include "shardsim/core/format.hpp"
#include "shardsim/core/memory.hpp"
#include "shardsim/io/hdf5.hpp"
#include "shardsim/model/flops.hpp"
#include "shardsim/model/scenario.hpp"
#include "shardsim/plan/activations.hpp"
#include "shardsim/plan/schedule.hpp"
#include "shardsim/report/summary.hpp"
#include "shardsim/sim/predict.hpp"

namespace shardsim::study {

namespace {

// The problems of one point, said as --sweep (its values travel as --set).
std::string as_sweep_error(const InputError& e, const std::vector<std::pair<std::string, std::string>>& point) {
    std::string p = e.problems().front();
    for (const auto& [key, value] : point) {
        const std::string set = "--set " + key + "=" + value;
        if (const auto at = p.find(set); at != std::string::npos) p.replace(at, set.size(), "--sweep " + key + "=" + value);
    }
    return p;
}

io::Json row_of(const sim::Prediction& p, const io::Json& s) {
    io::Json row = io::Json::object();
    const io::Json* fullest = nullptr;
    for (const auto& r : s.at("ranks").as_array())
        if (!fullest || r.at("peak_bytes").as_int() > fullest->at("peak_bytes").as_int()) fullest = &r;
    (void)p;
    row["world_size"] = s.at("world_size");
    row["peak_bytes"] = fullest ? fullest->at("peak_bytes").as_int() : 0;
    row["peak_by_category"] = fullest ? fullest->at("peak_by_category") : io::Json::object();
    row["gpu_memory_bytes"] = s.at("gpu_memory_bytes");
    row["host_peak_bytes_per_node"] = s.at("host_peak_bytes_per_node");
    row["host_memory_bytes"] = s.at("host_memory_bytes");
    row["fits"] = s.at("fits");
    row["step_time_s"] = s.at("step_time_s");
    row["compute_time_s"] = s.at("compute_time_s");
    row["comm_time_s"] = s.at("comm_time_s");
    row["exposed_comm_s"] = s.at("exposed_comm_s");
    row["exposed_comm_fraction"] = s.at("exposed_comm_fraction");
    row["comm_bytes_per_rank"] = s.contains("comm_bytes_per_rank") ? s.at("comm_bytes_per_rank") : io::Json::object();
    if (s.contains("worst_exposed_op")) row["worst_exposed_op"] = s.at("worst_exposed_op");
    // Throughput, MFU and HFU as the summary computes them (report/summary.cpp).
    for (const char* k : {"tokens_per_s", "mfu", "hfu"}) row[k] = s.contains(k) ? s.at(k) : io::Json(0.0);
    return row;
}

// The grid's points, the first key varying slowest.
std::vector<std::vector<std::pair<std::string, std::string>>> grid(const std::vector<Sweep>& sweeps) {
    std::vector<std::vector<std::pair<std::string, std::string>>> points = {{}};
    for (const auto& s : sweeps) {
        std::vector<std::vector<std::pair<std::string, std::string>>> next;
        for (const auto& p : points)
            for (const auto& v : s.values) {
                auto q = p;
                q.push_back({s.key, v});
                next.push_back(q);
            }
        points = next;
    }
    return points;
}

std::string csv_field(const std::string& v) {
    if (v.find_first_of(",\"\n") == std::string::npos) return v;
    std::string q = "\"";
    for (char c : v) q += c == '"' ? std::string("\"\"") : std::string(1, c);
    return q + "\"";
}

std::string number(const io::Json& j) { return j.is_number() ? format_fixed(j.as_number(), 9) : ""; }

std::string csv_of(const std::vector<Sweep>& sweeps, const io::Json& rows) {
    std::set<std::string> kinds;
    for (const auto& r : rows.as_array())
        if (r.contains("comm_bytes_per_rank"))
            for (const auto& [k, v] : r.at("comm_bytes_per_rank").as_object()) kinds.insert(k);
    std::vector<std::string> head;
    for (const auto& s : sweeps) head.push_back(s.key);
    for (const char* c : {"world_size", "fits", "peak_bytes", "host_peak_bytes_per_node", "step_time_s", "tokens_per_s", "mfu", "hfu",
                          "compute_time_s", "comm_time_s", "exposed_comm_s"})
        head.push_back(c);
    for (auto c : kAllMemCategories) head.push_back("peak_" + std::string(category_name(c)) + "_bytes");
    for (const auto& k : kinds) head.push_back(k + "_bytes");
    head.push_back("error");
    std::string out = join(head, ",") + "\n";
    for (const auto& r : rows.as_array()) {
        std::vector<std::string> f;
        for (const auto& s : sweeps) f.push_back(csv_field(r.at("values").at(s.key).as_string()));
        const bool ok = !r.contains("error");
        f.push_back(ok ? std::to_string(r.at("world_size").as_int()) : "");
        f.push_back(ok ? (r.at("fits").as_bool() ? "true" : "false") : "");
        for (const char* c : {"peak_bytes", "host_peak_bytes_per_node"}) f.push_back(ok ? std::to_string(r.at(c).as_int()) : "");
        for (const char* c : {"step_time_s", "tokens_per_s", "mfu", "hfu", "compute_time_s", "comm_time_s", "exposed_comm_s"})
            f.push_back(ok ? number(r.at(c)) : "");
        for (auto c : kAllMemCategories) {
            const std::string n(category_name(c));
            f.push_back(ok && r.at("peak_by_category").contains(n) ? std::to_string(r.at("peak_by_category").at(n).as_int()) : (ok ? "0" : ""));
        }
        for (const auto& k : kinds) {
            const bool has = ok && r.at("comm_bytes_per_rank").contains(k);
            f.push_back(has ? std::to_string(r.at("comm_bytes_per_rank").at(k).at("size_bytes").as_int()) : (ok ? "0" : ""));
        }
        f.push_back(ok ? "" : csv_field(r.at("error").as_string()));
        out += join(f, ",") + "\n";
    }
    return out;
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

SweepReport run_sweep(const std::string& job, const std::vector<std::string>& sets, const std::vector<Sweep>& sweeps,
                      const SweepOptions& options) {
    std::set<std::string> seen;
    for (const auto& s : sweeps)
        if (!seen.insert(s.key).second) throw InputError("--sweep: key " + s.key + " swept twice (allowed: each key once; list its values in one --sweep)");
    if (!options.out_dir.empty()) {
        std::error_code ec;
        std::filesystem::create_directories(options.out_dir, ec);
        if (ec) throw InputError("--out: bad value '" + options.out_dir + "': cannot create the folder (" + ec.message() + ") (allowed: a writable folder with --sweep)");
    }
    SweepReport out;
    io::Json rows = io::Json::array();
    std::string job_name, first_error;
    std::vector<std::string> head, units, keys;
    for (const auto& s : sweeps) head.push_back(s.key), units.push_back(""), keys.push_back(s.key);
    for (const char* h : {"ranks", "peak/rank", "host/node", "fits", "step", "tokens/s", "MFU", "HFU", "compute", "comm", "exposed comm",
                          "most exposed op"})
        head.push_back(h);
    for (const char* u : {"", "GiB", "GiB", "", "", "", "", "", "", "", "", "(its exposed time)"}) units.push_back(u);
    TextTable t(head);
    t.add_units(units);
    t.align_left(head.size() - 1);
    int n = 0;
    for (const auto& point : grid(sweeps)) {
        ++n;
        std::vector<std::string> s = sets;
        io::Json values = io::Json::object();
        std::vector<std::string> cells, text;
        for (const auto& [k, v] : point) s.push_back(k + "=" + v), values[k] = v, cells.push_back(v), text.push_back(v);
        io::Json row;
        try {
            sim::Prediction p = sim::predict(model::load_scenario(job, s));
            job_name = p.run.job_name;
            row = row_of(p, report::summary_json(p.run));
            if (!options.out_dir.empty()) {
                const std::string path = (std::filesystem::path(options.out_dir) / ("row-" + std::to_string(n) + ".h5")).string();
                p.run.attributes["effective_model"] = p.plan->scenario().model.effective_ini;
                io::write_run_file(path, p.run);
                row["file"] = path;
            }
            ++out.valid;
        } catch (const InputError& e) {
            row = io::Json::object();
            row["error"] = as_sweep_error(e, point);
            if (first_error.empty()) first_error = row.at("error").as_string();
        }
        row["value"] = join(text, ", ");
        row["values"] = values;
        if (row.contains("error")) {
            // The reason goes in the last (left-aligned) column, so that it does not widen the others.
            while (cells.size() + 1 < head.size()) cells.push_back("-");
            cells.push_back("invalid: " + row.at("error").as_string());
            t.add_row(cells);
        } else {
            std::string worst = "-";
            if (row.contains("worst_exposed_op"))
                worst = row.at("worst_exposed_op").at("op").as_string() + " (" +
                        format_seconds(row.at("worst_exposed_op").at("exposed_s").as_number()) + ")";
            for (const auto& c : std::vector<std::string>{
                     std::to_string(row.at("world_size").as_int()), format_gib(static_cast<double>(row.at("peak_bytes").as_int()), 2),
                     format_gib(static_cast<double>(row.at("host_peak_bytes_per_node").as_int()), 2), row.at("fits").as_bool() ? "yes" : "NO",
                     format_seconds(row.at("step_time_s").as_number()), format_fixed(row.at("tokens_per_s").as_number(), 0),
                     format_fixed(100 * row.at("mfu").as_number(), 1) + "%",
                     format_fixed(100 * row.at("hfu").as_number(), 1) + "%", format_seconds(row.at("compute_time_s").as_number()),
                     format_seconds(row.at("comm_time_s").as_number()), format_seconds(row.at("exposed_comm_s").as_number()), worst})
                cells.push_back(c);
            t.add_row(cells);
        }
        rows.push_back(row);
    }
    if (out.valid == 0) throw InputError(first_error);
    out.json = io::Json::object();
    out.json["job"] = job_name;
    out.json["key"] = join(keys, ",");
    io::Json k = io::Json::array();
    for (const auto& key : keys) k.push_back(key);
    out.json["keys"] = k;
    out.json["rows"] = rows;
    out.text = "shardsim simulate: job " + job_name + ", one row per " + (keys.size() > 1 ? "point of " + join(keys, " x ") : "value of " + keys[0]) +
               " (tokens/s: the whole job's; exposed comm: collective time not hidden by compute, slowest rank; invalid: the plan's reason)\n" +
               t.str();
    out.csv = csv_of(sweeps, rows);
    return out;
}

}  // namespace shardsim::study
