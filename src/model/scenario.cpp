#include "shardsim/model/scenario.hpp"

#include <filesystem>

#include "shardsim/config/embedded.hpp"
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

Scenario load_scenario(const std::string& job_ref, const std::vector<std::string>& sets) {
    const Overrides ov = split_overrides(sets);
    Scenario s;
    namespace fs = std::filesystem;
    const bool is_path = job_ref.find('/') != std::string::npos || fs::path(job_ref).extension() == ".ini";
    if (is_path) {
        s.job = config::load_job(job_ref, ov.job);
    } else if (auto text = config::embedded_text("jobs", job_ref)) {
        s.job = config::load_job_text("<jobs/" + job_ref + ".ini>", *text, "", ov.job);
    } else {
        throw InputError("--job: bad value '" + job_ref + "' (allowed: a path to a job .ini, or a shipped job: " +
                         join(config::embedded_names("jobs"), ", ") + ")");
    }
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
    if (s.job.world_size > s.topology.total_gpus() ||
        (s.topology.nodes > 1 && s.job.world_size > 0 && s.job.world_size != s.topology.total_gpus()))
        problems.add(s.job.where("parallel.world_size") + ": bad value '" + std::to_string(s.job.world_size) +
                     "': topology " + s.topology.name + " has " + std::to_string(s.topology.nodes) + " node(s) x " +
                     std::to_string(s.topology.gpus_per_node) + " GPUs = " + std::to_string(s.topology.total_gpus()) +
                     " (allowed: 0 or 1.." + std::to_string(s.topology.nodes > 1 ? 0 : s.topology.total_gpus()) +
                     (s.topology.nodes > 1 ? "; several nodes use all their GPUs: 0 or " +
                                                 std::to_string(s.topology.total_gpus()) : std::string()) + ")");
    if (!s.model.encoder_decoder() && s.job.decoder_seq_len > 0)
        problems.add(s.job.where("batch.decoder_seq_len") + ": bad value '" + std::to_string(s.job.decoder_seq_len) +
                     "': model " + s.model.name + " is decoder-only (allowed: 0)");
    if (s.model.max_positions > 0 && s.model.position == PositionKind::learned &&
        s.decoder_len() > s.model.max_positions)
        problems.add(s.job.where("batch.seq_len") + ": bad value '" + std::to_string(s.job.seq_len) + "': model " +
                     s.model.name + " learns " + std::to_string(s.model.max_positions) +
                     " positions (allowed: 1.." + std::to_string(s.model.max_positions) + ")");
    problems.throw_if_any();
    return s;
}

}  // namespace shardsim::model
