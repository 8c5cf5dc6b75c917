#include "shardsim/plan/schedule.hpp"

#include <algorithm>
#include <array>

#include "shardsim/plan/activations.hpp"

namespace shardsim::plan {

namespace {
constexpr std::array<const char*, kOpKindCount> kOpKindNames = {
    "all_gather", "upload_params", "reshard",       "forward",        "recompute",    "backward",
    "reduce_scatter", "all_reduce", "offload_grads", "optimizer_step", "upload_update", "backward_end"};
constexpr std::array<const char*, kOpStreamCount> kStreamNames = {"compute", "comm", "copy", "host"};
}  // namespace

std::string op_kind_name(OpKind k) { return kOpKindNames[static_cast<int>(k)]; }
std::optional<OpKind> parse_op_kind(const std::string& s) {
    for (int i = 0; i < kOpKindCount; ++i)
        if (s == kOpKindNames[i]) return static_cast<OpKind>(i);
    return std::nullopt;
}
std::string op_stream_name(OpStream s) { return kStreamNames[static_cast<int>(s)]; }

std::int64_t Op::bytes() const {
    if (collective) return collective->size_bytes;
    return copy_bytes;
}

std::int64_t Op::net(MemCategory c) const {
    std::int64_t n = 0;
    for (const auto& e : ledger)
        if (e.category == c) n += e.bytes;
    return n;
}

std::int64_t Schedule::collective_size_bytes(CollectiveKind k) const {
    std::int64_t n = 0;
    for (const auto& op : ops)
        if (op.collective && op.collective->kind == k) n += op.collective->size_bytes;
    return n;
}

double Schedule::collective_wire_bytes(CollectiveKind k) const {
    double n = 0;
    for (const auto& op : ops)
        if (op.collective && op.collective->kind == k) n += wire_bytes(k, op.collective->size_bytes, op.collective->ranks);
    return n;
}

const BufferUse* Op::use(Role role) const {
    for (const auto& u : buffers)
        if (u.role == role) return &u;
    return nullptr;
}

std::vector<LedgerEntry> derive_ledger(const Op& op, const BufferTable& table) {
    std::vector<LedgerEntry> out;
    for (const auto& u : op.buffers) {
        if (u.buffer < 0) continue;
        const BufferSpec& b = table[u.buffer];
        if (!b.has_memory()) continue;
        if (u.alloc) out.push_back({b.category, b.bytes, u.alloc_phase});
        if (u.free) out.push_back({b.category, -b.bytes, u.free_phase});
    }
    return out;
}

std::string role_name(Role r) {
    static constexpr std::array<const char*, 11> kNames = {"input",   "output",  "result",  "stage",   "params", "grads",
                                                           "master",  "moment0", "moment1", "cleared", "memory"};
    return kNames[static_cast<std::size_t>(r)];
}

double Schedule::total_flops() const {
    double f = 0;
    for (const auto& op : ops) f += op.flops;
    return f;
}


std::string op_label(const ShardingPlan& plan, const Op& op) {
    std::string s = op_kind_name(op.kind);
    if (op.unit >= 0) {
        s += " " + plan.units().at(static_cast<std::size_t>(op.unit)).name;
    } else if (!op.units.empty()) {
        s += " bucket[" + plan.units().at(static_cast<std::size_t>(op.units.front())).name + ".." +
             plan.units().at(static_cast<std::size_t>(op.units.back())).name + "]";
    }
    if (op.micro_batch >= 0 && plan.scenario().job.grad_accum > 1) s += " mb" + std::to_string(op.micro_batch);
    return s;
}

}  // namespace shardsim::plan
