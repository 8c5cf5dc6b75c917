// The users' configs (interop/): DeepSpeed, accelerate and the Trainer's flags read into the same
// plan as the equivalent job; export written back and read again into the same plan, for every
// shipped job and every strategy; bad input named by file, line, key, value and what is allowed.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>

#include "shardsim/config/embedded.hpp"
#include "shardsim/core/format.hpp"
#include "shardsim/interop/export.hpp"
#include "shardsim/interop/import.hpp"
#include "shardsim/plan/engine.hpp"
#include "shardsim/sim/predict.hpp"
#include "test_util.hpp"

using namespace shardsim;

namespace {

// Everything of a scenario that decides its plan, as text (a difference shows which field).
std::string signature(const model::Scenario& s, bool simulate = true) {
    const auto& j = s.job;
    const plan::EngineSettings e = plan::resolve_engine(s, plan::traits(j.strategy));
    std::string out;
    auto add = [&](const std::string& k, const std::string& v) { out += k + "=" + v + "\n"; };
    add("model", s.model.name);
    add("topology", s.topology.name + " " + std::to_string(s.topology.nodes) + "x" + std::to_string(s.topology.gpus_per_node));
    add("world", std::to_string(s.world_size()));
    add("strategy", config::strategy_name(j.strategy));
    add("shard_size", std::to_string(j.shard_size));
    add("secondary_shard", std::to_string(j.secondary_shard));
    add("precision", std::string(dtype_name(j.params)) + "/" + std::string(dtype_name(j.grads)) + "/" + std::string(dtype_name(j.reduce)) + " master " +
                         std::to_string(j.master_weights));
    add("optimizer", std::to_string(static_cast<int>(j.optimizer)) + " lr " + std::to_string(j.lr) + " b " + std::to_string(j.beta1) +
                         "," + std::to_string(j.beta2) + " eps " + std::to_string(j.eps) + " wd " + std::to_string(j.weight_decay) +
                         " mom " + std::to_string(j.momentum));
    add("batch", std::to_string(j.micro_batch) + "x" + std::to_string(j.grad_accum) + " len " + std::to_string(s.encoder_len()) + "/" +
                     std::to_string(s.decoder_len()));
    add("memory", config::checkpointing_name(j.activation_checkpointing) + std::to_string(j.offload_optimizer) + std::to_string(j.offload_params) +
                      " attn " + config::attention_name(j.attention) + " loss " + std::to_string(static_cast<int>(j.loss)));
    add("dropout", std::to_string(j.attention_dropout) + "/" + std::to_string(j.hidden_dropout));
    add("lora", std::to_string(j.lora_rank) + " " + std::to_string(j.lora_alpha) + " " + join(j.lora_targets, ","));
    add("fsdp", std::to_string(static_cast<int>(j.fsdp.backward_prefetch)) + std::to_string(j.fsdp.forward_prefetch) +
                    std::to_string(j.fsdp.limit_all_gathers) +
                    // no_sync() changes nothing without accumulation
                    std::to_string(j.fsdp.no_sync && j.grad_accum > 1));
    add("engine", std::to_string(e.bucket_bytes) + " " + std::to_string(e.first_bucket_bytes) + " " + std::to_string(e.gradient_as_bucket_view) +
                      " z" + std::to_string(e.zero_stage) + " rb " + std::to_string(e.reduce_bucket_elements) + " ov " +
                      std::to_string(e.overlap_comm) + " pf " + std::to_string(e.prefetch_bucket_elements) + " live " +
                      std::to_string(e.max_live_parameters) + " reuse " + std::to_string(e.max_reuse_distance) + " pin " +
                      std::to_string(e.pin_memory) + " sub " + std::to_string(e.sub_group_elements) + " persist " +
                      std::to_string(e.persistence_threshold));
    if (simulate) {
        const sim::Prediction p = sim::predict(s);
        add("peak", std::to_string(p.device_peak_bytes()));
        const timeline::RankSummary r0 = p.run.timelines.at(0).summarize();
        add("host peak", std::to_string(r0.host_peak_bytes));
        add("step time", std::to_string(r0.step_time));
        add("ops", std::to_string(p.schedule.ops.size()));
    }
    return out;
}

// The job keys no framework config carries (the model's side: train.py), given to the import as
// --set so that everything else must come through the exported files.
std::vector<std::string> model_side_sets(const model::Scenario& s) {
    const auto& v = s.job.values;
    std::vector<std::string> sets = {"memory.attention=" + v.raw("memory.attention"), "memory.loss=" + v.raw("memory.loss"),
                                     "dropout.attention=" + v.raw("dropout.attention"), "dropout.hidden=" + v.raw("dropout.hidden"),
                                     "job.steps=" + v.raw("job.steps"), "job.reported_host_gb=" + v.raw("job.reported_host_gb")};
    if (s.job.lora_rank > 0)
        for (const char* k : {"lora.rank", "lora.alpha", "lora.targets"}) sets.push_back(std::string(k) + "=" + v.raw(k));
    if (s.job.shard_size > 0) sets.push_back("parallel.shard_size=" + v.raw("parallel.shard_size"));
    return sets;
}

std::vector<interop::Format> formats_for(config::Strategy s) {
    const std::string n = config::strategy_name(s);
    if (n.rfind("zero", 0) == 0) return {interop::Format::deepspeed, interop::Format::accelerate, interop::Format::torchrun};
    return {interop::Format::accelerate, interop::Format::torchrun};
}

// A job's model or topology reference, usable from anywhere (a path in it is relative to the job).
std::string reference(const model::Scenario& s, const std::string& ref) {
    if (ref.find('/') == std::string::npos && std::filesystem::path(ref).extension() != ".ini") return ref;
    return std::filesystem::absolute(std::filesystem::path(s.job.dir) / ref).lexically_normal().string();
}

// import(export(scenario)) on a job of the Trainer's defaults plus the model's side.
model::Scenario round_trip(const model::Scenario& s, interop::Format f, const test::TempDir& dir, interop::ImportReport* report = nullptr) {
    const interop::Exported e = interop::export_job(s, f, dir.path());
    for (const auto& file : e.files) dir.file(file.name, file.text);
    interop::Request r;
    r.model = reference(s, s.job.model);
    r.topology = reference(s, s.job.topology);
    r.sets = model_side_sets(s);
    r.hf_args = e.hf_args;
    if (f == interop::Format::deepspeed) r.deepspeed = dir.path("ds_config.json");
    if (f == interop::Format::accelerate) r.accelerate = dir.path("accelerate_config.yaml");
    interop::Loaded l = interop::load(r);
    if (report) *report = l.report;
    return l.scenario;
}

const char* format_name(interop::Format f) {
    return f == interop::Format::deepspeed ? "deepspeed" : f == interop::Format::accelerate ? "accelerate" : "torchrun";
}

std::string examples() { return test::source_dir() + "/examples/configs/"; }

}  // namespace

TEST_CASE("round trip: import(export(job)) gives the same plan for every shipped job, every strategy and every format") {
    int compared = 0, refused = 0;
    for (const auto& name : config::embedded_names("jobs")) {
        for (const auto& strategy : config::strategy_names()) {
            std::optional<model::Scenario> s;
            try {
                s = model::load_scenario(test::source_dir() + "/jobs/" + name + ".ini", {"parallel.strategy=" + strategy});
                sim::predict(*s);  // a plan the job cannot have (offload with ddp, hybrid on one node) is no case
            } catch (const InputError&) {
                ++refused;
                continue;
            }
            for (const auto f : formats_for(s->job.strategy)) {
                CAPTURE(name);
                CAPTURE(strategy);
                CAPTURE(format_name(f));
                test::TempDir dir;
                const model::Scenario back = round_trip(*s, f, dir);
                CHECK(signature(back) == signature(*s));
                ++compared;
            }
        }
    }
    MESSAGE(compared << " round trips compared, " << refused << " job x strategy pairs refused by the plan itself");
    CHECK(compared >= 200);
}

TEST_CASE("round trip is not vacuous: the base it imports onto differs from the job, and a dropped key is caught") {
    const model::Scenario s = model::load_scenario("llama-7b-fsdp-6x-a100-40g", {});
    // The generated base alone (the Trainer's defaults) is another plan.
    interop::Request base;
    base.model = s.job.model;
    base.topology = s.job.topology;
    base.sets = model_side_sets(s);
    base.sets.push_back("batch.seq_len=512");
    base.hf_args = "--max_seq_length 512";
    CHECK(signature(interop::load(base).scenario, false) != signature(s, false));
    // Exported, but the accumulation left out of the flags: the comparison sees it.
    test::TempDir dir;
    interop::Exported e = interop::export_job(s, interop::Format::accelerate, dir.path());
    for (const auto& f : e.files) dir.file(f.name, f.text);
    interop::Request r = base;
    r.accelerate = dir.path("accelerate_config.yaml");
    r.hf_args = e.hf_args;
    const auto pos = r.hf_args.find("--gradient_accumulation_steps 4");
    REQUIRE(pos != std::string::npos);
    r.hf_args.erase(pos, std::string("--gradient_accumulation_steps 4").size());
    CHECK(signature(interop::load(r).scenario, false) != signature(s, false));
}

TEST_CASE("the example configs give the same plan as their INI jobs, and print every auto resolution") {
    struct Pair {
        const char* config;
        const char* job;
        const char* hf_args;
        std::size_t autos;  // "auto" values that change the plan
    };
    const Pair pairs[] = {
        {"ds-zero2.json", "ds-zero2.ini", "--max_seq_length 1024", 0},
        {"ds-zero2-offload.json", "ds-zero2-offload.ini", "--max_seq_length 1024", 0},
        {"ds-zero3-offload.json", "ds-zero3-offload.ini", "--max_seq_length 512 --max_target_length 129", 0},
        {"ds-hf-auto.json", "ds-hf-auto.ini",
         "--per_device_train_batch_size 4 --gradient_accumulation_steps 8 --bf16 --gradient_checkpointing --learning_rate 2e-5 "
         "--max_seq_length 512", 11},
        {"accelerate-fsdp.yaml", "accelerate-fsdp.ini", "--per_device_train_batch_size 1 --gradient_accumulation_steps 4 --bf16 "
                                                        "--max_seq_length 512", 0},
    };
    for (const auto& p : pairs) {
        SUBCASE(p.config) {
        const model::Scenario ini = model::load_scenario(examples() + p.job, {});
        interop::Request r;
        (std::string(p.config).find(".yaml") != std::string::npos ? r.accelerate : r.deepspeed) = examples() + p.config;
        r.model = ini.job.model;
        r.topology = ini.job.topology;
        r.hf_args = p.hf_args;
        r.sets = {"memory.attention=" + ini.job.values.raw("memory.attention")};
        const interop::Loaded l = interop::load(r);
        CHECK(signature(l.scenario) == signature(ini));
        // Every "auto" that matters is resolved, each on a line of its own (the scheduler's and
        // gradient_clipping's are ignored keys: no memory or time).
        std::size_t resolved_autos = 0;
        for (const auto& n : l.report.resolved)
            if (n.text.rfind("\"auto\"", 0) == 0) ++resolved_autos;
        CHECK(resolved_autos == p.autos);
        }
    }
}

TEST_CASE("the seed scenarios' configs in jobs/seed-configs reproduce their jobs") {
    int checked = 0;
    for (const auto& entry : std::filesystem::directory_iterator(test::source_dir() + "/jobs/seed-configs")) {
        if (!entry.is_directory()) continue;
        const std::string name = entry.path().filename().string();
        CAPTURE(name);
        const model::Scenario s = model::load_scenario(test::source_dir() + "/jobs/" + name + ".ini", {});
        interop::Request r;
        r.model = reference(s, s.job.model);
        r.topology = reference(s, s.job.topology);
        r.sets = model_side_sets(s);
        const std::string dir = entry.path().string() + "/";
        if (std::filesystem::exists(dir + "ds_config.json") && !std::filesystem::exists(dir + "accelerate_config.yaml"))
            r.deepspeed = dir + "ds_config.json";
        else
            r.accelerate = dir + "accelerate_config.yaml";
        // The Trainer's flags: the launch line of launch.sh after the script's name.
        std::ifstream in(dir + "launch.sh");
        std::string line;
        while (std::getline(in, line))
            if (auto p = line.find(" train.py "); p != std::string::npos && line[0] != '#') {
                r.hf_args = line.substr(p + 10);
                // The files next to launch.sh.
                for (std::size_t q = 0; (q = r.hf_args.find("\"$HERE/", q)) != std::string::npos;) {
                    const auto end = r.hf_args.find('"', q + 1);
                    r.hf_args.replace(q, end - q + 1, dir + r.hf_args.substr(q + 7, end - q - 7));
                }
                if (auto d = r.hf_args.find("--deepspeed "); d != std::string::npos) r.hf_args.erase(d, r.hf_args.find(' ', d + 12) - d);
            }
        REQUIRE(!r.hf_args.empty());
        CHECK(signature(interop::load(r).scenario) == signature(s));
        ++checked;
    }
    CHECK(checked >= 18);
}

TEST_CASE("HF auto: reduce_bucket_size and the stage-3 sizes follow the hidden size; the batch follows the Trainer's flags") {
    test::TempDir dir;
    const std::string ds = dir.file("ds.json", R"({
  "train_micro_batch_size_per_gpu": "auto",
  "gradient_accumulation_steps": "auto",
  "train_batch_size": "auto",
  "bf16": {"enabled": "auto"},
  "zero_optimization": {"stage": 3, "reduce_bucket_size": "auto", "stage3_prefetch_bucket_size": "auto"}
})");
    interop::Request r;
    r.deepspeed = ds;
    r.model = "llama-7b";
    r.topology = "8x-a100-40g";
    r.hf_args = "--per_device_train_batch_size 2 --gradient_accumulation_steps 3 --bf16 --max_seq_length 256";
    const interop::Loaded l = interop::load(r);
    const plan::EngineSettings e = plan::resolve_engine(l.scenario, plan::traits(l.scenario.job.strategy));
    CHECK(e.reduce_bucket_elements == 4096 * 4096);
    CHECK(e.prefetch_bucket_elements == static_cast<std::int64_t>(0.9 * 4096 * 4096));
    CHECK(l.scenario.job.micro_batch == 2);
    CHECK(l.scenario.job.grad_accum == 3);
    CHECK(l.scenario.job.params == DType::bf16);
    const std::string text = l.report.text();
    CHECK(text.find("zero_optimization.reduce_bucket_size: \"auto\" -> 16777216 elements (hidden 4096^2") != std::string::npos);
    CHECK(text.find("train_micro_batch_size_per_gpu: \"auto\" -> 2 (--per_device_train_batch_size of --hf-args)") != std::string::npos);
    // Without --hf-args the Trainer's values are unknown: the job's stand, and the account says so.
    interop::Request job_based;
    job_based.deepspeed = ds;
    job_based.job = "llama-7b-fsdp-6x-a100-40g";
    const interop::Loaded j = interop::load(job_based);
    CHECK(j.scenario.job.micro_batch == 1);
    CHECK(j.scenario.job.grad_accum == 4);
    CHECK(j.report.text().find("\"auto\" -> 4 (batch.grad_accum of the job: no --hf-args --gradient_accumulation_steps)") != std::string::npos);
}

TEST_CASE("train_batch_size: checked against micro-batch x accumulation x world, or the accumulation derived from it") {
    test::TempDir dir;
    interop::Request r;
    r.model = "llama-7b";
    r.topology = "8x-a100-40g";
    r.sets = {"batch.seq_len=512"};
    r.deepspeed = dir.file("derive.json", R"({"train_batch_size": 64, "train_micro_batch_size_per_gpu": 2, "zero_optimization": {"stage": 2}})");
    CHECK(interop::load(r).scenario.job.grad_accum == 4);
    r.deepspeed = dir.file("bad.json", "{\"train_batch_size\": 60,\n \"train_micro_batch_size_per_gpu\": 2,\n \"gradient_accumulation_steps\": 4}");
    try {
        interop::load(r);
        FAIL("a contradictory train_batch_size was accepted");
    } catch (const InputError& e) {
        const std::string m = e.problems().at(0);
        CHECK(m.find("bad.json:1: train_batch_size: bad value '60'") != std::string::npos);
        CHECK(m.find("(allowed: 64 or \"auto\")") != std::string::npos);
    }
}

TEST_CASE("unknown, unmodelled and ignored keys are all named; --strict refuses the unmodelled ones") {
    test::TempDir dir;
    interop::Request r;
    r.model = "llama-7b";
    r.topology = "8x-a100-40g";
    r.sets = {"batch.seq_len=512"};
    r.deepspeed = dir.file("ds.json", R"({
  "steps_per_print": 10,
  "zero_optimization": {
    "stage": 3,
    "stage3_model_persistence_threshold": 1e7,
    "zero_quantized_weights": true,
    "allgather_bucket_size": 2e8
  },
  "my_own_key": 1
})");
    const interop::Loaded l = interop::load(r);
    const std::string text = l.report.text();
    CHECK(text.find("ds.json:2: steps_per_print: logging") != std::string::npos);
    CHECK(text.find("ds.json:7: zero_optimization.allgather_bucket_size:") != std::string::npos);
    CHECK(text.find("ds.json:5: zero_optimization.stage3_model_persistence_threshold: not modelled") != std::string::npos);
    CHECK(text.find("ds.json:6: zero_optimization.zero_quantized_weights: not modelled") != std::string::npos);
    CHECK(text.find("ds.json:9: my_own_key: unknown key") != std::string::npos);
    r.strict = true;
    try {
        interop::load(r);
        FAIL("--strict accepted unmodelled keys");
    } catch (const InputError& e) {
        CHECK(e.problems().size() == 3);
        CHECK(e.problems().at(0).find("--strict refuses") != std::string::npos);
    }
    // An unknown zero_optimization key is refused, as DeepSpeed refuses it.
    r.strict = false;
    r.deepspeed = dir.file("typo.json", "{\n  \"zero_optimization\": {\n    \"stage\": 2,\n    \"overlap_com\": true\n  }\n}");
    try {
        interop::load(r);
        FAIL("a misspelt zero_optimization key was accepted");
    } catch (const InputError& e) {
        CHECK(e.problems().at(0).find("typo.json:4: zero_optimization.overlap_com: unknown key") != std::string::npos);
        CHECK(e.problems().at(0).find("allowed:") != std::string::npos);
    }
}

TEST_CASE("bad input: the file, the line, the key, the value and what is allowed; shardsim exits 2") {
    test::TempDir dir;
    const std::string bin = test::shardsim_binary();
    const std::string base = " --model llama-7b --topology 8x-a100-40g --set batch.seq_len=512";
    auto run = [&](const std::string& args) { return test::run_command(bin + " simulate" + base + " " + args); };
    const std::string syntax = dir.file("syntax.json", "{\n  \"zero_optimization\": {\n    \"stage\": 2,\n  }\n}");
    auto r = run("--deepspeed " + syntax);
    CHECK(r.exit_code == 2);
    CHECK(r.output.find("syntax.json:4: not valid JSON") != std::string::npos);
    const std::string stage = dir.file("stage.json", "{\n  \"zero_optimization\": {\"stage\": 4}\n}");
    r = run("--deepspeed " + stage);
    CHECK(r.exit_code == 2);
    CHECK(r.output.find("stage.json:2: zero_optimization.stage: bad value '4' (allowed: 0, 1, 2, 3)") != std::string::npos);
    const std::string overlap = dir.file("overlap.json", "{\"zero_optimization\": {\"stage\": 2,\n \"overlap_comm\": \"yes\"}}");
    r = run("--deepspeed " + overlap);
    CHECK(r.exit_code == 2);
    CHECK(r.output.find("overlap.json:2: zero_optimization.overlap_comm: bad value 'yes' (allowed: true, false)") != std::string::npos);
    const std::string yaml = dir.file("acc.yaml", "distributed_type: FSDP\nfsdp_config:\n  fsdp_sharding_strategy: QUARTER_SHARD\n");
    r = run("--accelerate " + yaml);
    CHECK(r.exit_code == 2);
    CHECK(r.output.find("acc.yaml:3: fsdp_config.fsdp_sharding_strategy: bad value 'QUARTER_SHARD' (allowed: FULL_SHARD") != std::string::npos);
    const std::string broken = dir.file("broken.yaml", "distributed_type: FSDP\nfsdp_config: [a\n");
    r = run("--accelerate " + broken);
    CHECK(r.exit_code == 2);
    CHECK(r.output.find("broken.yaml:") != std::string::npos);
    CHECK(r.output.find("not valid YAML") != std::string::npos);
    const std::string unknown = dir.file("unknown.yaml", "distributed_type: FSDP\nnum_gpus: 8\n");
    r = run("--accelerate " + unknown);
    CHECK(r.exit_code == 2);
    CHECK(r.output.find("unknown.yaml:2: num_gpus: unknown key") != std::string::npos);
    r = run("--hf-args '--per_device_train_batch_size zero'");
    CHECK(r.exit_code == 2);
    CHECK(r.output.find("--hf-args --per_device_train_batch_size: bad value 'zero' (allowed: integer >= 1)") != std::string::npos);
    r = test::run_command(bin + " simulate --deepspeed " + stage + " --model llama-7b --topology 8x-a100-40g");
    CHECK(r.exit_code == 2);
    CHECK(r.output.find("sequence length") != std::string::npos);
    r = test::run_command(bin + " export --job llama-7b-fsdp-6x-a100-40g --to deepspeed");
    CHECK(r.exit_code == 2);
    CHECK(r.output.find("--to: bad value 'deepspeed': strategy fsdp-full-shard is not DeepSpeed's (allowed with fsdp-full-shard: accelerate, torchrun)") !=
          std::string::npos);
}

TEST_CASE("accelerate: FSDP defaults as Accelerate passes them, the world from num_processes and num_machines") {
    test::TempDir dir;
    interop::Request r;
    r.model = "llama-7b";
    r.topology = "8x-a100-40g";
    r.sets = {"batch.seq_len=512"};
    r.accelerate = dir.file("a.yaml", "distributed_type: FSDP\nmixed_precision: bf16\nnum_machines: 1\nnum_processes: 4\n"
                                      "fsdp_config:\n  fsdp_sharding_strategy: SHARD_GRAD_OP\n  fsdp_state_dict_type: FULL_STATE_DICT\n");
    const interop::Loaded l = interop::load(r);
    CHECK(l.scenario.job.strategy == config::Strategy::fsdp_shard_grad_op);
    CHECK(l.scenario.world_size() == 4);
    CHECK(l.scenario.job.fsdp.backward_prefetch == config::BackwardPrefetch::none);
    CHECK(l.scenario.job.fsdp.no_sync);
    CHECK(l.scenario.job.params == DType::bf16);
    CHECK(l.report.text().find("a.yaml:7: fsdp_config.fsdp_state_dict_type: the checkpoint format") != std::string::npos);
    // 12 processes on one machine of 8 GPUs: refused, with what would do.
    r.accelerate = dir.file("b.yaml", "distributed_type: MULTI_GPU\nnum_processes: 12\n");
    try {
        interop::load(r);
        FAIL("12 processes on an 8-GPU node were accepted");
    } catch (const InputError& e) {
        CHECK(e.problems().at(0).find("b.yaml:2: num_processes: bad value '12'") != std::string::npos);
    }
    // An inline deepspeed_config: accelerate's DeepSpeedPlugin defaults (stage 2) and its keys.
    r.accelerate = dir.file("c.yaml", "distributed_type: DEEPSPEED\nmixed_precision: bf16\ndeepspeed_config:\n  zero_stage: 3\n"
                                      "  offload_optimizer_device: cpu\n  offload_param_device: cpu\n  gradient_accumulation_steps: 2\n"
                                      "  zero3_init_flag: true\n");
    const interop::Loaded c = interop::load(r);
    CHECK(c.scenario.job.strategy == config::Strategy::zero3);
    CHECK(c.scenario.job.offload_optimizer);
    CHECK(c.scenario.job.offload_params);
    CHECK(c.scenario.job.grad_accum == 2);
    CHECK(c.report.text().find("c.yaml:4: deepspeed_config.zero_stage: -> parallel.strategy = zero3") != std::string::npos);
}

TEST_CASE("--hf-args: the Trainer's FSDP flags and a --deepspeed inside them") {
    test::TempDir dir;
    interop::Request r;
    r.model = "gpt2-xl";
    r.topology = "2x-titan-rtx-24g";
    r.hf_args = "--fsdp 'full_shard auto_wrap offload' --per_device_train_batch_size=2 --gradient_checkpointing --bf16 True "
                "--max_seq_length 1024 --output_dir /tmp/x";
    const interop::Loaded l = interop::load(r);
    CHECK(l.scenario.job.strategy == config::Strategy::fsdp_full_shard);
    CHECK(l.scenario.job.offload_params);
    CHECK(l.scenario.job.micro_batch == 2);
    CHECK(l.scenario.job.activation_checkpointing);
    CHECK(l.report.text().find("--hf-args --output_dir: training length, logging") != std::string::npos);
    const std::string ds = dir.file("z2.json", R"({"zero_optimization": {"stage": 2, "overlap_comm": true}})");
    r.hf_args = "--deepspeed " + ds + " --max_seq_length 1024";
    const interop::Loaded d = interop::load(r);
    CHECK(d.scenario.job.strategy == config::Strategy::zero2);
    CHECK(d.scenario.job.overlap_comm == 1);
}
