// shardsim plan: which GPUs, how many, which strategy ([Note: plan search]). Searches the space,
// prints the winners with the reason every other (GPU, count, strategy) lost, a Pareto table, and
// writes the winner as a runnable job with --emit.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <memory>
#include <cstdio>
#include <filesystem>
#include <iostream>

#include "shardsim/cli/options.hpp"
#include "shardsim/core/error.hpp"
#include "shardsim/core/format.hpp"
#include "shardsim/launch/slurm.hpp"
#include "shardsim/model/scenario.hpp"
#include "shardsim/study/search.hpp"

namespace shardsim::cli {

namespace {

std::vector<std::string> list_option(const po::variables_map& vm, const char* name) {
    std::vector<std::string> out;
    if (!vm.count(name)) return out;
    for (const auto& arg : vm[name].as<std::vector<std::string>>())
        for (const auto& v : split(arg, ','))
            if (!trim(v).empty()) out.push_back(trim(v));
    return out;
}

std::int64_t positive(const po::variables_map& vm, const char* name, const std::string& allowed) {
    if (!vm.count(name)) return 0;
    const std::string v = vm[name].as<std::string>();
    try {
        std::size_t used = 0;
        const double d = std::stod(v, &used);
        if (used == v.size() && d >= 1 && d == std::floor(d) && d < 9.2e18) return static_cast<std::int64_t>(d);
    } catch (const std::exception&) {
    }
    throw InputError(std::string("--") + name + ": bad value '" + v + "' (allowed: " + allowed + ")");
}

study::PlanRequest request_of(const po::variables_map& vm) {
    study::PlanRequest r;
    if (vm.count("model")) r.model = vm["model"].as<std::string>();
    if (vm.count("job")) r.job = vm["job"].as<std::string>();
    r.seq_len = positive(vm, "seq-len", "integer >= 1, tokens per sequence");
    r.decoder_seq_len = positive(vm, "decoder-seq-len", "integer >= 1, decoder tokens per sequence");
    r.global_batch = positive(vm, "global-batch", "integer >= 1, sequences per optimizer step");
    r.tokens_per_step = positive(vm, "tokens-per-step", "integer >= 1, tokens per optimizer step (2e6 is fine)");
    r.gpus = list_option(vm, "gpus");
    r.topologies = list_option(vm, "topology");
    if (vm.count("max-gpus")) r.max_gpus = positive(vm, "max-gpus", "integer >= 1");
    for (const auto& n : list_option(vm, "nodes")) {
        po::variables_map one;
        one.emplace("nodes", po::variable_value(n, false));
        r.nodes.push_back(positive(one, "nodes", "node counts >= 1, comma-separated, e.g. 1,2,4"));
    }
    r.objective = study::parse_objective(vm["objective"].as<std::string>());
    for (const auto& a : list_option(vm, "allow")) r.allow.insert(a);
    if (vm.count("fix")) r.fixes = vm["fix"].as<std::vector<std::string>>();
    r.top = static_cast<int>(positive(vm, "top", "integer >= 1"));
    if (vm.count("threads")) r.threads = static_cast<int>(positive(vm, "threads", "integer >= 1"));
    return r;
}

// A bar with configurations per second and the time left on a terminal; a plain line now and
// then otherwise (a log, a pipe).
study::Progress progress_printer(bool quiet) {
    if (quiet) return nullptr;
    const bool tty = isatty(fileno(stderr)) != 0;
    auto start = std::make_shared<std::chrono::steady_clock::time_point>(std::chrono::steady_clock::now());
    auto last = std::make_shared<double>(-1.0);
    auto stage_name = std::make_shared<std::string>();
    return [=](const std::string& stage, std::int64_t done, std::int64_t total) {
        const auto now = std::chrono::steady_clock::now();
        if (stage != *stage_name) *stage_name = stage, *start = now, *last = -1.0;
        const double t = std::chrono::duration<double>(now - *start).count();
        const bool end = done >= total;
        if (!end && t - *last < (tty ? 0.2 : 2.0)) return;
        *last = t;
        const double rate = t > 0 ? static_cast<double>(done) / t : 0;
        const double eta = rate > 0 ? static_cast<double>(total - done) / rate : 0;
        const double frac = total > 0 ? static_cast<double>(done) / static_cast<double>(total) : 1;
        const std::string nums = format_count(done) + " / " + format_count(total) + " configs, " + format_count(static_cast<std::int64_t>(rate)) +
                                 "/s, ETA " + format_seconds(eta);
        if (tty) {
            const int w = 30, fill = static_cast<int>(frac * w);
            std::cerr << "\r" << stage << " [" << std::string(static_cast<std::size_t>(fill), '#')
                      << std::string(static_cast<std::size_t>(w - fill), ' ') << "] " << nums << "   " << (end ? "\n" : "") << std::flush;
        } else if (!end || t > 2.0) {
            std::cerr << stage << ": " << nums << "\n";
        }
    };
}

std::string gpu_name(const study::Space& s, const study::Setup& x) { return s.node_types[static_cast<std::size_t>(x.node_type)].name; }

std::string money(double usd_per_mtok) { return usd_per_mtok > 0 ? "$" + format_fixed(usd_per_mtok, usd_per_mtok < 10 ? 3 : 1) : "-"; }

// The fitting results no other beats on GPUs, tokens/s and cost at once.
std::vector<std::size_t> pareto(const std::vector<study::Confirmed>& r) {
    std::vector<std::size_t> out;
    auto cost = [](const study::Confirmed& c) { return c.cost_per_mtok > 0 ? c.cost_per_mtok : 1e300; };
    for (std::size_t i = 0; i < r.size(); ++i) {
        if (!r[i].fits) continue;
        bool dominated = false;
        for (std::size_t j = 0; j < r.size() && !dominated; ++j) {
            if (j == i || !r[j].fits) continue;
            const bool no_worse = r[j].setup.gpus <= r[i].setup.gpus && r[j].tokens_per_s >= r[i].tokens_per_s && cost(r[j]) <= cost(r[i]);
            const bool better = r[j].setup.gpus < r[i].setup.gpus || r[j].tokens_per_s > r[i].tokens_per_s || cost(r[j]) < cost(r[i]);
            dominated = no_worse && better;
        }
        if (dominated) continue;
        // One per GPU type and count: the fastest.
        bool dup = false;
        for (auto k : out)
            if (r[k].setup.gpus == r[i].setup.gpus && r[k].setup.node_type == r[i].setup.node_type) dup = true;
        if (!dup) out.push_back(i);
    }
    std::sort(out.begin(), out.end(), [&](auto a, auto b) { return r[a].setup.gpus < r[b].setup.gpus; });
    return out;
}

io::Json result_json(const study::Space& s, const study::Confirmed& c) {
    io::Json j = io::Json::object();
    j["gpu"] = gpu_name(s, c.setup);
    j["gpus"] = c.setup.gpus;
    j["nodes"] = c.setup.nodes(s.node_types);
    j["strategy"] = config::strategy_name(c.setup.strategy);
    j["label"] = study::setup_label(s, c.setup);
    io::Json keys = io::Json::object();
    for (const auto& [k, v] : study::setup_keys(s, c.setup)) keys[k] = v;
    j["keys"] = keys;
    j["fits"] = c.fits;
    j["peak_bytes"] = c.peak_bytes;
    j["host_peak_bytes_per_node"] = c.host_peak_bytes_per_node;
    j["step_time_s"] = c.step_time_s;
    j["compute_time_s"] = c.compute_time_s;
    j["comm_time_s"] = c.comm_time_s;
    j["exposed_comm_s"] = c.exposed_comm_s;
    j["tokens_per_s"] = c.tokens_per_s;
    j["mfu"] = c.mfu;
    if (c.cost_per_mtok > 0) j["cost_per_mtok"] = c.cost_per_mtok;
    if (c.max_micro_batch > 0) j["max_micro_batch"] = c.max_micro_batch;
    if (c.est_step_s > 0) j["estimated_step_time_s"] = c.est_step_s;
    if (c.extrapolated) j["extrapolated"] = true;
    if (!c.peak_by_category.is_null()) j["peak_by_category"] = c.peak_by_category;
    if (!c.comm_bytes.is_null()) j["comm_bytes_per_rank"] = c.comm_bytes;
    if (!c.reason.empty()) j["reason"] = c.reason;
    return j;
}

io::Json plan_json(const study::Space& s, const study::PlanResult& r, const std::vector<std::string>& emitted) {
    io::Json j = io::Json::object();
    io::Json search = io::Json::object();
    search["candidates"] = r.stats.candidates;
    search["invalid"] = r.stats.invalid;
    search["pruned"] = r.stats.pruned;
    search["ranked"] = r.stats.ranked;
    search["simulated"] = r.stats.simulated;
    io::Json wall = io::Json::object();
    wall["prune_rank"] = r.stats.prune_rank_s;
    wall["simulate"] = r.stats.simulate_s;
    wall["total"] = r.stats.total_s;
    search["wall_s"] = wall;
    j["search"] = search;
    j["objective"] = s.request.objective.text;
    j["global_batch"] = s.global_batch;
    j["tokens_per_step"] = study::tokens_per_step(s);
    io::Json results = io::Json::array();
    for (const auto& c : r.results) results.push_back(result_json(s, c));
    j["results"] = results;
    if (r.fewest) j["fewest_gpus"] = static_cast<std::int64_t>(*r.fewest);
    if (r.fastest) j["fastest"] = static_cast<std::int64_t>(*r.fastest);
    io::Json groups = io::Json::array();
    for (const auto& g : r.groups) {
        io::Json o = io::Json::object();
        o["gpu"] = s.node_types[static_cast<std::size_t>(g.node_type)].name;
        o["gpus"] = g.gpus;
        o["strategy"] = config::strategy_name(g.strategy);
        o["candidates"] = g.candidates;
        o["invalid"] = g.invalid;
        o["pruned"] = g.pruned;
        o["ranked"] = g.ranked;
        o["reason"] = g.reason;
        groups.push_back(o);
    }
    j["groups"] = groups;
    if (r.job_setup) {
        j["job_setup"] = result_json(s, *r.job_setup);
        j["job_setup_note"] = r.job_setup_note;
    }
    if (!r.closest_miss.empty()) j["closest_miss"] = r.closest_miss;
    io::Json e = io::Json::array();
    for (const auto& p : emitted) e.push_back(p);
    j["emitted"] = e;
    return j;
}

std::string csv_field(const std::string& v) {
    if (v.find_first_of(",\"\n") == std::string::npos) return v;
    std::string q = "\"";
    for (char c : v) q += c == '"' ? std::string("\"\"") : std::string(1, c);
    return q + "\"";
}

std::string plan_csv(const study::Space& s, const study::PlanResult& r) {
    std::string out = "rank,gpu,gpus,nodes,strategy,setup,fits,peak_bytes,host_peak_bytes_per_node,step_time_s,tokens_per_s,mfu,"
                      "cost_per_mtok,max_micro_batch,reason\n";
    for (std::size_t i = 0; i < r.results.size(); ++i) {
        const auto& c = r.results[i];
        out += std::to_string(i + 1) + "," + csv_field(gpu_name(s, c.setup)) + "," + std::to_string(c.setup.gpus) + "," +
               std::to_string(c.setup.nodes(s.node_types)) + "," + config::strategy_name(c.setup.strategy) + "," +
               csv_field(study::setup_label(s, c.setup)) + "," + (c.fits ? "true" : "false") + "," + std::to_string(c.peak_bytes) + "," +
               std::to_string(c.host_peak_bytes_per_node) + "," + format_fixed(c.step_time_s, 6) + "," + format_fixed(c.tokens_per_s, 1) +
               "," + format_fixed(c.mfu, 4) + "," + format_fixed(c.cost_per_mtok, 4) + "," + std::to_string(c.max_micro_batch) + "," +
               csv_field(c.reason) + "\n";
    }
    return out;
}

std::string plan_text(const study::Space& s, const study::PlanResult& r) {
    std::string out;
    const auto& st = r.stats;
    out += "shardsim plan: " + s.model.name + ", global batch " + std::to_string(s.global_batch) + " sequences (" +
           format_count(study::tokens_per_step(s)) + " tokens per step), objective " + s.request.objective.text + "\n";
    out += "searched " + format_count(st.candidates) + " setups in " + format_seconds(st.prune_rank_s) + ": " + format_count(st.invalid) +
           " invalid, " + format_count(st.pruned) + " pruned by the memory bound, " + format_count(st.ranked) + " ranked; " +
           std::to_string(st.simulated) + " simulated in full in " + format_seconds(st.simulate_s) + " (total " +
           format_seconds(st.total_s) + ")\n\n";
    TextTable t({"#", "GPU", "GPUs", "nodes", "setup", "peak/GPU", "host/node", "step", "tokens/s", "MFU", "$/Mtok", "max mb", "fits"});
    t.add_units({"", "", "", "", "", "GiB", "GiB", "", "", "", "", "", ""});
    t.align_left(1);
    t.align_left(4);
    // Setups that differ only in a knob the simulation does not price (ties) are shown once.
    std::size_t shown = 0, ties = 0;
    for (std::size_t i = 0; i < r.results.size() && shown < static_cast<std::size_t>(s.request.top); ++i) {
        const auto& c = r.results[i];
        if (i > 0) {
            const auto& p = r.results[i - 1];
            if (p.setup.node_type == c.setup.node_type && p.setup.gpus == c.setup.gpus && p.setup.strategy == c.setup.strategy &&
                p.step_time_s == c.step_time_s && p.peak_bytes == c.peak_bytes && p.fits == c.fits) {
                ++ties;
                continue;
            }
        }
        ++shown;
        t.add_row({std::to_string(shown), gpu_name(s, c.setup), std::to_string(c.setup.gpus), std::to_string(c.setup.nodes(s.node_types)),
                   study::setup_label(s, c.setup), format_gib(static_cast<double>(c.peak_bytes), 1),
                   format_gib(static_cast<double>(c.host_peak_bytes_per_node), 1), format_seconds(c.step_time_s),
                   format_fixed(c.tokens_per_s, 0), format_fixed(100 * c.mfu, 1) + "%", money(c.cost_per_mtok),
                   c.max_micro_batch > 0 ? std::to_string(c.max_micro_batch) : "-", std::string(c.fits ? "yes" : "NO") + (c.extrapolated ? " *" : "")});
    }
    out += "best " + std::to_string(shown) + " of " + std::to_string(r.results.size()) + " simulated in full" +
           (ties > 0 ? ", " + std::to_string(ties) + " ties with the row above left out" : std::string()) + " (max mb: the largest micro-batch that fits, by simulation; *: accumulation over 16 micro-batches, "
           "times extended from 8 and 16):\n" + t.str() + "\n";
    auto one = [&](const char* what, std::size_t i) {
        const auto& c = r.results[i];
        out += std::string(what) + gpu_name(s, c.setup) + " x " + std::to_string(c.setup.gpus) + ", " + study::setup_label(s, c.setup) +
               ": " + format_fixed(c.tokens_per_s, 0) + " tokens/s, " + format_seconds(c.step_time_s) + " per step, peak " +
               format_gib(static_cast<double>(c.peak_bytes), 1) + " GiB" +
               (c.cost_per_mtok > 0 ? ", " + money(c.cost_per_mtok) + " per million tokens" : std::string()) + "\n";
    };
    if (r.fewest) one("fewest GPUs: ", *r.fewest);
    if (r.fastest) one("fastest:     ", *r.fastest);
    if (s.request.objective.kind == study::ObjectiveKind::time_to_tokens && !r.results.empty() && r.results.front().fits) {
        const double secs = s.request.objective.tokens / r.results.front().tokens_per_s;
        out += "time to " + format_count(static_cast<std::int64_t>(s.request.objective.tokens)) + " tokens with #1: " +
               format_fixed(secs / 3600, 1) + " h\n";
    }
    if (!r.job_setup_note.empty()) out += r.job_setup_note + "\n";
    const auto front = pareto(r.results);
    if (!front.empty()) {
        TextTable p({"GPU", "GPUs", "tokens/s", "$/Mtok", "setup"});
        p.align_left(4);
        for (auto i : front) {
            const auto& c = r.results[i];
            p.add_row({gpu_name(s, c.setup), std::to_string(c.setup.gpus), format_fixed(c.tokens_per_s, 0), money(c.cost_per_mtok),
                       study::setup_label(s, c.setup)});
        }
        out += "\nPareto front (no other simulated setup has fewer GPUs, more tokens/s and a lower cost at once):\n" + p.str();
    }
    TextTable g({"GPU", "GPUs", "strategy", "setups", "pruned", "why it lost (its best setup)"});
    g.align_left(2);
    g.align_left(5);
    // A GPU count whose strategies all lost for the same reason (a global batch it cannot split) is one row.
    for (std::size_t i = 0; i < r.groups.size();) {
        std::size_t k = i;
        std::int64_t candidates = 0, pruned = 0;
        while (k < r.groups.size() && r.groups[k].node_type == r.groups[i].node_type && r.groups[k].gpus == r.groups[i].gpus &&
               r.groups[k].reason == r.groups[i].reason)
            candidates += r.groups[k].candidates, pruned += r.groups[k].pruned, ++k;
        const auto& o = r.groups[i];
        const bool all = k - i == s.strategies.size() && k - i > 1;
        if (all || k - i == 1) {
            g.add_row({s.node_types[static_cast<std::size_t>(o.node_type)].name, std::to_string(o.gpus),
                       all ? "(every strategy)" : config::strategy_name(o.strategy), format_count(candidates), format_count(pruned), o.reason});
            i = k;
            continue;
        }
        g.add_row({s.node_types[static_cast<std::size_t>(o.node_type)].name, std::to_string(o.gpus), config::strategy_name(o.strategy),
                   format_count(o.candidates), format_count(o.pruned), o.reason});
        ++i;
    }
    out += "\nevery GPU, count and strategy:\n" + g.str();
    for (const auto& n : s.node_types)
        if (!n.note.empty()) out += "note: " + n.name + ": " + n.note + "\n";
    return out;
}

std::string plan_html(const study::Space& s, const study::PlanResult& r) {
    // Tokens/s against GPUs: every simulated setup that fits, the Pareto front joined by a line.
    double max_g = 1, max_t = 1;
    for (const auto& c : r.results)
        if (c.fits) max_g = std::max(max_g, static_cast<double>(c.setup.gpus)), max_t = std::max(max_t, c.tokens_per_s);
    const double W = 720, H = 420, L = 70, B = 50;
    auto x = [&](double g) { return L + (W - L - 20) * g / max_g; };
    auto y = [&](double t) { return H - B - (H - B - 20) * t / max_t; };
    std::string svg = "<svg xmlns='http://www.w3.org/2000/svg' width='" + format_fixed(W, 0) + "' height='" + format_fixed(H, 0) + "'>";
    svg += "<line x1='" + format_fixed(L, 0) + "' y1='" + format_fixed(H - B, 0) + "' x2='" + format_fixed(W - 10, 0) + "' y2='" +
           format_fixed(H - B, 0) + "' stroke='black'/><line x1='" + format_fixed(L, 0) + "' y1='10' x2='" + format_fixed(L, 0) +
           "' y2='" + format_fixed(H - B, 0) + "' stroke='black'/>";
    svg += "<text x='" + format_fixed(W / 2, 0) + "' y='" + format_fixed(H - 10, 0) + "' text-anchor='middle'>GPUs</text>";
    svg += "<text x='15' y='" + format_fixed(H / 2, 0) + "' transform='rotate(-90 15 " + format_fixed(H / 2, 0) +
           ")' text-anchor='middle'>tokens/s</text>";
    for (int k = 0; k <= 4; ++k) {
        svg += "<text x='" + format_fixed(x(max_g * k / 4), 0) + "' y='" + format_fixed(H - B + 18, 0) + "' text-anchor='middle'>" +
               format_fixed(max_g * k / 4, 0) + "</text>";
        svg += "<text x='" + format_fixed(L - 5, 0) + "' y='" + format_fixed(y(max_t * k / 4) + 4, 0) + "' text-anchor='end'>" +
               format_fixed(max_t * k / 4, 0) + "</text>";
    }
    for (const auto& c : r.results)
        if (c.fits)
            svg += "<circle cx='" + format_fixed(x(c.setup.gpus), 1) + "' cy='" + format_fixed(y(c.tokens_per_s), 1) +
                   "' r='4' fill='#9ab'><title>" + gpu_name(s, c.setup) + " x " + std::to_string(c.setup.gpus) + ": " +
                   study::setup_label(s, c.setup) + "</title></circle>";
    const auto front = pareto(r.results);
    std::string pts;
    for (auto i : front) pts += format_fixed(x(r.results[i].setup.gpus), 1) + "," + format_fixed(y(r.results[i].tokens_per_s), 1) + " ";
    svg += "<polyline points='" + pts + "' fill='none' stroke='#c33' stroke-width='2'/>";
    for (auto i : front)
        svg += "<circle cx='" + format_fixed(x(r.results[i].setup.gpus), 1) + "' cy='" + format_fixed(y(r.results[i].tokens_per_s), 1) +
               "' r='5' fill='#c33'/>";
    svg += "</svg>";
    std::string html = "<!doctype html><html><head><meta charset='utf-8'><title>shardsim plan: " + s.model.name +
                       "</title></head><body style='font-family:sans-serif'><h1>shardsim plan: " + s.model.name + "</h1><p>" +
                       "global batch " + std::to_string(s.global_batch) + ", objective " + s.request.objective.text +
                       ". Grey: every simulated setup that fits; red: the Pareto front (GPUs, tokens/s, cost).</p>" + svg +
                       "<pre>" + plan_text(s, r) + "</pre></body></html>\n";
    return html;
}

// The winner as files anyone can run: its job (every key), its topology, an sbatch script, and the
// framework's own files (shardsim export): DeepSpeed's config and launch line for ZeRO, accelerate's
// for FSDP and DDP, each value commented with the job key it came from.
std::vector<std::string> emit(const study::Space& s, const study::Confirmed& c, const std::string& dir) {
    namespace fs = std::filesystem;
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec) throw InputError("--emit: bad value '" + dir + "': cannot create the folder: " + ec.message() + " (allowed: a writable folder)");
    const model::Scenario sc = model::load_scenario_text(s.base_path, s.base_text, s.base_dir, study::setup_sets(s, c.setup));
    std::string job = sc.job.effective_ini();
    const auto at = job.find("\ntopology = ");
    if (at != std::string::npos) job.replace(at + 1, job.find('\n', at + 1) - at - 1, "topology = topology.ini");
    const std::string head = "# Written by shardsim plan: " + gpu_name(s, c.setup) + " x " + std::to_string(c.setup.gpus) + ", " +
                             study::setup_label(s, c.setup) + "\n# Simulated: " + format_fixed(c.tokens_per_s, 0) +
                             " tokens/s, step " + format_fixed(c.step_time_s, 4) + " s, peak " +
                             format_gib(static_cast<double>(c.peak_bytes), 2) + " GiB per GPU.\n";
    const std::string job_path = (fs::path(dir) / "job.ini").string(), topo_path = (fs::path(dir) / "topology.ini").string();
    write_text_file(topo_path, "# Written by shardsim plan from " + sc.topology.name + "\n" + sc.topology.effective_ini());
    write_text_file(job_path, head + job);
    launch::SlurmOptions o;
    o.job = job_path;
    const model::Scenario emitted = model::load_scenario(job_path, {});
    const std::string sbatch = (fs::path(dir) / "job.sbatch").string();
    write_text_file(sbatch, launch::slurm_script(emitted, o));
    std::vector<std::string> paths = {job_path, topo_path, sbatch};
    const bool zero = emitted.job.strategy == config::Strategy::zero1 || emitted.job.strategy == config::Strategy::zero2 ||
                      emitted.job.strategy == config::Strategy::zero3;
    const auto format = zero ? interop::Format::deepspeed : interop::Format::accelerate;
    for (auto& p : write_exported(interop::export_job(emitted, format, dir), dir, "--emit")) paths.push_back(std::move(p));
    return paths;
}

}  // namespace

int cmd_plan(const Args& args) {
    po::options_description desc("options");
    desc.add_options()
        ("model", po::value<std::string>(), "the model: a name of `shardsim models` or a model .ini")
        ("job", po::value<std::string>(), "a base job instead of --model: its model, precision and engine keys; its own setup is judged too")
        ("seq-len", po::value<std::string>(), "tokens per sequence (encoder tokens for encoder-decoder models)")
        ("decoder-seq-len", po::value<std::string>(), "decoder tokens per sequence (encoder-decoder models)")
        ("global-batch", po::value<std::string>(), "sequences per optimizer step (split into micro-batch x accumulation x GPUs)")
        ("tokens-per-step", po::value<std::string>(), "or tokens per optimizer step")
        ("gpus", po::value<std::vector<std::string>>()->composing(),
         "GPU types, comma-separated: a100-40g, a100-80g, h100-80g, rtx4090, a10g, v100-16g, titan-rtx (default: all)")
        ("topology", po::value<std::vector<std::string>>()->composing(), "node types by topology (shipped name or .ini), instead of --gpus")
        ("max-gpus", po::value<std::string>(), "the most GPUs to consider (default 64)")
        ("nodes", po::value<std::vector<std::string>>()->composing(), "node counts to consider, comma-separated (default: all)")
        ("objective", po::value<std::string>()->default_value("tokens-per-s"),
         "tokens-per-s, cost-per-token, fewest-gpus, or time-to-tokens=N (N such as 2e9 or 2B)")
        ("allow", po::value<std::vector<std::string>>()->composing(),
         "also search: lora, fused-loss, fp16, fp32, pure-bf16, or all (checkpointing, offload, hybrid and hpz are searched by default)")
        ("fix", po::value<std::vector<std::string>>()->composing(), "hold a key: section.key=value or topology.section.key=value; repeatable")
        ("top", po::value<std::string>()->default_value("10"), "setups to show, and to simulate in full at least")
        ("confirm", po::value<std::string>(), "setups of the fast ranking to simulate in full (default: --top, 50 at least)")
        ("threads", po::value<std::string>(), "threads for the search (default: every core)")
        ("json", "print the result as JSON (the contract scripts use)")
        ("csv", "print the simulated setups as CSV")
        ("html", po::value<std::string>(), "write a page with the Pareto front plotted")
        ("emit", po::value<std::string>(), "write the winner's job .ini, its topology, an sbatch script and its DeepSpeed (ZeRO) "
                                          "or accelerate (FSDP, DDP) config and launch line into this folder")
        ("quiet", "no progress on stderr");
    auto vm = parse_options("plan",
                            "shardsim plan --model M --seq-len S --global-batch B [--gpus G,...] [--max-gpus N] [--objective O] "
                            "[--allow ...] [--fix KEY=VALUE]... [--top K] [--json | --csv] [--html FILE] [--emit DIR]",
                            desc, args);
    if (!vm) return 0;
    if (vm->count("json") && vm->count("csv")) throw InputError("--csv: not with --json (allowed: one of them)");
    const study::Space space = study::build_space(request_of(*vm));
    study::SearchOptions o;
    o.threads = space.request.threads;
    if (vm->count("confirm")) o.confirm = static_cast<int>(positive(*vm, "confirm", "integer >= 1"));
    o.progress = progress_printer(vm->count("quiet") > 0);
    const study::PlanResult r = study::run_search(space, o);
    const bool found = !r.results.empty() && r.results.front().fits;
    std::vector<std::string> emitted;
    if (vm->count("emit") && found) emitted = emit(space, r.results.front(), (*vm)["emit"].as<std::string>());
    if (vm->count("html")) write_text_file((*vm)["html"].as<std::string>(), plan_html(space, r));
    if (vm->count("json")) std::cout << plan_json(space, r, emitted).dump() << "\n";
    else if (vm->count("csv")) std::cout << plan_csv(space, r);
    else {
        std::cout << plan_text(space, r);
        for (const auto& p : emitted) std::cout << "wrote " << p << "\n";
    }
    if (!found) {
        std::cerr << "shardsim plan: no setup fits; closest miss: " << r.closest_miss << "\n";
        return 3;
    }
    return 0;
}

}  // namespace shardsim::cli
