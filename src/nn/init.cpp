#include "shardsim/nn/init.hpp"

#include <cmath>

namespace shardsim::nn {

namespace {

std::uint64_t splitmix64(std::uint64_t x) {
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

std::uint64_t fnv1a(const std::string& s) {
    std::uint64_t h = 0xcbf29ce484222325ull;
    for (unsigned char c : s) h = (h ^ c) * 0x100000001b3ull;
    return h;
}

// A standard normal from two uniforms derived from one counter (Box-Muller).
float normal(std::uint64_t key) {
    const std::uint64_t a = splitmix64(key), b = splitmix64(a);
    const double u1 = (static_cast<double>(a >> 11) + 1.0) / 9007199254740993.0;  // (0, 1]
    const double u2 = static_cast<double>(b >> 11) / 9007199254740992.0;
    return static_cast<float>(std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2));
}

}  // namespace

std::vector<float> initial_values(std::uint64_t seed, const model::TensorSpec& t, std::int64_t first, std::int64_t count) {
    using model::TensorRole;
    std::vector<float> v(static_cast<std::size_t>(count), 0.0f);
    float scale = 0;
    switch (t.role) {
        case TensorRole::norm_weight:
            for (auto& x : v) x = 1.0f;
            return v;
        case TensorRole::norm_bias:
        case TensorRole::linear_bias:
        case TensorRole::lora_b:
            return v;
        case TensorRole::lora_a: scale = 1.0f / std::sqrt(static_cast<float>(t.in_features)); break;
        default: scale = 0.02f;
    }
    const std::uint64_t base = splitmix64(seed ^ fnv1a(t.name));
    for (std::int64_t i = 0; i < count; ++i)
        v[static_cast<std::size_t>(i)] = scale * normal(base + static_cast<std::uint64_t>(first + i));
    return v;
}

}  // namespace shardsim::nn
