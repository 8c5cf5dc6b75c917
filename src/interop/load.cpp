// From a request (a job, --set, the users' configs) to a scenario: the base job, then every
// imported key, then --set.
#include <filesystem>

#include "importer.hpp"
#include "shardsim/config/embedded.hpp"
#include "shardsim/core/format.hpp"

namespace shardsim::interop {

namespace {

using detail::Context;

// A job of the Hugging Face Trainer's defaults (TrainingArguments: per_device_train_batch_size
// 8, fp32, learning_rate 5e-5), for --model and --topology without --job.
std::string generated_job(const Request& r, const detail::TrainerArgs& t) {
    std::string text = "# built from --model and --topology: the Hugging Face Trainer's defaults\n[job]\nmodel = " + r.model +
                       "\ntopology = " + r.topology + "\n[parallel]\nstrategy = ddp\n[precision]\nparams = fp32\n"
                       "[optimizer]\nlr = 5e-5\n[batch]\nmicro_batch = 8\n";
    for (const char* flag : {"max_seq_length", "block_size", "model_max_length", "max_length", "max_source_length", "max_seq_len"})
        if (auto v = t.get(flag)) return text + "seq_len = " + *v + "\n";
    return text;
}

bool sets_key(const std::vector<std::string>& sets, const std::string& key) {
    for (const auto& s : sets)
        if (s.rfind(key + "=", 0) == 0) return true;
    return false;
}

struct Base {
    std::string job, path, text;  // job: a reference for load_scenario; else path + text
    model::Overrides overrides;   // --model / --topology
};

model::Scenario load_base(const Base& b, const model::Overrides& ov) {
    if (!b.job.empty()) return model::load_scenario_parsed(b.job, ov);
    return model::load_scenario_text_parsed(b.path, b.text, ".", ov);
}

model::Overrides concat(const model::Overrides& a, const model::Overrides& b) {
    model::Overrides o = a;
    o.job.insert(o.job.end(), b.job.begin(), b.job.end());
    o.topology.insert(o.topology.end(), b.topology.begin(), b.topology.end());
    return o;
}

// train_batch_size = micro-batch x accumulation x world, as DeepSpeed checks it; when the config
// gives no accumulation it is derived.
void batch_check(Context& c, const model::Scenario& s, model::Overrides& derived) {
    if (!c.train_batch_size) return;
    const std::int64_t tbs = *c.train_batch_size, world = s.world_size(), micro = s.job.micro_batch;
    const std::string w = c.train_batch_where;
    if (!c.grad_accum_given) {
        if (tbs % (micro * world) != 0) {
            c.problems.add(w + ": bad value '" + std::to_string(tbs) + "': not a multiple of micro-batch " + std::to_string(micro) +
                           " x world " + std::to_string(world) + " (allowed: a multiple of " + std::to_string(micro * world) + ", or \"auto\")");
            return;
        }
        const std::string ga = std::to_string(tbs / (micro * world));
        derived.job.push_back({"batch", "grad_accum", ga, w});
        c.resolved(w, std::to_string(tbs) + " / (micro-batch " + std::to_string(micro) + " x world " + std::to_string(world) +
                          ") -> batch.grad_accum = " + ga + " (as DeepSpeed derives it)");
        return;
    }
    const std::int64_t ga = s.job.grad_accum;
    if (tbs == micro * ga * world)
        c.report.mapped.push_back({w, "checked: micro-batch " + std::to_string(micro) + " x accumulation " + std::to_string(ga) +
                                          " x world " + std::to_string(world) + " = " + std::to_string(tbs)});
    else
        c.problems.add(w + ": bad value '" + std::to_string(tbs) + "': DeepSpeed requires micro-batch " + std::to_string(micro) +
                       " x accumulation " + std::to_string(ga) + " x world " + std::to_string(world) + " = " +
                       std::to_string(micro * ga * world) + " (allowed: " + std::to_string(micro * ga * world) + " or \"auto\")");
}

}  // namespace

Loaded load(const Request& r) {
    if (!r.imports() && r.model.empty() && r.topology.empty())
        return {model::load_scenario(r.job.empty() ? model::kDefaultJob : r.job, r.sets), {}};
    Problems problems;
    Loaded out;
    detail::TrainerArgs trainer = detail::parse_hf_args(r.hf_args, problems);
    problems.throw_if_any();

    Base base;
    if (!r.job.empty()) {
        base.job = r.job;
        if (!r.model.empty()) base.overrides.job.push_back({"job", "model", r.model, "--model " + r.model});
        if (!r.topology.empty()) base.overrides.job.push_back({"job", "topology", r.topology, "--topology " + r.topology});
    } else if (!r.model.empty() || !r.topology.empty()) {
        if (r.model.empty() || r.topology.empty())
            throw InputError(std::string(r.model.empty() ? "--topology" : "--model") +
                             ": a job built from the command line needs both (allowed: --model M --topology T, or --job J)");
        base.path = "<--model " + r.model + " --topology " + r.topology + ">";
        base.text = generated_job(r, trainer);
        if (base.text.find("seq_len") == std::string::npos && !sets_key(r.sets, "batch.seq_len"))
            throw InputError("--model " + r.model + ": a DeepSpeed or accelerate config says nothing of the sequence length "
                             "(allowed: --set batch.seq_len=N, or --hf-args \"--max_seq_length N\", or --job J)");
    } else {
        base.job = model::kDefaultJob;
    }
    const model::Overrides user = model::split_overrides(r.sets);
    const model::Scenario base_scenario = load_base(base, concat(base.overrides, user));

    Context c{base_scenario, trainer, out.report, problems, {}, {}, {}, {}, {}, {}, false, {}};
    detail::import_hf_args(c);
    if (!r.accelerate.empty()) detail::import_accelerate_file(c, r.accelerate);
    std::string ds = r.deepspeed;
    if (auto d = c.trainer.get("deepspeed")) {
        if (ds.empty()) ds = *d;
        else c.ignored("--hf-args --deepspeed", "--deepspeed " + r.deepspeed + " is read instead");
    }
    if (!ds.empty()) detail::import_deepspeed_file(c, ds);
    const bool engine_chosen = !ds.empty() || !r.accelerate.empty() || c.trainer.get("fsdp");
    if (!engine_chosen && trainer.given)
        c.set("--hf-args (no --fsdp, no --deepspeed)", "parallel.strategy", "ddp", "the Trainer runs DistributedDataParallel");
    problems.throw_if_any();

    model::Overrides imported{c.job, c.topology};
    // A first load with everything imported: the gradient dtype and the world are final.
    model::Scenario pre = load_base(base, concat(concat(base.overrides, imported), user));
    model::Overrides derived;
    if (c.reduce_bucket_elements) {
        const std::int64_t bytes = *c.reduce_bucket_elements * dtype_size(pre.job.grads);
        const std::string mib = detail::exact_text(static_cast<double>(bytes) / static_cast<double>(kMiB));
        derived.job.push_back({"parallel", "bucket_mib", mib, c.reduce_bucket_where});
        out.report.mapped.push_back({c.reduce_bucket_where, "-> parallel.bucket_mib = " + mib + " (" + std::to_string(*c.reduce_bucket_elements) +
                                                                " elements of " + std::string(dtype_name(pre.job.grads)) + ")"});
    }
    batch_check(c, pre, derived);
    problems.throw_if_any();
    if (r.strict && !out.report.unmodelled.empty()) {
        for (const auto& n : out.report.unmodelled) problems.add(n.key + ": " + n.text + " (--strict refuses keys shardsim does not model)");
        problems.throw_if_any();
    }
    out.scenario = load_base(base, concat(concat(concat(base.overrides, imported), derived), user));
    return out;
}

}  // namespace shardsim::interop
