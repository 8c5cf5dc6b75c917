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
         {"JOB:11: batch.seq_len: bad value '16x' (allowed: integer in [1, 1048576])"}},
        {"negative size", replace_line(good, "micro_batch = 1", "micro_batch = -2"), "",
         {"JOB:10: batch.micro_batch: bad value '-2' (allowed: integer in [1, 65536])"}},
        {"unknown strategy", replace_line(good, "fsdp-full-shard", "zero4"), "",
         {"JOB:7: parallel.strategy: bad value 'zero4' (allowed: ddp, zero1, zero2, zero3, fsdp-full-shard, "
          "fsdp-shard-grad-op, fsdp-no-shard, fsdp-hybrid-shard)"}},
        {"unknown dtype", good + "[precision]\nparams = fp8\n", "",
         {"JOB:13: precision.params: bad value 'fp8' (allowed: fp32, bf16, fp16)"}},
        {"bad boolean", good + "[memory]\nactivation_checkpointing = yes\n", "",
         {"JOB:13: memory.activation_checkpointing: bad value 'yes' (allowed: none, full, selective, false, true)"}},
        {"missing required key", replace_line(good, "seq_len = 16\n", ""), "",
         {"JOB:9: batch.seq_len: missing required key (allowed: integer in [1, 1048576])"}},
        {"line without =", replace_line(good, "micro_batch = 1", "micro_batch 1"), "",
         {"JOB:10: bad line 'micro_batch 1' (expected: key = value)"}},
        {"key set twice", good + "seq_len = 32\n", "",
         {"JOB:12: batch.seq_len: set twice (first at line 11)"}},
        {"several problems reported together",
         replace_line(replace_line(good, "seq_len = 16", "seq_len = 0"), "micro_batch = 1", "micro_batch = x"), "",
         {"JOB:10: batch.micro_batch: bad value 'x' (allowed: integer in [1, 65536])",
          "JOB:11: batch.seq_len: bad value '0' (allowed: integer in [1, 1048576])"}},
        {"bad override value", "", "--set batch.micro_batch=0",
         {"--set batch.micro_batch=0: batch.micro_batch: bad value '0' (allowed: integer in [1, 65536])"}},
        {"malformed override", "", "--set micro_batch",
         {"--set micro_batch: bad override (expected: section.key=value, e.g. batch.micro_batch=4)"}},
        {"bad topology override", "", "--set topology.gpu.memory_gib=-1",
         {"--set topology.gpu.memory_gib=-1: gpu.memory_gib: bad value '-1' (allowed: number in (0, 1048576])"}},
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
        // Issue 17's reproducers: each once crashed (SIGFPE), wrapped around, or answered wrongly with exit 0.
        {"GPUs per node past the maximum (was SIGFPE)", "", "--set topology.cluster.gpus_per_node=9e18",
         {"--set topology.cluster.gpus_per_node=9e18: cluster.gpus_per_node: bad value '9e18' (allowed: integer in [1, 1024])"}},
        {"GPUs per node past int32 (was bad_alloc)", "", "--set topology.cluster.gpus_per_node=2147483648",
         {"--set topology.cluster.gpus_per_node=2147483648: cluster.gpus_per_node: bad value '2147483648' (allowed: integer in "
          "[1, 1024])"}},
        {"nodes past the maximum (was a negative world size blaming parallel.world_size)", "", "--set topology.cluster.nodes=9e18",
         {"--set topology.cluster.nodes=9e18: cluster.nodes: bad value '9e18' (allowed: integer in [1, 1000000])"}},
        {"nodes x GPUs past a million", replace_line(good, "6x-a100-40g", "4x8-h100-ib"), "--set topology.cluster.nodes=125001",
         {"--set topology.cluster.nodes=125001: cluster.nodes: bad value '125001': 125001 node(s) x 8 GPUs = 1000008 GPUs "
          "(allowed: at most 1000000 GPUs in all, here nodes <= 125000)"}},
        {"runtime overhead past 1 TiB (was peak 0.00, fits yes)", "", "--set topology.gpu.runtime_overhead_mib=1e13",
         {"--set topology.gpu.runtime_overhead_mib=1e13: gpu.runtime_overhead_mib: bad value '1e13' (allowed: number in [0, "
          "1048576])"}},
        {"device memory past 1 PiB (was a negative capacity)", "", "--set topology.gpu.memory_gib=1e10",
         {"--set topology.gpu.memory_gib=1e10: gpu.memory_gib: bad value '1e10' (allowed: number in (0, 1048576])"}},
        {"grad_accum past 2^20 (was truncated to 1 micro-batch)", "", "--set batch.grad_accum=4294967297",
         {"--set batch.grad_accum=4294967297: batch.grad_accum: bad value '4294967297' (allowed: integer in [1, 1048576])"}},
        {"seq_len past 2^20 (overflowed int64)", "", "--set batch.seq_len=1e8",
         {"--set batch.seq_len=1e8: batch.seq_len: bad value '1e8' (allowed: integer in [1, 1048576])"}},
        {"micro_batch past 65,536 (overflowed int64)", "", "--set batch.micro_batch=1e12",
         {"--set batch.micro_batch=1e12: batch.micro_batch: bad value '1e12' (allowed: integer in [1, 65536])"}},
        {"LoRA rank past 65,536 (overflowed int64)", good + "[lora]\nrank = 9e18\ntargets = q_proj\n", "",
         {"JOB:13: lora.rank: bad value '9e18' (allowed: integer in [0, 65536])"}},
        {"a step past 524,288 unit passes (ran out of memory)", replace_line(good, "tiny-llama", "llama-2-70b"),
         "--set batch.grad_accum=100000",
         {"--set batch.grad_accum=100000: batch.grad_accum: bad value '100000': model llama-2-70b has 82 units (blocks, "
          "embedding, head), so one step is 8200000 unit passes per rank (allowed: at most 524288 unit passes, here "
          "grad_accum <= 6393)"}},
        {"a model that is a directory (was 'missing required key')", "", "--set job.model=/",
         {"--set job.model=/: job.model: bad value '/': is a directory (allowed: a catalogue model (bloomz-7b1, codet5p-2b, "
          "flan-t5-xl, flan-t5-xxl, gpt2-large, gpt2-xl, llama-2-13b, llama-2-70b, llama-7b, mini-llama, mt0-xxl, t0-3b, t5-3b, "
          "tiny-bloom, tiny-codet5p, tiny-gpt2, tiny-llama, tiny-t5) or a path to a model .ini file)"}},
        {"a topology that is a device (would read forever)", "", "--set job.topology=/dev/zero",
         {"--set job.topology=/dev/zero: job.topology: bad value '/dev/zero': is not a regular file (allowed: a shipped topology "
          "(128x8-h100-ib, 1x-a100-80g, 1x-rtx4090-24g, 2x-a100-40g, 2x-rtx4090-24g, 2x-titan-rtx-24g, 4x-a10g-24g, "
          "4x-v100-16g, 4x8-h100-ib, 6x-a100-40g, 8x-a100-40g, 8x-a100-80g-nvlink, 8x-h100-80g-nvlink, 8x-v100-16g, "
          "cpu-host) or a path to a .ini file relative to JOBDIR)"}},
    };
    TempDir dir;
    for (const auto& c : cases) {
        INFO(c.name);
        const std::string path = dir.file("job.ini", c.job.empty() ? good : c.job);
        const auto r = run_command(test::shardsim_binary() + " simulate --job " + path + " " + c.args);
        CHECK(r.exit_code == 2);
        std::vector<std::string> expected;
        for (auto e : c.expected) {
            const std::string job_dir = std::filesystem::path(path).parent_path().string();
            for (std::size_t p; (p = e.find("JOBDIR")) != std::string::npos;) e.replace(p, 6, job_dir);
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

TEST_CASE("sizes within their maxima whose product overflows int64: one clear line, exit 2, never a wrapped number") {
    // Llama-2-70B at the longest context and the largest micro-batch: its attention scores alone
    // would be 2^16 x 64 heads x 2^40 token pairs. Which product overflows first is the plan's
    // business; that it is named, with its operands, is what this checks.
    const auto r = run_command(test::shardsim_binary() +
                               " simulate --set job.model=llama-2-70b --set batch.seq_len=1048576 --set batch.micro_batch=65536");
    CHECK(r.exit_code == 2);
    const auto l = lines(r.output);
    REQUIRE(l.size() == 1);
    CHECK(l[0].rfind("activation bytes (micro_batch x sequence length x model widths) overflows int64: ", 0) == 0);
    CHECK(l[0].find("(allowed: sizes whose element and byte counts stay below 2^63; lower the batch, the sequence lengths or "
                    "the model's dimensions)") != std::string::npos);
    // One step below: the answer is a number, and the job does not fit.
    const auto ok = run_command(test::shardsim_binary() + " simulate --json --set job.model=llama-2-70b --set batch.seq_len=1048576");
    CHECK(ok.exit_code == 0);
    CHECK(ok.output.find("\"fits\": false") != std::string::npos);
}

TEST_CASE("model files past the maxima, with an [encoder] missing sizes, or too large in total: every problem, exit 2") {
    // Each once crashed (SIGFPE on heads = 0 or a missing ffn) or reported a negative parameter
    // count that "fit". The files are the fuzzers' seeds too (tests/fuzz/corpus/model).
    const std::string dir = test::source_dir() + "/tests/fuzz/corpus/model/";
    const std::vector<std::pair<std::string, std::vector<std::string>>> cases = {
        {"t5-encoder-heads-0.ini", {":15: encoder.heads: bad value '0': an encoder needs it (allowed: integer >= 1)"}},
        {"t5-encoder-no-ffn.ini", {":12: encoder.ffn: missing required key (allowed: integer >= 1)"}},
        {"t5-encoder-empty.ini",
         {":12: encoder.layers: missing required key (allowed: integer >= 1)",
          ":12: encoder.hidden: missing required key (allowed: integer >= 1)",
          ":12: encoder.heads: missing required key (allowed: integer >= 1)",
          ":12: encoder.ffn: missing required key (allowed: integer >= 1)"}},
        {"llama-vocab-9e18.ini", {":5: model.vocab: bad value '9000000000000000000' (allowed: integer in [1, 16777216])"}},
        {"llama-ffn-9e18.ini", {":16: decoder.ffn: bad value '9000000000000000000' (allowed: integer in [1, 4194304])"}},
        {"llama-hidden-heads-2pow62.ini",
         {":13: decoder.hidden: bad value '4611686018427387904' (allowed: integer in [1, 1048576])",
          ":14: decoder.heads: bad value '4611686018427387904' (allowed: integer in [1, 65536])",
          ":15: decoder.kv_heads: bad value '4611686018427387904' (allowed: integer in [0, 65536])"}},
        {"llama-all-at-maxima.ini",
         {": model tiny-llama: these dimensions make 1152956826418937856 parameters (allowed: at most 1125899906842624 = "
          "2^50 parameters, 1,000x the largest published model)"}},
    };
    for (const auto& c : cases) {
        const std::string& file = c.first;
        const std::vector<std::string>& expected = c.second;
        INFO(file);
        const auto r = run_command(test::shardsim_binary() + " simulate --job tiny-llama-cpu --set job.model=" + dir + file);
        CHECK(r.exit_code == 2);
        std::string want;
        for (const auto& e : expected) want += dir + file + e + "\n";
        CHECK(r.output == want);
    }
}

TEST_CASE("job files that are directories, devices or too large: one line naming what is wrong, exit 2") {
    TempDir dir;
    const std::string big = dir.file("big.ini", std::string(config::kMaxInputFileBytes + 1, '#'));
    const std::vector<std::pair<std::string, std::string>> cases = {
        {"/", "is a directory"},
        {"/dev/zero", "is not a regular file"},
        {dir.path("missing.ini"), "no such file"},
        {big, "is larger than 16 MiB (16777217 bytes)"},
    };
    for (const auto& c : cases) {
        const std::string& path = c.first;
        const std::string& why = c.second;
        INFO(path);
        const auto r = run_command(test::shardsim_binary() + " simulate --job " + path);
        CHECK(r.exit_code == 2);
        CHECK(r.output == "--job: bad value '" + path + "': " + why +
                              " (allowed: a path to a job .ini, e.g. jobs/llama-7b-fsdp-6x-a100-40g.ini, or a shipped job name)\n");
    }
}

TEST_CASE("help lists every job and topology key from the parser's own table") {
    const auto r = run_command(test::shardsim_binary() + " simulate --help");
    CHECK(r.exit_code == 0);
    for (const auto& k : config::job_schema())
        if (k.retired.empty()) CHECK(r.output.find(k.name()) != std::string::npos);
    for (const auto& k : config::topology_schema()) CHECK(r.output.find(k.name()) != std::string::npos);
}
