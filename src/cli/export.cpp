// shardsim export: a job as the config files and launch line of DeepSpeed, accelerate or torchrun
// (the Hugging Face Trainer's flags), each value commented with the shardsim key it came from.
#include <filesystem>
#include <iostream>

#include "shardsim/cli/options.hpp"
#include "shardsim/interop/export.hpp"
#include "shardsim/interop/import.hpp"

namespace shardsim::cli {

namespace {
std::string single_quoted(const std::string& s) {
    std::string out = "'";
    for (char ch : s) out += ch == '\'' ? std::string("'\\''") : std::string(1, ch);
    return out + "'";
}
}  // namespace

int cmd_export(const Args& args) {
    po::options_description desc("options");
    interop::Request req;
    std::string to, out;
    desc.add_options()
        ("job", po::value<std::string>(&req.job), "job .ini path or shipped job name (default: the seed scenario)")
        ("set", po::value<std::vector<std::string>>(&req.sets)->composing(), "override a key (as simulate); repeatable")
        ("to", po::value<std::string>(&to), "deepspeed (ds_config.json + a deepspeed launch line), accelerate "
                                            "(accelerate_config.yaml, ds_config.json for ZeRO), torchrun (the Trainer's --fsdp / "
                                            "--deepspeed flags, fsdp_config.json or ds_config.json)")
        ("out", po::value<std::string>(&out), "write the files into this folder (created); default: print them");
    add_import_options(desc, req);
    auto vm = parse_options("export", "shardsim export --job J --to deepspeed|accelerate|torchrun [--out DIR] [--set KEY=VALUE]...", desc, args);
    if (!vm) return 0;
    const auto format = interop::parse_format(to);
    if (!format) throw InputError("--to: bad value '" + to + "' (allowed: " + interop::kFormats + ")");
    const interop::Loaded loaded = interop::load(req);
    const interop::Exported e = interop::export_job(loaded.scenario, *format, out.empty() ? "." : out);
    if (out.empty()) {
        for (const auto& f : e.files) std::cout << "==> " << f.name << " <==\n" << f.text << "\n";
    } else {
        for (const auto& path : write_exported(e, out, "--out")) std::cout << "wrote " << path << "\n";
    }
    for (const auto& n : e.not_expressible) std::cerr << "WARNING: not expressible in " << to << ": " << n << "\n";
    std::cerr << "check it: shardsim simulate"
              << (*format == interop::Format::accelerate ? " --accelerate " + (out.empty() ? std::string(".") : out) + "/accelerate_config.yaml"
                  : *format == interop::Format::deepspeed ? " --deepspeed " + (out.empty() ? std::string(".") : out) + "/ds_config.json"
                                                           : std::string())
              << " --hf-args " << single_quoted(e.hf_args) << " "
              << (req.job.empty() ? "--model " + loaded.scenario.job.model + " --topology " + loaded.scenario.job.topology : "--job " + req.job)
              << "\n";
    return 0;
}

}  // namespace shardsim::cli
