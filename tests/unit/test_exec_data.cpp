// Synthetic data: a function of (seed, global sample id) only, so every world size sees the same
// global batches; a learnable pattern; shapes as the plan's batch shape.
#include <doctest/doctest.h>

#include "shardsim/nn/data.hpp"

using namespace shardsim;

TEST_CASE("batches depend only on the seed and the global sample ids") {
    const model::BatchShape dec{4, 0, 16, false};
    const nn::Batch a = nn::make_batch(3, 10, 4, dec, 96);
    CHECK(a.batch == 4);
    CHECK(a.input_ids.size() == 64);
    CHECK(a.targets.size() == 64);
    CHECK(a.encoder_ids.empty());
    // Sample 12 is the same sample whether it comes third of [10, 14) or first of [12, 13).
    const nn::Batch b = nn::make_batch(3, 12, 1, dec, 96);
    CHECK(std::vector<std::int32_t>(a.input_ids.begin() + 32, a.input_ids.begin() + 48) == b.input_ids);
    CHECK(std::vector<std::int32_t>(a.targets.begin() + 32, a.targets.begin() + 48) == b.targets);
    CHECK(nn::make_batch(4, 10, 4, dec, 96).input_ids != a.input_ids);  // another seed, other data
    for (std::size_t i = 0; i < a.input_ids.size(); ++i) {
        CHECK(a.input_ids[i] >= 0);
        CHECK(a.input_ids[i] < 96);
    }
}

TEST_CASE("the pattern: a progression mod vocab (the next token), and for encoder-decoder a shifted copy") {
    const model::BatchShape dec{2, 0, 8, false};
    const nn::Batch a = nn::make_batch(1, 0, 2, dec, 50);
    for (std::size_t s = 0; s < 2; ++s) {
        const auto* x = a.input_ids.data() + s * 8;
        const auto* y = a.targets.data() + s * 8;
        const int stride = (x[1] - x[0] + 50) % 50;
        CHECK(stride >= 1);
        CHECK(stride <= 3);
        for (int t = 0; t < 8; ++t) CHECK(y[t] == (x[t] + stride) % 50);
        for (int t = 0; t + 1 < 8; ++t) CHECK(x[t + 1] == y[t]);
    }
    const model::BatchShape ed{2, 6, 5, false};
    const nn::Batch e = nn::make_batch(1, 0, 2, ed, 50);
    CHECK(e.encoder_ids.size() == 12);
    CHECK(e.input_ids.size() == 10);
    for (std::size_t s = 0; s < 2; ++s) {
        CHECK(e.input_ids[s * 5] == 0);  // decoder start token
        for (std::size_t t = 0; t < 5; ++t) {
            CHECK(e.targets[s * 5 + t] == (e.encoder_ids[s * 6 + t] + 1) % 50);
            if (t > 0) CHECK(e.input_ids[s * 5 + t] == e.targets[s * 5 + t - 1]);
        }
    }
}

TEST_CASE("first_sample: one process with world x grad_accum micro-batches sees the global order") {
    // World 3, grad_accum 2, micro-batch 4: step 1 covers samples [24, 48).
    std::vector<std::int64_t> distributed, single;
    for (std::int64_t m = 0; m < 2; ++m)
        for (std::int64_t r = 0; r < 3; ++r) distributed.push_back(nn::first_sample(1, m, r, 3, 2, 4));
    for (std::int64_t m = 0; m < 6; ++m) single.push_back(nn::first_sample(1, m, 0, 1, 6, 4));
    CHECK(distributed == std::vector<std::int64_t>{24, 28, 32, 36, 40, 44});
    CHECK(single == distributed);
}
