// accelerate's config.yaml (what `accelerate config` writes): the distributed type, the world,
// mixed precision, and an fsdp_config or a deepspeed_config (inline keys, or a ds_config file).
#include <yaml-cpp/yaml.h>

#include <filesystem>
#include <map>

#include "importer.hpp"
#include "shardsim/core/format.hpp"

namespace shardsim::interop::detail {

namespace {

std::string scalar(const YAML::Node& n) {
    if (n.IsScalar()) return n.Scalar();
    if (n.IsNull()) return "null";
    YAML::Emitter e;
    e << YAML::Flow << n;
    return e.c_str();
}

// Keys accelerate writes that change neither memory nor time of a step.
const std::map<std::string, std::string>& ignored_keys() {
    static const std::map<std::string, std::string> m = {
        {"compute_environment", "where accelerate runs"}, {"debug", "logging"}, {"machine_rank", "this machine's rank"},
        {"main_process_ip", "rendezvous"}, {"main_process_port", "rendezvous"}, {"main_training_function", "the script"},
        {"rdzv_backend", "rendezvous"}, {"same_network", "rendezvous"}, {"tpu_env", "TPU only"},
        {"tpu_use_cluster", "TPU only"}, {"tpu_use_sudo", "TPU only"}, {"tpu_name", "TPU only"}, {"tpu_zone", "TPU only"},
        {"commands", "TPU only"}, {"command_file", "TPU only"}, {"downcast_bf16", "TPU only"},
        {"enable_cpu_affinity", "CPU affinity of the launcher"}, {"gpu_ids", "which GPUs, not how many"},
        {"mpirun_config", "the launcher"}, {"ipex_config", "Intel extensions"}, {"use_cpu", "see distributed_type"}};
    return m;
}

// accelerate's inline deepspeed_config keys, as the ds_config keys its DeepSpeedPlugin writes.
const std::map<std::string, std::string>& inline_ds_keys() {
    static const std::map<std::string, std::string> m = {
        {"zero_stage", "zero_optimization.stage"},
        {"offload_optimizer_device", "zero_optimization.offload_optimizer.device"},
        {"offload_param_device", "zero_optimization.offload_param.device"},
        {"gradient_accumulation_steps", "gradient_accumulation_steps"},
        {"gradient_clipping", "gradient_clipping"},
        {"zero3_save_16bit_model", "zero_optimization.stage3_gather_16bit_weights_on_model_save"}};
    return m;
}

nlohmann::json json_of(const YAML::Node& n) {
    if (n.IsMap()) {
        nlohmann::json j = nlohmann::json::object();
        for (const auto& kv : n) j[kv.first.Scalar()] = json_of(kv.second);
        return j;
    }
    if (n.IsSequence()) {
        nlohmann::json j = nlohmann::json::array();
        for (const auto& x : n) j.push_back(json_of(x));
        return j;
    }
    if (n.IsNull()) return nullptr;
    const std::string s = n.Scalar();
    if (s == "true" || s == "True") return true;
    if (s == "false" || s == "False") return false;
    double d = 0;
    if (n.Tag() != "!" && config::parse_number(s, d)) {
        std::int64_t i = 0;
        if (config::parse_integer(s, i)) return i;
        return d;
    }
    return s;
}

}  // namespace

namespace {

// An accelerate config file, section by section: distributed_type and mixed_precision first (the
// rest depends on them), the world, then every key, then what the file leaves to accelerate.
class AccelerateFile {
public:
    AccelerateFile(Context& c, const std::string& path) : c_(c), path_(path) {
        const std::string text = read_file(path, "accelerate config");
        try {
            root_ = YAML::Load(text);
        } catch (const YAML::ParserException& e) {
            throw InputError(path + ":" + std::to_string(e.mark.line + 1) + ": not valid YAML: " + e.msg +
                             " (allowed: an accelerate config, as `accelerate config` writes it)");
        }
        if (!root_.IsMap()) throw InputError(path + ": not an accelerate config (allowed: a YAML mapping of keys such as distributed_type)");
    }

    void import() {
        if (!distributed_type()) return;
        mixed_precision();
        world();
        for (const auto& kv : root_) key(kv.first.Scalar(), kv.second, at(kv.first, kv.first.Scalar()));
        defaults();
    }

private:
    std::string at(const YAML::Node& n, const std::string& key) const { return path_ + ":" + std::to_string(n.Mark().line + 1) + ": " + key; }
    std::string key_at(const YAML::Node& parent, const std::string& key) const {
        for (const auto& kv : parent)
            if (kv.first.Scalar() == key) return at(kv.first, key);
        return path_ + ": " + key;
    }

    bool distributed_type() {
        type_where_ = root_["distributed_type"] ? key_at(root_, "distributed_type") : path_ + ": distributed_type (absent)";
        if (root_["distributed_type"]) type_ = scalar(root_["distributed_type"]);
        static const std::vector<std::string> kTypes = {"NO", "MULTI_GPU", "MULTI_CPU", "FSDP", "DEEPSPEED"};
        if (std::find(kTypes.begin(), kTypes.end(), type_) == kTypes.end()) {
            c_.problems.add(type_where_ + ": bad value '" + type_ + "': not modelled (allowed: " + join(kTypes, ", ") + ")");
            return false;
        }
        if (type_ == "NO" || type_ == "MULTI_GPU" || type_ == "MULTI_CPU")
            c_.set(type_where_, "parallel.strategy", "ddp", type_ == "NO" ? "one process" : "DistributedDataParallel");
        return true;
    }

    // mixed_precision: the Trainer's --bf16 / --fp16 for the DeepSpeed "auto" values, and the
    // precision of FSDP (MixedPrecision(param_dtype = reduce_dtype = bf16)) and DDP (autocast).
    void mixed_precision() {
        mp_where_ = root_["mixed_precision"] ? key_at(root_, "mixed_precision") : path_ + ": mixed_precision (absent)";
        if (root_["mixed_precision"]) mp_ = scalar(root_["mixed_precision"]);
        if (mp_ != "no" && mp_ != "bf16" && mp_ != "fp16") {
            c_.problems.add(mp_where_ + ": bad value '" + mp_ + "'" + (mp_ == "fp8" ? ": fp8 training is not modelled" : "") +
                            " (allowed: no, bf16, fp16)");
            mp_ = "no";
        }
        if (mp_ != "no" && !c_.trainer.get(mp_)) c_.trainer.values[mp_] = "true";
        if (type_ == "DEEPSPEED") return;
        const std::string dt = mp_ == "no" ? "fp32" : mp_;
        c_.set(mp_where_, "precision.params", dt);
        c_.set(mp_where_, "precision.grads", dt);
        c_.set(mp_where_, "precision.reduce", dt, type_ == "FSDP" ? "Accelerate's MixedPrecision reduces in it" : "");
        c_.set(mp_where_, "precision.master_weights", "true", "fp32 parameters are kept");
        if (type_ != "FSDP" && mp_ != "no")
            c_.unmodelled(mp_where_, "approximated: DDP under autocast keeps fp32 parameters and gradients; shardsim plans " + mp_ +
                                         " parameters with fp32 master weights");
    }

    // The world: num_machines nodes of the topology, num_processes ranks in all.
    void world() {
        const auto& topo = c_.base.topology;
        std::int64_t machines = 1, processes = 1;
        if (root_["num_machines"] && !config::parse_integer(scalar(root_["num_machines"]), machines))
            c_.bad(key_at(root_, "num_machines"), scalar(root_["num_machines"]), "integer >= 1");
        if (root_["num_processes"] && !config::parse_integer(scalar(root_["num_processes"]), processes))
            c_.bad(key_at(root_, "num_processes"), scalar(root_["num_processes"]), "integer >= 1");
        if (!root_["num_processes"] && !root_["num_machines"]) return;
        const std::string w = root_["num_processes"] ? key_at(root_, "num_processes") : key_at(root_, "num_machines");
        if (machines < 1 || processes < 1) {
            c_.bad(w, std::to_string(processes) + " process(es) on " + std::to_string(machines) + " machine(s)", "integers >= 1");
        } else if (machines == 1 && processes <= topo.gpus_per_node) {
            c_.set(w, "topology.cluster.nodes", "1");
            c_.set(w, "parallel.world_size", processes == topo.gpus_per_node ? "0" : std::to_string(processes),
                   std::to_string(processes) + " of the " + std::to_string(topo.gpus_per_node) + " GPUs of a node of " + topo.name);
        } else if (machines > 1 && processes == machines * topo.gpus_per_node) {
            c_.set(w, "topology.cluster.nodes", std::to_string(machines));
            c_.set(w, "parallel.world_size", "0", "every GPU of " + std::to_string(machines) + " nodes");
        } else {
            c_.problems.add(w + ": bad value '" + std::to_string(processes) + "': " + std::to_string(processes) + " processes on " +
                            std::to_string(machines) + " machine(s) do not fit nodes of " + std::to_string(topo.gpus_per_node) +
                            " GPUs (topology " + topo.name + "; several nodes need all their GPUs) (allowed: num_processes <= " +
                            std::to_string(topo.gpus_per_node) + " on one machine, or num_machines x " +
                            std::to_string(topo.gpus_per_node) + ")");
        }
    }

    void key(const std::string& k, const YAML::Node& v, const std::string& w) {
        if (k == "distributed_type" || k == "mixed_precision" || k == "num_processes" || k == "num_machines") return;
        if (k == "fsdp_config") {
            fsdp_config(v, w);
        } else if (k == "deepspeed_config") {
            deepspeed_config(v, w);
        } else if (k == "dynamo_config") {
            const bool off = v.IsMap() && v["dynamo_backend"] && scalar(v["dynamo_backend"]) == "NO";
            if (off) c_.ignored(w, "dynamo_backend NO");
            else c_.unmodelled(w, "not modelled: torch.compile's fused kernels");
        } else if (k == "megatron_lm_config" || k == "fp8_config" || k == "parallelism_config" || k == "tp_config") {
            c_.unmodelled(w, "not modelled");
        } else if (ignored_keys().count(k)) {
            c_.ignored(w, ignored_keys().at(k));
        } else {
            c_.problems.add(w + ": unknown key (accelerate refuses unknown keys; allowed: distributed_type, num_processes, "
                                "num_machines, mixed_precision, fsdp_config, deepspeed_config, and the launcher's keys)");
        }
    }

    void fsdp_config(const YAML::Node& v, const std::string& w) {
        if (type_ != "FSDP") return c_.ignored(w, "distributed_type is " + type_ + ", not FSDP");
        if (!v.IsMap()) return c_.bad(w, scalar(v), "a mapping of fsdp_* keys");
        // Accelerate's FSDP plugin defaults (ENGINES.md §4), then the file's keys.
        c_.set(w, "parallel.strategy", "fsdp-full-shard", "Accelerate's default FULL_SHARD");
        c_.set(w, "fsdp.backward_prefetch", "none", "Accelerate passes NO_PREFETCH unless fsdp_backward_prefetch says");
        c_.set(w, "fsdp.forward_prefetch", "false", "Accelerate's default");
        c_.set(w, "fsdp.limit_all_gathers", "true", "Accelerate's default");
        c_.set(w, "memory.offload_params", "false", "Accelerate's default");
        c_.set(w, "memory.offload_optimizer", "false", "Accelerate's default");
        const bool each = c_.sync_each_batch.value_or(false);
        c_.set(w, "fsdp.no_sync", each ? "false" : "true",
               each ? "--accelerator_config sync_each_batch" : "Accelerate and the Trainer accumulate inside no_sync()");
        for (const auto& f : v) import_fsdp_option(c_, at(f.first, "fsdp_config." + f.first.Scalar()), f.first.Scalar(), scalar(f.second));
    }

    void deepspeed_config(const YAML::Node& v, const std::string& w) {
        if (type_ != "DEEPSPEED") return c_.ignored(w, "distributed_type is " + type_ + ", not DEEPSPEED");
        if (!v.IsMap()) return c_.bad(w, scalar(v), "a mapping of deepspeed_config keys");
        if (v["deepspeed_config_file"]) {
            std::filesystem::path file = scalar(v["deepspeed_config_file"]);
            if (file.is_relative()) file = std::filesystem::path(path_).parent_path() / file;
            for (const auto& d : v)
                if (d.first.Scalar() != "deepspeed_config_file")
                    c_.ignored(at(d.first, "deepspeed_config." + d.first.Scalar()),
                               inline_ds_keys().count(d.first.Scalar()) ? "accelerate ignores it when deepspeed_config_file is given"
                                                                        : "launcher or start-up setting");
            return import_deepspeed_file(c_, file.string());
        }
        // Inline keys: the ds_config accelerate's DeepSpeedPlugin writes from them (stage 2 and no
        // offload unless said; the batch "auto", filled from the Trainer or the job).
        nlohmann::json ds = {{"train_micro_batch_size_per_gpu", "auto"}, {"train_batch_size", "auto"}, {"zero_optimization", {{"stage", 2}}}};
        std::map<std::string, std::string> where_of;  // ds key -> the YAML key's place
        where_of["zero_optimization.stage"] = w + ".zero_stage (absent: accelerate's default 2)";
        for (const auto& d : v) {
            const std::string dk = d.first.Scalar();
            const std::string dw = at(d.first, "deepspeed_config." + dk);
            auto it = inline_ds_keys().find(dk);
            if (it == inline_ds_keys().end()) {
                if (dk == "zero3_init_flag" || dk == "deepspeed_multinode_launcher" || dk == "deepspeed_hostfile" ||
                    dk == "deepspeed_exclusion_filter" || dk == "deepspeed_inclusion_filter" || dk == "offload_optimizer_nvme_path" ||
                    dk == "offload_param_nvme_path")
                    c_.ignored(dw, "model loading or the launcher");
                else if (dk == "deepspeed_moe_layer_cls_names")
                    c_.unmodelled(dw, "not modelled: mixture of experts");
                else
                    c_.unmodelled(dw, "unknown deepspeed_config key (ignored)");
                continue;
            }
            nlohmann::json* node = &ds;
            const auto parts = split(it->second, '.');
            for (std::size_t i = 0; i + 1 < parts.size(); ++i) node = &(*node)[parts[i]];
            (*node)[parts.back()] = json_of(d.second);
            where_of[it->second] = dw;
        }
        if (mp_ != "no") ds[mp_] = {{"enabled", true}}, where_of[mp_ + ".enabled"] = mp_where_;
        import_deepspeed(c_, ds, [where_of, w](const std::string& dotted) {
            auto it = where_of.find(dotted);
            return it != where_of.end() ? it->second : w + " -> " + dotted;
        });
    }

    // What the file leaves to accelerate: FSDP with no fsdp_config, DeepSpeed with no config.
    void defaults() {
        if (type_ == "FSDP" && !root_["fsdp_config"])
            c_.unmodelled(type_where_, "FSDP without fsdp_config: Accelerate wraps nothing (NO_WRAP); shardsim plans one unit per block");
        if (type_ == "DEEPSPEED" && !root_["deepspeed_config"]) {
            nlohmann::json ds = {{"zero_optimization", {{"stage", 2}}}};
            if (mp_ != "no") ds[mp_] = {{"enabled", true}};
            const std::string where = type_where_;
            import_deepspeed(c_, ds, [where](const std::string& dotted) { return where + " -> " + dotted + " (accelerate's default)"; });
        }
    }

    Context& c_;
    const std::string path_;
    YAML::Node root_;
    std::string type_ = "NO", type_where_;
    std::string mp_ = "no", mp_where_;
};

}  // namespace

void import_accelerate_file(Context& c, const std::string& path) { AccelerateFile(c, path).import(); }

}  // namespace shardsim::interop::detail
