// libFuzzer harness: a job file (config/job.hpp) on arbitrary bytes; a job that loads is
// completed with its model and topology (shipped names, or paths relative to an empty folder)
// and simulated as `shardsim simulate --job` would.
#include <filesystem>

#include "fuzz_common.hpp"
#include "shardsim/config/job.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    static const std::string dir = [] {
        const auto d = std::filesystem::temp_directory_path() / "shardsim-fuzz-job";
        std::filesystem::create_directories(d);
        return d.string();
    }();
    fuzz::expect_input_errors_only([&] {
        const auto scenario = shardsim::model::load_scenario_text("fuzz.ini", fuzz::text_of(data, size), dir, {});
        fuzz::simulate_small(scenario);
    });
    return 0;
}
