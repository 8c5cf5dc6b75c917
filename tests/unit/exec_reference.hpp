#pragma once
// Double-precision host references of the device kernels, and central finite differences over
// them: what test_exec_kernels.cpp checks the CPU device against (and the gpu tests reuse).
#include <cmath>
#include <functional>
#include <vector>

namespace shardsim::test::ref {

using V = std::vector<double>;

constexpr double kGeluC = 0.7978845608028654;
constexpr double kGeluK = 0.044715;

inline double gelu(double x) { return 0.5 * x * (1.0 + std::tanh(kGeluC * (x + kGeluK * x * x * x))); }
inline double silu(double x) { return x / (1.0 + std::exp(-x)); }
inline double relu(double x) { return x > 0 ? x : 0.0; }

// sum_i w[i] * f(x)[i]
inline double dot(const V& w, const V& y) {
    double s = 0;
    for (std::size_t i = 0; i < y.size(); ++i) s += w[i] * y[i];
    return s;
}

// d/dx of the scalar f(x), central differences in double.
inline V fd_grad(const std::function<double(const V&)>& f, V x, double h = 1e-6) {
    V g(x.size());
    for (std::size_t i = 0; i < x.size(); ++i) {
        const double x0 = x[i];
        x[i] = x0 + h;
        const double up = f(x);
        x[i] = x0 - h;
        const double down = f(x);
        x[i] = x0;
        g[i] = (up - down) / (2 * h);
    }
    return g;
}

// LayerNorm (layernorm = true) or RMSNorm over rows of d.
inline V norm(const V& x, const V& w, const V& b, std::size_t d, bool layernorm, double eps) {
    V y(x.size());
    for (std::size_t r = 0; r < x.size() / d; ++r) {
        double mean = 0, var = 0;
        if (layernorm) {
            for (std::size_t i = 0; i < d; ++i) mean += x[r * d + i];
            mean /= static_cast<double>(d);
        }
        for (std::size_t i = 0; i < d; ++i) var += (x[r * d + i] - mean) * (x[r * d + i] - mean);
        const double rstd = 1.0 / std::sqrt(var / static_cast<double>(d) + eps);
        for (std::size_t i = 0; i < d; ++i) y[r * d + i] = (x[r * d + i] - mean) * rstd * w[i] + (b.empty() ? 0.0 : b[i]);
    }
    return y;
}

struct SoftmaxShape {
    std::size_t batch = 1, heads = 1, sq = 1, sk = 1;
    double scale = 1;
    bool causal = false;
};

// softmax over keys of scale * s + bias[h, i, j] + slope[h] * j, causally masked.
inline V softmax(const V& s, const V& bias, const V& slopes, const SoftmaxShape& m) {
    V p(s.size());
    const std::size_t rows = s.size() / m.sk;
    for (std::size_t r = 0; r < rows; ++r) {
        const std::size_t i = r % m.sq, h = (r / m.sq) % m.heads;
        V z(m.sk);
        double mx = -INFINITY;
        for (std::size_t j = 0; j < m.sk; ++j) {
            z[j] = -INFINITY;
            if (m.causal && j > i + (m.sk - m.sq)) continue;
            z[j] = m.scale * s[r * m.sk + j] + (bias.empty() ? 0.0 : bias[(h * m.sq + i) * m.sk + j]) +
                   (slopes.empty() ? 0.0 : slopes[h] * static_cast<double>(j));
            mx = std::max(mx, z[j]);
        }
        double sum = 0;
        for (auto& v : z) sum += (v = std::exp(v - mx));
        for (std::size_t j = 0; j < m.sk; ++j) p[r * m.sk + j] = z[j] / sum;
    }
    return p;
}

// Rotary on [tokens, heads, hd]; position = token % seq.
inline V rotary(const V& x, std::size_t heads, std::size_t hd, std::size_t rd, std::size_t seq, bool interleaved) {
    V y = x;
    const std::size_t tokens = x.size() / (heads * hd);
    for (std::size_t t = 0; t < tokens; ++t)
        for (std::size_t h = 0; h < heads; ++h)
            for (std::size_t i = 0; i < rd / 2; ++i) {
                const double theta = static_cast<double>(t % seq) * std::pow(10000.0, -2.0 * static_cast<double>(i) / static_cast<double>(rd));
                const std::size_t base = (t * heads + h) * hd;
                const std::size_t a = base + (interleaved ? 2 * i : i), b = base + (interleaved ? 2 * i + 1 : i + rd / 2);
                y[a] = x[a] * std::cos(theta) - x[b] * std::sin(theta);
                y[b] = x[b] * std::cos(theta) + x[a] * std::sin(theta);
            }
    return y;
}

// Row-major c[m, n] = alpha * op(a) op(b) + beta * c; a stored [m, k] (or [k, m] when ta).
inline V gemm(const V& a, const V& b, const V& c, std::size_t m, std::size_t n, std::size_t k, bool ta, bool tb, double alpha,
              double beta) {
    V out(m * n);
    for (std::size_t i = 0; i < m; ++i)
        for (std::size_t j = 0; j < n; ++j) {
            double s = 0;
            for (std::size_t p = 0; p < k; ++p) s += (ta ? a[p * m + i] : a[i * k + p]) * (tb ? b[j * k + p] : b[p * n + j]);
            out[i * n + j] = alpha * s + (beta == 0 ? 0.0 : beta * c[i * n + j]);
        }
    return out;
}

// Per-row log-softmax and the mean... per-token losses against targets.
inline V cross_entropy(const V& logits, const std::vector<int>& targets, std::size_t vocab) {
    V loss(targets.size());
    for (std::size_t r = 0; r < targets.size(); ++r) {
        double mx = -INFINITY, sum = 0;
        for (std::size_t j = 0; j < vocab; ++j) mx = std::max(mx, logits[r * vocab + j]);
        for (std::size_t j = 0; j < vocab; ++j) sum += std::exp(logits[r * vocab + j] - mx);
        loss[r] = mx + std::log(sum) - logits[r * vocab + static_cast<std::size_t>(targets[r])];
    }
    return loss;
}

}  // namespace shardsim::test::ref
