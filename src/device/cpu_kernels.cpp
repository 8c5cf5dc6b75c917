// CpuDevice: the elementwise and reduction kernels, plain loops in fp32 (sums of a row in double,
// which costs nothing here and keeps the CPU a good reference for the GPU).
#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "cpu_device.hpp"
#include "dropout_bits.hpp"
#include "shardsim/core/error.hpp"
#include "shardsim/core/half.hpp"

namespace shardsim::device {

namespace {

constexpr float kGeluC = 0.7978845608028654f;  // sqrt(2 / pi)
constexpr float kGeluK = 0.044715f;

float act(Activation f, float x) {
    switch (f) {
        case Activation::gelu_tanh: return 0.5f * x * (1.0f + std::tanh(kGeluC * (x + kGeluK * x * x * x)));
        case Activation::relu: return x > 0 ? x : 0.0f;
        case Activation::silu: return x / (1.0f + std::exp(-x));
    }
    return x;
}

float act_grad(Activation f, float x) {
    switch (f) {
        case Activation::gelu_tanh: {
            const float t = std::tanh(kGeluC * (x + kGeluK * x * x * x));
            return 0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * kGeluC * (1.0f + 3.0f * kGeluK * x * x);
        }
        case Activation::relu: return x > 0 ? 1.0f : 0.0f;
        case Activation::silu: {
            const float s = 1.0f / (1.0f + std::exp(-x));
            return s * (1.0f + x * (1.0f - s));
        }
    }
    return 1.0f;
}

std::int64_t last_dim(const Tensor& t) { return t.shape.empty() ? 1 : t.shape.back(); }

}  // namespace

void CpuDevice::norm_forward(const NormOp& op) {
    const std::int64_t d = last_dim(op.x), rows = op.x.numel() / d;
    const bool ln = op.kind == model::NormKind::layernorm;
    auto* stats = static_cast<float*>(op.stats.data);
    for (std::int64_t r = 0; r < rows; ++r) {
        double sum = 0, sq = 0;
        for (std::int64_t i = 0; i < d; ++i) {
            const double x = load_value(op.x.data, op.x.dtype, r * d + i);
            sum += x;
            sq += x * x;
        }
        const double mean = ln ? sum / static_cast<double>(d) : 0.0;
        double var = sq / static_cast<double>(d) - mean * mean;
        if (ln) {  // two-pass variance: exact enough without cancellation
            var = 0;
            for (std::int64_t i = 0; i < d; ++i) {
                const double c = load_value(op.x.data, op.x.dtype, r * d + i) - mean;
                var += c * c;
            }
            var /= static_cast<double>(d);
        }
        const float rstd = static_cast<float>(1.0 / std::sqrt(var + op.eps));
        const float m = static_cast<float>(mean);
        for (std::int64_t i = 0; i < d; ++i) {
            float y = (load_value(op.x.data, op.x.dtype, r * d + i) - m) * rstd * load_value(op.weight.data, op.weight.dtype, i);
            if (!op.bias.empty()) y += load_value(op.bias.data, op.bias.dtype, i);
            store_value(op.y.data, op.y.dtype, r * d + i, y);
        }
        if (ln) {
            stats[2 * r] = m;
            stats[2 * r + 1] = rstd;
        } else {
            stats[r] = rstd;
        }
    }
}

void CpuDevice::norm_backward(const NormGradOp& op) {
    const std::int64_t d = last_dim(op.x), rows = op.x.numel() / d;
    const bool ln = op.kind == model::NormKind::layernorm;
    const auto* stats = static_cast<const float*>(op.stats.data);
    std::vector<double> dw(static_cast<std::size_t>(d), 0.0), db(static_cast<std::size_t>(d), 0.0);
    std::vector<float> xhat(static_cast<std::size_t>(d)), dxhat(static_cast<std::size_t>(d));
    for (std::int64_t r = 0; r < rows; ++r) {
        const float mean = ln ? stats[2 * r] : 0.0f;
        const float rstd = ln ? stats[2 * r + 1] : stats[r];
        double s1 = 0, s2 = 0;
        for (std::int64_t i = 0; i < d; ++i) {
            const auto k = static_cast<std::size_t>(i);
            const float dy = load_value(op.dy.data, op.dy.dtype, r * d + i);
            xhat[k] = (load_value(op.x.data, op.x.dtype, r * d + i) - mean) * rstd;
            dxhat[k] = dy * load_value(op.weight.data, op.weight.dtype, i);
            s1 += dxhat[k];
            s2 += static_cast<double>(dxhat[k]) * xhat[k];
            dw[k] += static_cast<double>(dy) * xhat[k];
            db[k] += dy;
        }
        const float m1 = ln ? static_cast<float>(s1 / static_cast<double>(d)) : 0.0f;
        const float m2 = static_cast<float>(s2 / static_cast<double>(d));
        if (op.dx.empty()) continue;
        for (std::int64_t i = 0; i < d; ++i) {
            const auto k = static_cast<std::size_t>(i);
            float v = rstd * (dxhat[k] - m1 - xhat[k] * m2);
            if (op.accumulate) v += load_value(op.dx.data, op.dx.dtype, r * d + i);
            store_value(op.dx.data, op.dx.dtype, r * d + i, v);
        }
    }
    for (std::int64_t i = 0; i < d; ++i) {
        const auto k = static_cast<std::size_t>(i);
        if (!op.dweight.empty())
            store_value(op.dweight.data, op.dweight.dtype, i,
                        load_value(op.dweight.data, op.dweight.dtype, i) + static_cast<float>(dw[k]));
        if (!op.dbias.empty())
            store_value(op.dbias.data, op.dbias.dtype, i, load_value(op.dbias.data, op.dbias.dtype, i) + static_cast<float>(db[k]));
    }
}

void CpuDevice::activation_forward(Activation f, const Tensor& x, const Tensor& y) {
    const std::int64_t n = x.numel();
    for (std::int64_t i = 0; i < n; ++i) store_value(y.data, y.dtype, i, act(f, load_value(x.data, x.dtype, i)));
}

void CpuDevice::activation_backward(Activation f, const Tensor& x, const Tensor& dy, const Tensor& dx, bool accumulate) {
    const std::int64_t n = x.numel();
    for (std::int64_t i = 0; i < n; ++i) {
        float v = load_value(dy.data, dy.dtype, i) * act_grad(f, load_value(x.data, x.dtype, i));
        if (accumulate) v += load_value(dx.data, dx.dtype, i);
        store_value(dx.data, dx.dtype, i, v);
    }
}

void CpuDevice::mul(const Tensor& a, const Tensor& b, const Tensor& out, bool accumulate) {
    const std::int64_t n = out.numel();
    for (std::int64_t i = 0; i < n; ++i) {
        float v = load_value(a.data, a.dtype, i) * load_value(b.data, b.dtype, i);
        if (accumulate) v += load_value(out.data, out.dtype, i);
        store_value(out.data, out.dtype, i, v);
    }
}

void CpuDevice::axpby(float alpha, const Tensor& a, float beta, const Tensor& b, const Tensor& out) {
    const std::int64_t n = out.numel();
    for (std::int64_t i = 0; i < n; ++i) {
        float v = alpha * load_value(a.data, a.dtype, i);
        if (!b.empty()) v += beta * load_value(b.data, b.dtype, i);
        store_value(out.data, out.dtype, i, v);
    }
}

void CpuDevice::add_bias(const Tensor& x, const Tensor& bias) {
    const std::int64_t n = bias.numel(), rows = x.numel() / n;
    for (std::int64_t r = 0; r < rows; ++r)
        for (std::int64_t j = 0; j < n; ++j)
            store_value(x.data, x.dtype, r * n + j,
                        load_value(x.data, x.dtype, r * n + j) + load_value(bias.data, bias.dtype, j));
}

void CpuDevice::bias_grad(const Tensor& dy, const Tensor& dbias) {
    const std::int64_t n = dbias.numel(), rows = dy.numel() / n;
    for (std::int64_t j = 0; j < n; ++j) {
        double s = 0;
        for (std::int64_t r = 0; r < rows; ++r) s += load_value(dy.data, dy.dtype, r * n + j);
        store_value(dbias.data, dbias.dtype, j, load_value(dbias.data, dbias.dtype, j) + static_cast<float>(s));
    }
}

void CpuDevice::softmax_forward(const SoftmaxOp& op) {
    SHARDSIM_ASSERT(op.scores.shape.size() == 4 && op.scores.dtype == DType::fp32, "softmax: fp32 [b, h, sq, sk] scores");
    SHARDSIM_ASSERT(!op.use_lse || !op.lse.empty(), "softmax: use_lse without an lse");
    const std::int64_t heads = op.scores.shape[1], sq = op.scores.shape[2], sk = op.scores.shape[3];
    const std::int64_t rows = op.scores.numel() / sk;
    const auto* s = static_cast<const float*>(op.scores.data);
    const auto* slopes = static_cast<const float*>(op.alibi.data);
    auto* lse = static_cast<float*>(op.lse.data);
    std::vector<float> v(static_cast<std::size_t>(sk));
    for (std::int64_t r = 0; r < rows; ++r) {
        const std::int64_t i = r % sq, h = (r / sq) % heads;
        float mx = -std::numeric_limits<float>::infinity();
        for (std::int64_t j = 0; j < sk; ++j) {
            float x = -std::numeric_limits<float>::infinity();
            if (!op.causal || j <= i + (sk - sq)) {
                x = op.scale * s[r * sk + j];
                if (!op.bias.empty()) x += load_value(op.bias.data, op.bias.dtype, (h * sq + i) * sk + j);
                if (slopes) x += slopes[h] * static_cast<float>(j);
            }
            v[static_cast<std::size_t>(j)] = x;
            mx = std::max(mx, x);
        }
        if (op.use_lse) {
            for (std::int64_t j = 0; j < sk; ++j)
                store_value(op.probs.data, op.probs.dtype, r * sk + j, std::exp(v[static_cast<std::size_t>(j)] - lse[r]));
            continue;
        }
        double sum = 0;
        for (auto& x : v) {
            x = std::exp(x - mx);
            sum += x;
        }
        const auto inv = static_cast<float>(1.0 / sum);
        for (std::int64_t j = 0; j < sk; ++j) store_value(op.probs.data, op.probs.dtype, r * sk + j, v[static_cast<std::size_t>(j)] * inv);
        if (lse) lse[r] = mx + static_cast<float>(std::log(sum));
    }
}

void CpuDevice::softmax_backward(const SoftmaxGradOp& op) {
    const std::int64_t heads = op.probs.shape[1], sq = op.probs.shape[2], sk = op.probs.shape[3];
    const std::int64_t rows = op.probs.numel() / sk;
    for (std::int64_t r = 0; r < rows; ++r) {
        double dot = 0;
        for (std::int64_t j = 0; j < sk; ++j)
            dot += static_cast<double>(load_value(op.probs.data, op.probs.dtype, r * sk + j)) *
                   load_value(op.dprobs.data, op.dprobs.dtype, r * sk + j);
        const std::int64_t i = r % sq, h = (r / sq) % heads;
        for (std::int64_t j = 0; j < sk; ++j) {
            const float p = load_value(op.probs.data, op.probs.dtype, r * sk + j);
            const float ds = p * (load_value(op.dprobs.data, op.dprobs.dtype, r * sk + j) - static_cast<float>(dot));
            store_value(op.dscores.data, op.dscores.dtype, r * sk + j, ds);
            if (!op.dbias.empty()) static_cast<float*>(op.dbias.data)[(h * sq + i) * sk + j] += ds;
        }
    }
}

void CpuDevice::rotary(const RotaryOp& op) {
    const std::int64_t tokens = op.x.numel() / (op.heads * op.head_dim), half = op.rotary_dim / 2;
    std::vector<float> inv_freq(static_cast<std::size_t>(half));
    for (std::int64_t i = 0; i < half; ++i)
        inv_freq[static_cast<std::size_t>(i)] =
            1.0f / std::pow(op.base, static_cast<float>(2 * i) / static_cast<float>(op.rotary_dim));
    for (std::int64_t t = 0; t < tokens; ++t) {
        const auto pos = static_cast<float>(t % op.seq);
        for (std::int64_t i = 0; i < half; ++i) {
            const float angle = pos * inv_freq[static_cast<std::size_t>(i)];
            const float c = std::cos(angle), s = op.inverse ? -std::sin(angle) : std::sin(angle);
            const std::int64_t i1 = op.interleaved ? 2 * i : i, i2 = op.interleaved ? 2 * i + 1 : i + half;
            for (std::int64_t h = 0; h < op.heads; ++h) {
                const std::int64_t base = (t * op.heads + h) * op.head_dim;
                const float x1 = load_value(op.x.data, op.x.dtype, base + i1), x2 = load_value(op.x.data, op.x.dtype, base + i2);
                store_value(op.x.data, op.x.dtype, base + i1, x1 * c - x2 * s);
                store_value(op.x.data, op.x.dtype, base + i2, x2 * c + x1 * s);
            }
        }
    }
}

void CpuDevice::embedding_forward(const EmbeddingOp& op) {
    const std::int64_t d = last_dim(op.out), rows = op.out.numel() / d, vocab = op.table.numel() / d;
    for (std::int64_t t = 0; t < rows; ++t) {
        const std::int64_t id = op.ids[t];
        SHARDSIM_ASSERT(id >= 0 && id < vocab, "embedding: id " + std::to_string(id) + " outside the table");
        for (std::int64_t j = 0; j < d; ++j) {
            float v = load_value(op.table.data, op.table.dtype, id * d + j);
            if (op.accumulate) v += load_value(op.out.data, op.out.dtype, t * d + j);
            store_value(op.out.data, op.out.dtype, t * d + j, v);
        }
    }
}

void CpuDevice::embedding_backward(const EmbeddingOp& op) {
    const std::int64_t d = last_dim(op.out), rows = op.out.numel() / d;
    std::vector<std::int64_t> order(static_cast<std::size_t>(rows));
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](std::int64_t a, std::int64_t b) { return op.ids[a] < op.ids[b]; });
    std::vector<double> sum(static_cast<std::size_t>(d));
    for (std::size_t s = 0; s < order.size();) {
        const std::int64_t id = op.ids[order[s]];
        std::fill(sum.begin(), sum.end(), 0.0);
        for (; s < order.size() && op.ids[order[s]] == id; ++s)
            for (std::int64_t j = 0; j < d; ++j) sum[static_cast<std::size_t>(j)] += load_value(op.out.data, op.out.dtype, order[s] * d + j);
        for (std::int64_t j = 0; j < d; ++j)
            store_value(op.table.data, op.table.dtype, id * d + j,
                        load_value(op.table.data, op.table.dtype, id * d + j) + static_cast<float>(sum[static_cast<std::size_t>(j)]));
    }
}

// Logits and log-probabilities in any dtype (fp32 after logits.float(), or the model's: T5's loss).
void CpuDevice::cross_entropy_forward(const CrossEntropyOp& op) {
    const std::int64_t vocab = last_dim(op.logits), rows = op.logits.numel() / vocab;
    auto* loss = static_cast<float*>(op.losses.data);
    std::vector<float> row(static_cast<std::size_t>(vocab));
    for (std::int64_t r = 0; r < rows; ++r) {
        for (std::int64_t j = 0; j < vocab; ++j) row[static_cast<std::size_t>(j)] = load_value(op.logits.data, op.logits.dtype, r * vocab + j);
        const float mx = *std::max_element(row.begin(), row.end());
        double sum = 0;
        for (float v : row) sum += std::exp(static_cast<double>(v - mx));
        const float lse = mx + static_cast<float>(std::log(sum));
        for (std::int64_t j = 0; j < vocab; ++j) store_value(op.log_probs.data, op.log_probs.dtype, r * vocab + j, row[static_cast<std::size_t>(j)] - lse);
        const std::int64_t t = op.targets[r];
        SHARDSIM_ASSERT(t >= 0 && t < vocab, "cross-entropy: target outside the vocabulary");
        loss[r] = -load_value(op.log_probs.data, op.log_probs.dtype, r * vocab + t);
    }
}

void CpuDevice::cross_entropy_backward(const CrossEntropyOp& op, float scale, const Tensor& dlogits) {
    const std::int64_t vocab = last_dim(op.log_probs), rows = op.log_probs.numel() / vocab;
    for (std::int64_t r = 0; r < rows; ++r)
        for (std::int64_t j = 0; j < vocab; ++j) {
            const float onehot = j == op.targets[r] ? 1.0f : 0.0f;
            const float lp = load_value(op.log_probs.data, op.log_probs.dtype, r * vocab + j);
            store_value(dlogits.data, dlogits.dtype, r * vocab + j, scale * (std::exp(lp) - onehot));
        }
}

void CpuDevice::cross_entropy_fused(const CrossEntropyOp& op, float scale) {
    const std::int64_t vocab = last_dim(op.logits), rows = op.logits.numel() / vocab;
    auto* loss = static_cast<float*>(op.losses.data);
    std::vector<float> x(static_cast<std::size_t>(vocab));
    for (std::int64_t r = 0; r < rows; ++r) {
        for (std::int64_t j = 0; j < vocab; ++j) x[static_cast<std::size_t>(j)] = load_value(op.logits.data, op.logits.dtype, r * vocab + j);
        const float mx = *std::max_element(x.begin(), x.end());
        double sum = 0;
        for (float v : x) sum += std::exp(static_cast<double>(v - mx));
        const float lse = mx + static_cast<float>(std::log(sum));
        const std::int64_t t = op.targets[r];
        SHARDSIM_ASSERT(t >= 0 && t < vocab, "cross-entropy: target outside the vocabulary");
        loss[r] = lse - x[static_cast<std::size_t>(t)];
        for (std::int64_t j = 0; j < vocab; ++j)
            store_value(op.logits.data, op.logits.dtype, r * vocab + j,
                        scale * (std::exp(x[static_cast<std::size_t>(j)] - lse) - (j == t ? 1.0f : 0.0f)));
    }
}

void CpuDevice::dropout(const DropoutOp& op) {
    SHARDSIM_ASSERT(op.p >= 0 && op.p < 1 && op.cols <= op.width && op.rows_per_sample > 0, "dropout: bad arguments");
    SHARDSIM_ASSERT(op.x.numel() == op.rows * op.cols && op.out.numel() == op.rows * op.cols, "dropout: tensors of another size");
    const std::uint32_t threshold = dropout_bits::threshold(op.p);
    const float scale = 1.0f / (1.0f - op.p);
    for (std::int64_t r = 0; r < op.rows; ++r)
        for (std::int64_t c = 0; c < op.cols; ++c) {
            const std::int64_t i = r * op.cols + c;
            const bool keep = op.mask_in ? op.mask_in[i] != 0
                                         : dropout_bits::keep_at(op.key, op.first_sample, op.row0, op.rows_per_sample, op.width, r, c,
                                                                 threshold);
            if (op.mask_out) op.mask_out[i] = keep ? 1 : 0;
            float v = keep ? load_value(op.x.data, op.x.dtype, i) * scale : 0.0f;
            if (op.accumulate) v += load_value(op.out.data, op.out.dtype, i);
            store_value(op.out.data, op.out.dtype, i, v);
        }
}

}  // namespace shardsim::device
