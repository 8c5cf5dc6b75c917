#include "shardsim/config/job.hpp"

#include <algorithm>
#include <filesystem>

#include "shardsim/config/limits.hpp"
#include "shardsim/core/format.hpp"

namespace shardsim::config {

const std::vector<std::string>& strategy_names() {
    static const std::vector<std::string> names = {
        "ddp", "zero1", "zero2", "zero3", "fsdp-full-shard", "fsdp-shard-grad-op", "fsdp-no-shard",
        "fsdp-hybrid-shard"};
    return names;
}

std::string strategy_name(Strategy s) { return strategy_names()[static_cast<int>(s)]; }

std::optional<Strategy> parse_strategy(const std::string& s) {
    const auto& n = strategy_names();
    for (std::size_t i = 0; i < n.size(); ++i)
        if (n[i] == s) return static_cast<Strategy>(i);
    return std::nullopt;
}

const std::vector<std::string>& attention_names() {
    static const std::vector<std::string> names = {"auto", "eager", "sdpa", "flash"};
    return names;
}

std::string attention_name(AttentionKind a) { return attention_names()[static_cast<std::size_t>(a)]; }

const std::vector<std::string>& checkpointing_names() {
    static const std::vector<std::string> names = {"none", "full", "selective"};
    return names;
}

std::string checkpointing_name(Checkpointing c) { return checkpointing_names()[static_cast<std::size_t>(c)]; }

// false / true are Hugging Face's gradient_checkpointing switch: none / full.
Checkpointing parse_checkpointing(const std::string& s) {
    if (s == "false") return Checkpointing::none;
    if (s == "true") return Checkpointing::full;
    const auto& n = checkpointing_names();
    const auto it = std::find(n.begin(), n.end(), s);
    SHARDSIM_ASSERT(it != n.end(), "not a checkpointing value: " + s);
    return static_cast<Checkpointing>(it - n.begin());
}

namespace {

AttentionKind parse_attention(const std::string& s) {  // the schema has checked it is one of the names
    const auto& n = attention_names();
    return static_cast<AttentionKind>(std::find(n.begin(), n.end(), s) - n.begin());
}

}  // namespace

namespace {

const std::vector<std::string> kDTypes = {"fp32", "bf16", "fp16"};
constexpr const char* kSameAsParams = "same as params";
constexpr const char* kSameAsGrads = "same as grads";

KeySpec integer(std::string section, std::string key, std::string unit, std::string def, double min,
                std::string help, double max = std::numeric_limits<double>::infinity()) {
    KeySpec k;
    k.section = std::move(section);
    k.key = std::move(key);
    k.type = ValueType::integer;
    k.unit = std::move(unit);
    k.default_value = std::move(def);
    k.required = k.default_value.empty();
    k.min = min;
    k.max = max;
    k.help = std::move(help);
    return k;
}

KeySpec number(std::string section, std::string key, std::string unit, std::string def, double min,
               bool exclusive, std::string help, double max = std::numeric_limits<double>::infinity()) {
    KeySpec k = integer(std::move(section), std::move(key), std::move(unit), std::move(def), min, std::move(help), max);
    k.type = ValueType::number;
    k.min_exclusive = exclusive;
    return k;
}

KeySpec choice(std::string section, std::string key, std::vector<std::string> choices, std::string def,
               std::string help) {
    KeySpec k;
    k.section = std::move(section);
    k.key = std::move(key);
    k.type = ValueType::choice;
    k.choices = std::move(choices);
    k.default_value = std::move(def);
    k.required = k.default_value.empty();
    k.help = std::move(help);
    return k;
}

KeySpec boolean(std::string section, std::string key, std::string def, std::string help) {
    KeySpec k = choice(std::move(section), std::move(key), {}, std::move(def), std::move(help));
    k.type = ValueType::boolean;
    return k;
}

KeySpec text(std::string section, std::string key, std::string def, bool required, std::string help) {
    KeySpec k;
    k.section = std::move(section);
    k.key = std::move(key);
    k.type = ValueType::text;
    k.default_value = std::move(def);
    k.required = required;
    k.help = std::move(help);
    return k;
}

}  // namespace

const Schema& job_schema() {
    static const Schema schema = [] {
        Schema s;
        s.push_back(text("job", "name", "", false, "run name (default: the job file's name)"));
        s.push_back(text("job", "model", "", true,
                         "catalogue name (shardsim models) or path to a model .ini, relative to the job file"));
        s.push_back(text("job", "topology", "", true,
                         "shipped topology name or path to a topology .ini, relative to the job file"));
        s.push_back(integer("job", "steps", "optimizer steps", "1", 1, "steps the executor runs", limits::kSteps));
        s.push_back(integer("job", "seed", "", "1234", 0, "seed of weights and synthetic data"));
        s.push_back(number("job", "reported_host_gb", "GB", "0", 0, false,
                           "host memory a published run of this job reports having used (decimal GB, as such tables "
                           "give it), printed next to the predicted host use for comparison; 0: none. It is not the "
                           "host's size (topology host.memory_gib)", 1e6));

        s.push_back(choice("parallel", "strategy", strategy_names(), "", "sharding strategy"));
        KeySpec prefetch = integer("parallel", "prefetch", "units", "1", 0, "");
        prefetch.retired = "ZeRO-3 prefetches by deepspeed.stage3_prefetch_bucket_size (elements), FSDP as "
                           "fsdp.backward_prefetch and fsdp.forward_prefetch say";
        s.push_back(prefetch);
        KeySpec bucket = number("parallel", "bucket_mib", "MiB", "auto", 0, true,
                                "gradient bucket size: DDP's bucket_cap_mb (auto: 25 MiB), DeepSpeed's reduce_bucket_size "
                                "(auto: 5e8 elements); a bucket closes once it reaches this size, and a larger tensor is a "
                                "bucket of its own (at most 1 TiB)",
                                limits::kBufferMiB);
        bucket.allows_auto = true;
        s.push_back(bucket);
        KeySpec first = number("parallel", "first_bucket_mib", "MiB", "auto", 0, true,
                               "DDP: the first bucket's size (auto: 1 MiB, PyTorch's first_bucket_bytes_cap; at most 1 TiB)",
                               limits::kBufferMiB);
        first.allows_auto = true;
        s.push_back(first);
        KeySpec live = integer("parallel", "max_live_params", "elements", "1e9", 1, "");
        live.retired = "named as DeepSpeed names it: deepspeed.stage3_max_live_parameters";
        s.push_back(live);
        s.push_back(integer("parallel", "world_size", "ranks", "0", 0,
                            "ranks used (0: every GPU of the topology); several nodes need all their GPUs "
                            "(at most 1,000,000: 10x the largest clusters)", limits::kWorld));
        s.push_back(integer("parallel", "shard_size", "ranks", "0", 0,
                            "fsdp-hybrid-shard: ranks that split one copy of the states, any divisor of the world below it "
                            "(0: the GPUs of one node); the world is replicate x shard", limits::kWorld));
        s.push_back(integer("parallel", "secondary_shard", "ranks", "0", 0,
                            "zero3 only, DeepSpeed ZeRO++ hpZ (zero_hpz_partition_size): a second copy of the parameter "
                            "shards split over this many consecutive ranks (usually the GPUs of a node), so backward "
                            "gathers inside them (0: off)", limits::kWorld));

        s.push_back(boolean("ddp", "gradient_as_bucket_view", "false",
                            "DDP: gradients are views of the bucket storage (false, PyTorch's default: the buckets are "
                            "a second copy of the gradients, for the model's life)"));
        s.push_back(choice("deepspeed", "overlap_comm", {"auto", "true", "false"}, "auto",
                           "zero1/2/3: reduce gradient buckets on a side stream while backward goes on, one bucket in "
                           "flight (zero3: two) (auto: DeepSpeed's default, true for stage 3, false for stages 1 and 2: "
                           "the reduction runs on the compute stream)"));
        KeySpec pre = integer("deepspeed", "stage3_prefetch_bucket_size", "elements", "auto", 0,
                              "zero3: parameters all-gathered ahead of use, at most (auto: 5e7, DeepSpeed's default; 0.9 x "
                              "hidden^2 with hf_auto; at most 2^50, the largest model)",
                              static_cast<double>(limits::kParams));
        pre.allows_auto = true;
        s.push_back(pre);
        s.push_back(integer("deepspeed", "stage3_max_live_parameters", "elements", "1e9", 0,
                            "zero3: prefetching stops once this many elements are gathered (fetching on demand does not; "
                            "at most 2^50, the largest model)", static_cast<double>(limits::kParams)));
        s.push_back(integer("deepspeed", "stage3_max_reuse_distance", "elements", "1e9", 0,
                            "zero3: a unit stays gathered when its next use comes within this many elements of other "
                            "units' parameters (at most 2^50, the largest model)", static_cast<double>(limits::kParams)));
        KeySpec persist = integer("deepspeed", "stage3_param_persistence_threshold", "elements", "auto", 0,
                                  "zero3: parameters of at most this many elements are never partitioned: every rank keeps "
                                  "them whole on the device (auto: 1e5, DeepSpeed's default; 10 x hidden with hf_auto; at "
                                  "most 2^50, the largest model)",
                                  static_cast<double>(limits::kParams));
        persist.allows_auto = true;
        s.push_back(persist);
        s.push_back(boolean("deepspeed", "pin_memory", "true",
                            "zero1/2/3 with offload: pin the host buffers DeepSpeed pins (offload_optimizer.pin_memory, "
                            "true since DeepSpeed 0.16.5; pinning rounds each buffer up to a power of two); zero3's "
                            "offloaded parameters are pinned either way"));
        s.push_back(integer("deepspeed", "sub_group_size", "elements", "1e9", 1,
                            "zero3: the optimizer steps over sub-groups of this many partition elements; with offload its "
                            "fp32 gradient buffer on the host holds the largest sub-group (at most 2^50, the largest model)",
                            static_cast<double>(limits::kParams)));
        s.push_back(boolean("deepspeed", "hf_auto", "false",
                            "zero1/2/3: resolve 'auto' values as the Hugging Face Trainer and Accelerate fill a ds_config's "
                            "\"auto\" keys (reduce_bucket_size = hidden^2) instead of DeepSpeed's own defaults"));
        s.push_back(choice("fsdp", "backward_prefetch", {"backward_pre", "backward_post", "none"}, "backward_pre",
                           "FSDP strategies: when backward all-gathers the next unit: before the current unit's gradient "
                           "(FSDP's default), after its reshard, or when the unit comes, behind its reduce-scatter (what "
                           "Accelerate and the HF Trainer pass unless set)"));
        s.push_back(boolean("fsdp", "forward_prefetch", "false",
                            "FSDP strategies: all-gather the next unit before the current one computes (false: the CPU "
                            "issues it when it reaches the next unit)"));
        s.push_back(boolean("fsdp", "limit_all_gathers", "true",
                            "FSDP strategies: the rate limiter: a new all-gather waits until at most one freed unit is "
                            "pending (2 in flight)"));
        s.push_back(boolean("fsdp", "no_sync", "false",
                            "FSDP strategies: accumulate inside no_sync() (as Accelerate and the current HF Trainer do): "
                            "every unit's unsharded gradients are kept across micro-batches and reduced on the last"));
        s.push_back(choice("precision", "params", kDTypes, "bf16", "dtype of parameters in compute"));
        KeySpec grads = choice("precision", "grads", kDTypes, kSameAsParams, "dtype of gradients");
        s.push_back(grads);
        KeySpec reduce = choice("precision", "reduce", kDTypes, kSameAsGrads, "dtype gradients are reduced in");
        s.push_back(reduce);
        s.push_back(boolean("precision", "master_weights", "true",
                            "keep fp32 master weights (and fp32 optimizer states) when params are 16-bit"));

        s.push_back(choice("optimizer", "name", {"adamw", "sgd"}, "adamw", "AdamW (2 moments) or SGD with momentum (1)"));
        s.push_back(number("optimizer", "lr", "", "1e-4", 0, true, "learning rate"));
        s.push_back(number("optimizer", "weight_decay", "", "0", 0, false, "decoupled weight decay"));
        s.push_back(number("optimizer", "beta1", "", "0.9", 0, false, "AdamW first-moment decay", 0.999999));
        s.push_back(number("optimizer", "beta2", "", "0.999", 0, false, "AdamW second-moment decay", 0.999999));
        s.push_back(number("optimizer", "eps", "", "1e-8", 0, true, "AdamW epsilon"));
        s.push_back(number("optimizer", "momentum", "", "0.9", 0, false, "SGD momentum", 0.999999));

        s.push_back(integer("batch", "micro_batch", "sequences", "1", 1,
                            "sequences per rank per micro-batch (at most 65,536; real jobs use 1-1,024)", limits::kMicroBatch));
        s.push_back(integer("batch", "grad_accum", "micro-batches", "1", 1,
                            "micro-batches per optimizer step (at most 2^20; also at most 524,288 units x micro-batches "
                            "per step, which the simulator holds in memory)", limits::kGradAccum));
        s.push_back(integer("batch", "seq_len", "tokens", "", 1,
                            "context length (encoder length for encoder-decoder; at most 2^20, ~1M tokens)", limits::kSeqLen));
        s.push_back(integer("batch", "decoder_seq_len", "tokens", "0", 0,
                            "encoder-decoder only: decoder length (0: same as seq_len; at most 2^20)", limits::kSeqLen));

        s.push_back(choice("memory", "activation_checkpointing", {"none", "full", "selective", "false", "true"}, "none",
                           "none; full: a checkpointed block keeps only its input and recomputes the rest in backward "
                           "(torch.utils.checkpoint, Hugging Face's gradient_checkpointing); selective: torchtitan's "
                           "op-level policy, the block also keeps the outputs of its 1st, 3rd, 5th ... projection in "
                           "forward order and of a fused (sdpa / flash) attention kernel, and recomputes only the rest. "
                           "false / true: none / full"));
        s.push_back(integer("memory", "checkpoint_every", "blocks", "1", 1,
                            "with activation_checkpointing: checkpoint every n-th block (blocks n, 2n, ... counting from 1, "
                            "as torchtitan's per-layer option); the others keep all they save. 1: every block",
                            static_cast<double>(limits::kLayers)));
        s.push_back(boolean("memory", "offload_optimizer", "false", "optimizer states and step on the host (ZeRO-Offload)"));
        s.push_back(boolean("memory", "offload_params", "false", "sharded parameters live on the host (ZeRO-3 only)"));
        s.push_back(choice("memory", "attention", attention_names(), "auto",
                           "attention implementation, as Hugging Face's attn_implementation: eager keeps the softmax "
                           "probabilities (fp32 where the family computes them in fp32) and dropout masks; sdpa "
                           "(torch scaled_dot_product_attention) and flash (flash_attention_2) keep only q, k, v, the "
                           "output and an fp32 log-sum-exp. auto = what transformers picks when none is asked for: "
                           "sdpa for llama and gpt2, eager for t5, bloom and codet5p (they have no SDPA path; asking "
                           "them for sdpa or flash is refused, as transformers refuses it)"));
        s.push_back(choice("memory", "loss", {"eager", "fused"}, "eager",
                           "eager: Hugging Face's loss (logits.float(), the fp32 log-softmax kept for backward); fused: "
                           "a fused cross-entropy kernel (Liger style) that reads the model-dtype logits and writes their "
                           "gradient in place in forward: no fp32 logits, no log-softmax"));

        s.push_back(number("dropout", "attention", "probability", "model", 0, false,
                           "dropout on the attention probabilities (the model file's attention_dropout unless given; "
                           "0 turns it off)", 0.99));
        s.push_back(number("dropout", "hidden", "probability", "model", 0, false,
                           "dropout on hidden states: residual branches, embeddings, T5's FFN and stack ends (the "
                           "model file's hidden_dropout unless given)", 0.99));

        s.push_back(integer("lora", "rank", "", "0", 0, "LoRA rank (0: LoRA off, full fine-tuning; at most 65,536)",
                            limits::kLoraRank));
        s.push_back(number("lora", "alpha", "", "16", 0, true, "LoRA scaling numerator (scale = alpha / rank)"));
        KeySpec targets;
        targets.section = "lora";
        targets.key = "targets";
        targets.type = ValueType::list;
        targets.help = "module names to adapt, as PEFT spells them (e.g. q,v or q_proj,v_proj)";
        s.push_back(targets);
        return s;
    }();
    return schema;
}

std::string JobConfig::where(const std::string& key) const {
    const std::string& w = values.where(key);
    return (w == "default" ? source.path : w) + ": " + key;
}

std::string effective_text(const Schema& schema, const Values& values) {
    std::string out;
    std::string section;
    for (const auto& k : schema) {
        if (!k.retired.empty()) continue;
        if (k.section != section) {
            if (!out.empty()) out += "\n";
            section = k.section;
            out += "[" + section + "]\n";
        }
        out += k.key + " = " + values.raw(k.name()) + "\n";
    }
    return out;
}

std::string JobConfig::effective_ini() const { return effective_text(job_schema(), values); }

namespace {

// The job's fields from its resolved values (each key's text as the schema checked it).
void read_values(JobConfig& job, const std::string& path) {
    const Values& v = job.values;
    job.name = v.text("job.name");
    job.reported_host_gb = v.number("job.reported_host_gb");
    if (job.name.empty()) {
        job.name = std::filesystem::path(path).stem().string();
        job.values.set("job.name", {job.name, "default", false});
    }
    job.model = v.text("job.model");
    job.topology = v.text("job.topology");
    job.steps = v.integer("job.steps");
    job.seed = static_cast<std::uint64_t>(v.integer("job.seed"));
    job.strategy = *parse_strategy(v.text("parallel.strategy"));
    job.bucket_mib = v.is_auto("parallel.bucket_mib") ? 0 : v.number("parallel.bucket_mib");
    job.first_bucket_mib = v.is_auto("parallel.first_bucket_mib") ? 0 : v.number("parallel.first_bucket_mib");
    job.gradient_as_bucket_view = v.boolean("ddp.gradient_as_bucket_view");
    job.world_size = v.integer("parallel.world_size");
    job.shard_size = v.integer("parallel.shard_size");
    job.secondary_shard = v.integer("parallel.secondary_shard");
    const std::string bp = v.text("fsdp.backward_prefetch");
    job.fsdp.backward_prefetch = bp == "backward_post" ? BackwardPrefetch::backward_post
                                 : bp == "none"        ? BackwardPrefetch::none
                                                       : BackwardPrefetch::backward_pre;
    job.fsdp.forward_prefetch = v.boolean("fsdp.forward_prefetch");
    job.overlap_comm = v.text("deepspeed.overlap_comm") == "auto" ? -1 : v.text("deepspeed.overlap_comm") == "true" ? 1 : 0;
    job.hf_auto = v.boolean("deepspeed.hf_auto");
    job.stage3_prefetch_bucket_size = v.is_auto("deepspeed.stage3_prefetch_bucket_size") ? -1 : v.integer("deepspeed.stage3_prefetch_bucket_size");
    job.stage3_max_live_parameters = v.integer("deepspeed.stage3_max_live_parameters");
    job.stage3_max_reuse_distance = v.integer("deepspeed.stage3_max_reuse_distance");
    job.pin_memory = v.boolean("deepspeed.pin_memory");
    job.stage3_param_persistence_threshold =
        v.is_auto("deepspeed.stage3_param_persistence_threshold") ? -1 : v.integer("deepspeed.stage3_param_persistence_threshold");
    job.sub_group_size = v.integer("deepspeed.sub_group_size");
    job.fsdp.limit_all_gathers = v.boolean("fsdp.limit_all_gathers");
    job.fsdp.no_sync = v.boolean("fsdp.no_sync");
    job.params = *parse_dtype(v.text("precision.params"));
    job.grads = v.is_explicit("precision.grads") ? *parse_dtype(v.text("precision.grads")) : job.params;
    job.reduce = v.is_explicit("precision.reduce") ? *parse_dtype(v.text("precision.reduce")) : job.grads;
    job.values.set("precision.grads", {std::string(dtype_name(job.grads)), v.where("precision.grads"),
                                       v.is_explicit("precision.grads")});
    job.values.set("precision.reduce", {std::string(dtype_name(job.reduce)), v.where("precision.reduce"),
                                        v.is_explicit("precision.reduce")});
    job.master_weights = v.boolean("precision.master_weights");
    job.optimizer = v.text("optimizer.name") == "sgd" ? OptimizerKind::sgd : OptimizerKind::adamw;
    job.lr = v.number("optimizer.lr");
    job.weight_decay = v.number("optimizer.weight_decay");
    job.beta1 = v.number("optimizer.beta1");
    job.beta2 = v.number("optimizer.beta2");
    job.eps = v.number("optimizer.eps");
    job.momentum = v.number("optimizer.momentum");
    job.micro_batch = v.integer("batch.micro_batch");
    job.grad_accum = v.integer("batch.grad_accum");
    job.seq_len = v.integer("batch.seq_len");
    job.decoder_seq_len = v.integer("batch.decoder_seq_len");
    job.activation_checkpointing = parse_checkpointing(v.text("memory.activation_checkpointing"));
    job.checkpoint_every = v.integer("memory.checkpoint_every");
    job.offload_optimizer = v.boolean("memory.offload_optimizer");
    job.offload_params = v.boolean("memory.offload_params");
    job.attention = parse_attention(v.text("memory.attention"));
    job.loss = v.text("memory.loss") == "fused" ? LossKind::fused : LossKind::eager;
    if (v.is_explicit("dropout.attention")) job.attention_dropout = v.number("dropout.attention");
    if (v.is_explicit("dropout.hidden")) job.hidden_dropout = v.number("dropout.hidden");
    job.lora_rank = v.integer("lora.rank");
    job.lora_alpha = v.number("lora.alpha");
    job.lora_targets = v.list("lora.targets");
}

// Checks that involve several keys of this file alone (those that need the model or the topology
// are made when the plan is built).
void check_keys(const JobConfig& job, Problems& problems) {
    const Values& v = job.values;
    if (job.lora_rank > 0 && job.lora_targets.empty())
        problems.add(job.where("lora.targets") + ": missing: LoRA rank is " + std::to_string(job.lora_rank) +
                     " but no target modules are given (allowed: module names such as q,v)");
    if (job.lora_rank == 0 && !job.lora_targets.empty())
        problems.add(job.where("lora.rank") + ": bad value '0': lora.targets is set but rank 0 turns LoRA off (allowed: integer >= 1)");
    // Engine keys given a value for a strategy of another engine would be silently ignored:
    // refused instead. (A key written with its default, as the effective job lists every key, is
    // no request.)
    auto requested = [&](const std::string& key) {
        for (const auto& spec : job_schema())
            if (spec.name() == key) return v.is_explicit(key) && v.raw(key) != spec.default_value;
        return false;
    };
    auto refuse = [&](const std::string& key, const std::string& why, const std::string& allowed) {
        if (requested(key)) problems.add(job.where(key) + ": bad value '" + v.raw(key) + "': " + why + " (allowed: " + allowed + ")");
    };
    const bool fsdp = strategy_name(job.strategy).rfind("fsdp-", 0) == 0;
    const std::string strategy = strategy_name(job.strategy);
    if (!fsdp)
        for (const char* key : {"fsdp.backward_prefetch", "fsdp.forward_prefetch", "fsdp.limit_all_gathers", "fsdp.no_sync"})
            refuse(key, "strategy " + strategy + " is not FSDP's", "the fsdp-* strategies");
    const bool deepspeed = job.strategy == Strategy::zero1 || job.strategy == Strategy::zero2 || job.strategy == Strategy::zero3;
    if (!deepspeed)
        for (const char* key : {"deepspeed.overlap_comm", "deepspeed.hf_auto", "deepspeed.stage3_prefetch_bucket_size",
                                "deepspeed.stage3_max_live_parameters", "deepspeed.stage3_max_reuse_distance",
                                "deepspeed.pin_memory", "deepspeed.sub_group_size", "deepspeed.stage3_param_persistence_threshold"})
            refuse(key, "strategy " + strategy + " is not DeepSpeed's", "zero1, zero2, zero3");
    if (job.strategy != Strategy::ddp)
        for (const char* key : {"ddp.gradient_as_bucket_view", "parallel.first_bucket_mib"})
            refuse(key, "strategy " + strategy + " is not DDP", "strategy ddp");
    if (fsdp) {
        refuse("parallel.bucket_mib", "FSDP reduces one unit at a time, with no buckets", "auto with strategy " + strategy);
    }
    if (!job.checkpointing())
        refuse("memory.checkpoint_every", "activation checkpointing is off", "1, or memory.activation_checkpointing = full or selective");
    if (job.offload_params && !job.offload_optimizer)
        problems.add(job.where("memory.offload_params") +
                     ": bad value 'true': parameter offload needs memory.offload_optimizer = true (the CPU updates what it holds)");
}

}  // namespace

JobConfig load_job_text(const std::string& path, const std::string& text, const std::string& dir,
                        const std::vector<Override>& overrides) {
    Problems problems;
    JobConfig job;
    job.source = parse_ini_text(path, text, problems);
    job.values = resolve(job_schema(), job.source, overrides, problems);
    job.dir = dir;
    problems.throw_if_any();

    read_values(job, path);
    check_keys(job, problems);
    problems.throw_if_any();
    return job;
}

JobConfig load_job(const std::string& path, const std::vector<Override>& overrides) {
    std::string why;
    const auto text = read_input_file(path, why);
    if (!text)
        throw InputError("--job: bad value '" + path + "': " + why +
                         " (allowed: a path to a job .ini, e.g. jobs/llama-7b-fsdp-6x-a100-40g.ini, or a shipped job name)");
    std::string dir = std::filesystem::path(path).parent_path().string();
    if (dir.empty()) dir = ".";
    return load_job_text(path, *text, dir, overrides);
}

}  // namespace shardsim::config
