// DeepSpeed's ds_config.json, key by key (deepspeed/runtime/config.py and zero/config.py; the
// defaults and behaviours are those of ENGINES.md §1-2). "auto" values are resolved as the
// Hugging Face integration resolves them (transformers' HfTrainerDeepSpeedConfig): the batch
// from the Trainer's flags, bucket sizes from the model's hidden size.
#include <algorithm>
#include <cctype>
#include <cmath>
#include <set>

#include "importer.hpp"
#include "shardsim/core/format.hpp"

namespace shardsim::interop::detail {

using nlohmann::json;

namespace {

std::string lower(std::string s) {
    for (auto& ch : s) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    return s;
}

// The Trainer's value of a flag: --hf-args when given there, TrainingArguments' default when
// --hf-args was given without it, else nothing (the job's value stands).
struct TrainerValue {
    std::optional<std::string> value;
    std::string from;
};
TrainerValue trainer_value(const Context& c, const std::string& flag, const std::string& hf_default) {
    if (auto v = c.trainer.get(flag)) return {*v, "--" + flag + " of --hf-args"};
    if (c.trainer.given) return {hf_default, "TrainingArguments' default for --" + flag};
    return {std::nullopt, ""};
}

// A count that may be "auto" and is filled from a Trainer flag (train_micro_batch_size_per_gpu,
// gradient_accumulation_steps).
void batch_key(Context& c, const std::string& where, const json& v, const std::string& job_key, const std::string& flag,
               const std::string& hf_default) {
    const TrainerValue t = trainer_value(c, flag, hf_default);
    if (is_auto(v)) {
        if (t.value) {
            c.resolved(where, "\"auto\" -> " + *t.value + " (" + t.from + ")");
            c.set(where, job_key, *t.value, "auto");
        } else {
            c.resolved(where, "\"auto\" -> " + c.base.job.values.raw(job_key) + " (" + job_key +
                                  " of the job: no --hf-args --" + flag + ")");
        }
        return;
    }
    const auto n = get_count(c, where, v, 1);
    if (!n) return;
    // The Trainer refuses a ds_config value that contradicts its own argument.
    if (auto given = c.trainer.get(flag); given && *given != std::to_string(*n))
        c.problems.add(where + ": bad value '" + std::to_string(*n) + "': --hf-args says --" + flag + " " + *given +
                       " and the Hugging Face Trainer refuses a mismatch (allowed: " + *given + " or \"auto\")");
    c.set(where, job_key, std::to_string(*n));
}

// bf16 / fp16 sections -> precision.params. "auto" follows --bf16 / --fp16.
void precision(Context& c, const json& root, const Locate& at) {
    auto enabled = [&](const char* section, const char* flag) -> std::optional<bool> {
        for (const char* name : {section, section == std::string("bf16") ? "bfloat16" : ""}) {
            if (!*name || !root.contains(name)) continue;
            const json& s = root[name];
            const std::string w = at(std::string(name) + ".enabled");
            if (!s.is_object()) {
                c.bad(at(name), show(s), "an object such as {\"enabled\": true}");
                return std::nullopt;
            }
            if (!s.contains("enabled")) return false;  // DeepSpeed: enabled defaults to false
            if (is_auto(s["enabled"])) {
                const TrainerValue t = trainer_value(c, flag, "false");
                const bool on = t.value ? *t.value == "true" : c.base.job.params == (std::string(flag) == "bf16" ? DType::bf16 : DType::fp16);
                c.resolved(w, std::string("\"auto\" -> ") + (on ? "true" : "false") + " (" +
                                  (t.value ? t.from : "precision.params of the job: no --hf-args --" + std::string(flag)) + ")");
                return on;
            }
            return get_bool(c, w, s["enabled"]);
        }
        return false;
    };
    const bool bf16 = enabled("bf16", "bf16").value_or(false);
    const bool fp16 = enabled("fp16", "fp16").value_or(false);
    if (bf16 && fp16) {
        c.problems.add(at("fp16.enabled") + ": bad value 'true': bf16 is enabled too and DeepSpeed refuses both (allowed: one of them)");
        return;
    }
    const std::string where = bf16 ? at(root.contains("bf16") ? "bf16.enabled" : "bfloat16.enabled")
                              : fp16 ? at("fp16.enabled")
                                     : at("bf16") + " / fp16 (neither enabled)";
    c.set(where, "precision.params", bf16 ? "bf16" : fp16 ? "fp16" : "fp32");
    c.set(where, "precision.master_weights", "true", "DeepSpeed keeps fp32 master weights and optimizer states");
    // The rest of the two sections.
    for (const char* name : {"bf16", "bfloat16", "fp16"}) {
        if (!root.contains(name) || !root[name].is_object()) continue;
        for (const auto& [k, v] : root[name].items()) {
            const std::string w = at(std::string(name) + "." + k);
            if (k == "enabled") continue;
            if (k == "loss_scale" || k == "initial_scale_power" || k == "loss_scale_window" || k == "hysteresis" ||
                k == "consecutive_hysteresis" || k == "min_loss_scale" || k == "auto_cast")
                c.ignored(w, "loss scaling: one scalar, no memory or time to speak of");
            else if ((k == "fp16_master_weights_and_grads" || k == "bf16_master_weights_and_grads" ||
                      k == "immediate_grad_update" || k == "bf16_optimizer_states") &&
                     v.is_boolean() && !v.get<bool>())
                c.ignored(w, "false: DeepSpeed's default, what shardsim models");
            else
                c.unmodelled(w, "not modelled: shardsim keeps fp32 master weights and states, gradients in the model dtype");
        }
    }
}

void optimizer(Context& c, const json& o, const Locate& at) {
    if (!o.is_object()) return c.bad(at("optimizer"), show(o), "an object {\"type\": ..., \"params\": {...}}");
    std::string name = "adamw";
    if (o.contains("type")) {
        const std::string t = o["type"].is_string() ? o["type"].get<std::string>() : show(o["type"]);
        const std::string l = lower(t);
        if (l == "adam" || l == "adamw" || l == "fusedadam" || l == "cpuadam" || l == "deepspeedcpuadam") {
            c.set(at("optimizer.type"), "optimizer.name", "adamw", "two fp32 moments");
        } else if (l == "sgd" || l == "musgd") {
            name = "sgd";
            c.set(at("optimizer.type"), "optimizer.name", "sgd");
        } else {
            c.unmodelled(at("optimizer.type"), "not modelled: '" + t + "' (shardsim plans AdamW and SGD; this plan keeps optimizer.name = " +
                                                   c.base.job.values.raw("optimizer.name") + ")");
        }
    }
    for (const auto& [k, v] : o.items()) {
        if (k == "type") continue;
        if (k != "params") {
            c.unmodelled(at("optimizer." + k), "unknown key of the optimizer section");
            continue;
        }
        if (!v.is_object()) {
            c.bad(at("optimizer.params"), show(v), "an object");
            continue;
        }
        for (const auto& [p, pv_binding] : v.items()) {
            const auto& pv = pv_binding;  // clang 14 cannot capture a structured binding in a lambda
            const std::string w = at("optimizer.params." + p);
            auto number = [&](const std::string& job_key, const std::string& flag, const std::string& hf_default) {
                if (is_auto(pv)) {
                    const TrainerValue t = trainer_value(c, flag, hf_default);
                    if (t.value) {
                        c.resolved(w, "\"auto\" -> " + *t.value + " (" + t.from + ")");
                        c.set(w, job_key, *t.value, "auto");
                    } else {
                        c.resolved(w, "\"auto\" -> " + c.base.job.values.raw(job_key) + " (" + job_key + " of the job)");
                    }
                } else if (auto x = get_number(c, w, pv)) {
                    c.set(w, job_key, exact_text(*x));
                }
            };
            if (p == "lr") number("optimizer.lr", "learning_rate", "5e-05");
            else if (p == "weight_decay") number("optimizer.weight_decay", "weight_decay", "0.0");
            else if (p == "eps") number("optimizer.eps", "adam_epsilon", "1e-08");
            else if (p == "momentum" && name == "sgd") number("optimizer.momentum", "momentum", "0.9");
            else if (p == "betas") {
                if (is_auto(pv)) {
                    const TrainerValue b1 = trainer_value(c, "adam_beta1", "0.9"), b2 = trainer_value(c, "adam_beta2", "0.999");
                    if (b1.value) c.set(w, "optimizer.beta1", *b1.value, "auto");
                    if (b2.value) c.set(w, "optimizer.beta2", *b2.value, "auto");
                    c.resolved(w, "\"auto\" -> [" + b1.value.value_or(c.base.job.values.raw("optimizer.beta1")) + ", " +
                                      b2.value.value_or(c.base.job.values.raw("optimizer.beta2")) + "] (" +
                                      (b1.value ? "--adam_beta1/--adam_beta2 of the Trainer" : "the job's optimizer.beta1/beta2") + ")");
                } else if (pv.is_array() && pv.size() == 2 && pv[0].is_number() && pv[1].is_number()) {
                    c.set(w, "optimizer.beta1", exact_text(pv[0].get<double>()));
                    c.set(w, "optimizer.beta2", exact_text(pv[1].get<double>()));
                } else {
                    c.bad(w, show(pv), "[beta1, beta2] or \"auto\"");
                }
            } else if (p == "adam_w_mode" || p == "torch_adam" || p == "bias_correction" || p == "fused")
                c.ignored(w, "the same two moments either way");
            else if (p == "amsgrad" && pv.is_boolean() && !pv.get<bool>())
                c.ignored(w, "false: no third state");
            else
                c.unmodelled(w, "not modelled by shardsim's optimizer");
        }
    }
}

// Top-level keys that change neither memory nor time of a step, with why.
const std::map<std::string, std::string>& ignored_top() {
    static const std::map<std::string, std::string> m = {
        {"steps_per_print", "logging"}, {"wall_clock_breakdown", "logging"}, {"dump_state", "logging"},
        {"memory_breakdown", "logging"}, {"tensorboard", "monitoring"}, {"wandb", "monitoring"},
        {"csv_monitor", "monitoring"}, {"comet", "monitoring"}, {"comms_logger", "monitoring"},
        {"flops_profiler", "profiling"}, {"timers", "monitoring"}, {"scheduler", "the learning-rate schedule: no memory"},
        {"gradient_clipping", "a norm over the shards: negligible time, no buffer"},
        {"prescale_gradients", "divides before rather than after the reduction: same bytes"},
        {"gradient_predivide_factor", "a scale factor: same bytes"},
        {"zero_allow_untested_optimizer", "a permission, not a behaviour"},
        {"zero_force_ds_cpu_optimizer", "a permission, not a behaviour"},
        {"checkpoint", "checkpoint saving and loading, outside the step"},
        {"load_universal_checkpoint", "checkpoint loading, outside the step"},
        {"use_node_local_storage", "checkpoint saving, outside the step"},
        {"dataloader_drop_last", "the data loader"},
        {"autotuning", "DeepSpeed's autotuner, a separate tool"},
        {"aio", "NVMe I/O settings: used only with NVMe offload (named separately if so)"},
        {"nebula", "checkpoint service, outside the step"},
    };
    return m;
}

// Top-level sections DeepSpeed applies that shardsim does not model.
const std::map<std::string, std::string>& unmodelled_top() {
    static const std::map<std::string, std::string> m = {
        {"amp", "NVIDIA Apex AMP"}, {"compression_training", "compression"}, {"sparse_attention", "sparse attention"},
        {"pipeline", "pipeline parallelism"}, {"tensor_parallel", "tensor parallelism"},
        {"curriculum_learning", "changes sequence lengths during training"},
        {"data_efficiency", "changes the data (and sequence lengths) during training"},
        {"elasticity", "changes batch sizes with the world size"}, {"quantize_training", "quantised training"},
        {"eigenvalue", "eigenvalue computation"}, {"progressive_layer_drop", "layer dropping"},
        {"weight_quantization", "weight quantisation"}, {"hybrid_engine", "RLHF hybrid engine"},
        {"sparse_gradients", "sparse gradients"},
    };
    return m;
}

}  // namespace

void import_deepspeed(Context& c, const json& root, const Locate& at) {
    if (!root.is_object()) return c.bad(at("(top level)"), show(root).substr(0, 40), "a JSON object of DeepSpeed keys");
    for (const auto& [k, v] : root.items()) {
        const std::string w = at(k);
        if (k == "train_micro_batch_size_per_gpu") batch_key(c, w, v, "batch.micro_batch", "per_device_train_batch_size", "8");
        else if (k == "gradient_accumulation_steps") {
            c.grad_accum_given = true;
            batch_key(c, w, v, "batch.grad_accum", "gradient_accumulation_steps", "1");
        } else if (k == "train_batch_size") {
            if (is_auto(v)) c.resolved(w, "\"auto\" -> micro-batch x accumulation x world (as Hugging Face fills it)");
            else if (auto n = get_count(c, w, v, 1)) c.train_batch_size = *n, c.train_batch_where = w;
        } else if (k == "bf16" || k == "bfloat16" || k == "fp16" || k == "zero_optimization") {
            continue;  // below
        } else if (k == "optimizer") {
            optimizer(c, v, at);
        } else if (k == "communication_data_type") {
            static const std::map<std::string, std::string> dt = {{"fp32", "fp32"}, {"fp16", "fp16"}, {"bf16", "bf16"}, {"bfp16", "bf16"}};
            if (v.is_string() && dt.count(v.get<std::string>())) c.set(w, "precision.reduce", dt.at(v.get<std::string>()));
            else c.bad(w, show(v), "fp32, fp16, bf16");
        } else if (k == "data_types") {
            if (!v.is_object()) {
                c.bad(w, show(v), "an object");
                continue;
            }
            for (const auto& [dk, dv] : v.items())
                c.unmodelled(at("data_types." + dk), "not modelled: gradients are accumulated in the model dtype (DeepSpeed's default, "
                                                     "grad_accum_dtype = null)");
        } else if (k == "activation_checkpointing") {
            if (!v.is_object()) {
                c.bad(w, show(v), "an object");
                continue;
            }
            for (const auto& [ak, av] : v.items()) {
                const std::string aw = at("activation_checkpointing." + ak);
                if ((ak == "partition_activations" || ak == "cpu_checkpointing" || ak == "contiguous_memory_optimization") &&
                    av.is_boolean() && av.get<bool>())
                    c.unmodelled(aw, "not modelled: DeepSpeed's activation partitioning / CPU checkpointing");
                else
                    c.ignored(aw, "configures deepspeed.checkpointing, which only models that call it use (Megatron-style); Hugging "
                                  "Face models checkpoint with --gradient_checkpointing (--hf-args) or memory.activation_checkpointing");
            }
        } else if (k == "sequence_parallel_size") {
            if (v.is_number() && v.get<double>() > 1) c.unmodelled(w, "not modelled: sequence parallelism");
            else c.ignored(w, "1: none");
        } else if (ignored_top().count(k)) {
            c.ignored(w, ignored_top().at(k));
        } else if (unmodelled_top().count(k)) {
            c.unmodelled(w, "not modelled: " + unmodelled_top().at(k));
        } else {
            c.unmodelled(w, "unknown key (DeepSpeed ignores top-level keys it does not know; so does shardsim)");
        }
    }
    precision(c, root, at);
    import_zero_optimization(c, root, at);
}

namespace {

// The line of a dotted key: each component searched for, quoted, after the previous one.
int locate_line(const std::string& text, const std::string& dotted) {
    std::size_t pos = 0;
    for (const auto& part : split(dotted, '.')) {
        const std::size_t p = text.find("\"" + part + "\"", pos);
        if (p == std::string::npos) return 0;
        pos = p + part.size() + 2;
    }
    return line_of_offset(text, pos == 0 ? 0 : pos - 1);
}

}  // namespace

void import_deepspeed_file(Context& c, const std::string& path) {
    const std::string text = read_file(path, "DeepSpeed config");
    json root;
    try {
        // DeepSpeed reads its config with hjson, which allows comments; so does this.
        root = json::parse(text, nullptr, true, true);
    } catch (const json::parse_error& e) {
        throw InputError(path + ":" + std::to_string(line_of_offset(text, e.byte == 0 ? 0 : e.byte - 1)) +
                         ": not valid JSON: " + e.what() + " (allowed: a DeepSpeed config, a JSON object)");
    }
    import_deepspeed(c, root, [path, text](const std::string& dotted) {
        const int line = locate_line(text, dotted);
        return path + (line > 0 ? ":" + std::to_string(line) : "") + ": " + dotted;
    });
}

}  // namespace shardsim::interop::detail
