#pragma once
// Boost.Program_options glue shared by the subcommands.
#include <boost/program_options.hpp>
#include <optional>
#include <string>

#include "shardsim/cli/app.hpp"

namespace shardsim::cli {

namespace po = boost::program_options;

// Parses `args`; on --help prints "usage" + the options + `extra_help` and returns nullopt.
// Unknown or malformed options become an InputError (exit 2).
std::optional<po::variables_map> parse_options(const std::string& command, const std::string& usage,
                                               const po::options_description& desc, const Args& args,
                                               const std::string& extra_help = "",
                                               const po::positional_options_description* positional = nullptr);

// Writes `text` to `path` ("-" = stdout); a failure names the path.
void write_text_file(const std::string& path, const std::string& text);

}  // namespace shardsim::cli
