#pragma once
// The other direction: a job written as the files and the launch line that run the same plan in
// the real framework, each value with a comment naming the shardsim key (and where it was set)
// it came from. Reading those files back (interop::load) gives the same plan: the round-trip
// test checks it for every shipped job and every strategy.
#include <optional>
#include <string>
#include <vector>

#include "shardsim/model/scenario.hpp"

namespace shardsim::interop {

enum class Format { deepspeed, accelerate, torchrun };
inline constexpr const char* kFormats = "deepspeed, accelerate, torchrun";
std::optional<Format> parse_format(const std::string& s);

struct ExportFile {
    std::string name;  // "ds_config.json", "accelerate_config.yaml", "fsdp_config.json", "launch.sh"
    std::string text;
};

struct Exported {
    std::vector<ExportFile> files;
    // The Trainer flags of the launch line, with the written files under `dir` (what --hf-args
    // takes to read them back).
    std::string hf_args;
    // Job keys with a non-default value the format cannot say ("precision.master_weights = false:
    // DeepSpeed always keeps fp32 master weights"); also written as comments in launch.sh.
    std::vector<std::string> not_expressible;
};

// `dir`: where the files will be written (the launch line and hf_args name them there). A
// strategy the format cannot run is an InputError (zero* -> deepspeed, accelerate, torchrun;
// fsdp-* and ddp -> accelerate, torchrun).
Exported export_job(const model::Scenario& scenario, Format format, const std::string& dir);

}  // namespace shardsim::interop
