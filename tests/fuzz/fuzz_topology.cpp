// libFuzzer harness: a topology file (config/topology.hpp) on arbitrary bytes; a topology that
// loads runs the tiny Llama job on it (world size from the topology), plan to summary.
#include "fuzz_common.hpp"
#include "shardsim/config/embedded.hpp"
#include "shardsim/config/topology.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace shardsim;
    static const model::Scenario base = model::load_scenario("tiny-llama-cpu", {});
    fuzz::expect_input_errors_only([&] {
        auto topology = config::load_topology_text("fuzz.ini", fuzz::text_of(data, size), {});
        config::JobConfig job = base.job;
        job.world_size = 0;  // every GPU of the fuzzed topology
        fuzz::simulate_small(model::make_scenario(job, std::move(topology), base.model));
    });
    return 0;
}
