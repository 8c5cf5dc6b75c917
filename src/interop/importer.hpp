#pragma once
// Shared by the readers of src/interop/: the state one import builds up, and the helpers that
// keep its account (every key mapped, resolved, ignored or named as not modelled).
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "shardsim/core/error.hpp"
#include "shardsim/interop/import.hpp"

namespace shardsim::interop::detail {

// The Hugging Face Trainer's flags as given in --hf-args: name (without "--") -> value; a bare
// boolean flag ("--bf16") reads "true".
struct TrainerArgs {
    bool given = false;  // --hf-args was given: flags it lacks take TrainingArguments' defaults
    std::map<std::string, std::string> values;
    std::optional<std::string> get(const std::string& name) const {
        auto it = values.find(name);
        return it == values.end() ? std::nullopt : std::optional<std::string>(it->second);
    }
};
TrainerArgs parse_hf_args(const std::string& args, Problems& problems);

// Where a key of a structured file is: "ds.json:14: zero_optimization.overlap_comm".
using Locate = std::function<std::string(const std::string& dotted)>;

struct Context {
    const model::Scenario& base;  // the job "auto" falls back to when --hf-args does not say
    TrainerArgs trainer;
    ImportReport& report;
    Problems& problems;
    std::vector<config::Override> job;       // in the order found; later ones win
    std::vector<config::Override> topology;  // topology keys (accelerate's num_machines)
    // DeepSpeed's reduce_bucket_size in elements: parallel.bucket_mib once the gradient dtype is
    // final (load()).
    std::optional<std::int64_t> reduce_bucket_elements;
    std::string reduce_bucket_where;
    // train_batch_size: checked (or gradient_accumulation_steps derived) once the world is known.
    std::optional<std::int64_t> train_batch_size;
    std::string train_batch_where;
    bool grad_accum_given = false;
    // --accelerator_config's gradient_accumulation_kwargs.sync_each_batch: FSDP reduces every
    // micro-batch instead of accumulating inside no_sync().
    std::optional<bool> sync_each_batch;

    // key: a job key ("deepspeed.overlap_comm") or a topology key ("topology.cluster.nodes").
    void set(const std::string& where, const std::string& key, const std::string& value, const std::string& why = "");
    void resolved(const std::string& where, const std::string& text) { report.resolved.push_back({where, text}); }
    void ignored(const std::string& where, const std::string& why) { report.ignored.push_back({where, why}); }
    void unmodelled(const std::string& where, const std::string& why) { report.unmodelled.push_back({where, why}); }
    void bad(const std::string& where, const std::string& value, const std::string& allowed) {
        problems.add(where + ": bad value '" + value + "' (allowed: " + allowed + ")");
    }
};

// True when this build's job schema has the key (so a newer engine key is used when present).
bool job_has_key(const std::string& name);
// The hidden size the Hugging Face integration takes for its "auto" values.
std::int64_t hidden_size(const model::Scenario& s);
// Integers as the job files write them ("1e9" stays readable).
std::string count_text(std::int64_t v);
// A double written back exactly (shortest text that reads back to the same value).
std::string exact_text(double v);

// JSON values.
std::string show(const nlohmann::json& v);
bool is_auto(const nlohmann::json& v);
std::optional<bool> get_bool(Context& c, const std::string& where, const nlohmann::json& v);
std::optional<std::int64_t> get_count(Context& c, const std::string& where, const nlohmann::json& v, std::int64_t min = 0);
std::optional<double> get_number(Context& c, const std::string& where, const nlohmann::json& v);

// ds_config as parsed JSON; `locate` names each key's place.
void import_deepspeed(Context& c, const nlohmann::json& root, const Locate& locate);
// Its zero_optimization section (deepspeed_zero.cpp).
void import_zero_optimization(Context& c, const nlohmann::json& root, const Locate& locate);
void import_deepspeed_file(Context& c, const std::string& path);
void import_accelerate_file(Context& c, const std::string& path);
void import_hf_args(Context& c);
// FSDP's options as Accelerate's fsdp_config and the Trainer's --fsdp_config spell them (`prefix`:
// "fsdp_" in accelerate's YAML, "" or "fsdp_" in the Trainer's JSON).
void import_fsdp_option(Context& c, const std::string& where, const std::string& name, const std::string& value);

// Reads a whole file; an unreadable one is an InputError naming `what` and the path.
std::string read_file(const std::string& path, const std::string& what);
// The 1-based line of byte `offset` in `text`.
int line_of_offset(const std::string& text, std::size_t offset);

}  // namespace shardsim::interop::detail
