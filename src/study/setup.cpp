// One setup of the plan search as `--set` arguments, and the same applied in memory.
#include <algorithm>

#include "shardsim/core/format.hpp"
#include "shardsim/study/space.hpp"

namespace shardsim::study {

std::int64_t Setup::nodes(const std::vector<NodeType>& types) const {
    const std::int64_t g = types[static_cast<std::size_t>(node_type)].gpus_per_node;
    return gpus <= g ? 1 : gpus / g;
}

namespace {

const char* bool_text(bool b) { return b ? "true" : "false"; }

std::string number_text(double v) {
    std::string t = format_fixed(v, 6);
    while (t.size() > 1 && t.back() == '0') t.pop_back();
    if (!t.empty() && t.back() == '.') t.pop_back();
    return t;
}

// The node: whole nodes, or one node with fewer GPUs and that share of its host memory (a cloud
// instance or a Slurm allocation of part of a node gets its share, not the whole node's).
void shape_sets(const Space& space, const Setup& x, std::vector<std::string>& out) {
    const NodeType& n = space.node_types[static_cast<std::size_t>(x.node_type)];
    const std::int64_t nodes = x.nodes(space.node_types);
    out.push_back("job.topology=" + n.topology_ref);
    out.push_back("topology.cluster.nodes=" + std::to_string(nodes));
    out.push_back("topology.cluster.gpus_per_node=" + std::to_string(nodes > 1 ? n.gpus_per_node : x.gpus));
    if (x.gpus < n.gpus_per_node)
        out.push_back("topology.host.memory_gib=" + number_text(n.host_memory_gib * static_cast<double>(x.gpus) /
                                                                static_cast<double>(n.gpus_per_node)));
    out.push_back("parallel.world_size=0");
}

void knob_sets(const Space& space, const Setup& x, std::vector<std::string>& out) {
    const EngineKnobs& k = space.knobs(x.strategy)[static_cast<std::size_t>(x.knobs)];
    const auto engine = plan::traits(x.strategy).engine;
    if (engine != plan::Engine::fsdp) out.push_back("parallel.bucket_mib=" + (k.bucket_mib > 0 ? number_text(k.bucket_mib) : "auto"));
    if (engine == plan::Engine::deepspeed)
        out.push_back("deepspeed.stage3_prefetch_bucket_size=" + (k.prefetch_bucket >= 0 ? std::to_string(k.prefetch_bucket) : "auto"));
    // FSDP's keys are refused for other strategies unless they hold their defaults.
    const bool fsdp = engine == plan::Engine::fsdp;
    const auto& names = std::vector<std::string>{"backward_pre", "backward_post", "none"};
    out.push_back("fsdp.backward_prefetch=" + (fsdp ? names[static_cast<std::size_t>(k.backward_prefetch)] : names[0]));
    out.push_back(std::string("fsdp.forward_prefetch=") + bool_text(fsdp && k.forward_prefetch));
}

// The base job's engine keys that another engine would refuse, back to their defaults.
void neutral_engine_sets(const Setup& x, std::vector<std::string>& out) {
    const auto engine = plan::traits(x.strategy).engine;
    if (engine != plan::Engine::fsdp) out.insert(out.end(), {"fsdp.limit_all_gathers=true", "fsdp.no_sync=false"});
    if (engine != plan::Engine::deepspeed)
        out.insert(out.end(), {"deepspeed.overlap_comm=auto", "deepspeed.hf_auto=false", "deepspeed.stage3_prefetch_bucket_size=auto",
                               "deepspeed.stage3_max_live_parameters=1e9", "deepspeed.stage3_max_reuse_distance=1e9",
                               "deepspeed.stage3_param_persistence_threshold=auto", "deepspeed.pin_memory=true",
                               "deepspeed.sub_group_size=1e9"});
    if (engine != plan::Engine::ddp) out.insert(out.end(), {"ddp.gradient_as_bucket_view=false", "parallel.first_bucket_mib=auto"});
}

}  // namespace

std::vector<std::string> setup_sets(const Space& space, const Setup& x) {
    std::vector<std::string> out;
    shape_sets(space, x, out);
    out.push_back("parallel.strategy=" + config::strategy_name(x.strategy));
    out.push_back("parallel.shard_size=" + std::to_string(x.shard_size));
    out.push_back("parallel.secondary_shard=" + std::to_string(x.secondary));
    knob_sets(space, x, out);
    neutral_engine_sets(x, out);
    out.push_back("batch.micro_batch=" + std::to_string(x.micro_batch));
    out.push_back("batch.grad_accum=" + std::to_string(x.grad_accum));
    out.push_back("memory.activation_checkpointing=" + config::checkpointing_name(x.checkpointing));
    out.push_back(std::string("memory.offload_optimizer=") + bool_text(x.offload == 1 || x.offload == 2));
    out.push_back(std::string("memory.offload_params=") + bool_text(x.offload >= 2));
    out.push_back("memory.attention=" + config::attention_name(x.attention));
    out.push_back(std::string("memory.loss=") + (x.loss == config::LossKind::fused ? "fused" : "eager"));
    const PrecisionOption& p = space.precisions[static_cast<std::size_t>(x.precision)];
    out.push_back("precision.params=" + std::string(dtype_name(p.params)));
    out.push_back("precision.grads=" + std::string(dtype_name(p.grads)));
    out.push_back("precision.reduce=" + std::string(dtype_name(p.reduce)));
    out.push_back(std::string("precision.master_weights=") + bool_text(p.master));
    if (x.lora) out.insert(out.end(), {"lora.rank=" + std::to_string(space.lora_rank), "lora.targets=" + space.lora_targets});
    out.insert(out.end(), space.fix_sets.begin(), space.fix_sets.end());
    return out;
}

model::Scenario base_scenario(const Space& space, int node_type) {
    Setup x;
    x.node_type = static_cast<std::int16_t>(node_type);
    x.gpus = static_cast<std::int32_t>(space.node_types[static_cast<std::size_t>(node_type)].gpus_per_node);
    std::vector<std::string> sets;
    shape_sets(space, x, sets);
    sets.insert(sets.end(), space.fix_sets.begin(), space.fix_sets.end());
    return model::load_scenario_text(space.base_path, space.base_text, space.base_dir, sets);
}

namespace {

// neutral_engine_sets in memory: another engine's keys at their defaults, the setup's own engine's
// as the base job has them.
void apply_engine_keys(const Space& space, const Setup& x, config::JobConfig& j) {
    const auto engine = plan::traits(x.strategy).engine;
    const config::JobConfig& b = space.base_job;
    j.fsdp.limit_all_gathers = engine == plan::Engine::fsdp ? b.fsdp.limit_all_gathers : true;
    j.fsdp.no_sync = engine == plan::Engine::fsdp ? b.fsdp.no_sync : false;
    j.overlap_comm = engine == plan::Engine::deepspeed ? b.overlap_comm : -1;
    j.hf_auto = engine == plan::Engine::deepspeed ? b.hf_auto : false;
    j.stage3_max_live_parameters = engine == plan::Engine::deepspeed ? b.stage3_max_live_parameters : 1'000'000'000;
    j.stage3_max_reuse_distance = engine == plan::Engine::deepspeed ? b.stage3_max_reuse_distance : 1'000'000'000;
    j.stage3_param_persistence_threshold = engine == plan::Engine::deepspeed ? b.stage3_param_persistence_threshold : -1;
    j.pin_memory = engine == plan::Engine::deepspeed ? b.pin_memory : true;
    j.sub_group_size = engine == plan::Engine::deepspeed ? b.sub_group_size : 1'000'000'000;
    j.gradient_as_bucket_view = engine == plan::Engine::ddp ? b.gradient_as_bucket_view : false;
    j.first_bucket_mib = engine == plan::Engine::ddp ? b.first_bucket_mib : 0;
}

}  // namespace

void apply_setup(const Space& space, const Setup& x, model::Scenario& s) {
    const NodeType& n = space.node_types[static_cast<std::size_t>(x.node_type)];
    const std::int64_t nodes = x.nodes(space.node_types);
    s.topology.nodes = nodes;
    s.topology.gpus_per_node = nodes > 1 ? n.gpus_per_node : x.gpus;
    // As the --set would write it: the share of the node's memory in GiB, then to bytes.
    if (x.gpus < n.gpus_per_node)
        s.topology.host.memory_bytes = static_cast<std::int64_t>(
            std::stod(number_text(n.host_memory_gib * static_cast<double>(x.gpus) / static_cast<double>(n.gpus_per_node))) * kGiB);
    else
        s.topology.host.memory_bytes = static_cast<std::int64_t>(n.host_memory_gib * kGiB);
    auto& j = s.job;
    j.world_size = 0;
    j.strategy = x.strategy;
    j.shard_size = x.shard_size;
    j.secondary_shard = x.secondary;
    const EngineKnobs& k = space.knobs(x.strategy)[static_cast<std::size_t>(x.knobs)];
    const bool fsdp = plan::traits(x.strategy).engine == plan::Engine::fsdp;
    j.bucket_mib = fsdp ? 0 : k.bucket_mib;
    j.stage3_prefetch_bucket_size = plan::traits(x.strategy).engine == plan::Engine::deepspeed ? k.prefetch_bucket : -1;
    j.fsdp.backward_prefetch = fsdp ? k.backward_prefetch : config::BackwardPrefetch::backward_pre;
    j.fsdp.forward_prefetch = fsdp && k.forward_prefetch;
    j.micro_batch = x.micro_batch;
    j.grad_accum = x.grad_accum;
    j.activation_checkpointing = x.checkpointing;
    j.offload_optimizer = x.offload == 1 || x.offload == 2;
    j.offload_params = x.offload >= 2;
    j.attention = x.attention;
    j.loss = x.loss;
    const PrecisionOption& p = space.precisions[static_cast<std::size_t>(x.precision)];
    j.params = p.params;
    j.grads = p.grads;
    j.reduce = p.reduce;
    j.master_weights = p.master;
    j.lora_rank = x.lora ? space.lora_rank : space.base_job.lora_rank;
    const auto& targets = x.lora ? space.lora_target_list : space.base_job.lora_targets;
    if (j.lora_targets != targets) j.lora_targets = targets;
    apply_engine_keys(space, x, j);
}

std::vector<std::pair<std::string, std::string>> setup_keys(const Space& space, const Setup& x) {
    std::vector<std::pair<std::string, std::string>> out;
    std::string params = "bf16", grads;
    for (const auto& set : setup_sets(space, x)) {
        const auto eq = set.find('=');
        const std::string key = set.substr(0, eq), value = set.substr(eq + 1);
        if (key.rfind("topology.", 0) == 0 || key == "job.topology" || key == "parallel.world_size") continue;
        for (const auto& spec : config::job_schema()) {
            if (spec.name() != key) continue;
            std::string def = spec.default_value;
            // grads and reduce default to the params' and grads' dtypes.
            if (key == "precision.grads") def = params;
            if (key == "precision.reduce") def = grads;
            if (key == "precision.params") params = value;
            if (key == "precision.grads") grads = value;
            if (value != def && !(def == "auto" && value == "0")) {
                std::erase_if(out, [&](const auto& kv) { return kv.first == key; });
                out.push_back({key, value});
            }
        }
    }
    return out;
}

std::string setup_label(const Space& space, const Setup& x) {
    std::string s = config::strategy_name(x.strategy);
    if (x.shard_size > 0) s += " shard " + std::to_string(x.shard_size);
    if (x.secondary > 0) s += " hpZ " + std::to_string(x.secondary);
    s += ", mb " + std::to_string(x.micro_batch) + " x " + std::to_string(x.grad_accum);
    if (x.checkpointing == config::Checkpointing::full) s += ", ckpt";
    if (x.checkpointing == config::Checkpointing::selective) s += ", selective ckpt";
    if (x.offload == 1) s += ", offload opt";
    if (x.offload == 2) s += ", offload opt+params";
    if (x.offload == 3) s += ", offload params";
    s += ", " + config::attention_name(x.attention);
    if (x.loss == config::LossKind::fused) s += ", fused loss";
    if (space.precisions.size() > 1) s += ", " + space.precisions[static_cast<std::size_t>(x.precision)].name;
    const EngineKnobs& k = space.knobs(x.strategy)[static_cast<std::size_t>(x.knobs)];
    const EngineKnobs& d = space.knobs(x.strategy).front();
    if (k.bucket_mib != d.bucket_mib) s += ", bucket " + number_text(k.bucket_mib) + " MiB";
    if (k.prefetch_bucket != d.prefetch_bucket && x.strategy == config::Strategy::zero3)
        s += k.prefetch_bucket == 0 ? ", no prefetch" : ", prefetch bucket " + std::to_string(k.prefetch_bucket);
    if (k.forward_prefetch != d.forward_prefetch) s += std::string(", forward_prefetch ") + bool_text(k.forward_prefetch);
    if (k.backward_prefetch != d.backward_prefetch) s += ", backward_post";
    if (x.lora) s += ", LoRA r" + std::to_string(space.lora_rank);
    return s;
}

}  // namespace shardsim::study
