// The Hugging Face Trainer's command-line flags (TrainingArguments, plus the sequence-length
// flags of the usual example scripts) and FSDP's options as the Trainer and Accelerate spell them
// (ENGINES.md §4 "Accelerate and Trainer defaults for FSDP").
#include <algorithm>
#include <cctype>
#include <set>

#include "importer.hpp"
#include "shardsim/core/format.hpp"

namespace shardsim::interop::detail {

namespace {

std::string lower(std::string s) {
    for (auto& ch : s) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    return s;
}

// Shell-like words: whitespace separates, quotes group, backslash escapes.
std::vector<std::string> words(const std::string& s, Problems& problems) {
    std::vector<std::string> out;
    std::string cur;
    bool in_word = false;
    char quote = 0;
    for (std::size_t i = 0; i < s.size(); ++i) {
        const char ch = s[i];
        if (quote) {
            if (ch == quote) quote = 0;
            else if (ch == '\\' && quote == '"' && i + 1 < s.size()) cur += s[++i];
            else cur += ch;
        } else if (ch == '\'' || ch == '"') {
            quote = ch;
            in_word = true;
        } else if (ch == '\\' && i + 1 < s.size()) {
            cur += s[++i];
            in_word = true;
        } else if (std::isspace(static_cast<unsigned char>(ch))) {
            if (in_word) out.push_back(cur), cur.clear(), in_word = false;
        } else {
            cur += ch;
            in_word = true;
        }
    }
    if (quote) problems.add("--hf-args: unbalanced quote " + std::string(1, quote) + " (allowed: shell-style words)");
    if (in_word) out.push_back(cur);
    return out;
}

// HfArgumentParser reads booleans as true/false, yes/no, 1/0 in any case; a bare flag is true.
std::optional<bool> hf_bool(const std::string& v) {
    const std::string l = lower(v);
    if (l == "true" || l == "yes" || l == "1" || l == "t" || l == "y") return true;
    if (l == "false" || l == "no" || l == "0" || l == "f" || l == "n") return false;
    return std::nullopt;
}

const std::set<std::string>& bool_flags() {
    static const std::set<std::string> s = {"bf16", "fp16", "gradient_checkpointing", "do_train", "do_eval", "do_predict",
                                            "overwrite_output_dir", "tf32", "bf16_full_eval", "fp16_full_eval",
                                            "torch_compile", "push_to_hub", "remove_unused_columns", "load_best_model_at_end",
                                            "disable_tqdm", "group_by_length", "trust_remote_code", "packing",
                                            "use_fast_tokenizer", "streaming", "gradient_checkpointing_enable"};
    return s;
}

// Flags that change neither memory nor time of a step.
const std::set<std::string>& ignored_flags() {
    static const std::set<std::string> s = {
        "output_dir", "overwrite_output_dir", "do_train", "do_eval", "do_predict", "num_train_epochs", "max_steps",
        "logging_steps", "logging_dir", "logging_strategy", "logging_first_step", "save_steps", "save_strategy",
        "save_total_limit", "save_only_model", "eval_strategy", "evaluation_strategy", "eval_steps", "report_to",
        "run_name", "lr_scheduler_type", "warmup_ratio", "warmup_steps", "max_grad_norm", "dataloader_num_workers",
        "dataloader_pin_memory", "per_device_eval_batch_size", "model_name_or_path", "dataset_name",
        "dataset_config_name", "train_file", "validation_file", "tokenizer_name", "push_to_hub", "hub_model_id",
        "hub_token", "remove_unused_columns", "load_best_model_at_end", "metric_for_best_model", "disable_tqdm", "tf32",
        "bf16_full_eval", "fp16_full_eval", "local_rank", "ddp_timeout", "preprocessing_num_workers", "cache_dir",
        "trust_remote_code", "use_fast_tokenizer", "data_seed", "gradient_checkpointing_kwargs", "ddp_backend",
        "resume_from_checkpoint", "label_names", "group_by_length", "streaming", "packing", "dataset_text_field",
        "max_train_samples", "max_eval_samples", "num_proc", "ddp_find_unused_parameters", "include_tokens_per_second",
        "log_level", "save_safetensors"};
    return s;
}

}  // namespace

TrainerArgs parse_hf_args(const std::string& args, Problems& problems) {
    TrainerArgs t;
    t.given = !args.empty();
    const auto w = words(args, problems);
    for (std::size_t i = 0; i < w.size(); ++i) {
        const std::string& a = w[i];
        if (a.rfind("--", 0) != 0 || a.size() == 2) {
            problems.add("--hf-args: bad value '" + a + "': expected a flag (allowed: --name value or --name=value, as "
                         "the Trainer's command line takes them)");
            continue;
        }
        std::string name = a.substr(2), value;
        if (auto eq = name.find('='); eq != std::string::npos) {
            value = name.substr(eq + 1);
            name = name.substr(0, eq);
        } else if (i + 1 < w.size() && w[i + 1].rfind("--", 0) != 0) {
            value = w[++i];
        } else if (bool_flags().count(name)) {
            value = "true";
        } else {
            problems.add("--hf-args: --" + name + ": missing value (allowed: --" + name + " VALUE)");
            continue;
        }
        std::replace(name.begin(), name.end(), '-', '_');
        t.values[name] = value;
    }
    return t;
}

namespace {

std::optional<std::string> strategy_of(const std::string& value) {
    static const std::map<std::string, std::string> m = {
        {"full_shard", "fsdp-full-shard"}, {"1", "fsdp-full-shard"},      {"shard_grad_op", "fsdp-shard-grad-op"},
        {"2", "fsdp-shard-grad-op"},       {"no_shard", "fsdp-no-shard"}, {"3", "fsdp-no-shard"},
        {"hybrid_shard", "fsdp-hybrid-shard"}, {"4", "fsdp-hybrid-shard"}};
    auto it = m.find(lower(value));
    return it == m.end() ? std::nullopt : std::optional<std::string>(it->second);
}

constexpr const char* kStrategies = "FULL_SHARD, SHARD_GRAD_OP, NO_SHARD, HYBRID_SHARD (or 1-4)";

}  // namespace

void import_fsdp_option(Context& c, const std::string& where, const std::string& raw_name, const std::string& value) {
    const std::string name = raw_name.rfind("fsdp_", 0) == 0 ? raw_name.substr(5) : raw_name;
    auto boolean = [&](const std::string& key) {
        if (auto b = hf_bool(value)) c.set(where, key, *b ? "true" : "false");
        else c.bad(where, value, "true, false");
    };
    if (name == "sharding_strategy" || (name == "reshard_after_forward" && !hf_bool(value))) {
        if (lower(value) == "hybrid_shard_zero2" || value == "5")
            c.problems.add(where + ": bad value '" + value + "': HYBRID_SHARD_ZERO2 is not modelled (allowed: " + kStrategies + ")");
        else if (auto s = strategy_of(value)) c.set(where, "parallel.strategy", *s);
        else c.bad(where, value, kStrategies);
    } else if (name == "reshard_after_forward") {  // Accelerate: true = FULL_SHARD, false = SHARD_GRAD_OP
        c.set(where, "parallel.strategy", *hf_bool(value) ? "fsdp-full-shard" : "fsdp-shard-grad-op");
    } else if (name == "backward_prefetch") {
        const std::string l = lower(value);
        if (l == "backward_pre" || l == "backward_post") c.set(where, "fsdp.backward_prefetch", l);
        else if (l == "no_prefetch" || l == "none") c.set(where, "fsdp.backward_prefetch", "none");
        else c.bad(where, value, "BACKWARD_PRE, BACKWARD_POST, NO_PREFETCH");
    } else if (name == "forward_prefetch") {
        boolean("fsdp.forward_prefetch");
    } else if (name == "limit_all_gathers") {
        boolean("fsdp.limit_all_gathers");
    } else if (name == "offload_params") {
        const auto b = hf_bool(value);
        if (!b) return c.bad(where, value, "true, false");
        c.set(where, "memory.offload_params", *b ? "true" : "false", "FSDP's CPUOffload(offload_params)");
        c.set(where, "memory.offload_optimizer", *b ? "true" : "false", "the optimizer then steps on the CPU");
    } else if (name == "activation_checkpointing") {
        const auto b = hf_bool(value);
        if (!b) return c.bad(where, value, "true, false");
        if (*b) c.set(where, "memory.activation_checkpointing", "true");
        else c.ignored(where, "false: checkpointing is left to the script (--gradient_checkpointing)");
    } else if (name == "auto_wrap_policy") {
        const std::string u = value;
        if (u == "TRANSFORMER_BASED_WRAP" || lower(u) == "transformer_based_wrap")
            c.ignored(where, "one unit per transformer block: what shardsim plans");
        else c.unmodelled(where, "not modelled: " + value + " (shardsim wraps each transformer block, as TRANSFORMER_BASED_WRAP)");
    } else if (name == "transformer_layer_cls_to_wrap") {
        c.ignored(where, "shardsim wraps each of the model's blocks (the classes Hugging Face's _no_split_modules names)");
    } else if (name == "min_num_params") {
        c.ignored(where, "used by SIZE_BASED_WRAP only");
    } else if (name == "state_dict_type") {
        c.ignored(where, "the checkpoint format: saving, outside the step");
    } else if (name == "use_orig_params") {
        c.ignored(where, "adds alignment padding of under 16 bytes per tensor: too small to model");
    } else if (name == "sync_module_states" || name == "cpu_ram_efficient_loading") {
        c.ignored(where, "model loading: a broadcast before training");
    } else if (name == "version") {
        if (value == "1") c.ignored(where, "FSDP1: what shardsim models");
        else c.unmodelled(where, "not modelled: FSDP2 (fully_shard, per-parameter sharding); planned as FSDP1's flat parameters");
    } else {
        c.unmodelled(where, "unknown FSDP option: not modelled");
    }
}

namespace {

const std::string kOrigin = "--hf-args";  // where the Trainer's flags came from, in messages

// --fsdp "full_shard auto_wrap offload": the strategy, offload, and the Trainer's FSDP defaults.
void fsdp_flag(Context& c, const std::string& where, const std::string& value) {
    bool wrap = false, strategy = false;
    for (const auto& opt : split(value, ' ')) {
        const std::string o = lower(trim(opt));
        if (o.empty()) continue;
        if (o == "offload") {
            c.set(where, "memory.offload_params", "true", "FSDP's CPUOffload");
            c.set(where, "memory.offload_optimizer", "true", "the optimizer then steps on the CPU");
        } else if (o == "auto_wrap") {
            wrap = true;
        } else if (o == "hybrid_shard_zero2") {
            c.problems.add(where + ": bad value '" + opt + "': not modelled (allowed: full_shard, shard_grad_op, no_shard, hybrid_shard, offload, auto_wrap)");
        } else if (auto s = strategy_of(o)) {
            strategy = true;
            c.set(where, "parallel.strategy", *s);
        } else {
            c.bad(where, opt, "full_shard, shard_grad_op, no_shard, hybrid_shard, offload, auto_wrap");
        }
    }
    if (!strategy) c.set(where, "parallel.strategy", "fsdp-full-shard", "the Trainer's default sharding");
    if (!wrap) c.unmodelled(where, "not modelled: without auto_wrap FSDP makes the whole model one unit; shardsim wraps each block");
    // The Trainer's FSDP defaults (ENGINES.md §4): no backward prefetch, limiter on, accumulation in no_sync().
    c.set(where, "fsdp.backward_prefetch", "none", "the Trainer's default NO_PREFETCH");
    c.set(where, "fsdp.forward_prefetch", "false", "the Trainer's default");
    c.set(where, "fsdp.limit_all_gathers", "true", "Accelerate's default");
    c.set(where, "fsdp.no_sync", "true", "the Trainer accumulates inside no_sync()");
}

// --fsdp_config: a JSON object of FSDP options or a path to one (read only with --fsdp).
void fsdp_config_flag(Context& c, bool fsdp) {
    const auto cfg = c.trainer.get("fsdp_config");
    if (!cfg) return;
    const std::string where = kOrigin + " --fsdp_config";
    if (!fsdp) c.ignored(where, "no --fsdp: the Trainer does not use it");
    std::string text = *cfg;
    std::string path;
    if (!text.empty() && text.front() != '{') path = text, text = read_file(path, "--fsdp_config file");
    try {
        const auto j = nlohmann::json::parse(text, nullptr, true, true);
        if (!j.is_object()) throw nlohmann::json::type_error::create(302, "not an object", nullptr);
        for (const auto& [k, v] : j.items())
            if (fsdp) import_fsdp_option(c, (path.empty() ? where : path) + ": " + k, k, v.is_string() ? v.get<std::string>() : v.dump());
    } catch (const nlohmann::json::exception& e) {
        c.problems.add(where + ": bad value '" + (path.empty() ? text : path) + "': " + e.what() +
                       " (allowed: a JSON object of FSDP options, or a path to one)");
    }
}

// --accelerator_config: gradient_accumulation_kwargs.sync_each_batch (whether FSDP reduces every
// micro-batch); other keys are not modelled.
void accelerator_config_flag(Context& c, bool fsdp) {
    const auto acc = c.trainer.get("accelerator_config");
    if (!acc) return;
    const std::string where = kOrigin + " --accelerator_config";
    try {
        const auto j = nlohmann::json::parse(*acc);
        bool known = false;
        if (j.contains("gradient_accumulation_kwargs") && j["gradient_accumulation_kwargs"].contains("sync_each_batch")) {
            known = true;
            const bool each = j["gradient_accumulation_kwargs"]["sync_each_batch"].get<bool>();
            c.sync_each_batch = each;
            if (fsdp) c.set(where, "fsdp.no_sync", each ? "false" : "true", "sync_each_batch reduces every micro-batch");
        }
        if (!known || j.size() > 1) c.unmodelled(where, "keys other than gradient_accumulation_kwargs.sync_each_batch: not modelled");
    } catch (const nlohmann::json::exception& e) {
        c.problems.add(where + ": bad value '" + *acc + "': " + e.what() + " (allowed: a JSON object)");
    }
}

}  // namespace

void import_hf_args(Context& c) {
    const std::string& origin = kOrigin;
    bool fsdp = false, precision_given = false;
    for (const auto& [name, value_binding] : c.trainer.values) {
        const auto& value = value_binding;  // clang 14 cannot capture a structured binding in a lambda
        const std::string where = origin + " --" + name;
        auto integer = [&](const std::string& key, std::int64_t min) {
            std::int64_t n = 0;
            if (config::parse_integer(value, n) && n >= min) c.set(where, key, std::to_string(n));
            else c.bad(where, value, "integer >= " + std::to_string(min));
        };
        auto number = [&](const std::string& key) {
            double x = 0;
            if (config::parse_number(value, x)) c.set(where, key, value);
            else c.bad(where, value, "a number");
        };
        if (name == "per_device_train_batch_size") integer("batch.micro_batch", 1);
        else if (name == "gradient_accumulation_steps") {
            c.grad_accum_given = true;
            integer("batch.grad_accum", 1);
        } else if (name == "bf16" || name == "fp16") {
            const auto b = hf_bool(value);
            if (!b) c.bad(where, value, "true, false");
            precision_given = true;
            if (b && *b) {
                c.set(where, "precision.params", name);
                c.set(where, "precision.master_weights", "true", "the Trainer keeps fp32 weights under autocast");
            }
        } else if (name == "gradient_checkpointing") {
            if (auto b = hf_bool(value)) c.set(where, "memory.activation_checkpointing", *b ? "true" : "false");
            else c.bad(where, value, "true, false");
        } else if (name == "fsdp") {
            fsdp = true;
            fsdp_flag(c, where, value);
        } else if (name == "fsdp_config") {
            continue;  // after --fsdp, below
        } else if (name == "deepspeed") {
            continue;  // read by load()
        } else if (name == "accelerator_config") {
            continue;  // below
        } else if (name == "learning_rate") number("optimizer.lr");
        else if (name == "weight_decay") number("optimizer.weight_decay");
        else if (name == "adam_beta1") number("optimizer.beta1");
        else if (name == "adam_beta2") number("optimizer.beta2");
        else if (name == "adam_epsilon") number("optimizer.eps");
        else if (name == "optim") {
            const std::string l = lower(value);
            if (l.rfind("adamw", 0) == 0 || l == "adam") c.set(where, "optimizer.name", "adamw");
            else if (l == "sgd") c.set(where, "optimizer.name", "sgd");
            else c.unmodelled(where, "not modelled: optimizer '" + value + "' (shardsim plans adamw and sgd)");
        } else if (name == "seed") integer("job.seed", 0);
        else if (name == "ddp_bucket_cap_mb") number("parallel.bucket_mib");
        else if (name == "max_seq_length" || name == "block_size" || name == "model_max_length" || name == "max_length" ||
                 name == "max_source_length" || name == "max_seq_len")
            integer("batch.seq_len", 1);
        else if (name == "max_target_length") integer("batch.decoder_seq_len", 1);
        else if (name == "attn_implementation") {
            const std::string l = lower(value);
            if (l == "eager" || l == "sdpa") c.set(where, "memory.attention", l);
            else if (l == "flash_attention_2") c.set(where, "memory.attention", "flash");
            else c.bad(where, value, "eager, sdpa, flash_attention_2");
        } else if (name == "torch_compile") {
            if (hf_bool(value).value_or(false)) c.unmodelled(where, "not modelled: torch.compile's fused kernels");
            else c.ignored(where, "false");
        } else if (ignored_flags().count(name)) {
            c.ignored(where, "training length, logging, saving or data loading: not the step's memory or time");
        } else {
            c.unmodelled(where, "unknown flag: not a TrainingArguments flag shardsim knows (ignored)");
        }
    }
    if (precision_given) {
        const bool on = hf_bool(c.trainer.get("bf16").value_or("false")).value_or(false) ||
                        hf_bool(c.trainer.get("fp16").value_or("false")).value_or(false);
        if (!on) c.set(origin + " --bf16/--fp16", "precision.params", "fp32", "neither enabled");
    }
    fsdp_config_flag(c, fsdp);
    accelerator_config_flag(c, fsdp);
}

}  // namespace shardsim::interop::detail
