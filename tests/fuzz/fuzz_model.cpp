// libFuzzer harness: a model file (model/spec.hpp) on arbitrary bytes; a model that loads has
// its units built (parameter counts, LoRA on every module it has) and runs a 2-rank job on the
// cpu-host topology, plan to summary.
#include "fuzz_common.hpp"
#include "shardsim/config/ini.hpp"
#include "shardsim/model/spec.hpp"
#include "shardsim/model/units.hpp"

namespace {
// Models deeper than any in the catalogue (~100 layers) are valid, and loading one builds every
// block (the parameter count is checked tensor by tensor): 65,536 layers take seconds under the
// sanitizers and only repeat the same code. Such files are read by the same resolver but not
// loaded; the unit tests load models at the maxima.
bool too_deep(const std::string& text) {
    using namespace shardsim;
    Problems problems;
    const auto file = config::parse_ini_text("fuzz.ini", text, problems);
    const auto values = config::resolve(model::model_schema(), file, {}, problems);
    if (!problems.empty()) return false;  // load_model_text reports it
    return values.integer("encoder.layers") + values.integer("decoder.layers") > 256;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace shardsim;
    static const model::Scenario base = model::load_scenario("tiny-llama-cpu", {});
    const std::string text = fuzz::text_of(data, size);
    fuzz::expect_input_errors_only([&] {
        if (too_deep(text)) return;
        auto m = model::load_model_text("fuzz.ini", text);
        const auto lora = model::build_units(m, {8, model::lora_modules(m.arch)});
        (void)model::total_params(lora);
        (void)model::forward_program(m, lora);
        config::JobConfig job = base.job;
        job.seq_len = std::min<std::int64_t>(job.seq_len, m.max_positions > 0 ? m.max_positions : job.seq_len);
        fuzz::simulate_small(model::make_scenario(job, base.topology, std::move(m)));
    });
    return 0;
}
