#pragma once
// [Note: plan search] `shardsim plan` answers "which GPUs, how many, which strategy" by searching
// a space of setups in three stages:
//   1. every setup (GPU type x count x strategy with its shard sizes x the micro-batch /
//      accumulation splits of the global batch x checkpointing x offload x attention x precision
//      x the engines' bucket and prefetch knobs) is checked against the plan's rules and its
//      memory bound (plan/bound.hpp): a setup whose bound exceeds the device or the host cannot
//      fit, and is set aside with the amount;
//   2. the rest are ranked by a fast estimate of the step (study/estimate.hpp), from the same
//      model units and cost functions the simulator uses, without building a plan;
//   3. the best of them, and the best of every GPU count, are simulated in full (sim::predict,
//      the chain every command uses) to confirm that they fit and to rank them by what the
//      simulation says. The winners' engine knobs are then tuned by simulation, and each
//      winner's largest micro-batch found by bisection.
// This file is the space: the request, the node types, one setup, and the `--set` arguments
// that make a job of a setup.
#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "shardsim/config/job.hpp"
#include "shardsim/model/scenario.hpp"
#include "shardsim/plan/strategy.hpp"

namespace shardsim::study {

// A GPU by the name people use, and the shipped topology of a node of them.
struct GpuEntry {
    std::string name;      // "a100-80g"
    std::string topology;  // "8x-a100-80g-nvlink"
};
const std::vector<GpuEntry>& gpu_catalogue();

enum class ObjectiveKind { tokens_per_s, cost_per_token, fewest_gpus, time_to_tokens };
struct Objective {
    ObjectiveKind kind = ObjectiveKind::tokens_per_s;
    double tokens = 0;  // time-to-tokens: how many tokens
    std::string text;   // as the user wrote it
};
// "tokens-per-s", "cost-per-token", "fewest-gpus", "time-to-tokens=2e9" (or 2B, 500M, 1T);
// InputError naming --objective otherwise.
Objective parse_objective(const std::string& text);

// What the search may use beyond the default space (see allow_names()).
const std::vector<std::string>& allow_names();

// The command line of `shardsim plan`, checked.
struct PlanRequest {
    std::string model;  // --model (or the job's model)
    std::string job;    // --job: the base job; its setup is evaluated too
    std::int64_t seq_len = 0;
    std::int64_t decoder_seq_len = 0;
    std::int64_t global_batch = 0;     // sequences per optimizer step
    std::int64_t tokens_per_step = 0;  // or tokens (decoder tokens for encoder-decoder models)
    std::vector<std::string> gpus;        // catalogue names
    std::vector<std::string> topologies;  // node types by topology
    std::int64_t max_gpus = 64;
    std::vector<std::int64_t> nodes;  // node counts to consider (empty: all up to max_gpus)
    Objective objective;
    std::set<std::string> allow;
    std::vector<std::string> fixes;  // key=value, job keys or topology.* keys
    int top = 10;
    int threads = 0;  // 0: the machine's
};

// A node type the search scales: one node of `topology`, used whole (several nodes need its
// network) or in part (a single node with fewer GPUs, and that share of its host memory).
struct NodeType {
    std::string name;          // as the user named it: a catalogue name or a topology
    std::string topology_ref;  // shipped name or path
    std::string topology_dir;  // where a relative path resolves
    std::int64_t gpus_per_node = 1;
    double host_memory_gib = 0;
    double usd_per_gpu_hour = 0;  // 0: unknown
    std::vector<std::int64_t> counts;  // GPU counts searched
    std::string note;                  // why the counts stop where they do ("" when nothing to say)
};

// One engine-knob choice (the engines' names: DDP's bucket_cap_mb, DeepSpeed's reduce_bucket_size
// and stage3_prefetch_bucket_size, FSDP's backward_prefetch / forward_prefetch).
struct EngineKnobs {
    double bucket_mib = 0;  // 0: auto
    std::int64_t prefetch_bucket = -1;  // ZeRO-3: elements prefetched ahead (-1: auto, 0: fetch on demand only)
    config::BackwardPrefetch backward_prefetch = config::BackwardPrefetch::backward_pre;
    bool forward_prefetch = false;
    bool operator==(const EngineKnobs&) const = default;
};

struct PrecisionOption {
    std::string name;  // "bf16 mixed", "as in the job"
    DType params = DType::bf16, grads = DType::bf16, reduce = DType::bf16;
    bool master = true;
    bool operator==(const PrecisionOption& o) const {
        return params == o.params && grads == o.grads && reduce == o.reduce && master == o.master;
    }
};

// One point of the space. Small on purpose: the search looks at millions.
struct Setup {
    std::int16_t node_type = 0;
    std::int32_t gpus = 1;
    config::Strategy strategy = config::Strategy::ddp;
    std::int32_t shard_size = 0;  // fsdp-hybrid-shard (0: the node)
    std::int32_t secondary = 0;   // zero3 hpZ (0: off)
    std::int32_t micro_batch = 1;
    std::int32_t grad_accum = 1;
    config::Checkpointing checkpointing = config::Checkpointing::none;
    std::int8_t offload = 0;  // 0 none, 1 optimizer, 2 optimizer and parameters
    config::AttentionKind attention = config::AttentionKind::eager;
    config::LossKind loss = config::LossKind::eager;
    std::int8_t precision = 0;  // in Space::precisions
    std::int8_t knobs = 0;      // in Space::knobs(strategy)
    bool lora = false;

    std::int64_t nodes(const std::vector<NodeType>& types) const;
};

struct Space {
    PlanRequest request;
    std::string base_text;  // the base job (the --job file, or one made from --model)
    std::string base_path;  // for messages
    std::string base_dir;   // where the base job's relative paths resolve
    std::vector<std::string> fix_sets;  // --fix job keys, applied to every setup
    model::ModelSpec model;
    std::int64_t global_batch = 0;
    std::vector<NodeType> node_types;
    std::vector<config::Strategy> strategies;
    std::vector<PrecisionOption> precisions;
    std::vector<config::Checkpointing> checkpointing;
    std::vector<bool> loras;
    std::vector<std::int8_t> offloads;
    std::vector<config::AttentionKind> attentions;
    std::vector<config::LossKind> losses;
    std::vector<std::vector<EngineKnobs>> knob_options;  // by strategy (its index in the enum)
    std::int64_t lora_rank = 8;                          // --allow lora: LoRA on the family's q and v
    std::string lora_targets;
    std::vector<std::string> lora_target_list;
    config::JobConfig base_job;                          // the base job as loaded (its engine keys, LoRA)
    std::optional<std::int32_t> fixed_micro_batch, fixed_grad_accum, fixed_shard_size, fixed_secondary;
    bool fixed_offload = false;  // --fix on an offload key: kept even where the strategy cannot (the plan says why)
    bool hybrid = true, hpz = true;  // shard sizes of fsdp-hybrid-shard beyond the node; ZeRO++ hpZ groups

    const std::vector<EngineKnobs>& knobs(config::Strategy s) const { return knob_options[static_cast<std::size_t>(s)]; }
};

// Checks the request (InputError: one line naming the flag, the value and what is allowed) and
// lays out the space.
Space build_space(const PlanRequest& request);

// The `--set` arguments that make the base job this setup (the fixes included, last).
std::vector<std::string> setup_sets(const Space& space, const Setup& setup);
// The same applied to a scenario in memory (the base job's, loaded once per node type): the
// fields those arguments set, without parsing anything. A test holds the two together.
void apply_setup(const Space& space, const Setup& setup, model::Scenario& scenario);
// The base scenario of a node type (parsed once; apply_setup then changes what a setup changes).
model::Scenario base_scenario(const Space& space, int node_type);

// The keys a setup sets that differ from the job schema's defaults, as key -> value.
std::vector<std::pair<std::string, std::string>> setup_keys(const Space& space, const Setup& setup);
// "zero3, micro-batch 2 x accum 4, checkpointing, offload optimizer, sdpa" — a short label.
std::string setup_label(const Space& space, const Setup& setup);

}  // namespace shardsim::study
