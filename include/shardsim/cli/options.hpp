#pragma once
// Boost.Program_options glue shared by the subcommands.
#include <boost/program_options.hpp>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "shardsim/cli/app.hpp"
#include "shardsim/device/backend.hpp"
#include "shardsim/interop/export.hpp"
#include "shardsim/interop/import.hpp"

namespace shardsim::cli {

namespace po = boost::program_options;

// Parses `args`; on --help prints "usage" + the options + `extra_help` and returns nullopt.
// Unknown or malformed options become an InputError (exit 2).
std::optional<po::variables_map> parse_options(const std::string& command, const std::string& usage,
                                               const po::options_description& desc, const Args& args,
                                               const std::string& extra_help = "",
                                               const po::positional_options_description* positional = nullptr);

// --deepspeed, --accelerate, --hf-args, --model, --topology, --strict: the users' own configs,
// read into `request` (interop::load turns it into a scenario).
void add_import_options(po::options_description& desc, interop::Request& request);

// "8", "64K", "1G": a byte count with an optional K, M or G suffix (powers of 1024).
std::optional<std::int64_t> parse_byte_count(const std::string& s);
inline constexpr const char* kByteCountAllowed = "a byte count with an optional K, M or G suffix (powers of 1024), e.g. 8, 64K, 1G";

// --backend: "auto" | "nccl" | "mpi", else an InputError naming the option.
device::BackendRequest parse_backend_option(const std::string& value);
inline constexpr const char* kBackendHelp = "auto (NCCL when every rank can use a GPU, else MPI; a GPU allocation without a usable GPU is an error), nccl, or mpi";

// Writes `text` to `path` ("-" = stdout); a failure names the path.
void write_text_file(const std::string& path, const std::string& text);

// Writes an export's files into `dir` (created; launch.sh made executable) and returns their paths.
// `option` names the flag that gave `dir`, for the error when it cannot be created.
std::vector<std::string> write_exported(const interop::Exported& e, const std::string& dir, const std::string& option);

}  // namespace shardsim::cli
