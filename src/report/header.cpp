#include "shardsim/report/header.hpp"

#include <algorithm>

#include "shardsim/core/format.hpp"

namespace shardsim::report {

namespace {
// The engine and the knobs that shape its step, as the engine names them.
std::string engine_line(const plan::ShardingPlan& plan) {
    const auto& e = plan.engine_settings();
    const auto& job = plan.scenario().job;
    std::string s = plan::engine_name(plan.traits().engine);
    switch (plan.traits().engine) {
        case plan::Engine::ddp:
            s += ": bucket_cap_mb " + format_fixed(static_cast<double>(e.bucket_bytes) / kMiB, 0) + " (first " +
                 format_fixed(static_cast<double>(e.first_bucket_bytes) / kMiB, 0) + "), gradient_as_bucket_view " +
                 (e.gradient_as_bucket_view ? "true" : "false");
            break;
        case plan::Engine::deepspeed:
            s += "-" + std::to_string(e.zero_stage) + ": reduce_bucket_size " + format_count(e.reduce_bucket_elements) +
                 ", overlap_comm " + (e.overlap_comm ? "true" : "false");
            if (e.zero_stage == 3)
                s += ", prefetch " + format_count(e.prefetch_bucket_elements) + ", max live " + format_count(e.max_live_parameters) +
                     ", reuse distance " + format_count(e.max_reuse_distance);
            break;
        case plan::Engine::fsdp: {
            const char* bp[] = {"BACKWARD_PRE", "BACKWARD_POST", "none"};
            s += std::string(": backward_prefetch ") + bp[static_cast<int>(job.fsdp.backward_prefetch)] + ", forward_prefetch " +
                 (job.fsdp.forward_prefetch ? "true" : "false") + ", limit_all_gathers " + (job.fsdp.limit_all_gathers ? "true" : "false") +
                 (job.fsdp.no_sync ? ", no_sync accumulation" : "");
            break;
        }
    }
    return s;
}
}  // namespace

namespace {

std::string memory_line(const config::JobConfig& job) {
    std::vector<std::string> mem;
    const std::string kind = job.activation_checkpointing == config::Checkpointing::selective ? "selective activation checkpointing"
                                                                                               : "activation checkpointing";
    mem.push_back(!job.checkpointing()          ? "no checkpointing"
                  : job.checkpoint_every == 1 ? kind
                                              : kind + ", one block in " + std::to_string(job.checkpoint_every));
    mem.push_back(config::attention_name(job.attention) + " attention");
    mem.push_back(std::string(job.loss == config::LossKind::fused ? "fused" : "eager") + " loss");
    if (job.attention_dropout > 0 || job.hidden_dropout > 0)
        mem.push_back("dropout " + format_fixed(job.attention_dropout, 2) + " attention / " + format_fixed(job.hidden_dropout, 2) +
                      " hidden");
    else
        mem.push_back("no dropout");
    if (job.offload_optimizer) mem.push_back("optimizer offloaded to host");
    if (job.offload_params) mem.push_back("params offloaded to host");
    return join(mem, ", ");
}

}  // namespace

std::string scenario_header(const plan::ShardingPlan& plan, const std::string& title) {
    const auto& s = plan.scenario();
    const auto& job = s.job;
    const auto& topo = s.topology;
    const auto& g = plan.groups();
    const auto& p = plan.precision();
    std::vector<std::pair<std::string, std::string>> rows;
    rows.push_back({"job", job.name + " (" + job.source.path + ")"});
    rows.push_back({"model", s.model.name + ": " + s.model.family() + ", " + model::arch_name(s.model.arch) + ", " +
                                 format_count(plan.param_count().count()) + " params (" +
                                 format_count(plan.trainable_count().count()) + " trainable), " +
                                 std::to_string(plan.units().size()) + " units"});
    rows.push_back({"topology", topo.name + ": " + std::to_string(topo.nodes) + " node(s) x " +
                                    std::to_string(topo.gpus_per_node) + " " + topo.gpu.name + " (" +
                                    format_gib(static_cast<double>(topo.gpu.memory_bytes), 1) + " GiB), " +
                                    config::link_kind_name(topo.intra.kind) + " " +
                                    format_fixed(topo.intra.bandwidth_gbps, 0) + " GB/s" +
                                    (topo.nodes > 1 ? ", " + config::link_kind_name(topo.inter.kind) + " " +
                                                          std::to_string(topo.inter.nics) + "x" +
                                                          format_fixed(topo.inter.bandwidth_gbps, 0) + " GB/s"
                                                    : std::string())});
    rows.push_back({"strategy", config::strategy_name(job.strategy) + ": " + plan.traits().summary});
    rows.push_back({"groups", g.dims().factors()});
    rows.push_back({"engine", engine_line(plan)});
    for (const auto& r : plan.engine_settings().resolved) rows.push_back({"auto", r});
    rows.push_back({"precision", "params " + std::string(dtype_name(p.params)) + ", grads " + std::string(dtype_name(p.grads)) +
                                     ", reduce " + std::string(dtype_name(p.reduce)) +
                                     (p.master ? ", fp32 master weights" : ", no master copy") + ", " +
                                     std::string(dtype_name(p.moments)) + " optimizer states"});
    rows.push_back({"optimizer", std::string(job.optimizer == config::OptimizerKind::adamw ? "adamw" : "sgd") + " lr " +
                                     format_fixed(job.lr, 6) + " (" + std::to_string(p.moment_count) + " state(s) per param)"});
    std::string batch = "micro-batch " + std::to_string(job.micro_batch) + " x grad-accum " + std::to_string(job.grad_accum) +
                        " x " + std::to_string(g.world()) + " ranks = " +
                        std::to_string(job.micro_batch * job.grad_accum * g.world()) + " sequences/step, ";
    batch += s.model.encoder_decoder() ? std::to_string(s.encoder_len()) + " enc / " + std::to_string(s.decoder_len()) + " dec tokens"
                                       : std::to_string(s.decoder_len()) + " tokens";
    rows.push_back({"batch", batch});
    rows.push_back({"memory", memory_line(job)});
    if (job.lora_rank > 0)
        rows.push_back({"lora", "rank " + std::to_string(job.lora_rank) + ", alpha " + format_fixed(job.lora_alpha, 1) +
                                    ", targets " + join(job.lora_targets, ",")});

    std::size_t w = title.size();
    for (const auto& [k, v] : rows) w = std::max(w, k.size() + 3 + v.size());
    const std::string rule = "+" + std::string(w + 2, '-') + "+\n";
    std::string out = rule + "| " + title + std::string(w - title.size(), ' ') + " |\n" + rule;
    for (const auto& [k, v] : rows) {
        std::string line = k + std::string(10 - std::min<std::size_t>(10, k.size()), ' ') + v;
        line.resize(std::max(line.size(), w), ' ');
        out += "| " + line + " |\n";
    }
    return out + rule;
}

}  // namespace shardsim::report
