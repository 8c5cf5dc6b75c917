#include "shardsim/timeline/timeline.hpp"

#include "shardsim/plan/buffers.hpp"
#include "shardsim/plan/plan.hpp"

#include <algorithm>

namespace shardsim::timeline {

namespace {
std::vector<std::pair<double, double>> merged(std::vector<std::pair<double, double>> v) {
    std::sort(v.begin(), v.end());
    std::vector<std::pair<double, double>> out;
    for (const auto& iv : v) {
        if (iv.second <= iv.first) continue;
        if (!out.empty() && iv.first <= out.back().second)
            out.back().second = std::max(out.back().second, iv.second);
        else
            out.push_back(iv);
    }
    return out;
}
}  // namespace

double union_length(std::vector<std::pair<double, double>> intervals) {
    double s = 0;
    for (const auto& iv : merged(std::move(intervals))) s += iv.second - iv.first;
    return s;
}

double uncovered_length(std::vector<std::pair<double, double>> a, std::vector<std::pair<double, double>> b) {
    const auto ma = merged(std::move(a));
    const auto mb = merged(std::move(b));
    double covered = 0;
    std::size_t j = 0;
    for (const auto& x : ma) {
        while (j < mb.size() && mb[j].second <= x.first) ++j;
        for (std::size_t k = j; k < mb.size() && mb[k].first < x.second; ++k)
            covered += std::min(x.second, mb[k].second) - std::max(x.first, mb[k].first);
    }
    return union_length(ma) - covered;
}

IntervalCover::IntervalCover(std::vector<std::pair<double, double>> intervals)
    : merged_(merged(std::move(intervals))) {
    prefix_.reserve(merged_.size() + 1);
    prefix_.push_back(0);
    for (const auto& iv : merged_) prefix_.push_back(prefix_.back() + (iv.second - iv.first));
}

double IntervalCover::covered(double a, double b) const {
    if (!(b > a)) return 0;
    // First interval that ends after a, and the first that starts at or after b.
    const auto first = std::upper_bound(merged_.begin(), merged_.end(), a,
                                        [](double x, const auto& iv) { return x < iv.second; });
    const auto last = std::lower_bound(merged_.begin(), merged_.end(), b,
                                       [](const auto& iv, double x) { return iv.first < x; });
    if (first >= last) return 0;
    const auto clip = [&](const std::pair<double, double>& iv) { return std::min(b, iv.second) - std::max(a, iv.first); };
    if (last - first == 1) return clip(*first);
    // Both ends clipped; the intervals between them lie wholly inside [a, b).
    const auto i = static_cast<std::size_t>(first - merged_.begin());
    const auto j = static_cast<std::size_t>(last - merged_.begin()) - 1;
    return clip(*first) + (prefix_[j] - prefix_[i + 1]) + clip(*(last - 1));
}

OpRecord planned_record(const plan::Op& op, double t_start, double t_end, int step) {
    OpRecord r;
    r.op_id = op.id;
    r.kind = op.kind;
    r.stream = op.stream;
    r.unit = op.unit;
    r.micro_batch = op.micro_batch;
    r.step = step;
    r.t_start = t_start;
    r.t_end = t_end;
    r.bytes = op.bytes();
    r.flops = op.flops;
    for (const auto& l : op.ledger) r.net[l.category] += l.bytes;
    if (op.collective) {
        r.collective = static_cast<int>(op.collective->kind);
        r.ranks = op.collective->ranks;
    }
    return r;
}

std::vector<int> RankTimeline::steps() const {
    std::vector<int> out;
    for (const auto& op : ops) out.push_back(op.step);
    for (const auto& m : memory) out.push_back(m.step);
    std::sort(out.begin(), out.end());
    out.erase(std::unique(out.begin(), out.end()), out.end());
    return out;
}

RankTimeline RankTimeline::only_step(int step) const {
    RankTimeline out;
    out.rank = rank;
    out.device = device;
    out.host = host;
    for (const auto& op : ops)
        if (op.step == step) out.ops.push_back(op);
    for (const auto& m : memory)
        if (m.step == step) out.memory.push_back(m);
    return out;
}

RankSummary RankTimeline::summarize() const {
    RankSummary s;
    s.allocated_peak_bytes = allocated_peak_bytes;
    s.reserved_peak_bytes = reserved_peak_bytes;
    if (!memory.empty()) s.model_state = memory.front().bytes;
    for (MemCategory c : kAllMemCategories)
        if (!is_model_state(c)) s.model_state[c] = 0;
    for (const auto& m : memory) {
        const std::int64_t dev = m.bytes.device_total();
        if (dev > s.peak_bytes) {
            s.peak_bytes = dev;
            s.peak_breakdown = m.bytes;
            s.peak_op = m.op_id;
        }
        for (MemCategory c : kAllMemCategories)
            s.max_by_category[c] = std::max(s.max_by_category[c], m.bytes[c]);
        s.host_peak_bytes = std::max(s.host_peak_bytes, m.bytes.host_total());
    }
    std::vector<std::pair<double, double>> compute, comm;
    double t0 = 0, t1 = 0;
    bool first = true;
    for (const auto& op : ops) {
        if (first || op.t_start < t0) t0 = op.t_start;
        if (first || op.t_end > t1) t1 = op.t_end;
        first = false;
        const std::pair<double, double> iv{op.t_start, op.t_end};
        s.flops += op.flops;
        // A collective is communication on whichever stream it runs (DeepSpeed without
        // overlap_comm reduces on the compute stream, where nothing hides it).
        switch (op.collective >= 0 ? plan::OpStream::comm : op.stream) {
            case plan::OpStream::compute: compute.push_back(iv); break;
            case plan::OpStream::comm: comm.push_back(iv); break;
            case plan::OpStream::copy: s.copy_time += op.duration(); break;
            case plan::OpStream::host: s.host_time += op.duration(); break;
        }
        if (op.collective >= 0) {
            const auto kind = static_cast<plan::CollectiveKind>(op.collective);
            s.comm_size_bytes[op.collective] = checked_add(s.comm_size_bytes[op.collective], op.bytes, "the collective bytes of one step");
            s.comm_wire_bytes[op.collective] += plan::wire_bytes(kind, op.bytes, op.ranks);
            s.comm_kind_time[op.collective] += op.duration();
            s.comm_kind_ranks[op.collective] = std::max(s.comm_kind_ranks[op.collective], op.ranks);
        }
    }
    s.step_time = t1 - t0;
    s.compute_time = union_length(compute);
    s.comm_time = union_length(comm);
    s.exposed_comm = uncovered_length(comm, compute);
    return s;
}

}  // namespace shardsim::timeline

namespace shardsim::timeline {

void describe_buffers(const plan::ShardingPlan& plan, const plan::Schedule& schedule, std::vector<BufferInfo>& buffers,
                      std::vector<OpBufferUse>& uses) {
    buffers.clear();
    uses.clear();
    for (const auto& b : plan.buffers().all()) {
        BufferInfo i;
        i.id = b.id;
        i.name = b.name;
        i.category = std::string(category_name(b.category));
        i.dtype = std::string(dtype_name(b.dtype));
        i.bytes = b.bytes;
        i.unit = b.unit;
        i.parent = b.parent;
        i.offset = b.offset;
        i.host = b.side == plan::Side::host;
        i.pinned = b.pinned;
        i.persistent = b.persistent;
        buffers.push_back(std::move(i));
    }
    for (const auto& op : schedule.ops)
        for (const auto& u : op.buffers) {
            OpBufferUse x;
            x.op_id = op.id;
            x.buffer = u.buffer;
            x.instance = u.instance;
            x.role = plan::role_name(u.role);
            if (u.read) x.access += 'r';
            if (u.write) x.access += 'w';
            if (u.alloc) x.access += 'a';
            if (u.free) x.access += 'f';
            uses.push_back(std::move(x));
        }
}

}  // namespace shardsim::timeline
