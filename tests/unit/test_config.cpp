// Inputs: every shipped topology and job parses; bad input gives one line per problem in the
// shape `file:line: key: bad value 'x' (allowed: ...)` and exit code 2 — asserted by running the
// binary as a user would.
#include <doctest/doctest.h>

#include <filesystem>

#include "shardsim/config/embedded.hpp"
#include "shardsim/config/job.hpp"
#include "shardsim/config/topology.hpp"
#include "shardsim/model/scenario.hpp"
#include "shardsim/plan/plan.hpp"
#include "test_util.hpp"

using namespace shardsim;
using shardsim::test::lines;
using shardsim::test::run_command;
using shardsim::test::TempDir;

TEST_CASE("every shipped topology parses, from disk and embedded, and says what it is") {
    int n = 0;
    for (const auto& entry : std::filesystem::directory_iterator(test::source_dir() + "/topologies")) {
        const std::string stem = entry.path().stem().string();
        INFO(stem);
        const auto t = config::load_topology(entry.path().string(), "", "test", {});
        const auto e = config::load_topology(stem, "", "test", {});
        CHECK(t.name == e.name);
        CHECK(t.total_gpus() >= 1);
        CHECK(t.gpu.memory_bytes > 0);
        CHECK(t.gpu.peak_tflops(DType::bf16) > 0);
        CHECK(t.intra.bandwidth_gbps > 0);
        CHECK(t.host.memory_bytes > 0);
        ++n;
    }
    CHECK(n >= 15);
    for (const char* required : {"1x-rtx4090-24g", "2x-rtx4090-24g", "2x-a100-40g", "6x-a100-40g", "1x-a100-80g",
                                 "8x-a100-80g-nvlink", "8x-h100-80g-nvlink", "4x8-h100-ib", "4x-v100-16g", "8x-v100-16g",
                                 "4x-a10g-24g", "2x-titan-rtx-24g"}) {
        INFO(required);
        CHECK(config::embedded_text("topologies", required).has_value());
    }
}

TEST_CASE("every shipped job parses into a scenario and a plan") {
    int n = 0;
    for (const auto& entry : std::filesystem::directory_iterator(test::source_dir() + "/jobs")) {
        if (entry.path().extension() != ".ini") continue;  // jobs/seed-configs/: the frameworks' configs
        INFO(entry.path());
        const auto s = model::load_scenario(entry.path().string(), {});
        CHECK(s.world_size() >= 1);
        CHECK_NOTHROW(plan::ShardingPlan::build(s));
        ++n;
    }
    CHECK(n >= 18);
}

TEST_CASE("every shipped job loads by its catalogue name too, relative paths inside it included") {
    // jobs/mini-llama-fsdp-2cpu.ini names its model as ../models/mini-llama.ini: by name, from the
    // binary, that path resolves among the shipped files, from any working folder.
    int n = 0;
    for (const auto& name : config::embedded_names("jobs")) {
        INFO(name);
        const auto by_name = model::load_scenario(name, {});
        const auto by_path = model::load_scenario(test::source_dir() + "/jobs/" + name + ".ini", {});
        CHECK(by_name.model.name == by_path.model.name);
        CHECK(by_name.topology.name == by_path.topology.name);
        ++n;
    }
    CHECK(n >= 18);
    const auto mini = model::load_scenario("mini-llama-fsdp-2cpu", {});
    CHECK(mini.model.name == "mini-llama");
    // A relative path from a shipped job that names no shipped file is the usual one-line error.
    CHECK_THROWS_WITH_AS(model::load_scenario("mini-llama-fsdp-2cpu", {"job.model=../models/nope.ini"}),
                         doctest::Contains("job.model: bad value '../models/nope.ini'"), InputError);
    CHECK_THROWS_AS(model::load_scenario("mini-llama-fsdp-2cpu", {"job.model=../../etc/passwd"}), InputError);
    // From another folder, as the issue found it: the binary run by name.
    const TempDir dir;
    const auto r = run_command("cd " + dir.path() + " && " + test::shardsim_binary() + " simulate --job mini-llama-fsdp-2cpu");
    CHECK(r.exit_code == 0);
    CHECK(r.output.find("mini-llama") != std::string::npos);
}

TEST_CASE("overrides: --set reaches job and topology keys, and the origin is remembered") {
    const auto s = model::load_scenario("llama-7b-fsdp-6x-a100-40g",
                                        {"batch.micro_batch=4", "topology.cluster.gpus_per_node=4", "fsdp.backward_prefetch=none"});
    CHECK(s.job.micro_batch == 4);
    CHECK(s.job.fsdp.backward_prefetch == config::BackwardPrefetch::none);
    CHECK(s.topology.gpus_per_node == 4);
    CHECK(s.world_size() == 4);
    CHECK(s.job.where("batch.micro_batch") == "--set batch.micro_batch=4: batch.micro_batch");
}

TEST_CASE("precision defaults follow params; the effective job lists every key") {
    const auto s = model::load_scenario("gpt2-xl-fsdp-2x-titan-rtx", {"precision.params=bf16"});
    CHECK(s.job.grads == DType::bf16);
    CHECK(s.job.reduce == DType::bf16);
    const std::string eff = s.job.effective_ini();
    for (const auto& k : config::job_schema())
        if (k.retired.empty()) CHECK(eff.find(k.key + " = ") != std::string::npos);
}

namespace {

constexpr const char* kGoodJob = R"(# a valid job
[job]
model = tiny-llama
topology = 6x-a100-40g

[parallel]
strategy = fsdp-full-shard

[batch]
micro_batch = 1
seq_len = 16
)";

struct BadCase {
    const char* name;
    std::string job;                   // job file text ("" = kGoodJob)
    std::string args;                  // extra command-line arguments
    std::vector<std::string> expected;  // exact stderr lines; "JOB" stands for the job file's path
};

std::string replace_line(const std::string& text, const std::string& from, const std::string& to) {
    const auto p = text.find(from);
    REQUIRE(p != std::string::npos);
    return text.substr(0, p) + to + text.substr(p + from.size());
}

}  // namespace

TEST_CASE("bad input: one line per problem, exact shape, exit code 2") {
    const std::string good = kGoodJob;
    const std::vector<BadCase> cases = {
        {"unknown section", good + "[batchh]\nmicro_batch = 2\n", "",
         {"JOB:12: [batchh]: unknown section (allowed: job, parallel, ddp, deepspeed, fsdp, precision, optimizer, batch, memory, dropout, lora)"}},
        {"misspelled key", replace_line(good, "micro_batch = 1", "micro_bach = 1"), "",
         {"JOB:10: batch.micro_bach: unknown key (allowed in [batch]: micro_batch, grad_accum, seq_len, decoder_seq_len)"}},
        {"bad number", replace_line(good, "seq_len = 16", "seq_len = 16x"), "",
         {"JOB:11: batch.seq_len: bad value '16x' (allowed: integer >= 1)"}},
        {"negative size", replace_line(good, "micro_batch = 1", "micro_batch = -2"), "",
         {"JOB:10: batch.micro_batch: bad value '-2' (allowed: integer >= 1)"}},
        {"unknown strategy", replace_line(good, "fsdp-full-shard", "zero4"), "",
         {"JOB:7: parallel.strategy: bad value 'zero4' (allowed: ddp, zero1, zero2, zero3, fsdp-full-shard, "
          "fsdp-shard-grad-op, fsdp-no-shard, fsdp-hybrid-shard)"}},
        {"unknown dtype", good + "[precision]\nparams = fp8\n", "",
         {"JOB:13: precision.params: bad value 'fp8' (allowed: fp32, bf16, fp16)"}},
        {"bad boolean", good + "[memory]\nactivation_checkpointing = yes\n", "",
         {"JOB:13: memory.activation_checkpointing: bad value 'yes' (allowed: true, false)"}},
        {"missing required key", replace_line(good, "seq_len = 16\n", ""), "",
         {"JOB:9: batch.seq_len: missing required key (allowed: integer >= 1)"}},
        {"line without =", replace_line(good, "micro_batch = 1", "micro_batch 1"), "",
         {"JOB:10: bad line 'micro_batch 1' (expected: key = value)"}},
        {"key set twice", good + "seq_len = 32\n", "",
         {"JOB:12: batch.seq_len: set twice (first at line 11)"}},
        {"several problems reported together",
         replace_line(replace_line(good, "seq_len = 16", "seq_len = 0"), "micro_batch = 1", "micro_batch = x"), "",
         {"JOB:10: batch.micro_batch: bad value 'x' (allowed: integer >= 1)",
          "JOB:11: batch.seq_len: bad value '0' (allowed: integer >= 1)"}},
        {"bad override value", "", "--set batch.micro_batch=0",
         {"--set batch.micro_batch=0: batch.micro_batch: bad value '0' (allowed: integer >= 1)"}},
        {"malformed override", "", "--set micro_batch",
         {"--set micro_batch: bad override (expected: section.key=value, e.g. batch.micro_batch=4)"}},
        {"bad topology override", "", "--set topology.gpu.memory_gib=-1",
         {"--set topology.gpu.memory_gib=-1: gpu.memory_gib: bad value '-1' (allowed: number > 0)"}},
        {"world size larger than the topology", good + "[job]\n", "--set parallel.world_size=8",
         {"JOB:12: [job]: section appears twice"}},
        {"world size larger than the topology (override)", "", "--set parallel.world_size=8",
         {"--set parallel.world_size=8: parallel.world_size: bad value '8': topology 6x-a100-40g has 1 node(s) x 6 GPUs = 6 "
          "(allowed: 0 to 6)"}},
        {"world size on several nodes", replace_line(good, "6x-a100-40g", "4x8-h100-ib"), "--set parallel.world_size=16",
         {"--set parallel.world_size=16: parallel.world_size: bad value '16': topology 4x8-h100-ib has 4 node(s) x 8 GPUs = 32 "
          "(allowed: 0 or 32, as several nodes use all their GPUs)"}},
        {"hybrid shard over a whole node of one", replace_line(good, "fsdp-full-shard", "fsdp-hybrid-shard"), "",
         {"JOB:7: parallel.strategy: bad value 'fsdp-hybrid-shard': fsdp-hybrid-shard needs world = replicate x shard with "
          "replicate >= 2, but shard 6 (the GPUs of one node) and world 6 = 1 node(s) x 6 ranks of topology 6x-a100-40g "
          "(allowed: parallel.shard_size in 1, 2, 3)"}},
        {"hybrid shard size that does not divide the world", replace_line(good, "fsdp-full-shard", "fsdp-hybrid-shard"),
         "--set parallel.shard_size=4",
         {"--set parallel.shard_size=4: parallel.shard_size: bad value '4': fsdp-hybrid-shard needs world = replicate x shard "
          "with replicate >= 2, but shard 4 and world 6 = 1 node(s) x 6 ranks of topology 6x-a100-40g (allowed: "
          "parallel.shard_size in 1, 2, 3)"}},
        {"a shard size without hybrid sharding", good, "--set parallel.shard_size=3",
         {"--set parallel.shard_size=3: parallel.shard_size: bad value '3': strategy fsdp-full-shard shards over the whole world "
          "or not at all (allowed: 0, or strategy fsdp-hybrid-shard)"}},
        {"hpZ on a strategy other than zero3", good, "--set parallel.secondary_shard=3",
         {"--set parallel.secondary_shard=3: parallel.secondary_shard: bad value '3': hpZ is a ZeRO-3 feature, strategy is "
          "fsdp-full-shard (allowed: 0, or strategy zero3)"}},
        {"hpZ that does not split the shard group", replace_line(good, "fsdp-full-shard", "zero3"), "--set parallel.secondary_shard=4",
         {"--set parallel.secondary_shard=4: parallel.secondary_shard: bad value '4': the secondary partition splits the shard "
          "group of 6 ranks (world 6 = 1 node(s) x 6 ranks of topology 6x-a100-40g) into equal parts of 2 or more ranks "
          "(allowed: 0, or a divisor of 6 in 2..3)"}},
        {"offload with a replicated optimizer", replace_line(good, "fsdp-full-shard", "ddp") + "[memory]\noffload_optimizer = true\n", "",
         {"JOB:13: memory.offload_optimizer: bad value 'true': strategy ddp keeps a full optimizer on every rank (allowed "
          "with: zero1, zero2, zero3, fsdp-full-shard, fsdp-shard-grad-op, fsdp-hybrid-shard)"}},
        {"LoRA target not in the model", good + "[lora]\nrank = 4\ntargets = q,v_proj\n", "",
         {"JOB:14: lora.targets: bad value 'q': model tiny-llama (arch llama) has no such module (allowed: q_proj, k_proj, "
          "v_proj, o_proj, gate_proj, up_proj, down_proj)"}},
        {"LoRA rank without targets", good + "[lora]\nrank = 4\n", "",
         {"JOB: lora.targets: missing: LoRA rank is 4 but no target modules are given (allowed: module names such as q,v)"}},
        {"unknown model", replace_line(good, "tiny-llama", "llama-9b"), "",
         {"JOB:3: job.model: bad value 'llama-9b' (allowed: a catalogue model (bloomz-7b1, codet5p-2b, flan-t5-xl, "
          "flan-t5-xxl, gpt2-large, gpt2-xl, llama-2-13b, llama-2-70b, llama-7b, mini-llama, mt0-xxl, t0-3b, t5-3b, tiny-bloom, "
          "tiny-codet5p, tiny-gpt2, tiny-llama, tiny-t5) or a path to a model .ini file)"}},
        {"decoder length on a decoder-only model", good + "decoder_seq_len = 8\n", "",
         {"JOB:12: batch.decoder_seq_len: bad value '8': model tiny-llama is decoder-only (allowed: 0)"}},
        {"context longer than learned positions", replace_line(replace_line(good, "tiny-llama", "tiny-gpt2"), "seq_len = 16", "seq_len = 100"), "",
         {"JOB:11: batch.seq_len: bad value '100': model tiny-gpt2 learns 64 positions (allowed: 1..64)"}},
    };
    TempDir dir;
    for (const auto& c : cases) {
        INFO(c.name);
        const std::string path = dir.file("job.ini", c.job.empty() ? good : c.job);
        const auto r = run_command(test::shardsim_binary() + " simulate --job " + path + " " + c.args);
        CHECK(r.exit_code == 2);
        std::vector<std::string> expected;
        for (auto e : c.expected) {
            for (std::size_t p; (p = e.find("JOB")) != std::string::npos;) e.replace(p, 3, path);
            expected.push_back(e);
        }
        std::string want;
        for (const auto& e : expected) want += e + "\n";
        CHECK(r.output == want);
    }
}

TEST_CASE("a model .ini with inconsistent dimensions is refused with every problem") {
    TempDir dir;
    const std::string model = dir.file("m.ini", R"([model]
name = broken
arch = llama
vocab = 100
ffn_kind = gelu
tied_embeddings = false

[decoder]
layers = 2
hidden = 30
heads = 4
kv_heads = 3
ffn = 64
)");
    const std::string job = dir.file("job.ini", replace_line(kGoodJob, "tiny-llama", "m.ini"));
    const auto r = run_command(test::shardsim_binary() + " simulate --job " + job);
    CHECK(r.exit_code == 2);
    const auto l = lines(r.output);
    INFO(r.output);
    REQUIRE(l.size() == 3);
    CHECK(l[0] == model + ":5: model.ffn_kind: bad value 'gelu': arch llama does not use it (allowed: swiglu)");
    CHECK(l[1] == model + ":12: decoder.kv_heads: bad value '3': must divide heads (4) (allowed: a divisor of heads)");
    CHECK(l[2] == model + ":11: decoder.heads: bad value '4': must divide hidden (30) (allowed: a divisor of hidden)");
}

TEST_CASE("help lists every job and topology key from the parser's own table") {
    const auto r = run_command(test::shardsim_binary() + " simulate --help");
    CHECK(r.exit_code == 0);
    for (const auto& k : config::job_schema())
        if (k.retired.empty()) CHECK(r.output.find(k.name()) != std::string::npos);
    for (const auto& k : config::topology_schema()) CHECK(r.output.find(k.name()) != std::string::npos);
}
