// DeepSpeed's zero_optimization section of a ds_config.json, key by key (deepspeed/runtime/zero/
// config.py and offload_config.py; behaviours and defaults as ENGINES.md §1-2 gives them): the
// stage, offload, bucket sizes, the stage-3 coordinator's limits, ZeRO++ hpZ, and what the section
// leaves to DeepSpeed's defaults or to Hugging Face's "auto" values.
#include <cmath>
#include <map>
#include <set>

#include "importer.hpp"
#include "shardsim/core/format.hpp"

namespace shardsim::interop::detail {

using nlohmann::json;

namespace {

// DeepSpeed's own names for the stage-3 keys, and the older ones it still reads.
std::string canonical_zero_key(const std::string& k) {
    static const std::map<std::string, std::string> alias = {
        {"prefetch_bucket_size", "stage3_prefetch_bucket_size"},
        {"param_persistence_threshold", "stage3_param_persistence_threshold"},
        {"model_persistence_threshold", "stage3_model_persistence_threshold"},
        {"max_live_parameters", "stage3_max_live_parameters"},
        {"max_reuse_distance", "stage3_max_reuse_distance"},
        {"stage3_gather_fp16_weights_on_model_save", "stage3_gather_16bit_weights_on_model_save"},
        {"gather_16bit_weights_on_model_save", "stage3_gather_16bit_weights_on_model_save"},
    };
    auto it = alias.find(k);
    return it == alias.end() ? k : it->second;
}

struct Offload {
    bool on = false;
    std::string where;
};

// offload_optimizer / offload_param: {"device": "none" | "cpu" | "nvme", "pin_memory": ...}.
Offload offload(Context& c, const json& v, const std::string& name, const Locate& at, int stage) {
    Offload o;
    o.where = at("zero_optimization." + name + ".device");
    if (!v.is_object()) {
        c.bad(at("zero_optimization." + name), show(v), "an object such as {\"device\": \"cpu\", \"pin_memory\": true}");
        return o;
    }
    std::string device = "none";
    if (v.contains("device")) {
        if (!v["device"].is_string() || (v["device"] != "none" && v["device"] != "cpu" && v["device"] != "nvme")) {
            c.bad(o.where, show(v["device"]), "none, cpu, nvme");
            return o;
        }
        device = v["device"].get<std::string>();
    }
    o.on = device != "none";
    if (device == "nvme")
        c.unmodelled(o.where, "not modelled: NVMe offload; planned as cpu offload (the device side is the same, the host "
                              "figures are what a cpu offload would hold in memory)");
    for (const auto& [k, x] : v.items()) {
        const std::string w = at("zero_optimization." + name + "." + k);
        if (k == "device") continue;
        if (k == "pin_memory" && name == "offload_param") {
            c.ignored(w, "ZeRO-3 pins offloaded parameters whatever this says (ENGINES.md §2)");
        } else if (k == "pin_memory") {
            if (job_has_key("deepspeed.pin_memory")) {
                if (auto b = get_bool(c, w, x)) c.set(w, "deepspeed.pin_memory", *b ? "true" : "false");
            } else if (x.is_boolean() && x.get<bool>()) {
                c.ignored(w, "true: DeepSpeed's default, what shardsim models (pinned host copies)");
            } else {
                c.unmodelled(w, "not modelled: shardsim pins DeepSpeed's offload copies as pin_memory = true does");
            }
        } else if (k == "ratio") {
            const auto r = get_number(c, w, x);
            if (r && *r < 1) c.unmodelled(w, "not modelled: a partial optimizer offload");
            else if (r) c.ignored(w, "1: the whole optimizer, what shardsim models");
        } else if (k == "nvme_path" || k == "buffer_count" || k == "buffer_size" || k == "max_in_cpu" || k == "fast_init" ||
                   k == "pipeline" || k == "pipeline_read" || k == "pipeline_write") {
            if (device == "nvme") c.unmodelled(w, "not modelled: NVMe offload settings");
            else c.ignored(w, "NVMe offload settings, unused with device " + device);
        } else {
            c.problems.add(w + ": unknown key (DeepSpeed refuses it; allowed: device, pin_memory, ratio, nvme_path, buffer_count, "
                               "buffer_size, max_in_cpu, fast_init, pipeline_read, pipeline_write)");
        }
    }
    (void)stage;
    return o;
}

// zero_optimization, key by key under DeepSpeed's names and aliases (a member per group of keys,
// each returning whether the key was its own), then what the section leaves to DeepSpeed's
// defaults and Hugging Face's "auto" values.
class ZeroSection {
public:
    ZeroSection(Context& c, const json& z, const Locate& at, int stage)
        : c_(c), z_(z), at_(at), stage_(stage), ds_(stage > 0), h_(hidden_size(c.base)) {}

    void read() {
        for (const auto& [key, v_binding] : z_.items()) {
            const auto& v = v_binding;  // clang 14 cannot capture a structured binding in a lambda
            const std::string k = canonical_zero_key(key);
            const std::string w = at_("zero_optimization." + key);
            if (!seen_.insert(k).second) {
                c_.problems.add(w + ": given twice (as " + key + " and under another of its names) (allowed: one of them)");
                continue;
            }
            if (k == "stage" || offload_key(k, key, w, v) || bucket_key(k, w, v) || stage3_key(k, w, v) || other_key(k, w, v)) continue;
            c_.problems.add(w + ": unknown key (DeepSpeed refuses unknown zero_optimization keys; allowed: stage, offload_optimizer, "
                                "offload_param, overlap_comm, contiguous_gradients, reduce_bucket_size, allgather_bucket_size, "
                                "reduce_scatter, allgather_partitions, round_robin_gradients, sub_group_size, stage3_* keys, "
                                "zero_hpz_partition_size, zero_quantized_weights, zero_quantized_gradients, ...)");
        }
    }

    void settle() {
        settle_offload();
        if (!ds_) return;
        settle_auto_sizes();
        settle_defaults();
    }

private:
    bool stage3_only(const std::string& w) {
        if (stage_ == 3) return true;
        c_.ignored(w, "a stage-3 key; DeepSpeed reads it only with stage 3 (this config: stage " + std::to_string(stage_) + ")");
        return false;
    }
    bool engine_key(const std::string& w) {
        if (ds_) return true;
        c_.ignored(w, "stage 0: no ZeRO optimizer to apply it");
        return false;
    }
    void flag_default_true(const std::string& w, const json& v, const std::string& what) {
        if (auto b = get_bool(c_, w, v)) {
            if (*b) c_.ignored(w, "true: DeepSpeed's default, what shardsim models");
            else c_.unmodelled(w, "not modelled: " + what);
        }
    }

    bool offload_key(const std::string& k, const std::string& key, const std::string& w, const json& v) {
        if (k == "offload_optimizer") {
            opt_ = offload(c_, v, key, at_, stage_);
        } else if (k == "cpu_offload") {  // the old boolean of offload_optimizer
            if (auto b = get_bool(c_, w, v)) opt_ = {*b, w};
        } else if (k == "offload_param") {
            par_ = offload(c_, v, key, at_, stage_);
        } else if (k == "cpu_offload_params") {
            if (auto b = get_bool(c_, w, v)) par_ = {*b, w};
        } else if (k == "cpu_offload_use_pin_memory") {
            if (!job_has_key("deepspeed.pin_memory")) {
                flag_default_true(w, v, "unpinned offload copies");
            } else if (auto b = get_bool(c_, w, v)) {
                c_.set(w, "deepspeed.pin_memory", *b ? "true" : "false");
            }
        } else {
            return false;
        }
        return true;
    }

    bool bucket_key(const std::string& k, const std::string& w, const json& v) {
        if (k == "overlap_comm") {
            if (!engine_key(w)) return true;
            if (auto b = get_bool(c_, w, v)) c_.set(w, "deepspeed.overlap_comm", *b ? "true" : "false");
        } else if (k == "contiguous_gradients") {
            flag_default_true(w, v, "gradients left in their own tensors (shardsim copies them into the bucket, as "
                                    "contiguous_gradients = true does)");
        } else if (k == "reduce_bucket_size") {
            if (!engine_key(w)) return true;
            bucket_given_ = true;
            if (is_auto(v)) {
                bucket_auto_ = true;
                c_.resolved(w, "\"auto\" -> " + std::to_string(h_ * h_) + " elements (hidden " + std::to_string(h_) +
                                   "^2, as Hugging Face fills it: deepspeed.hf_auto = true)");
            } else if (auto n = get_count(c_, w, v, 1)) {
                c_.reduce_bucket_elements = *n;
                c_.reduce_bucket_where = w;
            }
        } else if (k == "allgather_bucket_size") {
            c_.ignored(w, "DeepSpeed all-gathers the whole flat buffer in one call; this size matters only on a legacy "
                          "fallback path");
        } else if (k == "reduce_scatter") {
            flag_default_true(w, v, "gradients reduced by all-reduce of whole buckets");
        } else if (k == "allgather_partitions") {
            flag_default_true(w, v, "parameters broadcast one partition at a time");
        } else if (k == "use_multi_rank_bucket_allreduce") {
            flag_default_true(w, v, "one reduce per destination rank");
        } else if (k == "round_robin_gradients") {
            const auto b = get_bool(c_, w, v);
            if (b && *b && stage_ > 0 && stage_ < 3)
                c_.unmodelled(w, "not modelled: spreads the copies of gradients to the host over the ranks (time only)");
            else if (b)
                c_.ignored(w, *b ? "acts only with stage 1/2 optimizer offload" : "false: DeepSpeed's default");
        } else if (k == "sub_group_size") {
            if (!job_has_key("deepspeed.sub_group_size")) {
                c_.unmodelled(w, "not modelled: the optimizer steps over the whole partition at once (sub_group_size sets the "
                                 "size of its fp32 gradient temporaries)");
            } else if (engine_key(w)) {
                if (auto n = get_count(c_, w, v, 1)) c_.set(w, "deepspeed.sub_group_size", count_text(*n));
            }
        } else {
            return false;
        }
        return true;
    }

    bool stage3_key(const std::string& k, const std::string& w, const json& v) {
        if (k == "stage3_prefetch_bucket_size") {
            if (!stage3_only(w)) return true;
            prefetch_given_ = true;
            if (is_auto(v)) {
                prefetch_auto_ = true;
                c_.resolved(w, "\"auto\" -> " + std::to_string(static_cast<std::int64_t>(0.9 * static_cast<double>(h_ * h_))) +
                                   " elements (0.9 x hidden^2, as Hugging Face fills it: deepspeed.hf_auto = true)");
            } else if (auto n = get_count(c_, w, v)) {
                c_.set(w, "deepspeed.stage3_prefetch_bucket_size", std::to_string(*n));
            }
        } else if (k == "stage3_param_persistence_threshold" && job_has_key("deepspeed.stage3_param_persistence_threshold")) {
            if (!stage3_only(w)) return true;
            persistence_given_ = true;
            if (is_auto(v)) {
                persistence_auto_ = true;
                c_.resolved(w, "\"auto\" -> " + std::to_string(10 * h_) + " elements (10 x hidden, as Hugging Face fills it: deepspeed.hf_auto = true)");
            } else if (auto n = get_count(c_, w, v)) {
                c_.set(w, "deepspeed.stage3_param_persistence_threshold", count_text(*n));
            }
        } else if (k == "stage3_param_persistence_threshold" || k == "stage3_model_persistence_threshold") {
            if (!stage3_only(w)) return true;
            std::string value = v.is_number() && v.get<double>() == std::floor(v.get<double>()) ? count_text(v.get<std::int64_t>()) : show(v);
            if (is_auto(v)) {
                value = std::to_string(10 * h_);
                c_.resolved(w, "\"auto\" -> " + value + " elements (10 x hidden, as Hugging Face fills it)");
            }
            if (k == "stage3_model_persistence_threshold")
                c_.unmodelled(w, "not modelled: a cap (" + value + ") on all persistent parameters together; shardsim keeps "
                                 "every parameter under stage3_param_persistence_threshold (DeepSpeed's default: no cap)");
            else  // a build whose job schema has no persistence key
                c_.unmodelled(w, "not modelled: persistent parameters (" + value + "); shardsim gathers every unit's parameters on use");
        } else if (k == "stage3_max_live_parameters" || k == "stage3_max_reuse_distance") {
            if (!stage3_only(w)) return true;
            if (auto n = get_count(c_, w, v)) c_.set(w, "deepspeed." + k, count_text(*n));
        } else if (k == "stage3_gather_16bit_weights_on_model_save") {
            c_.ignored(w, "model saving, outside the step");
        } else if (k == "zero_hpz_partition_size") {
            if (auto n = get_count(c_, w, v, 1)) {
                if (*n > 1 && stage3_only(w)) c_.set(w, "parallel.secondary_shard", std::to_string(*n), "ZeRO++ hpZ");
                else if (*n <= 1) c_.ignored(w, "1: no secondary partition");
            }
        } else {
            return false;
        }
        return true;
    }

    // Keys of features shardsim does not model, and of what happens outside the step.
    bool other_key(const std::string& k, const std::string& w, const json& v) {
        if (k == "zero_quantized_weights" || k == "zero_quantized_nontrainable_weights" || k == "zero_quantized_gradients") {
            if (auto b = get_bool(c_, w, v)) {
                if (*b) c_.unmodelled(w, "not modelled: ZeRO++ quantised communication");
                else c_.ignored(w, "false: DeepSpeed's default");
            }
        } else if (k == "mics_shard_size" || k == "mics_hierarchical_params_gather") {
            if ((v.is_number() && v.get<double>() > 0) || (v.is_boolean() && v.get<bool>())) c_.unmodelled(w, "not modelled: MiCS");
            else c_.ignored(w, "MiCS off");
        } else if (k == "memory_efficient_linear") {
            flag_default_true(w, v, "autograd keeping weights of linear layers in stage 3");
        } else if (k == "use_all_reduce_for_fetch_params") {
            if (v.is_boolean() && v.get<bool>()) c_.unmodelled(w, "not modelled: parameters gathered by all-reduce");
            else c_.ignored(w, "false: DeepSpeed's default");
        } else if (k == "module_granularity_threshold") {
            if (v.is_number() && v.get<double>() > 0) c_.unmodelled(w, "not modelled: module fusion for fetching");
            else c_.ignored(w, "0: DeepSpeed's default");
        } else if (k == "elastic_checkpoint" || k == "load_from_fp32_weights" || k == "ignore_unused_parameters" ||
                   k == "legacy_stage1" || k == "log_trace_cache_warnings" || k == "override_module_apply" ||
                   k == "pipeline_loading_checkpoint" || k == "zeropp_loco_param" || k == "save_muon_momentum_buffer_in_memory") {
            c_.ignored(w, "checkpointing, logging or start-up: not the step");
        } else {
            return false;
        }
        return true;
    }

    // Offload: the job refuses parameter offload without optimizer offload; DeepSpeed allows it.
    void settle_offload() {
        if (opt_.on && stage_ == 0)
            c_.problems.add(opt_.where + ": bad value '" + show(z_["offload_optimizer"]) +
                            "': stage 0 has no ZeRO optimizer to offload (allowed: none, or stage >= 1)");
        const std::string opt_where = opt_.where.empty() ? at_("zero_optimization") + ".offload_optimizer (absent)" : opt_.where;
        if (stage_ > 0 || opt_.on) c_.set(opt_where, "memory.offload_optimizer", opt_.on ? "true" : "false");
        bool params_on = par_.on && stage_ == 3;
        if (par_.on && stage_ < 3)
            c_.ignored(par_.where, "DeepSpeed offloads parameters in stage 3 only (this config: stage " + std::to_string(stage_) + ")");
        if (params_on && !opt_.on) {
            c_.unmodelled(par_.where, "not modelled: parameter offload without optimizer offload; planned without parameter offload");
            params_on = false;
        }
        c_.set(par_.where.empty() ? at_("zero_optimization") + ".offload_param (absent)" : par_.where, "memory.offload_params",
               params_on ? "true" : "false");
    }

    // "auto" sizes: Hugging Face's values (hf_auto); a size left out keeps DeepSpeed's default.
    void settle_auto_sizes() {
        const bool hf = bucket_auto_ || prefetch_auto_ || persistence_auto_;
        c_.set(hf ? (bucket_auto_     ? at_("zero_optimization.reduce_bucket_size")
                     : prefetch_auto_ ? at_("zero_optimization.stage3_prefetch_bucket_size")
                                      : at_("zero_optimization.stage3_param_persistence_threshold"))
                  : at_("zero_optimization"),
               "deepspeed.hf_auto", hf ? "true" : "false");
        if (job_has_key("deepspeed.stage3_param_persistence_threshold") && stage_ == 3) {
            if (persistence_auto_)
                c_.set(at_("zero_optimization.stage3_param_persistence_threshold"), "deepspeed.stage3_param_persistence_threshold", "auto");
            else if (!persistence_given_)
                c_.set(at_("zero_optimization") + ".stage3_param_persistence_threshold (absent)",
                       "deepspeed.stage3_param_persistence_threshold", "100000", "DeepSpeed's default");
        }
        if (!bucket_given_) {
            c_.reduce_bucket_elements = 500'000'000;
            c_.reduce_bucket_where = at_("zero_optimization") + ".reduce_bucket_size (absent: DeepSpeed's default 5e8)";
        } else if (bucket_auto_) {
            c_.set(at_("zero_optimization.reduce_bucket_size"), "parallel.bucket_mib", "auto");
        }
        if (stage_ == 3 && !prefetch_given_)
            c_.set(at_("zero_optimization") + ".stage3_prefetch_bucket_size (absent)", "deepspeed.stage3_prefetch_bucket_size", "50000000",
                   "DeepSpeed's default");
        if (prefetch_auto_) c_.set(at_("zero_optimization.stage3_prefetch_bucket_size"), "deepspeed.stage3_prefetch_bucket_size", "auto");
    }

    // Keys of this build's job schema that the config leaves to DeepSpeed's defaults.
    void settle_defaults() {
        const std::string absent = at_("zero_optimization") + ".";
        if (!z_.contains("overlap_comm"))
            c_.set(absent + "overlap_comm (absent)", "deepspeed.overlap_comm", "auto", "DeepSpeed's default for the stage");
        for (const char* k : {"stage3_max_live_parameters", "stage3_max_reuse_distance"})
            if (stage_ == 3 && !seen_.count(k)) c_.set(absent + k + " (absent)", std::string("deepspeed.") + k, "1e9", "DeepSpeed's default");
        if (job_has_key("deepspeed.sub_group_size") && !seen_.count("sub_group_size"))
            c_.set(absent + "sub_group_size (absent)", "deepspeed.sub_group_size", "1e9", "DeepSpeed's default");
        const bool pin_given = seen_.count("cpu_offload_use_pin_memory") ||
                               (z_.contains("offload_optimizer") && z_["offload_optimizer"].is_object() &&
                                z_["offload_optimizer"].contains("pin_memory"));
        if (job_has_key("deepspeed.pin_memory") && !pin_given)
            c_.set(absent + "offload_optimizer.pin_memory (absent)", "deepspeed.pin_memory", "true", "DeepSpeed's default since 0.16.5");
        if (!seen_.count("zero_hpz_partition_size")) c_.set(absent + "zero_hpz_partition_size (absent)", "parallel.secondary_shard", "0");
    }

    Context& c_;
    const json& z_;
    const Locate& at_;
    const int stage_;
    const bool ds_;
    const std::int64_t h_;
    Offload opt_, par_;
    bool bucket_auto_ = false, prefetch_auto_ = false, bucket_given_ = false, prefetch_given_ = false;
    bool persistence_auto_ = false, persistence_given_ = false;
    std::set<std::string> seen_;
};

}  // namespace

void import_zero_optimization(Context& c, const json& root, const Locate& at) {
    const json empty = json::object();
    const json& z = root.contains("zero_optimization") ? root["zero_optimization"] : empty;
    if (!z.is_object()) return c.bad(at("zero_optimization"), show(z), "an object");
    int stage = 0;
    const std::string stage_where = z.contains("stage") ? at("zero_optimization.stage") : at("zero_optimization") + ".stage (absent)";
    if (z.contains("stage")) {
        const auto s = get_count(c, stage_where, z["stage"]);
        if (!s || *s > 3) {
            if (s) c.bad(stage_where, show(z["stage"]), "0, 1, 2, 3");
            return;
        }
        stage = static_cast<int>(*s);
    }
    static const char* kStrategy[] = {"ddp", "zero1", "zero2", "zero3"};
    c.set(stage_where, "parallel.strategy", kStrategy[stage], stage == 0 ? "" : "DeepSpeed ZeRO stage " + std::to_string(stage));
    if (stage == 0)
        c.unmodelled(stage_where, "approximated: DeepSpeed's stage 0 all-reduces gradients with its own buckets; shardsim "
                                  "plans it as PyTorch DDP (strategy ddp)");
    ZeroSection section(c, z, at, stage);
    section.read();
    section.settle();
}

}  // namespace shardsim::interop::detail
