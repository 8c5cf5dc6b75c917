#pragma once
// A job: what to train and how. Keys and sections are the interface users and scripts rely on
// (see jobs/*.ini); the schema below is the single source of their types, defaults and help.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "shardsim/config/schema.hpp"
#include "shardsim/core/dtype.hpp"

namespace shardsim::config {

enum class Strategy {
    ddp,
    zero1,
    zero2,
    zero3,
    fsdp_full_shard,
    fsdp_shard_grad_op,
    fsdp_no_shard,
    fsdp_hybrid_shard,
};
const std::vector<std::string>& strategy_names();  // in the enum's order, as users spell them
std::string strategy_name(Strategy s);
std::optional<Strategy> parse_strategy(const std::string& s);

enum class OptimizerKind { adamw, sgd };
enum class BackwardPrefetch { backward_pre, backward_post, none };

// PyTorch FSDP's knobs, named as FSDP names them (ENGINES.md §4).
struct FsdpOptions {
    BackwardPrefetch backward_prefetch = BackwardPrefetch::backward_pre;
    bool forward_prefetch = false;
    bool limit_all_gathers = true;
    bool no_sync = false;  // gradient accumulation inside no_sync(): reduce on the last micro-batch only
};
// What memory.attention names; `automatic` (the key's `auto`) resolves per model family when the
// scenario is completed (model/scenario.cpp): after that only eager, sdpa and flash remain.
enum class AttentionKind { automatic, eager, sdpa, flash };
const std::vector<std::string>& attention_names();  // in the enum's order, as users spell them
std::string attention_name(AttentionKind a);
// memory.loss: Hugging Face's cross-entropy (fp32 logits copy, fp32 log-softmax kept) or a fused
// kernel that never materialises fp32 logits (plan/activations.hpp says what each keeps).
enum class LossKind { eager, fused };
// memory.activation_checkpointing: none; full (a checkpointed block keeps its input and recomputes
// everything, as torch.utils.checkpoint under Hugging Face's gradient_checkpointing); selective
// (torchtitan's op-level policy: a checkpointed block also keeps the outputs of every other
// projection and of a fused attention kernel, and recomputes the rest; plan/activations.hpp).
// `false` and `true` are accepted for none and full.
enum class Checkpointing { none, full, selective };
const std::vector<std::string>& checkpointing_names();  // in the enum's order
std::string checkpointing_name(Checkpointing c);
// A value the key allows (its names, false, true) as the enum.
Checkpointing parse_checkpointing(const std::string& s);

struct JobConfig {
    // [job]
    std::string name;
    double reported_host_gb = 0;  // a published run's host use, for comparison (0: none)
    std::string model;     // catalogue name or path to a model .ini (relative to the job file)
    std::string topology;  // shipped topology name or path to a topology .ini
    std::int64_t steps = 1;
    std::uint64_t seed = 0;
    // [parallel]
    Strategy strategy = Strategy::ddp;
    double bucket_mib = 0;        // 0: auto (the engine's default)
    double first_bucket_mib = 0;  // 0: auto (DDP's first bucket)
    std::int64_t world_size = 0;  // 0: every GPU of the topology
    std::int64_t shard_size = 0;       // hybrid: ranks per shard group (0: GPUs per node)
    std::int64_t secondary_shard = 0;  // zero3 hpZ: secondary partition size (0: off)
    FsdpOptions fsdp;  // [fsdp]
    // [deepspeed] (names as in a ds_config's zero_optimization section; -1: auto)
    int overlap_comm = -1;
    bool hf_auto = false;  // resolve "auto" values as the Hugging Face integration does
    std::int64_t stage3_prefetch_bucket_size = -1;  // -1: auto
    std::int64_t stage3_max_live_parameters = 1'000'000'000;
    std::int64_t stage3_max_reuse_distance = 1'000'000'000;
    std::int64_t stage3_param_persistence_threshold = -1;  // -1: auto
    bool pin_memory = true;                       // offload_optimizer / offload_param .pin_memory
    std::int64_t sub_group_size = 1'000'000'000;  // zero3's optimizer sub-groups, elements
    bool gradient_as_bucket_view = false;  // [ddp]
    // [precision]
    DType params = DType::fp32;
    DType grads = DType::fp32;
    DType reduce = DType::fp32;
    bool master_weights = true;
    // [optimizer]
    OptimizerKind optimizer = OptimizerKind::adamw;
    double lr = 0, weight_decay = 0, beta1 = 0, beta2 = 0, eps = 0, momentum = 0;
    // [batch]
    std::int64_t micro_batch = 1;
    std::int64_t grad_accum = 1;
    std::int64_t seq_len = 1;
    std::int64_t decoder_seq_len = 0;  // 0: not given (decoder-only models)
    // [memory]
    Checkpointing activation_checkpointing = Checkpointing::none;
    bool checkpointing() const { return activation_checkpointing != Checkpointing::none; }
    std::int64_t checkpoint_every = 1;  // with checkpointing: blocks n, 2n, 3n, ... (counting from 1)
    bool offload_optimizer = false;
    bool offload_params = false;
    AttentionKind attention = AttentionKind::eager;
    LossKind loss = LossKind::eager;
    // [dropout]: the model file's probabilities unless given (< 0 here: not given).
    double attention_dropout = -1;
    double hidden_dropout = -1;
    // [lora]
    std::int64_t lora_rank = 0;
    double lora_alpha = 16;
    std::vector<std::string> lora_targets;

    IniFile source;  // the file as read, for its text and locations
    Values values;   // every key with its origin (file:line, --set, default)
    std::string dir;  // folder of the job file: relative paths inside it resolve from here

    // "jobs/x.ini:12: parallel.strategy" — where a key was set, for errors found later.
    std::string where(const std::string& key) const;
    // The effective configuration as INI text (every key, defaults included).
    std::string effective_ini() const;
};

const Schema& job_schema();

// Reads and validates a job file; every problem of the file (and of the overrides) is reported
// together as an InputError.
JobConfig load_job(const std::string& path, const std::vector<Override>& overrides);
JobConfig load_job_text(const std::string& path, const std::string& text, const std::string& dir,
                        const std::vector<Override>& overrides);

// The effective text of any resolved file: every key in schema order with its value.
std::string effective_text(const Schema& schema, const Values& values);

}  // namespace shardsim::config
