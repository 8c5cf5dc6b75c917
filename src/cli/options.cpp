#include "shardsim/cli/options.hpp"

#include <fstream>
#include <iostream>

#include "shardsim/core/error.hpp"

namespace shardsim::cli {

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
            std::cout << "usage: " << usage << "\n\n" << all << extra_help;
            return std::nullopt;
        }
        po::notify(vm);
    } catch (const po::error& e) {
        throw InputError("shardsim " + command + ": " + e.what() + " (see shardsim " + command + " --help)");
    }
    return vm;
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

}  // namespace shardsim::cli
