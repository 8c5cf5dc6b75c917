// Building blocks of the Transformer: shared state, terms, projections with LoRA, norms.
#include "model_parts.hpp"

#include "shardsim/core/error.hpp"

namespace shardsim::nn::detail {

using device::Device;
using device::Tensor;
using device::Buffer;
using device::GemmOp;
using device::NormOp;
using device::NormGradOp;
using device::CallTensors;
using device::MatrixRef;

namespace {

std::uint64_t mix64(std::uint64_t x) {  // SplitMix64's finaliser
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

}  // namespace

Ctx::Ctx(Device& d, const plan::ShardingPlan& p)
    : dev(d), plan(p), spec(p.scenario().model), shape(p.batch_shape()), dt(p.precision().params), rules(plan::model_behaviour(p)) {
    const auto& job = p.scenario().job;
    dropout_seed = mix64(job.seed ^ 0x64726f706f7574ull);  // "dropout": other bits than the data's
    if (job.lora_rank > 0) lora_scale = static_cast<float>(job.lora_alpha / static_cast<double>(job.lora_rank));
}

bool Ctx::keeps(const std::string& name) const {
    if (!acts) return false;
    for (const auto& t : acts->terms)
        if (t.name == name) return t.kept;
    return false;
}

const plan::CallActivations::KeptOutput* Ctx::kept_output(const std::string& module) const {
    if (!acts) return nullptr;
    for (const auto& k : acts->kept_outputs)
        if (k.module == module) return &k;
    return nullptr;
}

Buffer Ctx::upload_ids(const std::vector<std::int32_t>& ids, MemCategory c, const std::string& what) {
    const auto bytes = static_cast<std::int64_t>(ids.size() * sizeof(std::int32_t));
    Buffer b = buffer(bytes, c, what);
    dev.copy_from_host(b.data(), ids.data(), bytes);
    return b;
}

// --- terms -------------------------------------------------------------------------------------

Tensor Terms::add(Ctx& c, const std::string& name, DType dt, std::vector<std::int64_t> shape, bool kept) {
    for (const auto& t : terms_)
        if (t.name == name) return t.t;
    Term t;
    t.name = name;
    t.kept = kept || c.keeps(name);
    t.t = Tensor{nullptr, dt, std::move(shape)};
    t.buf = c.buffer(t.t.bytes(), MemCategory::activations, name);
    t.t.data = t.buf.data();
    terms_.push_back(std::move(t));
    return terms_.back().t;
}

void* Terms::add_ids(Ctx& c, const std::string& name, const std::vector<std::int32_t>& ids) {
    Term t;
    t.name = name;
    t.buf = c.upload_ids(ids, MemCategory::activations, name);
    t.t = Tensor{t.buf.data(), DType::fp32, {static_cast<std::int64_t>(ids.size())}};  // 4-byte slots
    terms_.push_back(std::move(t));
    return terms_.back().buf.data();
}

std::uint8_t* Terms::add_mask(Ctx& c, const std::string& name, std::int64_t elements) {
    Term t;
    t.name = name;
    t.buf = c.buffer(elements, MemCategory::activations, name);
    t.t = Tensor{t.buf.data(), DType::fp32, {0}};  // bytes, not values: reached through mask()
    terms_.push_back(std::move(t));
    return static_cast<std::uint8_t*>(terms_.back().buf.data());
}

std::uint8_t* Terms::mask(const std::string& name) const {
    for (const auto& t : terms_)
        if (t.name == name) return static_cast<std::uint8_t*>(t.buf.data());
    return nullptr;
}

Tensor Terms::adopt(const std::string& name, Buffer&& b, DType dt, std::vector<std::int64_t> shape, bool kept) {
    Term t;
    t.name = name;
    t.kept = kept;
    t.t = Tensor{b.data(), dt, std::move(shape)};
    SHARDSIM_ASSERT(t.t.bytes() == b.bytes(), "adopted buffer of another size: " + name);
    t.buf = std::move(b);
    terms_.push_back(std::move(t));
    return terms_.back().t;
}

Tensor Terms::get(const std::string& name) const {
    for (const auto& t : terms_)
        if (t.name == name) return t.t;
    return {};
}

void Terms::drop_transient() {
    std::vector<Term> kept;
    for (auto& t : terms_)
        if (t.kept) kept.push_back(std::move(t));
    terms_ = std::move(kept);
}

std::vector<std::pair<std::string, std::int64_t>> Terms::list() const {
    std::vector<std::pair<std::string, std::int64_t>> out;
    for (const auto& t : terms_) out.emplace_back(t.name, t.buf.bytes());
    return out;
}

Tensor Scratch::make(DType dt, std::vector<std::int64_t> shape, const char* what) {
    Tensor t{nullptr, dt, std::move(shape)};
    bufs_.push_back(c_.buffer(t.bytes(), MemCategory::temporaries, what));
    t.data = bufs_.back().data();
    return t;
}

void Scratch::release(const Tensor& t) {
    for (auto& b : bufs_)
        if (b.data() == t.data) b.reset();
}

Tensor keep_or_temp(Ctx& c, Terms& terms, Scratch& s, bool keep, const std::string& name, std::vector<std::int64_t> shape) {
    if (keep) return terms.add(c, name, c.dt, std::move(shape));
    return s.make(c.dt, std::move(shape), "unsaved activation");
}

// --- dropout -----------------------------------------------------------------------------------

std::uint64_t dropout_key(const Ctx& c, const std::string& name) {
    std::uint64_t h = 0xcbf29ce484222325ull;  // FNV-1a of the name
    for (const char ch : name) h = (h ^ static_cast<unsigned char>(ch)) * 0x100000001b3ull;
    return mix64(c.dropout_seed ^ mix64(static_cast<std::uint64_t>(c.call)) ^ h);
}

namespace {

// The op for a token-indexed tensor of the stream: a sample is seq rows.
device::DropoutOp token_dropout(const Ctx& c, const Dropped& at, const Tensor& x, const Tensor& out) {
    device::DropoutOp op;
    op.x = x;
    op.out = out;
    op.p = static_cast<float>(c.rules.hidden_dropout);
    op.key = dropout_key(c, at.name);
    op.rows = c.tokens(at.stream);
    op.cols = x.numel() / op.rows;
    op.width = op.cols;
    op.rows_per_sample = c.len(at.stream);
    op.first_sample = c.batch.first;
    return op;
}

}  // namespace

void drop_forward(Ctx& c, Terms& terms, const Dropped& at, const Tensor& x, const Tensor& out) {
    if (c.rules.hidden_dropout <= 0) {
        if (out.data != x.data) c.dev.convert(x, out);
        return;
    }
    device::DropoutOp op = token_dropout(c, at, x, out);
    op.mask_out = terms.add_mask(c, at.name + ".mask", x.numel());
    c.dev.dropout(op);
}

void drop_backward(Ctx& c, const Terms& terms, const Dropped& at, const Tensor& dy, const Tensor& dx) {
    if (c.rules.hidden_dropout <= 0) {
        if (dx.data != dy.data) c.dev.convert(dy, dx);
        return;
    }
    device::DropoutOp op = token_dropout(c, at, dy, dx);
    op.mask_in = terms.mask(at.name + ".mask");
    SHARDSIM_ASSERT(op.mask_in != nullptr, "dropout mask not kept: " + at.name);
    c.dev.dropout(op);
}

void add_dropped(Ctx& c, Terms& terms, const Dropped& at, const Residual& r) {
    drop_forward(c, terms, at, r.branch, r.branch);
    c.dev.axpby(1.0f, r.branch, 1.0f, r.residual, r.out);
}

Tensor branch_grad(Ctx& c, const Terms& terms, Scratch& scratch, const Dropped& at, const Tensor& dy) {
    if (c.rules.hidden_dropout <= 0) return dy;
    const Tensor g = scratch.make(dy.dtype, dy.shape, "dropped branch gradient");
    drop_backward(c, terms, at, dy, g);
    return g;
}

// --- parameters --------------------------------------------------------------------------------

int UnitIndex::find(const std::string& name) const {
    for (std::size_t i = 0; i < unit_->tensors.size(); ++i)
        if (unit_->tensors[i].name == name) return static_cast<int>(i);
    return -1;
}

int UnitIndex::need(const std::string& name) const {
    const int i = find(name);
    SHARDSIM_ASSERT(i >= 0, "unit " + unit_->name + " has no tensor " + name);
    return i;
}

namespace {

std::int64_t count(const std::vector<std::int64_t>& shape) {
    std::int64_t n = 1;
    for (auto d : shape) n *= d;
    return n;
}

}  // namespace

Tensor param_of(const CallTensors& p, int slot, int index, std::vector<std::int64_t> shape) {
    if (index < 0) return {};
    const Tensor& t = p.units.at(static_cast<std::size_t>(slot))->tensors.at(static_cast<std::size_t>(index));
    SHARDSIM_ASSERT(!t.empty(), "a parameter the call reads is missing");
    SHARDSIM_ASSERT(t.shape.empty() || t.numel() == count(shape), "parameter of unexpected size");
    return Tensor{t.data, t.dtype, std::move(shape)};
}

Tensor grad_of(const CallTensors* g, int slot, int index, std::vector<std::int64_t> shape) {
    if (!g || index < 0) return {};
    const Tensor& t = g->units.at(static_cast<std::size_t>(slot))->tensors.at(static_cast<std::size_t>(index));
    if (t.empty()) return {};
    SHARDSIM_ASSERT(t.shape.empty() || t.numel() == count(shape), "gradient of unexpected size");
    return Tensor{t.data, t.dtype, std::move(shape)};
}

LinearRef linear_ref(const UnitIndex& ix, const std::string& base, bool conv1d) {
    LinearRef r;
    r.w = ix.need(base + ".weight");
    r.b = ix.find(base + ".bias");
    r.a = ix.find(base + ".lora_A.weight");
    r.bb = ix.find(base + ".lora_B.weight");
    const auto& tensors = ix.unit().tensors;
    const auto& w = tensors[static_cast<std::size_t>(r.w)];
    r.in = w.in_features;
    r.out = w.out_features;
    r.conv1d = conv1d;
    if (r.a >= 0) r.rank = tensors[static_cast<std::size_t>(r.a)].out_features;
    for (int i : {r.w, r.b, r.a, r.bb})
        if (i >= 0 && tensors[static_cast<std::size_t>(i)].trainable) r.keeps_input = true;
    r.module = base;
    r.mid = base + ".lora_mid";
    return r;
}

Linear bind(const Ctx& c, const LinearRef& r, const CallTensors& p, const CallTensors* g) {
    Linear l;
    l.ref = r;
    l.lora_scale = c.lora_scale;
    const std::vector<std::int64_t> ws = r.conv1d ? std::vector<std::int64_t>{r.in, r.out} : std::vector<std::int64_t>{r.out, r.in};
    l.w = param_of(p, r.slot, r.w, ws);
    l.b = param_of(p, r.slot, r.b, {r.out});
    l.a = param_of(p, r.slot, r.a, {r.rank, r.in});
    l.bb = param_of(p, r.slot, r.bb, {r.out, r.rank});
    l.gw = grad_of(g, r.slot, r.w, ws);
    l.gb = grad_of(g, r.slot, r.b, {r.out});
    l.ga = grad_of(g, r.slot, r.a, {r.rank, r.in});
    l.gbb = grad_of(g, r.slot, r.bb, {r.out, r.rank});
    return l;
}

namespace {

MatrixRef mat(const Tensor& t, std::int64_t ld, bool trans = false) { return MatrixRef{t.data, t.dtype, ld, 0, trans}; }

void gemm(Device& dev, MatrixRef a, MatrixRef b, MatrixRef c, std::int64_t m, std::int64_t n, std::int64_t k, float alpha,
          float beta) {
    GemmOp op;
    op.a = a;
    op.b = b;
    op.c = c;
    op.m = m;
    op.n = n;
    op.k = k;
    op.alpha = alpha;
    op.beta = beta;
    dev.gemm(op);
}

}  // namespace

namespace {

void compute_linear(Ctx& c, Terms& terms, const Linear& l, const Tensor& x, const Tensor& y, bool accumulate) {
    const LinearRef& r = l.ref;
    const std::int64_t tokens = x.numel() / r.in;
    const MatrixRef w = r.conv1d ? mat(l.w, r.out) : mat(l.w, r.in, true);
    gemm(c.dev, mat(x, r.in), w, mat(y, r.out), tokens, r.out, r.in, l.scale, accumulate ? 1.0f : 0.0f);
    if (!l.b.empty()) c.dev.add_bias(Tensor{y.data, y.dtype, {tokens, r.out}}, l.b);
    if (l.a.empty()) return;
    const Tensor mid = terms.add(c, r.mid, c.dt, {tokens, r.rank});
    gemm(c.dev, mat(x, r.in), mat(l.a, r.in, true), mat(mid, r.rank), tokens, r.rank, r.in, 1.0f, 0.0f);
    gemm(c.dev, mat(mid, r.rank), mat(l.bb, r.rank, true), mat(y, r.out), tokens, r.out, r.rank, l.lora_scale, 1.0f);
}

}  // namespace

void linear_forward(Ctx& c, Terms& terms, const Linear& l, const Tensor& x, const Tensor& y, bool accumulate) {
    const plan::CallActivations::KeptOutput* kept_as = c.kept_output(l.ref.module);
    if (!kept_as || !kept_as->parts.empty()) {
        SHARDSIM_ASSERT(!kept_as || !c.recomputing, "a projection kept as its parts is not recomputed: " + l.ref.module);
        return compute_linear(c, terms, l, x, y, accumulate);
    }
    // The kept output: the term y is (added before, met again in recompute), or one of its own.
    const Tensor kept = terms.add(c, kept_as->term, c.dt, {x.numel() / l.ref.in, l.ref.out}, true);
    const bool is_y = kept.data == y.data;
    SHARDSIM_ASSERT(!is_y || !accumulate, "a kept projection output that is also accumulated into: " + l.ref.module);
    if (!c.recomputing) compute_linear(c, terms, l, x, kept, false);
    if (is_y) return;
    if (accumulate)
        c.dev.axpby(1.0f, kept, 1.0f, y, y);
    else
        c.dev.copy(y.data, kept.data, kept.bytes());
}

void linear_backward(Ctx& c, Terms& terms, const Linear& l, const Tensor& x, const Tensor& dy, const Tensor& dx,
                     bool accumulate) {
    const LinearRef& r = l.ref;
    const std::int64_t tokens = dy.numel() / r.out;
    const bool needs_x = !l.gw.empty() || !l.ga.empty();
    SHARDSIM_ASSERT(!needs_x || !x.empty(), "a trainable projection lost its input: " + r.mid);
    if (!dx.empty()) {
        const MatrixRef w = r.conv1d ? mat(l.w, r.out, true) : mat(l.w, r.in);
        gemm(c.dev, mat(dy, r.out), w, mat(dx, r.in), tokens, r.in, r.out, l.scale, accumulate ? 1.0f : 0.0f);
    }
    if (!l.gw.empty()) {
        if (r.conv1d)  // dW [in, out] += x^T dy
            gemm(c.dev, mat(x, r.in, true), mat(dy, r.out), mat(l.gw, r.out), r.in, r.out, tokens, l.scale, 1.0f);
        else  // dW [out, in] += dy^T x
            gemm(c.dev, mat(dy, r.out, true), mat(x, r.in), mat(l.gw, r.in), r.out, r.in, tokens, l.scale, 1.0f);
    }
    if (!l.gb.empty()) c.dev.bias_grad(Tensor{dy.data, dy.dtype, {tokens, r.out}}, l.gb);
    if (l.a.empty()) return;
    Scratch s(c);
    const Tensor mid = terms.get(r.mid);
    const Tensor dmid = s.make(c.dt, {tokens, r.rank}, "LoRA middle gradient");
    gemm(c.dev, mat(dy, r.out), mat(l.bb, r.rank), mat(dmid, r.rank), tokens, r.rank, r.out, l.lora_scale, 0.0f);
    if (!l.gbb.empty())
        gemm(c.dev, mat(dy, r.out, true), mat(mid, r.rank), mat(l.gbb, r.rank), r.out, r.rank, tokens, l.lora_scale, 1.0f);
    if (!l.ga.empty())
        gemm(c.dev, mat(dmid, r.rank, true), mat(x, r.in), mat(l.ga, r.in), r.rank, r.in, tokens, 1.0f, 1.0f);
    if (!dx.empty()) gemm(c.dev, mat(dmid, r.rank), mat(l.a, r.in), mat(dx, r.in), tokens, r.in, r.rank, 1.0f, 1.0f);
}

// --- norms -------------------------------------------------------------------------------------

float norm_eps(model::Arch arch) {
    switch (arch) {
        case model::Arch::llama: return 1e-6f;  // LlamaConfig.rms_norm_eps default (Llama-2 ships 1e-5)
        case model::Arch::t5: return 1e-6f;     // T5Config.layer_norm_epsilon
        default: return 1e-5f;                  // GPT-2, BLOOM, CodeGen LayerNorm
    }
}

NormRef norm_ref(const UnitIndex& ix, const std::string& prefix, model::NormKind kind, float eps) {
    NormRef n;
    n.w = ix.need(prefix + ".weight");
    n.b = ix.find(prefix + ".bias");
    n.kind = kind;
    n.eps = eps;
    return n;
}

void norm_forward(Ctx& c, Terms& terms, const std::string& name, const NormRef& n, const CallTensors& p, const Tensor& y) {
    const Tensor x = terms.get(name + ".input");
    SHARDSIM_ASSERT(!x.empty(), "norm input not kept: " + name);
    const std::int64_t d = x.shape.back(), rows = x.numel() / d;
    NormOp op;
    op.kind = n.kind;
    op.x = x;
    op.weight = param_of(p, 0, n.w, {d});
    op.bias = param_of(p, 0, n.b, {d});
    op.y = Tensor{y.data, y.dtype, {rows, d}};
    op.stats = terms.add(c, name + ".stats", DType::fp32, {rows, n.kind == model::NormKind::layernorm ? 2 : 1});
    op.eps = n.eps;
    c.dev.norm_forward(op);
}

void norm_backward(Ctx& c, Terms& terms, const std::string& name, const NormRef& n, const CallTensors& p,
                   const CallTensors& g, const Tensor& dy, const Tensor& dx, bool accumulate) {
    NormGradOp op;
    op.kind = n.kind;
    op.x = terms.get(name + ".input");
    op.stats = terms.get(name + ".stats");
    SHARDSIM_ASSERT(!op.x.empty() && !op.stats.empty(), "norm terms not kept: " + name);
    const std::int64_t d = op.x.shape.back(), rows = op.x.numel() / d;
    op.weight = param_of(p, 0, n.w, {d});
    op.dy = Tensor{dy.data, dy.dtype, {rows, d}};
    op.dx = dx.empty() ? Tensor{} : Tensor{dx.data, dx.dtype, {rows, d}};
    op.dweight = grad_of(&g, 0, n.w, {d});
    op.dbias = grad_of(&g, 0, n.b, {d});
    op.accumulate = accumulate;
    c.dev.norm_backward(op);
}

// --- block plumbing -----------------------------------------------------------------------------

Tensor block_input(Ctx& c, Terms& terms, model::Stream s, const std::string& name, std::int64_t width, bool recompute) {
    if (recompute) {
        const Tensor x = terms.get(name + ".input");
        SHARDSIM_ASSERT(!x.empty(), "recompute without the kept block input " + name);
        return x;
    }
    Buffer& in = c.hidden[stream_index(s)];
    SHARDSIM_ASSERT(static_cast<bool>(in), "a block ran before the call that feeds it");
    return terms.adopt(name + ".input", std::move(in), c.dt, {c.tokens(s), width}, true);
}

BlockOutput block_output(Ctx& c, model::Stream s, std::int64_t width, bool recompute) {
    BlockOutput o;
    const std::int64_t n = c.tokens(s) * width;
    o.buf = c.buffer(n * dtype_size(c.dt), recompute ? MemCategory::temporaries : MemCategory::activations,
                     recompute ? "recomputed block output" : "hidden states");
    o.t = Tensor{o.buf.data(), c.dt, {c.tokens(s), width}};
    return o;
}

void publish(Ctx& c, model::Stream s, BlockOutput&& out, bool recompute) {
    if (!recompute) c.hidden[stream_index(s)] = std::move(out.buf);
}

Tensor take_grad(Ctx& c, model::Stream s) {
    const Buffer& g = c.grad[stream_index(s)];
    SHARDSIM_ASSERT(static_cast<bool>(g), "backward of a call whose output has no gradient yet");
    return Tensor{g.data(), c.dt, {g.bytes() / dtype_size(c.dt)}};
}

bool encoder_output_kept(const plan::ShardingPlan& plan) {
    if (plan.scenario().job.checkpointing()) return true;
    for (const auto& u : plan.units()) {
        if (!u.cross_attention) continue;
        for (const auto& t : u.tensors) {
            if (!t.trainable) continue;
            for (const char* f : {"EncDecAttention.k", "EncDecAttention.v", "crossattention.k_proj", "crossattention.v_proj"})
                if (t.name.find(f) != std::string::npos) return true;
        }
    }
    return false;
}

void cross_attention_done(Ctx& c) {
    if (--c.cross_left == 0 && c.encoder_in_flight) {
        c.encoder_in_flight.reset();
        c.encoder_out = Tensor{};
    }
}

}  // namespace shardsim::nn::detail
