#include "shardsim/cli/options.hpp"

#include <cctype>
#include <fstream>
#include <iostream>

#include "shardsim/core/error.hpp"

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

std::optional<std::int64_t> parse_byte_count(const std::string& s) {
    std::size_t digits = 0;
    while (digits < s.size() && std::isdigit(static_cast<unsigned char>(s[digits]))) ++digits;
    if (digits == 0 || digits > 12) return std::nullopt;
    const std::int64_t v = std::stoll(s.substr(0, digits));
    const std::string suffix = s.substr(digits);
    if (suffix.empty()) return v;
    if (suffix.size() != 1) return std::nullopt;
    switch (std::toupper(static_cast<unsigned char>(suffix[0]))) {
        case 'K': return v << 10;
        case 'M': return v << 20;
        case 'G': return v << 30;
    }
    return std::nullopt;
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

device::BackendRequest parse_backend_option(const std::string& value) {
    const auto r = device::parse_backend_request(value);
    if (!r) throw InputError("--backend: bad value '" + value + "' (allowed: " + device::kBackendChoices + ")");
    return *r;
}

}  // namespace shardsim::cli
