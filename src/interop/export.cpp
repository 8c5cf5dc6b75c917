// shardsim export: a job as a ds_config.json, an accelerate config.yaml, the Trainer's flags and
// the launch line. Every value written names the job key it came from; what a format cannot say
// is listed, never dropped quietly.
#include "shardsim/interop/export.hpp"

#include <nlohmann/json.hpp>

#include "importer.hpp"
#include "shardsim/core/format.hpp"
#include "shardsim/plan/engine.hpp"

namespace shardsim::interop {

std::optional<Format> parse_format(const std::string& s) {
    if (s == "deepspeed") return Format::deepspeed;
    if (s == "accelerate") return Format::accelerate;
    if (s == "torchrun") return Format::torchrun;
    return std::nullopt;
}

namespace {

using ojson = nlohmann::ordered_json;
using config::Strategy;

// One written value and the job key behind it, for the comments.
struct Origin {
    std::string target;  // "ds_config.json zero_optimization.stage"
    std::string value;
    std::string key;     // "parallel.strategy"
};

class Writer {
public:
    explicit Writer(const model::Scenario& s) : s_(s) {}
    const model::Scenario& s() const { return s_; }
    const config::JobConfig& job() const { return s_.job; }
    std::string raw(const std::string& key) const { return job().values.raw(key); }
    // "parallel.strategy = zero3 (jobs/x.ini:17)"
    std::string source(const std::string& key) const {
        if (key.rfind("topology.", 0) == 0) return key + " (topology " + s_.topology.name + ")";
        const std::string& w = job().values.where(key);
        return key + " = " + raw(key) + " (" + (w == "default" ? "default" : w) + ")";
    }
    void note(const std::string& target, const std::string& value, const std::string& key) { origins.push_back({target, value, key}); }
    std::string comment_block(const std::string& prefix) const {
        std::string out;
        for (const auto& o : origins) out += prefix + o.target + " = " + o.value + "  <- " + source(o.key) + "\n";
        return out;
    }
    std::vector<Origin> origins;
    std::vector<std::string> not_expressible;

private:
    const model::Scenario& s_;
};

bool is_zero(Strategy s) { return s == Strategy::zero1 || s == Strategy::zero2 || s == Strategy::zero3; }
bool is_fsdp(Strategy s) { return config::strategy_name(s).rfind("fsdp-", 0) == 0; }

double number(const std::string& text) {
    double d = 0;
    config::parse_number(text, d);
    return d;
}

// Keys the configs cannot carry but the job sets: said, not dropped.
void common_limits(Writer& w) {
    const auto& j = w.job();
    if (!j.master_weights && j.params != DType::fp32)
        w.not_expressible.push_back("precision.master_weights = false: DeepSpeed, FSDP's MixedPrecision and autocast all keep fp32 weights");
    if (j.grads != j.params)
        w.not_expressible.push_back("precision.grads = " + std::string(dtype_name(j.grads)) + ": gradients are in the model dtype");
    if (j.reduce != j.params && !is_zero(j.strategy))
        w.not_expressible.push_back("precision.reduce = " + std::string(dtype_name(j.reduce)) +
                                    ": Accelerate reduces in the mixed-precision dtype (DeepSpeed: communication_data_type)");
    if (j.values.is_explicit("parallel.first_bucket_mib") && !j.values.is_auto("parallel.first_bucket_mib"))
        w.not_expressible.push_back("parallel.first_bucket_mib: DDP's first bucket is set in code (DistributedDataParallelKwargs)");
    if (j.gradient_as_bucket_view)
        w.not_expressible.push_back("ddp.gradient_as_bucket_view = true: set in code (DistributedDataParallelKwargs)");
    if (j.strategy == Strategy::fsdp_hybrid_shard && j.shard_size > 0 && j.shard_size != w.s().topology.gpus_per_node)
        w.not_expressible.push_back("parallel.shard_size = " + std::to_string(j.shard_size) + ": HYBRID_SHARD shards within a node");
    // Hugging Face's gradient_checkpointing (and Accelerate's FSDP activation checkpointing) wrap
    // every block in a full checkpoint: written as that, the difference said.
    if (j.activation_checkpointing == config::Checkpointing::selective)
        w.not_expressible.push_back("memory.activation_checkpointing = selective: torchtitan's op-level policy; Hugging Face "
                                    "checkpoints whole blocks (written as gradient_checkpointing, which keeps less and recomputes more)");
    if (j.checkpoint_every > 1)
        w.not_expressible.push_back("memory.checkpoint_every = " + std::to_string(j.checkpoint_every) +
                                    ": Hugging Face checkpoints every block (torchtitan's per-layer option has no flag there)");
}

ojson deepspeed_config(Writer& w) {
    const auto& j = w.job();
    const auto& s = w.s();
    const plan::EngineSettings e = plan::resolve_engine(s, plan::traits(j.strategy));
    const std::string f = "ds_config.json ";
    ojson ds;
    ds["train_micro_batch_size_per_gpu"] = j.micro_batch;
    w.note(f + "train_micro_batch_size_per_gpu", std::to_string(j.micro_batch), "batch.micro_batch");
    ds["gradient_accumulation_steps"] = j.grad_accum;
    w.note(f + "gradient_accumulation_steps", std::to_string(j.grad_accum), "batch.grad_accum");
    const std::int64_t tbs = j.micro_batch * j.grad_accum * s.world_size();
    ds["train_batch_size"] = tbs;
    w.note(f + "train_batch_size", std::to_string(tbs) + " (micro-batch x accumulation x " + std::to_string(s.world_size()) + " ranks)",
           "batch.micro_batch");
    if (j.params != DType::fp32) {
        ds[std::string(dtype_name(j.params))] = {{"enabled", true}};
        w.note(f + std::string(dtype_name(j.params)) + ".enabled", "true", "precision.params");
    }
    if (j.reduce != j.params) {
        ds["communication_data_type"] = std::string(dtype_name(j.reduce));
        w.note(f + "communication_data_type", std::string(dtype_name(j.reduce)), "precision.reduce");
    }
    ojson opt;
    if (j.optimizer == config::OptimizerKind::adamw) {
        opt = {{"type", "AdamW"},
               {"params", {{"lr", number(w.raw("optimizer.lr"))}, {"betas", {number(w.raw("optimizer.beta1")), number(w.raw("optimizer.beta2"))}},
                           {"eps", number(w.raw("optimizer.eps"))}, {"weight_decay", number(w.raw("optimizer.weight_decay"))}}}};
    } else {
        opt = {{"type", "SGD"},
               {"params", {{"lr", number(w.raw("optimizer.lr"))}, {"momentum", number(w.raw("optimizer.momentum"))},
                           {"weight_decay", number(w.raw("optimizer.weight_decay"))}}}};
    }
    ds["optimizer"] = opt;
    w.note(f + "optimizer.type", opt["type"].get<std::string>(), "optimizer.name");
    w.note(f + "optimizer.params.lr", w.raw("optimizer.lr"), "optimizer.lr");
    ojson z;
    z["stage"] = e.zero_stage;
    w.note(f + "zero_optimization.stage", std::to_string(e.zero_stage), "parallel.strategy");
    z["offload_optimizer"] = {{"device", j.offload_optimizer ? "cpu" : "none"}, {"pin_memory", e.pin_memory}};
    w.note(f + "zero_optimization.offload_optimizer.device", j.offload_optimizer ? "cpu" : "none", "memory.offload_optimizer");
    w.note(f + "zero_optimization.offload_optimizer.pin_memory", e.pin_memory ? "true" : "false", "deepspeed.pin_memory");
    if (e.zero_stage == 3) {
        z["offload_param"] = {{"device", j.offload_params ? "cpu" : "none"}, {"pin_memory", true}};
        w.note(f + "zero_optimization.offload_param.device", j.offload_params ? "cpu" : "none", "memory.offload_params");
    }
    z["overlap_comm"] = e.overlap_comm;
    w.note(f + "zero_optimization.overlap_comm", e.overlap_comm ? "true" : "false", "deepspeed.overlap_comm");
    z["contiguous_gradients"] = true;
    z["sub_group_size"] = e.sub_group_elements;
    w.note(f + "zero_optimization.sub_group_size", std::to_string(e.sub_group_elements), "deepspeed.sub_group_size");
    z["reduce_bucket_size"] = e.reduce_bucket_elements;
    w.note(f + "zero_optimization.reduce_bucket_size", std::to_string(e.reduce_bucket_elements) + " elements", "parallel.bucket_mib");
    if (e.zero_stage == 3) {
        z["stage3_prefetch_bucket_size"] = e.prefetch_bucket_elements;
        w.note(f + "zero_optimization.stage3_prefetch_bucket_size", std::to_string(e.prefetch_bucket_elements), "deepspeed.stage3_prefetch_bucket_size");
        z["stage3_param_persistence_threshold"] = e.persistence_threshold;
        w.note(f + "zero_optimization.stage3_param_persistence_threshold", std::to_string(e.persistence_threshold),
               "deepspeed.stage3_param_persistence_threshold");
        z["stage3_max_live_parameters"] = e.max_live_parameters;
        w.note(f + "zero_optimization.stage3_max_live_parameters", std::to_string(e.max_live_parameters), "deepspeed.stage3_max_live_parameters");
        z["stage3_max_reuse_distance"] = e.max_reuse_distance;
        w.note(f + "zero_optimization.stage3_max_reuse_distance", std::to_string(e.max_reuse_distance), "deepspeed.stage3_max_reuse_distance");
        if (j.secondary_shard > 0) {
            z["zero_hpz_partition_size"] = j.secondary_shard;
            w.note(f + "zero_optimization.zero_hpz_partition_size", std::to_string(j.secondary_shard), "parallel.secondary_shard");
        }
    }
    ds["zero_optimization"] = z;
    return ds;
}

// The Trainer's flags for the batch, precision, checkpointing and the script's lengths.
std::vector<std::pair<std::string, std::string>> trainer_flags(Writer& w, bool with_precision) {
    const auto& j = w.job();
    std::vector<std::pair<std::string, std::string>> f;
    auto add = [&](const std::string& flag, const std::string& value, const std::string& key) {
        f.emplace_back(flag, value);
        w.note("--" + flag, value, key);
    };
    add("per_device_train_batch_size", std::to_string(j.micro_batch), "batch.micro_batch");
    add("gradient_accumulation_steps", std::to_string(j.grad_accum), "batch.grad_accum");
    if (with_precision && j.params != DType::fp32) add(std::string(dtype_name(j.params)), "true", "precision.params");
    if (j.checkpointing()) add("gradient_checkpointing", "true", "memory.activation_checkpointing");
    add("learning_rate", w.raw("optimizer.lr"), "optimizer.lr");
    add("optim", j.optimizer == config::OptimizerKind::adamw ? "adamw_torch" : "sgd", "optimizer.name");
    if (j.optimizer == config::OptimizerKind::adamw) {
        add("adam_beta1", w.raw("optimizer.beta1"), "optimizer.beta1");
        add("adam_beta2", w.raw("optimizer.beta2"), "optimizer.beta2");
        add("adam_epsilon", w.raw("optimizer.eps"), "optimizer.eps");
    }
    add("weight_decay", w.raw("optimizer.weight_decay"), "optimizer.weight_decay");
    add("seed", w.raw("job.seed"), "job.seed");
    add("max_seq_length", std::to_string(j.seq_len), "batch.seq_len");
    if (j.decoder_seq_len > 0) add("max_target_length", std::to_string(j.decoder_seq_len), "batch.decoder_seq_len");
    if (j.strategy == Strategy::ddp && j.bucket_mib > 0) add("ddp_bucket_cap_mb", w.raw("parallel.bucket_mib"), "parallel.bucket_mib");
    if (is_fsdp(j.strategy) && !j.fsdp.no_sync && j.grad_accum > 1)
        add("accelerator_config", "{\"gradient_accumulation_kwargs\": {\"sync_each_batch\": true}}", "fsdp.no_sync");
    return f;
}

std::string quote(const std::string& s) {
    if (s.find_first_of(" \"'{}$\\") == std::string::npos) return s;
    std::string out = "'";
    for (char ch : s) out += ch == '\'' ? std::string("'\\''") : std::string(1, ch);
    return out + "'";
}

std::string flags_text(const std::vector<std::pair<std::string, std::string>>& flags) {
    std::string out;
    for (const auto& [k, v] : flags) out += (out.empty() ? "" : " ") + std::string("--") + k + " " + quote(v);
    return out;
}

const char* fsdp_strategy(Strategy s) {
    switch (s) {
        case Strategy::fsdp_full_shard: return "FULL_SHARD";
        case Strategy::fsdp_shard_grad_op: return "SHARD_GRAD_OP";
        case Strategy::fsdp_no_shard: return "NO_SHARD";
        default: return "HYBRID_SHARD";
    }
}

const char* prefetch_name(config::BackwardPrefetch p, bool upper) {
    switch (p) {
        case config::BackwardPrefetch::backward_pre: return upper ? "BACKWARD_PRE" : "backward_pre";
        case config::BackwardPrefetch::backward_post: return upper ? "BACKWARD_POST" : "backward_post";
        case config::BackwardPrefetch::none: return upper ? "NO_PREFETCH" : "no_prefetch";
    }
    return "";
}

std::string yaml_line(Writer& w, const std::string& indent, const std::string& key, const std::string& value, const std::string& job_key) {
    std::string line = indent + key + ": " + value;
    if (!job_key.empty()) {
        line += std::string(line.size() < 44 ? 44 - line.size() : 1, ' ') + "# <- " + w.source(job_key);
        w.origins.push_back({"accelerate_config.yaml " + key, value, job_key});
    }
    return line + "\n";
}

std::string accelerate_yaml(Writer& w) {
    const auto& j = w.job();
    const auto& s = w.s();
    const std::int64_t world = s.world_size();
    std::string y = "# accelerate config written by shardsim export from job " + j.name +
                    "; each value names the shardsim key it came from.\n"
                    "# Check it before launching: shardsim simulate --accelerate accelerate_config.yaml --hf-args \"...\" (see launch.sh)\n";
    y += "compute_environment: LOCAL_MACHINE\n";
    const std::string type = is_zero(j.strategy) ? "DEEPSPEED" : is_fsdp(j.strategy) ? "FSDP" : world > 1 ? "MULTI_GPU" : "NO";
    y += yaml_line(w, "", "distributed_type", type, "parallel.strategy");
    if (!is_zero(j.strategy))
        y += yaml_line(w, "", "mixed_precision", j.params == DType::fp32 ? "'no'" : std::string(dtype_name(j.params)), "precision.params");
    y += yaml_line(w, "", "num_machines", std::to_string(s.topology.nodes), "topology.cluster.nodes");
    y += yaml_line(w, "", "num_processes", std::to_string(world), j.world_size > 0 ? "parallel.world_size" : "topology.cluster.gpus_per_node");
    y += "machine_rank: 0\nmain_training_function: main\nrdzv_backend: static\nsame_network: true\nuse_cpu: false\n";
    if (is_zero(j.strategy)) {
        y += "deepspeed_config:\n";
        y += yaml_line(w, "  ", "deepspeed_config_file", "ds_config.json", "parallel.strategy");
        y += "  zero3_init_flag: " + std::string(j.strategy == Strategy::zero3 ? "true" : "false") + "\n";
    }
    if (is_fsdp(j.strategy)) {
        y += "fsdp_config:\n";
        y += "  fsdp_version: 1\n";
        y += yaml_line(w, "  ", "fsdp_sharding_strategy", fsdp_strategy(j.strategy), "parallel.strategy");
        y += "  fsdp_auto_wrap_policy: TRANSFORMER_BASED_WRAP   # one unit per block, as shardsim plans\n";
        y += yaml_line(w, "  ", "fsdp_backward_prefetch", prefetch_name(j.fsdp.backward_prefetch, true), "fsdp.backward_prefetch");
        y += yaml_line(w, "  ", "fsdp_forward_prefetch", j.fsdp.forward_prefetch ? "true" : "false", "fsdp.forward_prefetch");
        y += yaml_line(w, "  ", "fsdp_limit_all_gathers", j.fsdp.limit_all_gathers ? "true" : "false", "fsdp.limit_all_gathers");
        y += yaml_line(w, "  ", "fsdp_offload_params", j.offload_params ? "true" : "false", "memory.offload_params");
        y += yaml_line(w, "  ", "fsdp_activation_checkpointing", j.checkpointing() ? "true" : "false", "memory.activation_checkpointing");
        y += "  fsdp_state_dict_type: SHARDED_STATE_DICT\n  fsdp_sync_module_states: true\n  fsdp_use_orig_params: true\n"
             "  fsdp_cpu_ram_efficient_loading: true\n";
        if (j.offload_optimizer != j.offload_params)
            w.not_expressible.push_back("memory.offload_optimizer = " + std::string(j.offload_optimizer ? "true" : "false") +
                                        " with offload_params = " + (j.offload_params ? "true" : "false") +
                                        ": FSDP's CPUOffload moves both or neither");
    }
    return y;
}

std::string launch_script(Writer& w, Format f, const std::string& flags, const std::string& dir) {
    const auto& s = w.s();
    const auto& j = w.job();
    const std::int64_t world = s.world_size();
    const std::int64_t per_node = s.topology.nodes > 1 ? s.topology.gpus_per_node : world;
    std::string sh = "#!/usr/bin/env bash\n# Written by shardsim export from job " + j.name + " (strategy " + config::strategy_name(j.strategy) +
                     ", model " + s.model.name + ", topology " + s.topology.name + ").\n"
                     "# train.py: your Hugging Face Trainer script (it takes the TrainingArguments flags below).\n"
                     "# Multi-node: run on every node with --node_rank / --machine_rank and the rendezvous of your cluster.\n"
                     "set -euo pipefail\nHERE=$(cd \"$(dirname \"$0\")\" && pwd)\n";
    std::string line;
    if (f == Format::deepspeed)
        line = "deepspeed --num_nodes " + std::to_string(s.topology.nodes) + " --num_gpus " + std::to_string(per_node) +
               " train.py --deepspeed \"$HERE/ds_config.json\" " + flags;
    else if (f == Format::accelerate)
        line = "accelerate launch --config_file \"$HERE/accelerate_config.yaml\" train.py " + flags;
    else
        line = "torchrun --nnodes " + std::to_string(s.topology.nodes) + " --nproc_per_node " + std::to_string(per_node) + " train.py " + flags;
    sh += line + "\n\n# Where each value came from (shardsim key = value (file:line)):\n" + w.comment_block("#   ");
    sh += "# Not in these files: the model and what it is given (job.model = " + j.model +
          ", lora.*, memory.attention, memory.loss, dropout.*) belong to train.py.\n";
    for (const auto& n : w.not_expressible) sh += "# NOT EXPRESSIBLE: " + n + "\n";
    (void)dir;
    return sh;
}

}  // namespace

Exported export_job(const model::Scenario& scenario, Format format, const std::string& dir) {
    const auto& j = scenario.job;
    const std::string strategy = config::strategy_name(j.strategy);
    if (format == Format::deepspeed && !is_zero(j.strategy))
        throw InputError("--to: bad value 'deepspeed': strategy " + strategy + " is not DeepSpeed's (allowed with " + strategy +
                         ": accelerate, torchrun)");
    Writer w(scenario);
    common_limits(w);
    Exported out;
    const std::string prefix = dir.empty() || dir == "." ? "" : dir + "/";
    if (is_zero(j.strategy)) out.files.push_back({"ds_config.json", deepspeed_config(w).dump(2) + "\n"});
    std::vector<std::pair<std::string, std::string>> flags = trainer_flags(w, true);
    if (format == Format::accelerate) {
        out.files.push_back({"accelerate_config.yaml", accelerate_yaml(w)});
    } else if (format == Format::torchrun) {
        if (is_zero(j.strategy)) {
            flags.emplace_back("deepspeed", prefix + "ds_config.json");
        } else if (is_fsdp(j.strategy)) {
            std::string opts = std::string(fsdp_strategy(j.strategy)) + " auto_wrap";
            for (auto& ch : opts) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
            if (j.offload_params) opts += " offload";
            flags.emplace_back("fsdp", opts);
            w.note("--fsdp", opts, "parallel.strategy");
            ojson fc = {{"backward_prefetch", prefetch_name(j.fsdp.backward_prefetch, false)},
                        {"forward_prefetch", j.fsdp.forward_prefetch},
                        {"limit_all_gathers", j.fsdp.limit_all_gathers},
                        {"use_orig_params", true},
                        {"sync_module_states", true}};
            w.note("fsdp_config.json backward_prefetch", prefetch_name(j.fsdp.backward_prefetch, false), "fsdp.backward_prefetch");
            w.note("fsdp_config.json forward_prefetch", j.fsdp.forward_prefetch ? "true" : "false", "fsdp.forward_prefetch");
            w.note("fsdp_config.json limit_all_gathers", j.fsdp.limit_all_gathers ? "true" : "false", "fsdp.limit_all_gathers");
            out.files.push_back({"fsdp_config.json", fc.dump(2) + "\n"});
            flags.emplace_back("fsdp_config", prefix + "fsdp_config.json");
            if (j.offload_optimizer != j.offload_params)
                w.not_expressible.push_back("memory.offload_optimizer with offload_params differing: FSDP's offload moves both or neither");
        }
    }
    out.hf_args = flags_text(flags);
    // The launch line names the files next to it ($HERE), not where this process wrote them.
    std::string launch_flags = out.hf_args;
    for (const char* name : {"ds_config.json", "fsdp_config.json"}) {
        const std::string written = prefix + name;
        if (auto p = launch_flags.find(written); p != std::string::npos)
            launch_flags.replace(p, written.size(), "\"$HERE/" + std::string(name) + "\"");
    }
    out.files.push_back({"launch.sh", launch_script(w, format, launch_flags, dir)});
    out.not_expressible = w.not_expressible;
    return out;
}

}  // namespace shardsim::interop
