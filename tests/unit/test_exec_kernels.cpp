// Every device kernel on the CPU device against a double-precision host reference: forward values,
// and each backward against central finite differences of the reference (in double).
#include <doctest/doctest.h>

#include <cmath>

#include "exec_reference.hpp"
#include "train_helpers.hpp"

using namespace shardsim;
using test::download;
using test::random_values;
using test::upload;
using test::zeros;
using V = std::vector<double>;

namespace {

// max |a - b| / (1 + |b|): relative for large values, absolute for small ones.
double err(const V& a, const V& b) {
    REQUIRE(a.size() == b.size());
    double e = 0;
    for (std::size_t i = 0; i < a.size(); ++i) e = std::max(e, std::abs(a[i] - b[i]) / (1.0 + std::abs(b[i])));
    return e;
}

constexpr double kFwd = 2e-6;  // fp32 kernels against the double reference
constexpr double kBwd = 2e-5;  // fp32 backward against double finite differences

std::int64_t n64(const V& v) { return static_cast<std::int64_t>(v.size()); }

}  // namespace

TEST_CASE("gemm: transposes, leading dims, batches with strides and broadcast, alpha/beta, 16-bit operands") {
    auto dev = device::make_cpu_device();
    const std::int64_t m = 3, n = 5, k = 4;
    for (const bool ta : {false, true})
        for (const bool tb : {false, true})
            for (const DType dt : {DType::fp32, DType::bf16}) {
                CAPTURE(ta);
                CAPTURE(tb);
                CAPTURE(dtype_name(dt));
                // Two matrices per operand, with padded leading dims; b is broadcast (stride 0).
                const std::int64_t lda = (ta ? m : k) + 2, ldb = (tb ? k : n) + 1, ldc = n + 3;
                const std::int64_t a_rows = ta ? k : m, b_rows = tb ? n : k;
                V a = random_values(static_cast<std::size_t>(2 * a_rows * lda), 1), b = random_values(static_cast<std::size_t>(b_rows * ldb), 2);
                V c = random_values(static_cast<std::size_t>(2 * m * ldc), 3);
                for (auto* v : {&a, &b, &c})
                    for (auto& x : *v) x = shardsim::round_to(dt, static_cast<float>(x));  // exact in dt
                auto da = upload(*dev, a, dt, {n64(a)}), db = upload(*dev, b, dt, {n64(b)}), dc = upload(*dev, c, dt, {n64(c)});
                device::GemmOp op;
                op.a = {da.t.data, dt, lda, a_rows * lda, ta};
                op.b = {db.t.data, dt, ldb, 0, tb};
                op.c = {dc.t.data, dt, ldc, m * ldc, false};
                op.m = m;
                op.n = n;
                op.k = k;
                op.batch = 2;
                op.alpha = 0.5f;
                op.beta = 2.0f;
                const double before = dev->gemm_flops();
                dev->gemm(op);
                CHECK(dev->gemm_flops() - before == 2.0 * m * n * k * 2);
                const V got = download(*dev, dc.t);
                for (std::int64_t bi = 0; bi < 2; ++bi) {
                    auto dense = [](const V& src, std::int64_t off, std::int64_t rows, std::int64_t cols, std::int64_t ld) {
                        V out;
                        for (std::int64_t i = 0; i < rows; ++i)
                            for (std::int64_t j = 0; j < cols; ++j) out.push_back(src[static_cast<std::size_t>(off + i * ld + j)]);
                        return out;
                    };
                    const V want = test::ref::gemm(dense(a, bi * a_rows * lda, a_rows, ta ? m : k, lda), dense(b, 0, b_rows, tb ? k : n, ldb),
                                                   dense(c, bi * m * ldc, m, n, ldc), m, n, k, ta, tb, 0.5, 2.0);
                    V have = dense(got, bi * m * ldc, m, n, ldc);
                    V want_rounded = want;
                    for (auto& x : want_rounded) x = shardsim::round_to(dt, static_cast<float>(x));
                    CHECK(err(have, want_rounded) < (dt == DType::fp32 ? kFwd : 8e-3));
                }
                // The padding between rows of c is untouched.
                for (std::int64_t i = 0; i < 2 * m; ++i)
                    for (std::int64_t j = n; j < ldc; ++j)
                        CHECK(got[static_cast<std::size_t>(i * ldc + j)] == c[static_cast<std::size_t>(i * ldc + j)]);
            }
}

TEST_CASE("layernorm and rmsnorm: forward, and dx, dweight, dbias against finite differences") {
    auto dev = device::make_cpu_device();
    const std::size_t rows = 3, d = 8;
    for (const bool ln : {true, false}) {
        CAPTURE(ln);
        const V x = random_values(rows * d, 4), w = random_values(d, 5, 0.5), b = ln ? random_values(d, 6) : V{};
        const V wy = random_values(rows * d, 7);  // L = sum(wy * y)
        const double eps = 1e-5;
        auto dx = upload(*dev, x, DType::fp32, {3, 8}), dw = upload(*dev, w, DType::fp32, {8});
        auto dbias = ln ? upload(*dev, b, DType::fp32, {8}) : test::DeviceTensor{};
        auto y = zeros(*dev, DType::fp32, {3, 8}), stats = zeros(*dev, DType::fp32, {3, ln ? 2 : 1});
        device::NormOp op;
        op.kind = ln ? model::NormKind::layernorm : model::NormKind::rmsnorm;
        op.x = dx.t;
        op.weight = dw.t;
        op.bias = dbias.t;
        op.y = y.t;
        op.stats = stats.t;
        op.eps = static_cast<float>(eps);
        dev->norm_forward(op);
        CHECK(err(download(*dev, y.t), test::ref::norm(x, w, b, d, ln, eps)) < kFwd);
        // Backward; dx accumulates onto what is there (1.0 everywhere).
        const V start(rows * d, 1.0);
        auto gx = upload(*dev, start, DType::fp32, {3, 8}), gw = zeros(*dev, DType::fp32, {8}), gb = zeros(*dev, DType::fp32, {8});
        auto gy = upload(*dev, wy, DType::fp32, {3, 8});
        device::NormGradOp g;
        g.kind = op.kind;
        g.x = dx.t;
        g.weight = dw.t;
        g.stats = stats.t;
        g.dy = gy.t;
        g.dx = gx.t;
        g.dweight = gw.t;
        g.dbias = ln ? gb.t : device::Tensor{};
        g.accumulate = true;
        dev->norm_backward(g);
        V want_dx = test::ref::fd_grad([&](const V& xx) { return test::ref::dot(wy, test::ref::norm(xx, w, b, d, ln, eps)); }, x);
        for (auto& v : want_dx) v += 1.0;
        CHECK(err(download(*dev, gx.t), want_dx) < kBwd);
        CHECK(err(download(*dev, gw.t), test::ref::fd_grad([&](const V& ww) { return test::ref::dot(wy, test::ref::norm(x, ww, b, d, ln, eps)); }, w)) < kBwd);
        if (ln)
            CHECK(err(download(*dev, gb.t), test::ref::fd_grad([&](const V& bb) { return test::ref::dot(wy, test::ref::norm(x, w, bb, d, ln, eps)); }, b)) < kBwd);
    }
}

TEST_CASE("activations: gelu_new, relu, silu forward and backward") {
    auto dev = device::make_cpu_device();
    V x = random_values(40, 8, 2.0);
    for (auto& v : x)
        if (std::abs(v) < 1e-3) v = 0.5;  // keep ReLU's kink out of the differences
    const V wy = random_values(40, 9);
    struct Case {
        device::Activation f;
        double (*ref)(double);
    };
    for (const Case c : {Case{device::Activation::gelu_tanh, test::ref::gelu}, Case{device::Activation::relu, test::ref::relu},
                         Case{device::Activation::silu, test::ref::silu}}) {
        CAPTURE(static_cast<int>(c.f));
        auto dx = upload(*dev, x, DType::fp32, {40}), y = zeros(*dev, DType::fp32, {40});
        dev->activation_forward(c.f, dx.t, y.t);
        V want(40);
        for (std::size_t i = 0; i < 40; ++i) want[i] = c.ref(x[i]);
        CHECK(err(download(*dev, y.t), want) < kFwd);
        auto gy = upload(*dev, wy, DType::fp32, {40}), gx = zeros(*dev, DType::fp32, {40});
        // ReLU is given its output, as the model keeps it.
        dev->activation_backward(c.f, c.f == device::Activation::relu ? y.t : dx.t, gy.t, gx.t, false);
        const V fd = test::ref::fd_grad(
            [&](const V& xx) {
                double s = 0;
                for (std::size_t i = 0; i < xx.size(); ++i) s += wy[i] * c.ref(xx[i]);
                return s;
            },
            x);
        CHECK(err(download(*dev, gx.t), fd) < kBwd);
    }
}

TEST_CASE("elementwise: mul, axpby, bias add and bias gradient") {
    auto dev = device::make_cpu_device();
    const V a = random_values(12, 10), b = random_values(12, 11), bias = random_values(4, 12);
    auto da = upload(*dev, a, DType::fp32, {3, 4}), db = upload(*dev, b, DType::fp32, {3, 4});
    auto out = upload(*dev, V(12, 1.0), DType::fp32, {3, 4});
    dev->mul(da.t, db.t, out.t, true);
    V want(12);
    for (std::size_t i = 0; i < 12; ++i) want[i] = 1.0 + a[i] * b[i];
    CHECK(err(download(*dev, out.t), want) < kFwd);
    dev->axpby(2.0f, da.t, -3.0f, db.t, out.t);
    for (std::size_t i = 0; i < 12; ++i) want[i] = 2 * a[i] - 3 * b[i];
    CHECK(err(download(*dev, out.t), want) < kFwd);
    auto dbias = upload(*dev, bias, DType::fp32, {4});
    dev->add_bias(da.t, dbias.t);
    for (std::size_t i = 0; i < 12; ++i) want[i] = a[i] + bias[i % 4];
    CHECK(err(download(*dev, da.t), want) < kFwd);
    auto gb = upload(*dev, V(4, 1.0), DType::fp32, {4});
    dev->bias_grad(db.t, gb.t);
    V sums(4, 1.0);
    for (std::size_t i = 0; i < 12; ++i) sums[i % 4] += b[i];
    CHECK(err(download(*dev, gb.t), sums) < kFwd);
}

TEST_CASE("attention softmax: scale, causal mask, additive bias, ALiBi; backward with the bias gradient") {
    auto dev = device::make_cpu_device();
    test::ref::SoftmaxShape m{2, 2, 3, 4, 0.7, true};  // causal with sk > sq: keys offset by sk - sq
    const std::size_t n = m.batch * m.heads * m.sq * m.sk;
    const V s = random_values(n, 13), bias = random_values(m.heads * m.sq * m.sk, 14), slopes = {0.5, 0.25};
    const V wp = random_values(n, 15);
    for (const bool with_bias : {false, true}) {
        CAPTURE(with_bias);
        const V bias_used = with_bias ? bias : V{}, slopes_used = with_bias ? V{} : slopes;
        auto ds = upload(*dev, s, DType::fp32, {2, 2, 3, 4}), probs = zeros(*dev, DType::fp32, {2, 2, 3, 4});
        auto dbias_in = upload(*dev, bias, DType::fp32, {2, 3, 4}), dslopes = upload(*dev, slopes, DType::fp32, {2});
        device::SoftmaxOp op;
        op.scores = ds.t;
        op.probs = probs.t;
        op.scale = static_cast<float>(m.scale);
        op.causal = true;
        if (with_bias) op.bias = dbias_in.t;
        else op.alibi = dslopes.t;
        dev->softmax_forward(op);
        const V p = download(*dev, probs.t);
        CHECK(err(p, test::ref::softmax(s, bias_used, slopes_used, m)) < kFwd);
        auto dp = upload(*dev, wp, DType::fp32, {2, 2, 3, 4}), gbias = zeros(*dev, DType::fp32, {2, 3, 4});
        device::SoftmaxGradOp g;
        g.probs = probs.t;
        g.dprobs = dp.t;
        g.dscores = dp.t;  // in place, as the model runs it
        g.dbias = gbias.t;
        dev->softmax_backward(g);
        V dscores = download(*dev, dp.t);
        for (auto& v : dscores) v *= m.scale;  // d(scale * s)/ds
        CHECK(err(dscores, test::ref::fd_grad([&](const V& ss) { return test::ref::dot(wp, test::ref::softmax(ss, bias_used, slopes_used, m)); }, s)) < kBwd);
        if (with_bias)
            CHECK(err(download(*dev, gbias.t), test::ref::fd_grad([&](const V& bb) { return test::ref::dot(wp, test::ref::softmax(s, bb, {}, m)); }, bias)) < kBwd);
    }
}

TEST_CASE("rotary: rotate_half and interleaved, full and partial; the inverse is the backward") {
    auto dev = device::make_cpu_device();
    const std::size_t heads = 2, hd = 8, seq = 3, tokens = 6;
    const V x = random_values(tokens * heads * hd, 16), wy = random_values(tokens * heads * hd, 17);
    for (const bool interleaved : {false, true})
        for (const std::size_t rd : {std::size_t{4}, std::size_t{8}}) {
            CAPTURE(interleaved);
            CAPTURE(rd);
            auto dx = upload(*dev, x, DType::fp32, {6, 2, 8});
            device::RotaryOp op;
            op.x = dx.t;
            op.heads = 2;
            op.head_dim = 8;
            op.rotary_dim = static_cast<std::int64_t>(rd);
            op.seq = 3;
            op.interleaved = interleaved;
            dev->rotary(op);
            CHECK(err(download(*dev, dx.t), test::ref::rotary(x, heads, hd, rd, seq, interleaved)) < kFwd);
            auto g = upload(*dev, wy, DType::fp32, {6, 2, 8});
            op.x = g.t;
            op.inverse = true;
            dev->rotary(op);
            const V fd = test::ref::fd_grad([&](const V& xx) { return test::ref::dot(wy, test::ref::rotary(xx, heads, hd, rd, seq, interleaved)); }, x);
            CHECK(err(download(*dev, g.t), fd) < kBwd);
        }
}

TEST_CASE("embedding: gather (and add), and the scatter-add backward summed per row") {
    auto dev = device::make_cpu_device();
    const V table = random_values(5 * 3, 18), start = random_values(4 * 3, 19), wy = random_values(4 * 3, 20);
    const std::vector<std::int32_t> ids = {3, 1, 3, 0};
    const auto dids = dev->allocator().allocate(16, MemCategory::temporaries, "ids");
    dev->copy_from_host(dids, ids.data(), 16);
    auto dt = upload(*dev, table, DType::fp32, {5, 3}), out = upload(*dev, start, DType::fp32, {4, 3});
    device::EmbeddingOp op;
    op.table = dt.t;
    op.out = out.t;
    op.ids = static_cast<const std::int32_t*>(dids);
    op.accumulate = true;
    dev->embedding_forward(op);
    auto gather = [&](const V& tab) {
        V y(12);
        for (std::size_t t = 0; t < 4; ++t)
            for (std::size_t j = 0; j < 3; ++j) y[t * 3 + j] = start[t * 3 + j] + tab[static_cast<std::size_t>(ids[t]) * 3 + j];
        return y;
    };
    CHECK(err(download(*dev, out.t), gather(table)) < kFwd);
    auto gt = upload(*dev, V(15, 0.5), DType::fp32, {5, 3}), gy = upload(*dev, wy, DType::fp32, {4, 3});
    op.table = gt.t;
    op.out = gy.t;
    dev->embedding_backward(op);
    V want = test::ref::fd_grad([&](const V& tab) { return test::ref::dot(wy, gather(tab)); }, table);
    for (auto& v : want) v += 0.5;
    CHECK(err(download(*dev, gt.t), want) < kBwd);
    dev->allocator().release(dids);
}

TEST_CASE("cross-entropy: log-softmax and token losses; the backward is scale * (softmax - onehot)") {
    auto dev = device::make_cpu_device();
    const std::size_t rows = 3, vocab = 7;
    const V logits = random_values(rows * vocab, 21, 3.0);
    const std::vector<std::int32_t> targets = {2, 6, 0};
    const std::vector<int> t_int(targets.begin(), targets.end());
    const auto dtg = dev->allocator().allocate(12, MemCategory::temporaries, "targets");
    dev->copy_from_host(dtg, targets.data(), 12);
    auto dl = upload(*dev, logits, DType::fp32, {3, 7}), lp = zeros(*dev, DType::fp32, {3, 7}), loss = zeros(*dev, DType::fp32, {3});
    device::CrossEntropyOp op;
    op.logits = dl.t;
    op.log_probs = lp.t;
    op.losses = loss.t;
    op.targets = static_cast<const std::int32_t*>(dtg);
    dev->cross_entropy_forward(op);
    CHECK(err(download(*dev, loss.t), test::ref::cross_entropy(logits, t_int, vocab)) < kFwd);
    auto g = zeros(*dev, DType::fp32, {3, 7});
    dev->cross_entropy_backward(op, 0.25f, g.t);
    const V fd = test::ref::fd_grad(
        [&](const V& x) {
            double s = 0;
            for (double l : test::ref::cross_entropy(x, t_int, vocab)) s += 0.25 * l;
            return s;
        },
        logits);
    CHECK(err(download(*dev, g.t), fd) < kBwd);
    dev->allocator().release(dtg);
}

TEST_CASE("fused cross-entropy: the eager kernels' loss, and their gradient written over the logits") {
    auto dev = device::make_cpu_device();
    const std::size_t rows = 3, vocab = 7;
    const V logits = random_values(rows * vocab, 21, 3.0);
    const std::vector<std::int32_t> targets = {2, 6, 0};
    const std::vector<int> t_int(targets.begin(), targets.end());
    const auto dtg = dev->allocator().allocate(12, MemCategory::temporaries, "targets");
    dev->copy_from_host(dtg, targets.data(), 12);
    auto x = upload(*dev, logits, DType::fp32, {3, 7}), loss = zeros(*dev, DType::fp32, {3});
    device::CrossEntropyOp op;
    op.logits = x.t;
    op.losses = loss.t;
    op.targets = static_cast<const std::int32_t*>(dtg);
    dev->cross_entropy_fused(op, 0.25f);
    CHECK(err(download(*dev, loss.t), test::ref::cross_entropy(logits, t_int, vocab)) < kFwd);
    const V fd = test::ref::fd_grad(
        [&](const V& xx) {
            double s = 0;
            for (double l : test::ref::cross_entropy(xx, t_int, vocab)) s += 0.25 * l;
            return s;
        },
        logits);
    CHECK(err(download(*dev, x.t), fd) < kBwd);
    // bf16 logits: the loss from the stored 16-bit values, the gradient rounded once into them.
    V rounded = logits;
    for (auto& v : rounded) v = shardsim::round_to(DType::bf16, static_cast<float>(v));
    auto xb = upload(*dev, rounded, DType::bf16, {3, 7});
    op.logits = xb.t;
    dev->cross_entropy_fused(op, 0.25f);
    CHECK(err(download(*dev, loss.t), test::ref::cross_entropy(rounded, t_int, vocab)) < kFwd);
    CHECK(err(download(*dev, xb.t), download(*dev, x.t)) < 2.0 / 256);
    dev->allocator().release(dtg);
}

TEST_CASE("softmax log-sum-exp: written in forward, and probabilities rebuilt from it as an sdpa backward does") {
    auto dev = device::make_cpu_device();
    test::ref::SoftmaxShape m{2, 2, 3, 4, 0.7, true};
    const std::size_t n = m.batch * m.heads * m.sq * m.sk;
    const V s = random_values(n, 13);
    auto ds = upload(*dev, s, DType::fp32, {2, 2, 3, 4}), probs = zeros(*dev, DType::fp32, {2, 2, 3, 4});
    auto lse = zeros(*dev, DType::fp32, {12}), again = zeros(*dev, DType::fp32, {2, 2, 3, 4});
    device::SoftmaxOp op;
    op.scores = ds.t;
    op.probs = probs.t;
    op.scale = static_cast<float>(m.scale);
    op.causal = true;
    op.lse = lse.t;
    dev->softmax_forward(op);
    const V want = test::ref::softmax(s, {}, {}, m);
    CHECK(err(download(*dev, probs.t), want) < kFwd);
    const V l = download(*dev, lse.t);
    for (std::size_t r = 0; r < 12; ++r) {  // lse = log sum over the keys row r sees
        const std::size_t i = r % m.sq;
        double sum = 0;
        for (std::size_t j = 0; j <= i + (m.sk - m.sq); ++j) sum += std::exp(m.scale * s[r * m.sk + j]);
        CHECK(std::abs(l[r] - std::log(sum)) < 1e-5);
    }
    op.probs = again.t;
    op.use_lse = true;
    dev->softmax_forward(op);
    CHECK(err(download(*dev, again.t), want) < kFwd);
}

TEST_CASE("dropout: PyTorch's rule, a mask drawn per global sample and element, the same whatever the blocks") {
    auto dev = device::make_cpu_device();
    const std::int64_t samples = 4, rows_per_sample = 50, width = 500, n = samples * rows_per_sample * width;
    const float p = 0.1f;
    const V x = random_values(static_cast<std::size_t>(n), 30);
    auto dx = upload(*dev, x, DType::fp32, {n}), out = zeros(*dev, DType::fp32, {n});
    device::Buffer mask(dev->allocator(), n, MemCategory::activations, "mask");
    device::DropoutOp op;
    op.x = dx.t;
    op.out = out.t;
    op.mask_out = mask.as<std::uint8_t>();
    op.p = p;
    op.key = 12345;
    op.rows = samples * rows_per_sample;
    op.cols = width;
    op.first_sample = 3;
    op.rows_per_sample = rows_per_sample;
    op.width = width;
    dev->dropout(op);
    const V y = download(*dev, out.t);
    std::vector<std::uint8_t> bits(static_cast<std::size_t>(n));
    dev->copy_to_host(bits.data(), mask.data(), n);
    std::int64_t dropped = 0, wrong = 0;
    for (std::size_t i = 0; i < bits.size(); ++i) {
        dropped += bits[i] == 0;
        const double want = bits[i] ? x[i] / (1.0 - p) : 0.0;
        wrong += bits[i] > 1 || std::abs(y[i] - want) > 1e-6 * (1.0 + std::abs(want));
    }
    CHECK(wrong == 0);
    // 100,000 Bernoulli(0.1) draws: the dropped fraction within 4 standard deviations (0.0038).
    CHECK(std::abs(static_cast<double>(dropped) / static_cast<double>(n) - p) < 0.004);

    // The same samples in another micro-batch (samples 4 and 5 of one starting at 4), one row at a
    // time, without storing a mask (how sdpa / flash draw it again): the same bits.
    const std::int64_t half = 2 * rows_per_sample * width;
    auto part = zeros(*dev, DType::fp32, {width});
    for (std::int64_t r = 0; r < 2 * rows_per_sample; ++r) {
        auto row = upload(*dev, V(x.begin() + half / 2 + r * width, x.begin() + half / 2 + (r + 1) * width), DType::fp32, {width});
        device::DropoutOp one = op;
        one.x = row.t;
        one.out = part.t;
        one.mask_out = nullptr;
        one.first_sample = 4;
        one.rows = 1;
        one.row0 = r;
        dev->dropout(one);
        const V got = download(*dev, part.t);
        for (std::int64_t c = 0; c < width; ++c) wrong += got[static_cast<std::size_t>(c)] != y[static_cast<std::size_t>(half / 2 + r * width + c)];
    }
    CHECK(wrong == 0);
    // Another key (another site or call) draws other bits.
    device::DropoutOp other = op;
    other.key = 54321;
    other.mask_out = nullptr;
    auto out2 = zeros(*dev, DType::fp32, {n});
    other.out = out2.t;
    dev->dropout(other);
    const V y2 = download(*dev, out2.t);
    std::int64_t differ = 0;
    for (std::size_t i = 0; i < y.size(); ++i) differ += (y[i] == 0) != (y2[i] == 0);
    CHECK(differ > n / 10);

    // Backward: the kept mask applied to a gradient, accumulated.
    const V g = random_values(static_cast<std::size_t>(n), 31);
    auto dg = upload(*dev, g, DType::fp32, {n}), acc = upload(*dev, V(static_cast<std::size_t>(n), 1.0), DType::fp32, {n});
    device::DropoutOp back;
    back.x = dg.t;
    back.out = acc.t;
    back.mask_in = mask.as<std::uint8_t>();
    back.p = p;
    back.rows = op.rows;
    back.cols = width;
    back.width = width;
    back.rows_per_sample = rows_per_sample;
    back.accumulate = true;
    dev->dropout(back);
    const V a = download(*dev, acc.t);
    for (std::size_t i = 0; i < a.size(); ++i) {
        const double want = 1.0 + (bits[i] ? g[i] / (1.0 - p) : 0.0);
        wrong += std::abs(a[i] - want) > 1e-6 * (1.0 + std::abs(want));
    }
    CHECK(wrong == 0);
}

TEST_CASE("copy2d: strided batches with dtype conversion") {
    auto dev = device::make_cpu_device();
    const V src = random_values(2 * 3 * 5, 22);
    auto s = upload(*dev, src, DType::fp32, {30}), d = zeros(*dev, DType::bf16, {2 * 3 * 2});
    device::Copy2dOp op;
    op.src = static_cast<float*>(s.t.data) + 1;  // columns 1..2 of each [3, 5] matrix
    op.src_dtype = DType::fp32;
    op.dst = d.t.data;
    op.dst_dtype = DType::bf16;
    op.batch = 2;
    op.rows = 3;
    op.cols = 2;
    op.src_ld = 5;
    op.src_batch_stride = 15;
    op.dst_ld = 2;
    op.dst_batch_stride = 6;
    dev->copy2d(op);
    const V got = download(*dev, d.t);
    for (std::size_t b = 0; b < 2; ++b)
        for (std::size_t i = 0; i < 3; ++i)
            for (std::size_t j = 0; j < 2; ++j)
                CHECK(got[b * 6 + i * 2 + j] == shardsim::round_to(DType::bf16, static_cast<float>(src[b * 15 + i * 5 + 1 + j])));
}

TEST_CASE("AdamW and SGD follow PyTorch's update rules, writing the 16-bit copy") {
    auto dev = device::make_cpu_device();
    const V p0 = random_values(6, 23), g = random_values(6, 24);
    auto p = upload(*dev, p0, DType::fp32, {6}), dg = upload(*dev, g, DType::bf16, {6});
    auto m = zeros(*dev, DType::fp32, {6}), v = zeros(*dev, DType::fp32, {6}), copy = zeros(*dev, DType::bf16, {6});
    const double lr = 0.1, b1 = 0.9, b2 = 0.99, eps = 1e-8, wd = 0.01, scale = 0.5;
    V ref = p0, rm(6, 0), rv(6, 0);
    for (int t = 1; t <= 3; ++t) {
        device::AdamWOp op;
        op.param = p.t;
        op.grad = dg.t;
        op.exp_avg = m.t;
        op.exp_avg_sq = v.t;
        op.param_copy = copy.t;
        op.lr = static_cast<float>(lr);
        op.beta1 = static_cast<float>(b1);
        op.beta2 = static_cast<float>(b2);
        op.eps = static_cast<float>(eps);
        op.weight_decay = static_cast<float>(wd);
        op.grad_scale = static_cast<float>(scale);
        op.step = t;
        dev->adamw(op);
        for (std::size_t i = 0; i < 6; ++i) {
            const double gi = shardsim::round_to(DType::bf16, static_cast<float>(g[i])) * scale;
            ref[i] *= 1 - lr * wd;
            rm[i] = b1 * rm[i] + (1 - b1) * gi;
            rv[i] = b2 * rv[i] + (1 - b2) * gi * gi;
            ref[i] -= lr / (1 - std::pow(b1, t)) * rm[i] / (std::sqrt(rv[i]) / std::sqrt(1 - std::pow(b2, t)) + eps);
        }
    }
    CHECK(err(download(*dev, p.t), ref) < 1e-5);
    const V c = download(*dev, copy.t), pv = download(*dev, p.t);
    for (std::size_t i = 0; i < 6; ++i) CHECK(c[i] == shardsim::round_to(DType::bf16, static_cast<float>(pv[i])));

    auto sp = upload(*dev, p0, DType::fp32, {6}), sg = upload(*dev, g, DType::fp32, {6}), buf = zeros(*dev, DType::fp32, {6});
    V sref = p0, sbuf(6, 0);
    for (int t = 0; t < 3; ++t) {
        device::SgdOp op;
        op.param = sp.t;
        op.grad = sg.t;
        op.momentum_buf = buf.t;
        op.lr = 0.1f;
        op.momentum = 0.9f;
        op.weight_decay = 0.01f;
        dev->sgd(op);
        for (std::size_t i = 0; i < 6; ++i) {
            const double d = g[i] + 0.01 * sref[i];
            sbuf[i] = t == 0 ? d : 0.9 * sbuf[i] + d;
            sref[i] -= 0.1 * sbuf[i];
        }
    }
    CHECK(err(download(*dev, sp.t), sref) < 1e-5);
}
