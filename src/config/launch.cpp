#include "shardsim/config/launch.hpp"

#include <cstdlib>

#include "shardsim/core/error.hpp"
#include "shardsim/core/format.hpp"

namespace shardsim::config {

std::optional<std::string> process_env(const std::string& name) {
    const char* v = std::getenv(name.c_str());
    if (!v) return std::nullopt;
    return std::string(v);
}

namespace {

std::optional<std::int64_t> parse_count(const std::string& s) {
    if (s.empty() || s.size() > 9 || s.find_first_not_of("0123456789") != std::string::npos) return std::nullopt;
    return std::stoll(s);
}

std::string value_or(const EnvLookup& env, const std::string& name, const std::string& fallback = "") {
    return env(name).value_or(fallback);
}

}  // namespace

LaunchEnv read_launch_env(const EnvLookup& env) {
    LaunchEnv l;
    Problems problems;
    if (auto id = env("SLURM_JOB_ID")) {
        SlurmJob j;
        j.job_id = *id;
        j.step_id = value_or(env, "SLURM_STEP_ID");
        j.nodelist = value_or(env, "SLURM_JOB_NODELIST", value_or(env, "SLURM_NODELIST"));
        j.partition = value_or(env, "SLURM_JOB_PARTITION");
        j.cluster = value_or(env, "SLURM_CLUSTER_NAME");
        const std::string nodes_var = env("SLURM_JOB_NUM_NODES") ? "SLURM_JOB_NUM_NODES" : "SLURM_NNODES";
        if (auto n = env(nodes_var)) {
            if (auto v = parse_count(*n)) j.nodes = *v;
            else problems.add(nodes_var + ": bad value '" + *n + "' (allowed: integer >= 1)");
        }
        l.slurm = j;
    }
    for (const char* var : kLocalRankVariables) {
        auto v = env(var);
        if (!v) continue;
        if (auto r = parse_count(*v)) {
            l.local_rank = static_cast<int>(*r);
            l.local_rank_source = var;
        } else {
            problems.add(std::string(var) + ": bad value '" + *v + "' (allowed: integer >= 0)");
        }
        break;
    }
    l.cuda_visible = env("CUDA_VISIBLE_DEVICES");
    problems.throw_if_any();
    return l;
}

std::map<std::string, std::string> LaunchEnv::attributes() const {
    if (!slurm) return {};
    // Named after the variables they come from, lower-cased; unset ones are left out.
    std::map<std::string, std::string> a;
    auto put = [&](const char* key, const std::string& value) {
        if (!value.empty()) a[key] = value;
    };
    put("slurm_job_id", slurm->job_id);
    put("slurm_step_id", slurm->step_id);
    put("slurm_job_num_nodes", slurm->nodes > 0 ? std::to_string(slurm->nodes) : "");
    put("slurm_job_nodelist", slurm->nodelist);
    put("slurm_job_partition", slurm->partition);
    put("slurm_cluster_name", slurm->cluster);
    return a;
}

GpuBinding bind_gpu(int local_rank, const std::string& local_rank_source, int visible_gpus,
                    const std::optional<std::string>& cuda_visible) {
    const std::vector<std::string> entries = cuda_visible ? split(*cuda_visible, ',') : std::vector<std::string>{};
    const std::string visible_text =
        std::to_string(visible_gpus) + " visible (CUDA_VISIBLE_DEVICES" +
        (cuda_visible ? "=" + *cuda_visible : std::string(" unset")) + ")";
    const std::string who = "local rank " + std::to_string(local_rank) + " (" + local_rank_source + ")";
    if (visible_gpus < 1) throw Error(who + " has no GPU: " + visible_text);
    GpuBinding b;
    if (visible_gpus == 1) {
        b.device = 0;  // the launcher gave this task its own GPU (--gpus-per-task=1, --gpu-bind)
    } else if (local_rank >= 0 && local_rank < visible_gpus) {
        b.device = local_rank;
    } else {
        throw Error(who + " has no GPU: " + visible_text +
                    "; start one rank per GPU (--ntasks-per-node equal to --gpus-per-node)");
    }
    const auto index = static_cast<std::size_t>(b.device);
    b.visible_as = index < entries.size() ? trim(entries[index]) : std::to_string(b.device);
    b.description = who + " -> GPU " + std::to_string(b.device) + " of " + visible_text;
    return b;
}

}  // namespace shardsim::config
