// shardsim report: a timeline file as text or JSON, an HTML page with charts, a Perfetto trace.
#include <fstream>
#include <iostream>
#include <optional>

#include "shardsim/cli/options.hpp"
#include "shardsim/core/error.hpp"
#include "shardsim/report/chrome_trace.hpp"
#include "shardsim/report/html.hpp"
#include "shardsim/report/report.hpp"

namespace shardsim::cli {

int cmd_report(const Args& args) {
    po::options_description desc("options");
    desc.add_options()
        ("file", po::value<std::string>(), "the timeline file (from simulate --out or run --out)")
        ("html", po::value<std::string>(), "write a self-contained HTML page with memory and op charts per rank")
        ("chrome-trace", po::value<std::string>(), "write Trace Event Format JSON (ui.perfetto.dev, chrome://tracing)")
        ("compare", po::value<std::string>(), "another timeline file to lay beside FILE (e.g. the simulation of a run)")
        ("step", po::value<int>()->default_value(-1), "optimizer step to report when FILE recorded several (-1: the last)")
        ("max-ranks", po::value<std::size_t>()->default_value(16),
         "rank panels the HTML page draws at most (ranks with identical timelines share one)")
        ("allow-incomplete", "read a file whose run did not finish (complete = 0): the steps it holds")
        ("json", "print the report as JSON");
    po::positional_options_description positional;
    positional.add("file", 1);
    const std::string extra =
        "\nThe text and JSON describe one optimizer step (the last one of a measured file, whose first steps warm up).\n"
        "Simulated and measured processes in the trace are apart: pid = rank for measured, 100000 + rank for simulated.\n";
    auto vm = parse_options("report", "shardsim report FILE.h5 [--html report.html] [--chrome-trace trace.json] "
                                      "[--compare OTHER.h5] [--step N] [--allow-incomplete] [--json]",
                            desc, args, extra, &positional);
    if (!vm) return 0;
    if (!vm->count("file")) throw InputError("shardsim report: no timeline file given (see shardsim report --help)");
    const int step = (*vm)["step"].as<int>();
    const bool allow_incomplete = vm->count("allow-incomplete") > 0;
    const report::LoadedRun run = report::load_run((*vm)["file"].as<std::string>(), step, false, allow_incomplete);
    std::optional<report::LoadedRun> other;
    if (vm->count("compare")) other = report::load_run((*vm)["compare"].as<std::string>(), step, true, allow_incomplete);
    const report::LoadedRun* compare = other ? &*other : nullptr;

    std::vector<std::string> written;
    if (vm->count("html")) {
        report::HtmlOptions opt;
        opt.max_panels = (*vm)["max-ranks"].as<std::size_t>();
        const std::string path = (*vm)["html"].as<std::string>();
        write_text_file(path, report::render_html(run, compare, opt));
        written.push_back("HTML report written to " + path + " (open it in a browser; it needs no network)");
    }
    if (vm->count("chrome-trace")) {
        const std::string path = (*vm)["chrome-trace"].as<std::string>();
        std::ofstream out(path);
        if (!out) throw Error(path + ": cannot open for writing");
        report::write_chrome_trace(out, run, compare);
        if (!out.flush()) throw Error(path + ": write failed");
        written.push_back("Chrome trace written to " + path + " (load it in https://ui.perfetto.dev or chrome://tracing)");
    }

    if (vm->count("json")) {
        io::Json j = report::report_json(run, compare);
        if (vm->count("html")) j["html"] = (*vm)["html"].as<std::string>();
        if (vm->count("chrome-trace")) j["chrome_trace"] = (*vm)["chrome-trace"].as<std::string>();
        std::cout << j.dump() << "\n";
        return 0;
    }
    std::cout << report::report_text(run, compare);
    for (const auto& w : written) std::cout << w << "\n";
    return 0;
}

}  // namespace shardsim::cli
