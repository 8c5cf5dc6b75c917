// The plan search's space ([Note: plan search]): the request checked, node types, and every
// dimension's values, with --fix and --allow applied.
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>

#include "shardsim/config/embedded.hpp"
#include "shardsim/core/error.hpp"
#include "shardsim/core/format.hpp"
#include "shardsim/study/space.hpp"

namespace shardsim::study {

const std::vector<GpuEntry>& gpu_catalogue() {
    // One node of each GPU as the shipped topologies describe it (datasheets and prices cited there).
    static const std::vector<GpuEntry> table = {
        {"a100-40g", "8x-a100-40g"},   {"a100-80g", "8x-a100-80g-nvlink"}, {"h100-80g", "8x-h100-80g-nvlink"},
        {"rtx4090", "2x-rtx4090-24g"}, {"a10g", "4x-a10g-24g"},            {"v100-16g", "8x-v100-16g"},
        {"titan-rtx", "2x-titan-rtx-24g"},
    };
    return table;
}

namespace {

// "2e9", "2B", "500M", "1.5T", "20K": a positive count of tokens.
std::optional<double> parse_token_count(const std::string& s) {
    if (s.empty()) return std::nullopt;
    double mult = 1;
    std::string num = s;
    const char last = s.back();
    if (last == 'K' || last == 'M' || last == 'B' || last == 'T') {
        mult = last == 'K' ? 1e3 : last == 'M' ? 1e6 : last == 'B' ? 1e9 : 1e12;
        num = s.substr(0, s.size() - 1);
    }
    try {
        std::size_t used = 0;
        const double v = std::stod(num, &used);
        if (used != num.size() || !(v > 0) || !std::isfinite(v)) return std::nullopt;
        return v * mult;
    } catch (const std::exception&) {
        return std::nullopt;
    }
}

}  // namespace

Objective parse_objective(const std::string& text) {
    const std::string allowed = " (allowed: tokens-per-s, cost-per-token, fewest-gpus, time-to-tokens=N with N a token count "
                                "such as 2e9 or 2B)";
    Objective o;
    o.text = text;
    if (text == "tokens-per-s") o.kind = ObjectiveKind::tokens_per_s;
    else if (text == "cost-per-token") o.kind = ObjectiveKind::cost_per_token;
    else if (text == "fewest-gpus") o.kind = ObjectiveKind::fewest_gpus;
    else if (text.rfind("time-to-tokens=", 0) == 0) {
        const auto n = parse_token_count(text.substr(15));
        if (!n) throw InputError("--objective: bad value '" + text + "'" + allowed);
        o.kind = ObjectiveKind::time_to_tokens;
        o.tokens = *n;
    } else {
        throw InputError("--objective: bad value '" + text + "'" + allowed);
    }
    return o;
}

const std::vector<std::string>& allow_names() {
    // The first four are searched by default (they train the same model the same way); the others
    // change what is trained, its numerics or the kernels it needs, and are searched when allowed.
    static const std::vector<std::string> names = {"checkpointing", "offload", "hybrid", "hpz",
                                                   "lora", "fused-loss", "fp16", "fp32", "pure-bf16", "all"};
    return names;
}

namespace {

bool allowed(const PlanRequest& r, const std::string& what) {
    if (r.allow.count("all")) return true;
    static const std::set<std::string> defaults = {"checkpointing", "offload", "hybrid", "hpz"};
    return defaults.count(what) || r.allow.count(what);
}

// --fix arguments split into job and topology keys; a key fixed twice to different values is bad input.
std::map<std::string, std::string> parse_fixes(const std::vector<std::string>& fixes) {
    std::map<std::string, std::string> out;
    for (const auto& f : fixes) {
        const auto eq = f.find('=');
        if (eq == std::string::npos || eq == 0 || f.find('.') > eq)
            throw InputError("--fix: bad value '" + f + "' (allowed: section.key=value for a job key, or topology.section.key=value)");
        const std::string key = trim(f.substr(0, eq)), value = trim(f.substr(eq + 1));
        if (auto it = out.find(key); it != out.end() && it->second != value)
            throw InputError("--fix: contradictory values for " + key + ": '" + it->second + "' and '" + value +
                             "' (allowed: one value per key)");
        out[key] = value;
    }
    return out;
}

// An error about a --set that the search made from a --fix, said as the --fix.
InputError as_fix_error(const InputError& e) {
    std::vector<std::string> lines;
    for (std::string p : e.problems()) {
        for (auto at = p.find("--set "); at != std::string::npos; at = p.find("--set ", at)) p.replace(at, 6, "--fix ");
        lines.push_back(p);
    }
    return InputError(lines);
}

std::string lora_targets_for(model::Arch arch) {
    switch (arch) {
        case model::Arch::gpt2: return "c_attn";
        case model::Arch::llama: return "q_proj,v_proj";
        case model::Arch::bloom: return "query_key_value";
        case model::Arch::t5: return "q,v";
        case model::Arch::codet5p: return "qkv_proj";
    }
    return "";
}

// The base job: the --job file, or a job made of --model with the usual mixed precision.
void base_job(const PlanRequest& r, Space& s) {
    if (!r.job.empty()) {
        if (!r.model.empty()) throw InputError("--model: not with --job (allowed: one of them; the job names its model)");
        namespace fs = std::filesystem;
        const bool is_path = r.job.find('/') != std::string::npos || fs::path(r.job).extension() == ".ini";
        if (!is_path && config::embedded_text("jobs", r.job)) {
            s.base_text = *config::embedded_text("jobs", r.job);
            s.base_path = "<jobs/" + r.job + ".ini>";
            s.base_dir = config::embedded_dir("jobs");
        } else if (auto f = config::resolve_file("jobs", r.job, "")) {
            s.base_text = f->text;
            s.base_path = f->path;
            s.base_dir = f->dir;
        } else {
            throw InputError("--job: bad value '" + r.job + "' (allowed: a path to a job .ini, or a shipped job: " +
                             join(config::embedded_names("jobs"), ", ") + ")");
        }
        return;
    }
    if (r.model.empty()) throw InputError("--model: missing (allowed: a model of `shardsim models`, a model .ini, or --job JOB)");
    namespace fs = std::filesystem;
    model::load_model(r.model, fs::current_path().string(), "--model");  // names --model when it is neither
    std::string model = r.model;
    if (model.find('/') != std::string::npos || fs::path(model).extension() == ".ini") model = fs::absolute(model).string();
    s.base_text = "# made by shardsim plan\n[job]\nname = plan\nmodel = " + model +
                  "\ntopology = 8x-a100-80g-nvlink\n\n[parallel]\nstrategy = ddp\n\n[precision]\nparams = bf16\n"
                  "grads = bf16\nreduce = bf16\nmaster_weights = true\n\n[optimizer]\nname = adamw\n\n[batch]\nseq_len = 1\n";
    s.base_path = "<plan --model " + r.model + ">";
    s.base_dir = fs::current_path().string();
}

}  // namespace

namespace {

// The sequences per optimizer step: --global-batch, --tokens-per-step over the tokens of one
// sequence, or the base job's micro-batch x accumulation x ranks.
std::int64_t global_batch_of(const PlanRequest& r, const model::Scenario& base) {
    if (r.global_batch > 0 && r.tokens_per_step > 0)
        throw InputError("--tokens-per-step: not with --global-batch (allowed: one of them)");
    if (r.global_batch > 0) return r.global_batch;
    if (r.tokens_per_step > 0) {
        const std::int64_t per_seq = base.encoder_len() + base.decoder_len();
        if (r.tokens_per_step % per_seq != 0)
            throw InputError("--tokens-per-step: bad value '" + std::to_string(r.tokens_per_step) + "': not a whole number of " +
                             std::to_string(per_seq) + "-token sequences (allowed: a multiple of " + std::to_string(per_seq) + ")");
        return r.tokens_per_step / per_seq;
    }
    if (!r.job.empty()) return base.job.micro_batch * base.job.grad_accum * base.world_size();
    throw InputError("--global-batch: missing (allowed: integer >= 1, sequences per optimizer step; or --tokens-per-step N)");
}

std::vector<std::pair<std::string, std::string>> requested_node_types(const PlanRequest& r, const model::Scenario& base) {
    std::vector<std::pair<std::string, std::string>> out;  // (name, topology ref)
    if (!r.gpus.empty() && !r.topologies.empty()) throw InputError("--topology: not with --gpus (allowed: one of them)");
    for (const auto& g : r.gpus) {
        const auto& cat = gpu_catalogue();
        auto it = std::find_if(cat.begin(), cat.end(), [&](const GpuEntry& e) { return e.name == g; });
        if (it == cat.end()) {
            std::vector<std::string> names;
            for (const auto& e : cat) names.push_back(e.name);
            throw InputError("--gpus: bad value '" + g + "' (allowed: " + join(names, ", ") + "; or --topology T for another node)");
        }
        out.push_back({it->name, it->topology});
    }
    namespace fs = std::filesystem;
    for (const auto& t : r.topologies) {
        // A path is made absolute: the setups' jobs refer to it from the base job's folder.
        const bool path = !config::embedded_text("topologies", t) && fs::exists(t);
        out.push_back({t, path ? fs::absolute(t).string() : t});
    }
    if (out.empty() && !r.job.empty()) out.push_back({base.job.topology, base.job.topology});
    if (out.empty())
        for (const auto& e : gpu_catalogue()) out.push_back({e.name, e.topology});
    return out;
}

// GPU counts of a node type: part of one node, or whole nodes when the topology has a network.
void count_node_type(const PlanRequest& r, const std::map<std::string, std::string>& fixes, NodeType& n, bool network) {
    std::set<std::int64_t> node_counts(r.nodes.begin(), r.nodes.end());
    if (auto it = fixes.find("topology.cluster.nodes"); it != fixes.end()) node_counts = {std::stoll(it->second)};
    std::optional<std::int64_t> world;
    if (auto it = fixes.find("parallel.world_size"); it != fixes.end() && it->second != "0") world = std::stoll(it->second);
    auto wanted = [&](std::int64_t nodes, std::int64_t gpus) {
        return gpus <= r.max_gpus && (node_counts.empty() || node_counts.count(nodes)) && (!world || *world == gpus);
    };
    for (std::int64_t g = 1; g <= n.gpus_per_node; ++g)
        if (wanted(1, g)) n.counts.push_back(g);
    for (std::int64_t k = 2; k * n.gpus_per_node <= std::max<std::int64_t>(r.max_gpus, world.value_or(0)); ++k) {
        if (!network) {
            n.note = "one node at most: topology " + n.topology_ref + " has no network between nodes (give one with --topology)";
            break;
        }
        if (wanted(k, k * n.gpus_per_node)) n.counts.push_back(k * n.gpus_per_node);
    }
}

void node_types(const PlanRequest& r, const std::map<std::string, std::string>& fixes, const model::Scenario& base, Space& s) {
    std::vector<config::Override> topo_fixes;
    for (const auto& [k, v] : fixes)
        if (k.rfind("topology.", 0) == 0 && k != "topology.cluster.nodes") {
            config::Override o = config::parse_override(k.substr(9) + "=" + v);
            o.origin = "--fix " + k + "=" + v;
            topo_fixes.push_back(o);
        }
    for (const auto& [name, ref] : requested_node_types(r, base)) {
        // The job's own topology resolves from the job's folder; the others are shipped names or absolute.
        const std::string dir = r.topologies.empty() && r.gpus.empty() && !r.job.empty() ? base.job.dir : std::string();
        config::TopologyConfig t;
        try {
            t = config::load_topology(ref, dir, r.topologies.empty() ? (r.gpus.empty() ? base.job.where("job.topology") : "--gpus")
                                                                     : "--topology", topo_fixes);
        } catch (const InputError& e) {
            throw as_fix_error(e);
        }
        NodeType n;
        n.name = name;
        n.topology_ref = ref;
        n.topology_dir = dir;
        n.gpus_per_node = t.gpus_per_node;
        n.host_memory_gib = static_cast<double>(t.host.memory_bytes) / static_cast<double>(kGiB);
        n.usd_per_gpu_hour = t.gpu.usd_per_gpu_hour;
        count_node_type(r, fixes, n, t.inter.kind != config::LinkKind::none && t.inter.bandwidth_gbps > 0);
        s.node_types.push_back(std::move(n));
    }
}

}  // namespace

namespace {

std::optional<std::string> fixed(const std::map<std::string, std::string>& fixes, const std::string& key) {
    if (auto it = fixes.find(key); it != fixes.end()) return it->second;
    return std::nullopt;
}

// The precision options: the base job's, and those --allow adds; --fix on a precision key applies to each.
void precisions(const PlanRequest& r, const std::map<std::string, std::string>& fixes, const model::Scenario& base, Space& s) {
    const auto& j = base.job;
    s.precisions.push_back({r.job.empty() ? "bf16 mixed" : "as in the job", j.params, j.grads, j.reduce, j.master_weights});
    if (allowed(r, "fp16")) s.precisions.push_back({"fp16 mixed", DType::fp16, DType::fp16, DType::fp16, true});
    if (allowed(r, "pure-bf16")) s.precisions.push_back({"pure bf16", DType::bf16, DType::bf16, DType::bf16, false});
    if (allowed(r, "fp32")) s.precisions.push_back({"fp32", DType::fp32, DType::fp32, DType::fp32, false});
    std::vector<PrecisionOption> out;
    for (PrecisionOption p : s.precisions) {
        // Fixed keys win; grads and reduce follow params unless fixed themselves, as in a job file.
        if (auto v = fixed(fixes, "precision.params")) p.params = p.grads = p.reduce = *parse_dtype(*v);
        if (auto v = fixed(fixes, "precision.grads")) p.grads = p.reduce = *parse_dtype(*v);
        if (auto v = fixed(fixes, "precision.reduce")) p.reduce = *parse_dtype(*v);
        if (auto v = fixed(fixes, "precision.master_weights")) p.master = *v == "true";
        if (std::find(out.begin(), out.end(), p) == out.end()) out.push_back(p);
    }
    s.precisions = out;
}

// Engine knobs per strategy: the engine's defaults (the base job's own values for its own
// engine), and the choices worth a look.
void engine_knobs(const std::map<std::string, std::string>& fixes, const model::Scenario& base, Space& s) {
    const auto& j = base.job;
    const auto base_engine = plan::traits(j.strategy).engine;
    for (config::Strategy st : {config::Strategy::ddp, config::Strategy::zero1, config::Strategy::zero2, config::Strategy::zero3,
                                config::Strategy::fsdp_full_shard, config::Strategy::fsdp_shard_grad_op,
                                config::Strategy::fsdp_no_shard, config::Strategy::fsdp_hybrid_shard}) {
        const auto engine = plan::traits(st).engine;
        EngineKnobs first;
        if (engine == base_engine)
            first = {j.bucket_mib, j.stage3_prefetch_bucket_size, j.fsdp.backward_prefetch, j.fsdp.forward_prefetch};
        std::vector<EngineKnobs> v = {first};
        if (engine == plan::Engine::ddp) v.push_back({100, first.prefetch_bucket, first.backward_prefetch, false});
        if (engine == plan::Engine::deepspeed) v.push_back({50, first.prefetch_bucket, first.backward_prefetch, false});
        if (st == config::Strategy::zero3) {
            // Fetching on demand only: slower, and leaner by the units prefetched.
            const auto n = v.size();
            for (std::size_t i = 0; i < n; ++i)
                v.push_back({v[i].bucket_mib, first.prefetch_bucket == 0 ? -1 : 0, first.backward_prefetch, false});
        }
        if (engine == plan::Engine::fsdp) {
            v.push_back({0, first.prefetch_bucket, first.backward_prefetch, !first.forward_prefetch});
            v.push_back({0, first.prefetch_bucket, config::BackwardPrefetch::backward_post, first.forward_prefetch});
        }
        std::vector<EngineKnobs> out;
        for (EngineKnobs k : v) {
            if (auto b = fixed(fixes, "parallel.bucket_mib")) k.bucket_mib = *b == "auto" ? 0 : std::stod(*b);
            if (auto p = fixed(fixes, "deepspeed.stage3_prefetch_bucket_size")) k.prefetch_bucket = *p == "auto" ? -1 : static_cast<std::int64_t>(std::stod(*p));
            if (auto p = fixed(fixes, "fsdp.backward_prefetch"))
                k.backward_prefetch = *p == "backward_post" ? config::BackwardPrefetch::backward_post
                                      : *p == "none"        ? config::BackwardPrefetch::none
                                                            : config::BackwardPrefetch::backward_pre;
            if (auto p = fixed(fixes, "fsdp.forward_prefetch")) k.forward_prefetch = *p == "true";
            if (std::find(out.begin(), out.end(), k) == out.end()) out.push_back(k);
        }
        s.knob_options.push_back(out);
    }
}

template <class T>
std::vector<T> one_or(const std::optional<std::string>& fix, T (*parse)(const std::string&), std::vector<T> otherwise) {
    if (fix) return {parse(*fix)};
    return otherwise;
}

config::AttentionKind parse_attention(const std::string& v) {
    const auto& names = config::attention_names();
    return static_cast<config::AttentionKind>(std::find(names.begin(), names.end(), v) - names.begin());
}
config::LossKind parse_loss(const std::string& v) { return v == "fused" ? config::LossKind::fused : config::LossKind::eager; }
config::Strategy parse_strategy_value(const std::string& v) { return *config::parse_strategy(v); }

void dimensions(const PlanRequest& r, const std::map<std::string, std::string>& fixes, const model::Scenario& base, Space& s) {
    const auto& j = base.job;
    s.strategies = one_or<config::Strategy>(fixed(fixes, "parallel.strategy"), parse_strategy_value,
                                            {config::Strategy::ddp, config::Strategy::zero1, config::Strategy::zero2,
                                             config::Strategy::zero3, config::Strategy::fsdp_full_shard,
                                             config::Strategy::fsdp_shard_grad_op, config::Strategy::fsdp_no_shard,
                                             config::Strategy::fsdp_hybrid_shard});
    // A fixed engine key leaves the strategies of that engine (others would refuse it).
    auto keep_engine = [&](plan::Engine e) {
        std::erase_if(s.strategies, [&](config::Strategy st) { return plan::traits(st).engine != e; });
    };
    for (const auto& [k, v] : fixes) {
        if (k.rfind("fsdp.", 0) == 0) keep_engine(plan::Engine::fsdp);
        if (k.rfind("deepspeed.", 0) == 0) keep_engine(plan::Engine::deepspeed);
        if (k.rfind("ddp.", 0) == 0 || k == "parallel.first_bucket_mib") keep_engine(plan::Engine::ddp);
        if (k == "parallel.bucket_mib" && v != "auto")
            std::erase_if(s.strategies, [](config::Strategy st) { return plan::traits(st).engine == plan::Engine::fsdp; });
    }
    // Searched: none, full (Hugging Face's) and selective (torchtitan's op-level policy).
    s.checkpointing = one_or<config::Checkpointing>(
        fixed(fixes, "memory.activation_checkpointing"), config::parse_checkpointing,
        allowed(r, "checkpointing") ? std::vector<config::Checkpointing>{config::Checkpointing::none, config::Checkpointing::full,
                                                                         config::Checkpointing::selective}
                                    : std::vector<config::Checkpointing>{j.activation_checkpointing});
    const std::int8_t base_offload = j.offload_params ? (j.offload_optimizer ? 2 : 3) : j.offload_optimizer ? 1 : 0;
    s.offloads = allowed(r, "offload") ? std::vector<std::int8_t>{0, 1, 2} : std::vector<std::int8_t>{base_offload};
    const auto opt = fixed(fixes, "memory.offload_optimizer"), par = fixed(fixes, "memory.offload_params");
    s.fixed_offload = opt || par;
    s.hybrid = allowed(r, "hybrid");
    s.hpz = allowed(r, "hpz");
    if (opt || par) {
        const bool o = opt ? *opt == "true" : false, p = par ? *par == "true" : false;
        s.offloads = {static_cast<std::int8_t>(p ? (o || !opt ? 2 : 3) : o ? 1 : 0)};
        if (!opt && !p) s.offloads = {0, 1};
    }
    std::vector<config::AttentionKind> att = {config::AttentionKind::eager};
    if (s.model.sdpa) att.insert(att.end(), {config::AttentionKind::sdpa, config::AttentionKind::flash});
    s.attentions = one_or<config::AttentionKind>(fixed(fixes, "memory.attention"), parse_attention, att);
    s.losses = one_or<config::LossKind>(fixed(fixes, "memory.loss"), parse_loss,
                                        allowed(r, "fused-loss") ? std::vector<config::LossKind>{config::LossKind::eager, config::LossKind::fused}
                                                                 : std::vector<config::LossKind>{j.loss});
    s.loras = {false};
    if (allowed(r, "lora") && j.lora_rank == 0 && !fixes.count("lora.rank")) s.loras.push_back(true);
    s.lora_targets = lora_targets_for(s.model.arch);
    s.lora_target_list = split(s.lora_targets, ',');
    auto as_int = [&](const char* key) -> std::optional<std::int32_t> {
        if (auto v = fixed(fixes, key)) return static_cast<std::int32_t>(std::stoll(*v));
        return std::nullopt;
    };
    s.fixed_micro_batch = as_int("batch.micro_batch");
    s.fixed_grad_accum = as_int("batch.grad_accum");
    s.fixed_shard_size = as_int("parallel.shard_size");
    s.fixed_secondary = as_int("parallel.secondary_shard");
    precisions(r, fixes, base, s);
    engine_knobs(fixes, base, s);
}

}  // namespace

Space build_space(const PlanRequest& r) {
    Space s;
    s.request = r;
    if (r.top < 1) throw InputError("--top: bad value '" + std::to_string(r.top) + "' (allowed: integer >= 1)");
    if (r.max_gpus < 1) throw InputError("--max-gpus: bad value '" + std::to_string(r.max_gpus) + "' (allowed: integer >= 1)");
    for (const auto& a : r.allow)
        if (std::find(allow_names().begin(), allow_names().end(), a) == allow_names().end())
            throw InputError("--allow: bad value '" + a + "' (allowed: " + join(allow_names(), ", ") + ")");
    base_job(r, s);
    const auto fixes = parse_fixes(r.fixes);
    if (r.seq_len > 0) s.fix_sets.push_back("batch.seq_len=" + std::to_string(r.seq_len));
    else if (r.job.empty()) throw InputError("--seq-len: missing (allowed: integer >= 1, tokens per sequence)");
    if (r.decoder_seq_len > 0) s.fix_sets.push_back("batch.decoder_seq_len=" + std::to_string(r.decoder_seq_len));
    for (const auto& [k, v] : fixes)
        if (k.rfind("topology.", 0) != 0 && k != "parallel.world_size") s.fix_sets.push_back(k + "=" + v);
    model::Scenario base;
    try {
        base = model::load_scenario_text(s.base_path, s.base_text, s.base_dir, s.fix_sets);
    } catch (const InputError& e) {
        throw as_fix_error(e);
    }
    s.model = base.model;
    s.base_job = base.job;
    s.global_batch = global_batch_of(r, base);
    dimensions(r, fixes, base, s);
    node_types(r, fixes, base, s);
    return s;
}

}  // namespace shardsim::study
