#pragma once
// A scenario: one job with its topology and model resolved. Everything downstream (plan,
// simulator, executor) starts from here.
#include <string>
#include <vector>

#include "shardsim/config/job.hpp"
#include "shardsim/config/topology.hpp"
#include "shardsim/model/spec.hpp"
#include "shardsim/model/units.hpp"

namespace shardsim::model {

struct Scenario {
    config::JobConfig job;
    config::TopologyConfig topology;
    ModelSpec model;

    std::int64_t world_size() const;  // the job's world_size, or every GPU of the topology
    std::int64_t encoder_len() const;  // tokens per sequence on the encoder side (0: none)
    std::int64_t decoder_len() const;  // tokens per sequence on the decoder side
    LoraSpec lora() const { return {job.lora_rank, job.lora_targets}; }
};

// `--set` arguments: those starting with "topology." go to the topology file.
struct Overrides {
    std::vector<config::Override> job;
    std::vector<config::Override> topology;
};
Overrides split_overrides(const std::vector<std::string>& sets);

// `job_ref` is a path to a job .ini, or the name of a shipped job ("llama-7b-fsdp-6x-a100-40g").
Scenario load_scenario(const std::string& job_ref, const std::vector<std::string>& sets);
// The same from job text (`path` names it in messages; relative references resolve from `dir`).
Scenario load_scenario_text(const std::string& path, const std::string& text, const std::string& dir,
                            const std::vector<std::string>& sets);

// The same with overrides already parsed (each names its origin: "--set ...", "ds.json:12: ...").
Scenario load_scenario_parsed(const std::string& job_ref, const Overrides& overrides);
Scenario load_scenario_text_parsed(const std::string& path, const std::string& text, const std::string& dir,
                                   const Overrides& overrides);
// The checks that need the job, the topology and the model together (world size against the
// GPUs, sequence lengths against the model, the size of one step); InputError when one fails.
Scenario make_scenario(config::JobConfig job, config::TopologyConfig topology, ModelSpec model);

inline constexpr const char* kDefaultJob = "llama-7b-fsdp-6x-a100-40g";

}  // namespace shardsim::model
