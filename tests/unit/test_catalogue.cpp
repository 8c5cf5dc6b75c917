// The model catalogue: parameter counts from the dimensions, tensor by tensor, against what the
// models' authors publish; unit splitting; LoRA adapters; the forward program.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <set>

#include "shardsim/model/units.hpp"

using namespace shardsim;
using namespace shardsim::model;

TEST_CASE("every catalogue model with a published total matches it within 0.5%") {
    const auto models = catalogue();
    CHECK(models.size() >= 17);
    int checked = 0;
    for (const auto& m : models) {
        if (m.published_params == 0) continue;
        const auto n = static_cast<double>(total_params(build_units(m)).count());
        const double err = std::fabs(n - static_cast<double>(m.published_params)) / static_cast<double>(m.published_params);
        INFO(m.name << ": computed " << n << ", published " << m.published_params);
        CHECK(err <= 0.005);
        ++checked;
    }
    CHECK(checked == 11);  // all but codet5p-2b and the tiny models
}

TEST_CASE("the seed models are all in the catalogue") {
    const auto names = catalogue_names();
    for (const char* n : {"gpt2-large", "gpt2-xl", "llama-7b", "llama-2-13b", "llama-2-70b", "t5-3b", "t0-3b",
                          "flan-t5-xl", "flan-t5-xxl", "mt0-xxl", "bloomz-7b1", "codet5p-2b", "tiny-gpt2",
                          "tiny-llama", "tiny-bloom", "tiny-t5", "tiny-codet5p"}) {
        INFO(n);
        CHECK(std::find(names.begin(), names.end(), n) != names.end());
    }
}

// CodeT5+ 2B has no published total: its two stacks are checked against the CodeGen checkpoints
// they were initialised from (CodeGen-350M-mono without its head, CodeGen-2B-mono), whose counts
// follow from their configs: 12 d^2 + 7 d per block, vocab x d tables, lm_head with bias.
TEST_CASE("codet5p-2b is CodeGen-350M (no head) + CodeGen-2B + cross-attention + projection") {
    const auto m = load_model("codet5p-2b", "", "test");
    const auto units = build_units(m);
    std::int64_t encoder = 0, decoder = 0, cross = 0, proj = 0;
    for (const auto& u : units)
        for (const auto& t : u.tensors) {
            const auto n = t.numel().count();
            if (t.name.find("crossattention") != std::string::npos || t.name.find("ln_cross") != std::string::npos)
                cross += n;
            else if (t.name.rfind("enc_to_dec_proj", 0) == 0)
                proj += n;
            else if (t.name.rfind("encoder.", 0) == 0)
                encoder += n;
            else
                decoder += n;
        }
    const std::int64_t codegen_350m = 356'712'448, head_350m = 51200 * 1024 + 51200;
    CHECK(encoder == codegen_350m - head_350m);
    CHECK(decoder == 2'779'356'160);
    CHECK(cross == 4 * 2560 * 2560 + 2 * 2560);
    CHECK(proj == 1024 * 2560 + 2560);
}

TEST_CASE("units partition the model: every tensor once, tied embeddings counted once") {
    for (const auto& m : catalogue()) {
        const auto units = build_units(m);
        std::set<std::string> names;
        std::int64_t sum = 0;
        for (const auto& u : units) {
            CHECK(!u.tensors.empty());
            for (const auto& t : u.tensors) {
                INFO(m.name << " " << t.name);
                CHECK(names.insert(t.name).second);
                sum += t.numel().count();
            }
        }
        CHECK(sum == total_params(units).count());
        // embeddings, each block, head
        CHECK(static_cast<std::int64_t>(units.size()) ==
              m.encoder.layers + m.decoder.layers + 2 + (m.arch == Arch::codet5p ? 1 : 0));
        const bool has_lm_head = std::any_of(units.back().tensors.begin(), units.back().tensors.end(),
                                             [](const TensorSpec& t) { return t.name.find("lm_head") != std::string::npos; });
        CHECK(has_lm_head == !m.tied_embeddings);
    }
}

TEST_CASE("tiny-llama by hand") {
    // embed 96x32 = 3072; block: 2 RMSNorm 32 + q 32x32 + k,v 16x32 (2 KV heads of 8) + o 32x32 +
    // gate, up, down 88x32 = 64 + 1024 + 512 + 512 + 1024 + 3 * 2816 = 11584; head: 32 + 96x32.
    const auto units = build_units(load_model("tiny-llama", "", "test"));
    REQUIRE(units.size() == 4);
    CHECK(units[0].params().count() == 3072);
    CHECK(units[1].params().count() == 11584);
    CHECK(units[3].params().count() == 32 + 3072);
    CHECK(total_params(units).count() == 3072 + 2 * 11584 + 3104);
}

TEST_CASE("LoRA: base frozen, adapters A [r, in] and B [out, r] on the targets only") {
    const auto m = load_model("llama-7b", "", "test");
    const auto units = build_units(m, {8, {"q_proj", "v_proj"}});
    const std::int64_t per_layer = 2 * (8 * 4096 + 4096 * 8);
    CHECK(trainable_params(units).count() == 32 * per_layer);
    CHECK(total_params(units).count() == m.published_params + 32 * per_layer);
    for (const auto& u : units)
        for (const auto& t : u.tensors) {
            const bool adapter = t.role == TensorRole::lora_a || t.role == TensorRole::lora_b;
            CHECK(t.trainable == adapter);
            if (t.role == TensorRole::lora_a) CHECK(t.shape == std::vector<std::int64_t>{8, 4096});
        }
}

TEST_CASE("forward program: T5 calls its shared embedding twice; a tied head reads the embedding") {
    const auto t5 = load_model("t5-3b", "", "test");
    const auto units = build_units(t5);
    const auto prog = forward_program(t5, units);
    int embed_calls = 0;
    for (const auto& s : prog) embed_calls += s.unit == 0;
    CHECK(embed_calls == 2);
    CHECK(prog.back().reads == std::vector<int>{static_cast<int>(units.size()) - 1, 0});  // tied in t5-3b
    const auto flan = load_model("flan-t5-xl", "", "test");
    CHECK(forward_program(flan, build_units(flan)).back().reads.size() == 1);
}
