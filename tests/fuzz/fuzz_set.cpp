// libFuzzer harness: `--set` values. Each input line is one `--set` argument (section.key=value,
// or topology.section.key=value) applied to a shipped job -- the first line may name it as
// `job=NAME`, otherwise tiny-llama-cpu -- then the scenario is simulated as `shardsim simulate
// --set ...` would. The seeds hold the reproducers.
#include "fuzz_common.hpp"
#include "shardsim/config/embedded.hpp"
#include "shardsim/core/format.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace shardsim;
    std::vector<std::string> sets = split(fuzz::text_of(data, size), '\n');
    std::string job = "tiny-llama-cpu";
    if (!sets.empty() && sets.front().rfind("job=", 0) == 0) {
        const std::string name = sets.front().substr(4);
        if (config::embedded_text("jobs", name)) job = name;
        sets.erase(sets.begin());
    }
    if (sets.size() > 16) sets.resize(16);
    fuzz::expect_input_errors_only([&] { fuzz::simulate_small(model::load_scenario(job, sets)); });
    return 0;
}
