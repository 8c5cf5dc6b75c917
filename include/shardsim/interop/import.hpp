#pragma once
// The configs users already have, read into job keys: DeepSpeed's ds_config.json, accelerate's
// config.yaml (FSDP or DeepSpeed) and the Hugging Face Trainer's command-line flags. Every key of
// those is accounted for, in four lists: mapped to a job key (which one), resolved from "auto"
// (to what, and from where, as the Hugging Face integration resolves it), ignored because it
// changes neither memory nor time (why), or not modelled by shardsim (a warning; an error with
// --strict). Nothing is dropped silently. The tables are in src/interop/*.cpp; docs/configs.md
// lists them.
#include <string>
#include <vector>

#include "shardsim/model/scenario.hpp"

namespace shardsim::interop {

// What the command line asked for: a job, its --set overrides, and the users' configs.
struct Request {
    std::string job;                // --job; empty: the default job, or one built from --model and --topology
    std::vector<std::string> sets;  // --set, applied after everything imported
    std::string deepspeed;          // --deepspeed ds_config.json
    std::string accelerate;         // --accelerate config.yaml
    std::string hf_args;            // --hf-args "--per_device_train_batch_size 4 --bf16 ..."
    std::string model, topology;    // --model, --topology
    bool strict = false;            // --strict: a key shardsim does not model is an error

    bool imports() const { return !deepspeed.empty() || !accelerate.empty() || !hf_args.empty(); }
};

// One line of the account: where the key is ("ds.json:14: zero_optimization.overlap_comm") and
// what became of it.
struct Note {
    std::string key;
    std::string text;
};

struct ImportReport {
    std::vector<Note> mapped;      // "-> deepspeed.overlap_comm = true"
    std::vector<Note> resolved;    // "auto -> 4 (--per_device_train_batch_size)"
    std::vector<Note> ignored;     // "checkpoint saving only: no memory or time in a step"
    std::vector<Note> unmodelled;  // "not modelled: ..."

    bool empty() const { return mapped.empty() && resolved.empty() && ignored.empty() && unmodelled.empty(); }
    // The account as text: one block per list, a line per key.
    std::string text() const;
};

struct Loaded {
    model::Scenario scenario;
    ImportReport report;  // empty when nothing was imported
};

// The scenario a request describes. Without imports this is model::load_scenario(job, sets).
// With them: the base job (--job, or a job of Hugging Face Trainer defaults built from --model,
// --topology and a sequence length from --hf-args or --set), then every imported key, then --set.
// Bad input throws InputError naming the file, line (where the parser gives one), key, bad value
// and what is allowed; unmodelled keys under --strict too.
Loaded load(const Request& request);

// The flags of add_import_options (cli/) as they appear in help texts.
inline constexpr const char* kImportUsage =
    "[--deepspeed DS.json] [--accelerate CONFIG.yaml] [--hf-args \"--flag value ...\"] [--model M --topology T] [--strict]";

}  // namespace shardsim::interop
