// libFuzzer harness: a model file (model/spec.hpp) on arbitrary bytes; a model that loads has
// its units built (parameter counts, LoRA on every module it has) and runs a 2-rank job on the
// cpu-host topology, plan to summary.
#include "fuzz_common.hpp"
#include "shardsim/model/spec.hpp"
#include "shardsim/model/units.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace shardsim;
    static const model::Scenario base = model::load_scenario("tiny-llama-cpu", {});
    fuzz::expect_input_errors_only([&] {
        auto m = model::load_model_text("fuzz.ini", fuzz::text_of(data, size));
        // The catalogue's models have at most ~100 layers; deeper ones only cost time here.
        if (m.encoder.layers + m.decoder.layers > 256) return;
        const auto lora = model::build_units(m, {8, model::lora_modules(m.arch)});
        (void)model::total_params(lora);
        (void)model::forward_program(m, lora);
        config::JobConfig job = base.job;
        job.seq_len = std::min<std::int64_t>(job.seq_len, m.max_positions > 0 ? m.max_positions : job.seq_len);
        fuzz::simulate_small(model::make_scenario(job, base.topology, std::move(m)));
    });
    return 0;
}
