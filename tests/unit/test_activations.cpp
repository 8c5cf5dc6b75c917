// What each call keeps, by hand, against Hugging Face's code (ENGINES.md section 7): eager
// attention with the softmax in fp32 (Llama, T5) or in the compute dtype (GPT-2), sdpa's
// log-sum-exp instead of the probabilities, dropout masks at 1 byte per element, and the eager and
// fused loss. b = 1 sequence of 16 tokens, bf16 unless said otherwise.
#include <doctest/doctest.h>

#include <map>

#include "shardsim/model/scenario.hpp"
#include "shardsim/plan/activations.hpp"

using namespace shardsim;

namespace {

plan::PlanPtr make_plan(const std::string& model, std::vector<std::string> sets = {}, const std::string& params = "bf16") {
    const std::string text = "[job]\nmodel = " + model + "\ntopology = 4x8-h100-ib\n[parallel]\nstrategy = ddp\n[precision]\nparams = " +
                             params + "\n[batch]\nmicro_batch = 1\nseq_len = 16\n";
    sets.push_back("topology.cluster.nodes=1");
    sets.push_back("topology.cluster.gpus_per_node=1");
    return plan::ShardingPlan::build(model::load_scenario_text("test.ini", text, "", sets));
}

std::map<std::string, std::int64_t> terms(const plan::ShardingPlan& p, int call) {
    std::map<std::string, std::int64_t> m;
    for (const auto& t : plan::call_activations(p, call).terms) m[t.name] = t.bytes;
    return m;
}

// The call of the first unit named `unit` (a block: "block.1", "decoder.block.1", ...).
int call_of(const plan::ShardingPlan& p, const std::string& unit) {
    for (std::size_t c = 0; c < p.program().size(); ++c)
        if (p.units().at(static_cast<std::size_t>(p.program()[c].unit)).name == unit) return static_cast<int>(c);
    FAIL("no unit " << unit);
    return -1;
}

}  // namespace

TEST_CASE("Llama block: eager keeps the fp32 softmax and its bf16 cast (6 B per score), sdpa q, k, v, out and lse") {
    // tiny-llama: hidden 32, 4 heads of 8, 2 KV heads, ffn 88. Per score element (1 x 4 x 16 x 16
    // = 1024): softmax(dtype=float32) 4 B kept by softmax, .to(bf16) 2 B kept by the matmul with v.
    const auto eager = make_plan("tiny-llama", {"memory.attention=eager"});
    const int c = call_of(*eager, "block.1");
    auto t = terms(*eager, c);
    CHECK(t.at("attn.softmax") == 1024 * 4);
    CHECK(t.at("attn.probs") == 1024 * 2);
    CHECK(t.count("attn.probs.mask") == 0);  // attention_dropout 0.0: ATen returns its input
    CHECK(t.at("attn.q") == 16 * 32 * 2);
    CHECK(t.at("attn.k") == 16 * 16 * 2);
    CHECK(t.at("attn.context") == 16 * 32 * 2);
    // Norms 2 x (1024 + 64), attn and mlp inputs 2 x 1024, q k v 2048, scores 6144, context 1024,
    // gate act up prod 4 x 16 x 88 x 2 = 11264.
    const std::int64_t eager_bytes = 2 * (1024 + 64) + 2 * 1024 + 2048 + 6144 + 1024 + 11264;
    CHECK(plan::call_activations(*eager, c).saved_bytes() == eager_bytes);

    // sdpa, the default: no score matrix; the output (o_proj's input) and the fp32 log-sum-exp
    // (1 x 4 heads x 16 x 4 B) instead of the softmax, probabilities and context.
    const auto sdpa = make_plan("tiny-llama");
    CHECK(sdpa->scenario().job.attention == config::AttentionKind::sdpa);
    t = terms(*sdpa, c);
    CHECK(t.count("attn.softmax") + t.count("attn.probs") + t.count("attn.context") == 0);
    CHECK(t.at("attn.out") == 16 * 32 * 2);
    CHECK(t.at("attn.lse") == 4 * 16 * 4);
    CHECK(plan::call_activations(*sdpa, c).saved_bytes() == eager_bytes - 6144 - 1024 + 1024 + 256);
    CHECK(plan::call_activations(*sdpa, c).forward_workspace == 0);

    // Attention dropout (Llama's attention_dropout set to 0.1): the mask, 1 B per score; sdpa
    // keeps none (the kernel draws it again in backward).
    const auto dropped = make_plan("tiny-llama", {"memory.attention=eager", "dropout.attention=0.1"});
    CHECK(plan::call_activations(*dropped, c).saved_bytes() == eager_bytes + 1024);
    const auto sdpa_dropped = make_plan("tiny-llama", {"dropout.attention=0.1"});
    CHECK(plan::call_activations(*sdpa_dropped, c).saved_bytes() == eager_bytes - 6144 - 1024 + 1024 + 256);
    // fp32 compute: the softmax output is the tensor the matmul reads (4 B), none apart.
    const auto fp32 = make_plan("tiny-llama", {"memory.attention=eager"}, "fp32");
    t = terms(*fp32, c);
    CHECK(t.count("attn.softmax") == 0);
    CHECK(t.at("attn.probs") == 1024 * 4);
}

TEST_CASE("T5 block with dropout 0.1 and the fp32 softmax: 7 B per score, masks on every dropped tensor") {
    // tiny-t5 (dropout_rate 0.1): hidden 32, 4 heads of 8, gated-GELU ffn 64; decoder block 1
    // has self- and cross-attention (16 encoder, 16 decoder tokens) and no position bias.
    const auto p = make_plan("tiny-t5");
    CHECK(p->scenario().job.attention == config::AttentionKind::eager);  // T5 has no SDPA path
    const int c = call_of(*p, "decoder.block.1");
    const auto t = terms(*p, c);
    for (const char* a : {"sa", "ca"}) {
        CAPTURE(a);
        // softmax(scores.float()) 4 B + dropped probabilities in bf16 2 B + the mask 1 B.
        CHECK(t.at(std::string(a) + ".softmax") == 1024 * 4);
        CHECK(t.at(std::string(a) + ".probs") == 1024 * 2);
        CHECK(t.at(std::string(a) + ".probs.mask") == 1024);
        CHECK(t.at(std::string(a) + ".out.mask") == 16 * 32);  // hidden_states + dropout(attention_output)
    }
    CHECK(t.at("ffn.prod.mask") == 16 * 64);  // DenseReluDense.dropout before wo
    CHECK(t.at("ffn.prod") == 16 * 64 * 2);   // ... whose output wo keeps
    CHECK(t.at("ffn.out.mask") == 16 * 32);   // T5LayerFF's dropout
    // Per attention: norm 1024 + 64, input 1024, q k v 3072, scores 7 x 1024, context 1024,
    // branch mask 512 = 13888. FFN: norm 1088, input 1024, gate act up 6144, mask 1024, prod
    // 2048, branch mask 512 = 11840.
    CHECK(plan::call_activations(*p, c).saved_bytes() == 2 * 13888 + 11840);
    // Without dropout: 6 B per score (4 + 2), no masks.
    const auto none = make_plan("tiny-t5", {"dropout.attention=0", "dropout.hidden=0"});
    CHECK(plan::call_activations(*none, c).saved_bytes() == 2 * (13888 - 1024 - 512) + 11840 - 1024 - 512);
    // The stack ends: the embedding's output and the encoder's final-norm output are dropped.
    CHECK(terms(*p, 0).at("hidden.mask") == 16 * 32);
    CHECK(terms(*p, call_of(*p, "encoder.block.1")).at("encoder.output.mask") == 16 * 32);
    // Asked for sdpa, T5 is refused as transformers refuses it.
    CHECK_THROWS_AS(make_plan("tiny-t5", {"memory.attention=sdpa"}), InputError);
}

TEST_CASE("GPT-2 block with dropout 0.1: softmax in bf16 (no autocast), 5 B per score, residual masks") {
    // tiny-gpt2: hidden 32, 4 heads of 8, ffn 128, attn/resid/embd_pdrop 0.1.
    const auto p = make_plan("tiny-gpt2", {"memory.attention=eager"});
    const int c = call_of(*p, "block.1");
    const auto t = terms(*p, c);
    CHECK(t.at("attn.softmax") == 1024 * 2);  // softmax in the input dtype
    CHECK(t.at("attn.probs") == 1024 * 2);    // attn_dropout's output, read by the matmul with v
    CHECK(t.at("attn.probs.mask") == 1024);
    CHECK(t.at("attn.out.mask") == 16 * 32);  // resid_dropout
    CHECK(t.at("mlp.out.mask") == 16 * 32);   // mlp.dropout
    // LayerNorms 2 x (1024 + 128), attn and mlp inputs 2048, q k v 3072, scores 5 x 1024,
    // context 1024, fc_out and act 2 x 4096, masks 2 x 512.
    CHECK(plan::call_activations(*p, c).saved_bytes() == 2 * 1152 + 2048 + 3072 + 5120 + 1024 + 8192 + 1024);
    CHECK(terms(*p, 0).at("hidden.mask") == 16 * 32);  // drop(inputs_embeds + position_embeds)
    // sdpa (GPT-2's default) keeps no mask of the probabilities; the residual masks stay.
    const auto sdpa = make_plan("tiny-gpt2");
    const auto s = terms(*sdpa, c);
    CHECK(s.count("attn.probs.mask") == 0);
    CHECK(s.at("attn.out.mask") == 16 * 32);
    CHECK(s.at("attn.lse") == 4 * 16 * 4);
}

TEST_CASE("the loss: eager keeps bf16 logits and the fp32 log-softmax, fused only the logits") {
    // tiny-llama head: vocab 96, 16 tokens: 1536 logits.
    const std::int64_t n = 16 * 96;
    const auto eager = make_plan("tiny-llama");
    const int head = static_cast<int>(eager->program().size()) - 1;
    const auto e = plan::call_activations(*eager, head);
    auto t = terms(*eager, head);
    CHECK(t.at("logits") == n * 2);
    CHECK(t.at("log_softmax") == n * 4);
    // Forward: logits.float() beside the logits and the log-softmax (2 + 4 + 4 B at the peak);
    // backward: the fp32 gradient, then its cast to bf16.
    CHECK(e.forward_workspace == n * 4);
    CHECK(e.backward_workspace == n * (4 + 2));
    const auto fused = make_plan("tiny-llama", {"memory.loss=fused"});
    const auto f = plan::call_activations(*fused, head);
    t = terms(*fused, head);
    CHECK(t.at("logits") == n * 2);
    CHECK(t.count("log_softmax") == 0);
    CHECK(f.saved_bytes() == e.saved_bytes() - n * 4);
    CHECK(f.forward_workspace == 0);
    CHECK(f.backward_workspace == 0);
    // fp32: .float() is the tensor itself: no copy, 4 + 4 B kept.
    const auto fp32 = make_plan("tiny-llama", {}, "fp32");
    const auto g = plan::call_activations(*fp32, head);
    CHECK(terms(*fp32, head).at("logits") == n * 4);
    CHECK(g.forward_workspace == 0);
    CHECK(g.backward_workspace == n * 4);
}

TEST_CASE("CodeT5+ (CodeGen's _attn): q and k kept in fp32, the fp32 softmax beside its bf16 cast") {
    // tiny-codet5p decoder block 0: hidden 32, 4 heads of 8, no cross-attention, 16 tokens.
    const auto p = make_plan("tiny-codet5p");
    const auto t = terms(*p, call_of(*p, "decoder.block.0"));
    CHECK(t.at("attn.q") == 16 * 32 * 4);  // query.to(torch.float32), kept by the score matmul
    CHECK(t.at("attn.k") == 16 * 32 * 4);
    CHECK(t.at("attn.v") == 16 * 32 * 2);
    CHECK(t.at("attn.softmax") == 1024 * 4);
    CHECK(t.at("attn.probs") == 1024 * 2);
    // The cross-attention (CodeT5+'s own code, not CodeGen's) keeps q and k in bf16.
    const auto x = terms(*p, call_of(*p, "decoder.block.1"));
    CHECK(x.at("ca.q") == 16 * 32 * 2);
    CHECK(x.at("attn.q") == 16 * 32 * 4);
}

TEST_CASE("the loss: T5 calls CrossEntropyLoss on its logits as they are, so the log-softmax stays bf16") {
    // T5ForConditionalGeneration: loss_fct(lm_logits.view(-1, V), labels): no .float(), so no fp32
    // copy in forward and the logits' gradient comes straight out in bf16 (Llama's loss upcasts).
    const auto t5 = make_plan("tiny-t5");
    const int head = static_cast<int>(t5->program().size()) - 1;
    const std::int64_t n = 16 * t5->scenario().model.vocab;  // decoder tokens = seq_len
    const auto t = terms(*t5, head);
    CHECK(t.at("logits") == n * 2);
    CHECK(t.at("log_softmax") == n * 2);
    const auto a = plan::call_activations(*t5, head);
    CHECK(a.forward_workspace == 0);
    CHECK(a.backward_workspace == n * 2);
}

// Selective checkpointing, by hand for a Llama block with sdpa (torchtitan's op-level policy):
// projections in forward order q(1) k(2) v(3) o(4) gate(5) up(6) down(7); the odd ones keep their
// outputs — q (rotated in place afterwards: a term of its own), v (the term attn.v), gate (the
// term mlp.gate), down (a term of its own) — and sdpa its output and log-sum-exp.
TEST_CASE("selective checkpointing of a Llama block: the input, q, v, gate, down, sdpa's out and lse") {
    const auto sel = make_plan("tiny-llama", {"memory.activation_checkpointing=selective"});
    const auto full = make_plan("tiny-llama", {"memory.activation_checkpointing=full"});
    const auto none = make_plan("tiny-llama");
    const int c = call_of(*sel, "block.1");
    const plan::CallActivations a = plan::call_activations(*sel, c);
    REQUIRE(a.checkpointed);
    std::map<std::string, std::int64_t> kept;
    for (const auto& t : a.terms)
        if (t.kept) kept[t.name] = t.bytes;
    const std::string p = "model.layers.1.";
    const std::map<std::string, std::int64_t> want = {
        {"input_layernorm.input", 16 * 32 * 2},       // the block input
        {p + "self_attn.q_proj.out", 16 * 32 * 2},    // 4 heads x 8
        {"attn.v", 16 * 16 * 2},                      // 2 KV heads x 8
        {"attn.out", 16 * 32 * 2},
        {"attn.lse", 4 * 16 * 4},
        {"mlp.gate", 16 * 88 * 2},
        {p + "mlp.down_proj.out", 16 * 32 * 2},
    };
    CHECK(kept == want);
    std::vector<std::string> modules;
    for (const auto& k : a.kept_outputs) modules.push_back(k.module);
    CHECK(modules == std::vector<std::string>{p + "self_attn.q_proj", p + "self_attn.v_proj", p + "mlp.gate_proj", p + "mlp.down_proj"});
    CHECK(a.attention_kept);
    // Between full (the input alone) and none (everything) in what forward leaves; the terms of
    // its own (q and down) are what no checkpointing would not keep.
    const plan::CallActivations f = plan::call_activations(*full, c), n = plan::call_activations(*none, c);
    CHECK(f.forward_bytes() == 16 * 32 * 2);
    CHECK(a.forward_bytes() > f.forward_bytes());
    CHECK(a.forward_bytes() < n.forward_bytes());
    CHECK(a.saved_bytes() == n.saved_bytes() + 2 * 16 * 32 * 2);
    // Recompute: k, o and up (2 * 16 * (32*16 + 32*32 + 32*88) FLOPs); no q, v, gate, down, no
    // attention. Full checkpointing recomputes the whole forward.
    const auto in = plan::activation_inputs(*sel);
    const model::ComputeWork w = plan::recompute_work(in, c, a);
    CHECK(w.fused_attention_flops == 0);
    CHECK(w.flops() == 2.0 * 16 * (32 * 16 + 32 * 32 + 32 * 88));
    const auto fin = plan::activation_inputs(*full);
    const auto& step = full->program().at(static_cast<std::size_t>(c));
    CHECK(plan::recompute_work(fin, c, f).flops() ==
          model::call_flops(full->scenario().model, full->units(), step, full->batch_shape()).forward);
}

TEST_CASE("selective checkpointing of a GPT-2 block: the fused QKV as q, k, v and fc's output; eager attention recomputed") {
    // tiny-gpt2: c_attn(1) c_proj(2) c_fc(3) mlp.c_proj(4): c_attn's output (3 x hidden) is kept as
    // q, k and v, the views GPT-2 makes of it; c_fc's is mlp.fc_out. Eager attention is batched
    // matmuls and a softmax: not in the policy's list, recomputed.
    const auto sel = make_plan("tiny-gpt2", {"memory.activation_checkpointing=selective", "memory.attention=eager"});
    const int c = call_of(*sel, "block.1");
    const plan::CallActivations a = plan::call_activations(*sel, c);
    const std::int64_t h = sel->scenario().model.decoder.hidden, f = sel->scenario().model.decoder.ffn;
    std::map<std::string, std::int64_t> kept;
    for (const auto& t : a.terms)
        if (t.kept) kept[t.name] = t.bytes;
    const std::map<std::string, std::int64_t> want = {
        {"ln_1.input", 16 * h * 2}, {"attn.q", 16 * h * 2}, {"attn.k", 16 * h * 2}, {"attn.v", 16 * h * 2}, {"mlp.fc_out", 16 * f * 2}};
    CHECK(kept == want);
    CHECK_FALSE(a.attention_kept);
    REQUIRE(a.kept_outputs.size() == 2);
    CHECK(a.kept_outputs[0].parts == std::vector<std::string>{"attn.q", "attn.k", "attn.v"});
    CHECK(a.kept_outputs[1].term == "mlp.fc_out");
    // BLOOM's reshape copies q, k, v: its fused output is a term of its own.
    const auto bloom = make_plan("tiny-bloom", {"memory.activation_checkpointing=selective"});
    const plan::CallActivations b = plan::call_activations(*bloom, call_of(*bloom, "block.1"));
    CHECK(b.kept_outputs.at(0).term == "transformer.h.1.self_attention.query_key_value.out");
    const auto& step = sel->program().at(static_cast<std::size_t>(c));
    const auto full = model::call_flops(sel->scenario().model, sel->units(), step, sel->batch_shape()).forward;
    CHECK(plan::recompute_work(plan::activation_inputs(*sel), c, a).flops() == full - 2.0 * 16 * (h * 3 * h + h * f));
}
