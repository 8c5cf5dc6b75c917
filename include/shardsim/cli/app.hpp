#pragma once
// The shardsim command line: one binary, one file per subcommand under src/cli/.
#include <string>
#include <vector>

namespace shardsim::cli {

using Args = std::vector<std::string>;  // the arguments after the subcommand's name

// One line people run, and what it does: the EXAMPLES section of the command's --help.
struct Example {
    std::string command;  // as typed, from "shardsim" or the launcher ("mpirun -np 2 shardsim run ...")
    std::string what;
};

struct Command {
    std::string name;
    std::string summary;
    int (*run)(const Args& args);
    std::vector<Example> examples;
};

const std::vector<Command>& commands();
int main(int argc, char** argv);

// Subcommands
int cmd_models(const Args& args);
int cmd_simulate(const Args& args);
int cmd_run(const Args& args);
int cmd_slurm(const Args& args);
int cmd_validate(const Args& args);
int cmd_report(const Args& args);
int cmd_bench(const Args& args);
int cmd_calibrate(const Args& args);

}  // namespace shardsim::cli
