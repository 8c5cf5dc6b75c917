// Every subcommand's --help ends with EXAMPLES: the two or three commands people run. Each example
// is run again with --help appended, so that an option renamed in the parser fails here instead of
// leaving an example that no longer works.
#include <doctest/doctest.h>

#include "shardsim/cli/app.hpp"
#include "test_util.hpp"

using namespace shardsim;

TEST_CASE("--help of every subcommand has an EXAMPLES section whose commands parse") {
    for (const auto& c : cli::commands()) {
        INFO(c.name);
        CHECK(c.examples.size() >= 2);
        CHECK(c.examples.size() <= 3);
        const auto help = test::run_command(test::shardsim_binary() + " " + c.name + " --help");
        CHECK(help.exit_code == 0);
        const auto at = help.output.find("\nEXAMPLES\n");
        REQUIRE(at != std::string::npos);
        for (const auto& e : c.examples) {
            INFO(e.command);
            CHECK(help.output.find("  " + e.command + "\n      " + e.what + "\n", at) != std::string::npos);
            // From "shardsim" on (a launcher in front is not ours to run).
            const auto start = e.command.find("shardsim " + c.name);
            REQUIRE(start != std::string::npos);
            const std::string args = e.command.substr(start + std::string("shardsim ").size());
            const auto parsed = test::run_command(test::shardsim_binary() + " " + args + " --help");
            CHECK_MESSAGE(parsed.exit_code == 0, parsed.output);
        }
    }
}
