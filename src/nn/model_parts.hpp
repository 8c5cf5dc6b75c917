#pragma once
// Internals of the Transformer (transformer*.cpp): the state its calls share, the named
// activation terms one call keeps, and the building blocks every block family composes (a
// projection with its LoRA adapter, norms, eager attention, fused-QKV layouts).
//
// Conventions:
//   - token-indexed tensors are [tokens, width], tokens = batch * seq, batch-major;
//   - activations and their gradients are in the compute dtype (the params dtype), as in a
//     PyTorch eager run of a model in that dtype; norm statistics, attention scores, logits and
//     log-probabilities are fp32 (see plan/activations.hpp for what is kept);
//   - saved terms are allocated under `activations`, everything transient under `temporaries`;
//   - backward passes one gradient buffer (dL/d hidden) from call to call and adds each
//     residual branch's gradient into it in place.
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "shardsim/nn/data.hpp"
#include "shardsim/device/device.hpp"
#include "shardsim/plan/activations.hpp"
#include "shardsim/plan/plan.hpp"

namespace shardsim::nn::detail {

using device::Device;
using device::Tensor;
using device::Buffer;
using device::CallTensors;

inline int stream_index(model::Stream s) { return s == model::Stream::encoder ? 0 : 1; }

// State shared by the calls of one Transformer, for one micro-batch at a time.
struct Ctx {
    Ctx(Device& d, const plan::ShardingPlan& p);

    Device& dev;
    const plan::ShardingPlan& plan;
    const model::ModelSpec& spec;
    model::BatchShape shape;
    DType dt;              // compute dtype = params dtype
    plan::ModelBehaviour rules;  // attention kind, softmax dtype, dropout, loss: as the plan lists the terms
    std::uint64_t dropout_seed = 0;  // from the job's seed
    int call = -1;                   // the call of the forward program running now
    const plan::CallActivations* acts = nullptr;  // ... and what the plan says it keeps
    bool recomputing = false;                     // ... and whether this is its recompute
    float lora_scale = 1;  // alpha / rank
    double loss_scale = 1;
    Batch batch;
    Buffer hidden[2];          // forward: output of the last call of each stream, taken by the next call
    Buffer grad[2];            // backward: dL/d(that output), passed down the stream
    Tensor position_bias[2];   // T5: the stack's relative position bias, kept by its block 0
    Buffer dposition_bias[2];  // fp32 gradient of it, summed over the stack's blocks
    Tensor encoder_out;        // the encoder's output, read by every cross-attention
    Buffer encoder_in_flight;  // ... when no backward needs it: freed after the last cross-attention
    Buffer dencoder_out;       // dL/d(encoder output), summed over cross-attention blocks
    int cross_left = 0;        // cross-attention forwards still to run in this micro-batch
    double last_loss = 0;

    // Whether the running call keeps the term `name` when checkpointed (the plan's `kept`).
    bool keeps(const std::string& name) const;
    // Selective checkpointing: what keeps the output of projection `module` in the running call
    // (a term, or the terms it is split into), or nullptr.
    const plan::CallActivations::KeptOutput* kept_output(const std::string& module) const;

    std::int64_t tokens(model::Stream s) const { return shape.tokens(s); }
    std::int64_t len(model::Stream s) const { return shape.len(s); }
    Buffer buffer(std::int64_t bytes, MemCategory c, const std::string& what) {
        return Buffer(dev.allocator(), bytes, c, what);
    }
    // int32 ids copied to the device into a new buffer.
    Buffer upload_ids(const std::vector<std::int32_t>& ids, MemCategory c, const std::string& what);
};

inline void* at(const Tensor& t, std::int64_t elements) {
    return static_cast<char*>(t.data) + elements * dtype_size(t.dtype);
}
inline Tensor view(void* data, DType dt, std::vector<std::int64_t> shape) { return Tensor{data, dt, std::move(shape)}; }

// The named activations one call keeps from forward to backward (names as plan::call_activations
// spells them).
class Terms {
public:
    // A new term; when it exists already (a kept term, met again in recompute) the existing one.
    // Kept when `kept` or when the plan keeps it (Ctx::keeps).
    Tensor add(Ctx& c, const std::string& name, DType dt, std::vector<std::int64_t> shape, bool kept = false);
    void* add_ids(Ctx& c, const std::string& name, const std::vector<std::int32_t>& ids);
    std::uint8_t* add_mask(Ctx& c, const std::string& name, std::int64_t elements);  // 1 byte each
    std::uint8_t* mask(const std::string& name) const;                               // nullptr when absent
    Tensor adopt(const std::string& name, Buffer&& b, DType dt, std::vector<std::int64_t> shape, bool kept);
    Tensor get(const std::string& name) const;  // empty when absent
    void drop_transient();                      // keep only the `kept` terms (checkpointing)
    void clear() { terms_.clear(); }
    std::vector<std::pair<std::string, std::int64_t>> list() const;

private:
    struct Term {
        std::string name;
        Buffer buf;
        Tensor t;
        bool kept = false;
    };
    std::vector<Term> terms_;
};

// Transient buffers of one call, released when it goes out of scope (or earlier).
class Scratch {
public:
    explicit Scratch(Ctx& c) : c_(c) {}
    Tensor make(DType dt, std::vector<std::int64_t> shape, const char* what);
    void release(const Tensor& t);

private:
    Ctx& c_;
    std::vector<Buffer> bufs_;
};

// A term when `keep`, else a scratch buffer: projection inputs are kept only for trainable weights.
Tensor keep_or_temp(Ctx& c, Terms& terms, Scratch& s, bool keep, const std::string& name, std::vector<std::int64_t> shape);

// --- dropout -----------------------------------------------------------------------------------
// The key of one dropout site: the job's seed, the call and the dropped tensor's name, so every
// rank, world size and recompute draws the same mask for the same global sample.
std::uint64_t dropout_key(const Ctx& c, const std::string& name);
// A tensor hidden dropout applies to: its name (the mask term is `<name>.mask`) and its stream
// (the tensor is token-indexed, [tokens of the stream, width]).
struct Dropped {
    std::string name;
    model::Stream stream = model::Stream::decoder;
};
// out (may be x) = dropout(x), keeping the mask term; a plain copy (or nothing, when out is x)
// without hidden dropout.
void drop_forward(Ctx& c, Terms& terms, const Dropped& at, const Tensor& x, const Tensor& out);
// dx (may be dy) = dy through the kept mask (a plain copy without hidden dropout).
void drop_backward(Ctx& c, const Terms& terms, const Dropped& at, const Tensor& dy, const Tensor& dx);
// out = residual + dropout(branch), the branch dropped in place.
struct Residual {
    Tensor branch, residual, out;
};
void add_dropped(Ctx& c, Terms& terms, const Dropped& at, const Residual& r);
// The gradient a dropped branch receives from dy: dy itself without hidden dropout, else a scratch.
Tensor branch_grad(Ctx& c, const Terms& terms, Scratch& scratch, const Dropped& at, const Tensor& dy);

// --- parameters --------------------------------------------------------------------------------
// Indices of a unit's tensors by name, resolved once; bound to a call's tensors per call.
class UnitIndex {
public:
    explicit UnitIndex(const model::Unit& u) : unit_(&u) {}
    int find(const std::string& name) const;  // -1 when absent
    int need(const std::string& name) const;  // throws when absent
    const model::Unit& unit() const { return *unit_; }

private:
    const model::Unit* unit_;
};

Tensor param_of(const CallTensors& p, int slot, int index, std::vector<std::int64_t> shape);
Tensor grad_of(const CallTensors* g, int slot, int index, std::vector<std::int64_t> shape);

// A projection, nn.Linear ([out, in]) or GPT-2 Conv1D ([in, out]), with optional bias and LoRA.
struct LinearRef {
    int w = -1, b = -1, a = -1, bb = -1;  // weight, bias, lora_A, lora_B
    int slot = 0;                          // which of the call's units holds it
    std::int64_t in = 0, out = 0, rank = 0;
    bool conv1d = false;
    bool keeps_input = false;  // a trainable weight, bias or adapter: backward needs the input
    std::string module;        // its name: the weight's less ".weight"
    std::string mid;           // the LoRA middle activation's term name
};
LinearRef linear_ref(const UnitIndex& ix, const std::string& base, bool conv1d = false);

struct Linear {
    LinearRef ref;
    Tensor w, b, a, bb, gw, gb, ga, gbb;
    float scale = 1;       // the whole projection's output scale (T5's tied head)
    float lora_scale = 1;  // alpha / rank
};
Linear bind(const Ctx& c, const LinearRef& r, const CallTensors& p, const CallTensors* g);

// y (= or +=) scale * x W^T (+ b) + lora_scale * (x A^T) B^T, keeping x A^T as the term `mid`.
// Selective checkpointing: when the plan keeps this projection's output, forward also keeps it
// (as the term it writes, or a term of its own) and recompute reads it back instead of computing.
// Kept as the parts it is split into (GPT-2's q, k, v), the caller skips projection and split in
// recompute.
void linear_forward(Ctx& c, Terms& terms, const Linear& l, const Tensor& x, const Tensor& y, bool accumulate = false);
// dx (= or +=) from dy; the trainable tensors' gradients +=. `x` is the kept input (empty when
// nothing trainable needs it). dx may be empty when nobody wants it.
void linear_backward(Ctx& c, Terms& terms, const Linear& l, const Tensor& x, const Tensor& dy, const Tensor& dx,
                     bool accumulate);

struct NormRef {
    int w = -1, b = -1;
    model::NormKind kind = model::NormKind::layernorm;
    float eps = 1e-5f;
};
NormRef norm_ref(const UnitIndex& ix, const std::string& prefix, model::NormKind kind, float eps);
// y = norm(x) where x is the term <name>.input; keeps <name>.stats.
void norm_forward(Ctx& c, Terms& terms, const std::string& name, const NormRef& n, const CallTensors& p,
                  const Tensor& y);
void norm_backward(Ctx& c, Terms& terms, const std::string& name, const NormRef& n, const CallTensors& p,
                   const CallTensors& g, const Tensor& dy, const Tensor& dx, bool accumulate);
// The eps each architecture's HF code uses.
float norm_eps(model::Arch arch);

// --- attention ----------------------------------------------------------------------------------
struct AttnDims {
    std::int64_t batch = 1, sq = 0, sk = 0, heads = 0, kv_heads = 0, head_dim = 0;
    float scale = 1;
    bool causal = false;
    bool qk_fp32 = false;  // eager: q and k kept in fp32 (CodeGen's _attn upcasts them)
};
AttnDims attn_dims(const Ctx& c, const model::AttentionShape& a, float scale);

// What one attention keeps, as plan::call_activations lists it: q, k, v and, eager, the probabilities
// the matmul with v reads (`probs`, dropped when attention dropout is on), the softmax output when
// it is another tensor (`softmax`: fp32 in the families that compute it so, or before dropout) and
// the dropout mask; sdpa / flash keep the output (`out`) and the fp32 log-sum-exp (`lse`) instead.
struct AttnTerms {
    std::string prefix;  // "attn", "sa", "ca"
    Tensor q, k, v, softmax, probs, out, lse;
    std::uint8_t* mask = nullptr;
    std::uint64_t key = 0;  // dropout site of the probabilities
};
AttnTerms attention_terms(Ctx& c, Terms& terms, const std::string& prefix, const AttnDims& d);
AttnTerms attention_get(const Ctx& c, const Terms& terms, const std::string& prefix);
// The attention output the output projection reads (q's shape): the kept `out` of sdpa / flash,
// else `<prefix>.context` as a term when the projection is trainable (keep), a scratch otherwise.
Tensor attention_context(Ctx& c, Terms& terms, Scratch& s, const AttnTerms& t, bool keep);
Tensor attention_context_get(const Terms& terms, const std::string& prefix);

// Attention: probs = softmax(scale q k^T + bias + alibi), dropped, out = probs v, per query head;
// query head h reads key/value head h / (heads / kv_heads) (grouped-query attention without
// copies of K and V). Eager materialises the scores of all heads; sdpa / flash (the job's
// memory.attention) computes head by head and, causal, query row by query row over the keys it
// sees (the GEMM FLOPs model::call_flops counts), keeping only the log-sum-exp, and computes the
// scores again in backward.
void attention_forward(Ctx& c, const AttnDims& d, const AttnTerms& t, const Tensor& bias, const Tensor& alibi,
                       const Tensor& out);
// dq, dk, dv (=) from dout; dbias (fp32 [heads, sq, sk]) += when not empty.
void attention_backward(Ctx& c, const AttnDims& d, const AttnTerms& t, const Tensor& dout, const Tensor& dq,
                        const Tensor& dk, const Tensor& dv, const Tensor& dbias);

// A fused q/k/v projection output [tokens, 3 * width] as `chunks` groups of three blocks of
// width / chunks, in the order `slot` gives (slot[0] is q's position in a group, then k, v).
//   GPT-2 c_attn: 1 chunk, q k v; BLOOM query_key_value: one chunk per head, q k v
//   (BloomAttention._split_heads); CodeGen qkv_proj: 4 chunks (its TPU model-parallel layout),
//   q v k.
struct FusedLayout {
    std::int64_t chunks = 1;
    int slot[3] = {0, 1, 2};
};
void split_fused(Ctx& c, const FusedLayout& f, const Tensor& fused, const Tensor& q, const Tensor& k, const Tensor& v);
void merge_fused(Ctx& c, const FusedLayout& f, const Tensor& dq, const Tensor& dk, const Tensor& dv, const Tensor& dfused);

// BLOOM's ALiBi slopes (build_alibi_tensor) and T5's relative position buckets
// (T5Attention._relative_position_bucket, max_distance 128), on the host.
std::vector<float> alibi_slopes(std::int64_t heads);
std::vector<std::int32_t> t5_buckets(std::int64_t sq, std::int64_t sk, bool bidirectional, std::int64_t buckets);

// --- calls --------------------------------------------------------------------------------------
class CallModule {
public:
    virtual ~CallModule() = default;
    // `recompute`: rebuild the terms from the kept block input, publishing nothing.
    virtual void forward(Ctx& c, const CallTensors& p, bool recompute) = 0;
    virtual void backward(Ctx& c, const CallTensors& p, const CallTensors& g) = 0;
    virtual bool is_block() const { return false; }
    Terms terms;
};

// Block helpers: the input a block takes over (or finds kept, in recompute), and its output.
Tensor block_input(Ctx& c, Terms& terms, model::Stream s, const std::string& name, std::int64_t width, bool recompute);
struct BlockOutput {
    Buffer buf;
    Tensor t;
};
BlockOutput block_output(Ctx& c, model::Stream s, std::int64_t width, bool recompute);
void publish(Ctx& c, model::Stream s, BlockOutput&& out, bool recompute);
// The gradient buffer a block's backward updates in place.
Tensor take_grad(Ctx& c, model::Stream s);

// Encoder-decoder: whether the last encoder block keeps its output as the term encoder.output
// (some cross-attention k or v is trainable, or blocks are recomputed and read it again); else it
// lives only until the last cross-attention forward of the micro-batch, which calls
// cross_attention_done.
bool encoder_output_kept(const plan::ShardingPlan& plan);
void cross_attention_done(Ctx& c);

std::unique_ptr<CallModule> make_embedding_call(const Ctx& c, const model::Unit& u, model::Stream s);
std::unique_ptr<CallModule> make_head_call(const Ctx& c, const model::Unit& u, const model::ProgramStep& step);
std::unique_ptr<CallModule> make_classic_block(const Ctx& c, const model::Unit& u);  // GPT-2, BLOOM
std::unique_ptr<CallModule> make_llama_block(const Ctx& c, const model::Unit& u);
std::unique_ptr<CallModule> make_t5_block(const Ctx& c, const model::Unit& u);
std::unique_ptr<CallModule> make_codet5p_block(const Ctx& c, const model::Unit& u);

}  // namespace shardsim::nn::detail
