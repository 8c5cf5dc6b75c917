#include "shardsim/model/scenario.hpp"

#include <filesystem>

#include "shardsim/config/embedded.hpp"
#include "shardsim/config/limits.hpp"
#include "shardsim/core/format.hpp"

namespace shardsim::model {

std::int64_t Scenario::world_size() const {
    return job.world_size > 0 ? job.world_size : topology.total_gpus();
}

std::int64_t Scenario::encoder_len() const { return model.encoder_decoder() ? job.seq_len : 0; }

std::int64_t Scenario::decoder_len() const {
    if (!model.encoder_decoder()) return job.seq_len;
    return job.decoder_seq_len > 0 ? job.decoder_seq_len : job.seq_len;
}

Overrides split_overrides(const std::vector<std::string>& sets) {
    Overrides o;
    const std::string prefix = "topology.";
    for (const auto& s : sets) {
        if (s.rfind(prefix, 0) == 0) {
            config::Override ov = config::parse_override(s.substr(prefix.size()));
            ov.origin = "--set " + s;
            o.topology.push_back(ov);
        } else {
            o.job.push_back(config::parse_override(s));
        }
    }
    return o;
}

namespace {
Scenario complete(config::JobConfig job, const Overrides& ov);
}  // namespace

Scenario load_scenario(const std::string& job_ref, const std::vector<std::string>& sets) {
    return load_scenario_parsed(job_ref, split_overrides(sets));
}

Scenario load_scenario_parsed(const std::string& job_ref, const Overrides& ov) {
    namespace fs = std::filesystem;
    const bool is_path = job_ref.find('/') != std::string::npos || fs::path(job_ref).extension() == ".ini";
    if (is_path) return complete(config::load_job(job_ref, ov.job), ov);
    if (auto text = config::embedded_text("jobs", job_ref))
        return complete(config::load_job_text("<jobs/" + job_ref + ".ini>", *text, config::embedded_dir("jobs"), ov.job), ov);
    throw InputError("--job: bad value '" + job_ref + "' (allowed: a path to a job .ini, or a shipped job: " +
                     join(config::embedded_names("jobs"), ", ") + ")");
}

Scenario load_scenario_text(const std::string& path, const std::string& text, const std::string& dir,
                            const std::vector<std::string>& sets) {
    return load_scenario_text_parsed(path, text, dir, split_overrides(sets));
}

Scenario load_scenario_text_parsed(const std::string& path, const std::string& text, const std::string& dir, const Overrides& ov) {
    return complete(config::load_job_text(path, text, dir, ov.job), ov);
}

namespace {

std::string number_text(double v) {
    std::string t = std::to_string(v);
    while (t.size() > 1 && t.back() == '0') t.pop_back();
    if (!t.empty() && t.back() == '.') t.pop_back();
    return t;
}

// memory.attention and [dropout] against the model: `auto` becomes what transformers picks when no
// attn_implementation is given (sdpa where the family has it, else eager); an explicit sdpa or
// flash for a family without that path is refused, as transformers refuses it (its
// _check_and_enable_sdpa / _check_and_enable_flash_attn_2 raise rather than fall back). The
// dropout probabilities come from the model file unless the job gives them. The resolved values
// are written back into the job's values, so the effective configuration shows them.
void resolve_model_behaviour(Scenario& s, Problems& problems) {
    config::JobConfig& job = s.job;
    const std::string family = arch_name(s.model.arch);
    const std::string where = job.values.where("memory.attention");
    if (job.attention == config::AttentionKind::automatic) {
        job.attention = s.model.sdpa ? config::AttentionKind::sdpa : config::AttentionKind::eager;
        job.values.set("memory.attention", {config::attention_name(job.attention), where, job.values.is_explicit("memory.attention")});
    } else if (job.attention != config::AttentionKind::eager && !s.model.sdpa) {
        const bool sdpa = job.attention == config::AttentionKind::sdpa;
        problems.add(job.where("memory.attention") + ": bad value '" + config::attention_name(job.attention) + "': Hugging Face's " +
                     family + " (" + s.model.name + ") has no " +
                     (sdpa ? "SDPA path (attn_implementation=\"sdpa\")" : "FlashAttention-2 path (attn_implementation=\"flash_attention_2\")") +
                     " and transformers refuses it (allowed: auto, eager)");
    }
    if (job.attention_dropout < 0) {
        job.attention_dropout = s.model.attention_dropout;
        job.values.set("dropout.attention", {number_text(job.attention_dropout), "default", false});
    }
    if (job.hidden_dropout < 0) {
        job.hidden_dropout = s.model.hidden_dropout;
        job.values.set("dropout.hidden", {number_text(job.hidden_dropout), "default", false});
    }
    if (s.model.arch == Arch::llama && job.hidden_dropout != 0)
        problems.add(job.where("dropout.hidden") + ": bad value '" + job.values.raw("dropout.hidden") +
                     "': Hugging Face's Llama applies dropout to attention probabilities only (allowed: 0)");
    s.model.attention_dropout = job.attention_dropout;
    s.model.hidden_dropout = job.hidden_dropout;
}

Scenario complete(config::JobConfig job, const Overrides& ov) {
    Scenario s;
    s.job = std::move(job);
    // The model and the topology are resolved together so that both their problems are reported.
    Problems problems;
    try {
        s.topology = config::load_topology(s.job.topology, s.job.dir, s.job.where("job.topology"), ov.topology);
    } catch (const InputError& e) {
        for (const auto& p : e.problems()) problems.add(p);
    }
    try {
        s.model = load_model(s.job.model, s.job.dir, s.job.where("job.model"));
    } catch (const InputError& e) {
        for (const auto& p : e.problems()) problems.add(p);
    }
    problems.throw_if_any();
    return make_scenario(std::move(s.job), std::move(s.topology), std::move(s.model));
}
}  // namespace

Scenario make_scenario(config::JobConfig job, config::TopologyConfig topology, ModelSpec model) {
    Scenario s;
    s.job = std::move(job);
    s.topology = std::move(topology);
    s.model = std::move(model);
    Problems problems;
    const std::int64_t total = s.topology.total_gpus();
    const bool multi_node = s.topology.nodes > 1;
    if (s.job.world_size > total || (multi_node && s.job.world_size > 0 && s.job.world_size != total))
        problems.add(s.job.where("parallel.world_size") + ": bad value '" + std::to_string(s.job.world_size) +
                     "': topology " + s.topology.name + " has " + std::to_string(s.topology.nodes) + " node(s) x " +
                     std::to_string(s.topology.gpus_per_node) + " GPUs = " + std::to_string(total) + " (allowed: " +
                     (multi_node ? "0 or " + std::to_string(total) + ", as several nodes use all their GPUs"
                                 : "0 to " + std::to_string(total)) + ")");
    if (!s.model.encoder_decoder() && s.job.decoder_seq_len > 0)
        problems.add(s.job.where("batch.decoder_seq_len") + ": bad value '" + std::to_string(s.job.decoder_seq_len) +
                     "': model " + s.model.name + " is decoder-only (allowed: 0)");
    if (s.model.max_positions > 0 && s.model.position == PositionKind::learned &&
        s.decoder_len() > s.model.max_positions)
        problems.add(s.job.where("batch.seq_len") + ": bad value '" + std::to_string(s.job.seq_len) + "': model " +
                     s.model.name + " learns " + std::to_string(s.model.max_positions) +
                     " positions (allowed: 1.." + std::to_string(s.model.max_positions) + ")");
    // Every micro-batch passes through every unit, and the schedule holds all those ops.
    const std::int64_t units = s.model.encoder.layers + s.model.decoder.layers + 2;  // + embedding and head
    if (s.job.grad_accum > config::limits::kUnitPasses / units)
        problems.add(s.job.where("batch.grad_accum") + ": bad value '" + std::to_string(s.job.grad_accum) + "': model " +
                     s.model.name + " has " + std::to_string(units) + " units (blocks, embedding, head), so one step is " +
                     std::to_string(units * s.job.grad_accum) + " unit passes per rank (allowed: at most " +
                     std::to_string(config::limits::kUnitPasses) + " unit passes, here grad_accum <= " +
                     std::to_string(config::limits::kUnitPasses / units) + ")");
    resolve_model_behaviour(s, problems);
    problems.throw_if_any();
    return s;
}

}  // namespace shardsim::model
