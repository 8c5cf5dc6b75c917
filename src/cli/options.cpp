#include "shardsim/cli/options.hpp"

#include <cctype>
#include <filesystem>
#include <fstream>
#include <iostream>

#include "shardsim/core/error.hpp"
#include "shardsim/core/format.hpp"

namespace shardsim::cli {

namespace {

std::string examples_section(const std::string& command) {
    for (const auto& c : commands()) {
        if (c.name != command || c.examples.empty()) continue;
        std::string out = "\nEXAMPLES\n";
        for (const auto& e : c.examples) out += "  " + e.command + "\n      " + e.what + "\n";
        return out;
    }
    return "";
}

}  // namespace

std::optional<po::variables_map> parse_options(const std::string& command, const std::string& usage,
                                               const po::options_description& desc, const Args& args,
                                               const std::string& extra_help,
                                               const po::positional_options_description* positional) {
    po::options_description all = desc;
    all.add_options()("help,h", "show this help");
    po::variables_map vm;
    try {
        auto parser = po::command_line_parser(args).options(all);
        if (positional) parser.positional(*positional);
        po::store(parser.run(), vm);
        if (vm.count("help")) {
            std::cout << "usage: " << usage << "\n\n" << all << extra_help << examples_section(command);
            return std::nullopt;
        }
        po::notify(vm);
    } catch (const po::error& e) {
        throw InputError("shardsim " + command + ": " + e.what() + " (see shardsim " + command + " --help)");
    }
    return vm;
}

std::optional<std::int64_t> parse_byte_count(const std::string& s) { return parse_byte_size(s); }

void add_import_options(po::options_description& desc, interop::Request& r) {
    desc.add_options()
        ("deepspeed", po::value<std::string>(&r.deepspeed),
         "read a DeepSpeed ds_config.json: every zero_optimization key, bf16/fp16, the batch and the optimizer become job "
         "keys; \"auto\" is resolved as the Hugging Face Trainer resolves it; each key is listed as imported, resolved, "
         "ignored or not modelled (docs/configs.md)")
        ("accelerate", po::value<std::string>(&r.accelerate),
         "read an accelerate config.yaml: distributed_type, fsdp_config or deepspeed_config (inline or a file), "
         "mixed_precision, num_processes, num_machines")
        ("hf-args", po::value<std::string>(&r.hf_args),
         "the Hugging Face Trainer's flags, quoted: \"--per_device_train_batch_size 4 --gradient_accumulation_steps 8 --bf16 "
         "--gradient_checkpointing --fsdp 'full_shard auto_wrap'\" (--deepspeed FILE in them is read too)")
        ("model", po::value<std::string>(&r.model), "the model (catalogue name or .ini); without --job, the base job is the "
                                                      "Trainer's defaults on --model and --topology")
        ("topology", po::value<std::string>(&r.topology), "the topology (shipped name or .ini)")
        ("strict", po::bool_switch(&r.strict), "refuse a config with keys shardsim does not model (instead of a warning)");
}


void write_text_file(const std::string& path, const std::string& text) {
    if (path == "-") {
        std::cout << text;
        return;
    }
    std::ofstream out(path);
    if (!out) throw Error(path + ": cannot open for writing");
    out << text;
    if (!out) throw Error(path + ": write failed");
}

std::vector<std::string> write_exported(const interop::Exported& e, const std::string& dir, const std::string& option) {
    namespace fs = std::filesystem;
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec) throw InputError(option + ": bad value '" + dir + "': cannot create the folder: " + ec.message() + " (allowed: a writable folder)");
    std::vector<std::string> paths;
    for (const auto& f : e.files) {
        const std::string path = (fs::path(dir) / f.name).string();
        write_text_file(path, f.text);
        if (f.name == "launch.sh")
            fs::permissions(path, fs::perms::owner_exec | fs::perms::group_exec, fs::perm_options::add, ec);
        paths.push_back(path);
    }
    return paths;
}

device::BackendRequest parse_backend_option(const std::string& value) {
    const auto r = device::parse_backend_request(value);
    if (!r) throw InputError("--backend: bad value '" + value + "' (allowed: " + device::kBackendChoices + ")");
    return *r;
}

}  // namespace shardsim::cli
