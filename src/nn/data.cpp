// Synthetic data with a pattern a small model learns in tens of steps: arithmetic progressions
// modulo the vocabulary, with a start and a stride (1 to kMaxStride) drawn per sample. A model
// that has seen two tokens knows the stride; even a bigram model gets the loss well under half of
// log(vocab). Encoder-decoder: the encoder reads a progression and the decoder writes it again,
// every token shifted by one (targets y_t = x_t + 1), teacher-forced after a start token 0.
// Everything is a function of (seed, global sample id), so any world size sees the same batches.
#include "shardsim/nn/data.hpp"

#include "shardsim/core/error.hpp"

namespace shardsim::nn {

namespace {

constexpr std::int64_t kMaxStride = 3;

std::uint64_t splitmix64(std::uint64_t x) {
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

}  // namespace

Batch make_batch(std::uint64_t seed, std::int64_t first_sample, std::int64_t count, const model::BatchShape& shape,
                 std::int64_t vocab) {
    SHARDSIM_ASSERT(vocab > kMaxStride && count >= 0, "make_batch: vocabulary too small");
    Batch b;
    b.batch = count;
    b.first = first_sample;
    const bool enc_dec = shape.enc_len > 0;
    for (std::int64_t i = 0; i < count; ++i) {
        const std::uint64_t r = splitmix64(splitmix64(seed) ^ static_cast<std::uint64_t>(first_sample + i));
        const auto start = static_cast<std::int64_t>(r % static_cast<std::uint64_t>(vocab));
        const auto stride = 1 + static_cast<std::int64_t>((r >> 32) % kMaxStride);
        auto x = [&](std::int64_t t) { return static_cast<std::int32_t>((start + t * stride) % vocab); };
        if (enc_dec) {
            for (std::int64_t t = 0; t < shape.enc_len; ++t) b.encoder_ids.push_back(x(t));
            auto y = [&](std::int64_t t) { return static_cast<std::int32_t>((x(t % shape.enc_len) + 1) % vocab); };
            for (std::int64_t t = 0; t < shape.dec_len; ++t) {
                b.input_ids.push_back(t == 0 ? 0 : y(t - 1));
                b.targets.push_back(y(t));
            }
        } else {
            for (std::int64_t t = 0; t < shape.dec_len; ++t) {
                b.input_ids.push_back(x(t));
                b.targets.push_back(x(t + 1));
            }
        }
    }
    return b;
}

std::int64_t first_sample(std::int64_t step, std::int64_t micro, std::int64_t rank, std::int64_t world,
                          std::int64_t grad_accum, std::int64_t micro_batch) {
    const std::int64_t per_step = grad_accum * world * micro_batch;
    return step * per_step + (micro * world + rank) * micro_batch;
}

}  // namespace shardsim::nn
