#include "shardsim/exec/executor.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "executor_impl.hpp"
#include "movement.hpp"
#include "shardsim/core/format.hpp"
#include "shardsim/core/half.hpp"

namespace shardsim::exec {


namespace {
double wall() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

// The loss is a sum over every token of the step's global batch, scaled to their mean.
double loss_scale(const plan::ShardingPlan& p) {
    const auto& job = p.scenario().job;
    return 1.0 / static_cast<double>(job.micro_batch * p.scenario().decoder_len() * job.grad_accum * p.groups().world());
}
}  // namespace

Executor::Impl::Impl(plan::PlanPtr p, const plan::Schedule& s, Device& d, Device& h, Communicators c, int r)
    : plan(std::move(p)), schedule(s), dev(d), host(h), rank(r) {
    // Every collective goes through a counting wrapper: the sizes the library was asked to move.
    for (comm::Communicator* inner : c) {
        counted.push_back(std::make_unique<comm::CountingCommunicator>(*inner, calls));
        comms.push_back(counted.back().get());
    }
    calls.reset(schedule.ops.size());
    arena = std::make_unique<Arena>(*plan, dev, comms);
}

Executor::Executor(plan::PlanPtr plan, const plan::Schedule& schedule, Device& device, Device& host_math,
                   Communicators comms, int rank)
    : impl_(std::make_unique<Impl>(plan, schedule, device, host_math, std::move(comms), rank)), plan_(std::move(plan)) {
    Impl& m = *impl_;
    m.model = std::make_unique<Transformer>(*plan_, device, loss_scale(*plan_));
    m.lanes = std::make_unique<Lanes>(device, schedule.ops.size(), [&m](int op, plan::Phase phase) {
        const double t0 = wall();
        if (phase == plan::Phase::start) {
            TrackingAllocator::set_op(op);
            comm::CallLog::set_current_op(op);
        }
        auto [current, peak] = m.dev.allocator().sample_and_reset();
        {
            std::lock_guard<std::mutex> lock(m.record_mu);
            // A peak inside the op that its boundaries do not show is recorded too.
            if (peak.device_total() > current.device_total()) m.samples.push_back({op, phase, peak});
            m.samples.push_back({op, phase, current});
            m.record_seconds += wall() - t0;
        }
        if (phase == plan::Phase::end) {
            TrackingAllocator::set_op(-1);
            comm::CallLog::set_current_op(-1);
        }
    }, plan_->scenario().topology.cpu_host().comm_thread);
    timeline_.rank = rank;
    timeline_.device = device.name();
    m.initial_measured = device.allocator().current();
}

Executor::~Executor() = default;

StepResult Executor::run_step(int step) {
    Impl& m = *impl_;
    const double t_begin = wall();
    m.step = step;
    m.micro_losses.clear();
    m.lanes->reset_epoch();
    {
        std::lock_guard<std::mutex> lock(m.record_mu);
        m.samples.clear();
    }
    m.calls.reset(m.schedule.ops.size());
    m.dev.allocator().reset_op_tallies(m.schedule.ops.size());
    m.runtime_bytes = m.dev.runtime_bytes();
    const MemoryByCategory before = m.dev.allocator().current();
    // Fault injection for tests: SHARDSIM_INJECT_FAILURE=RANK:OP makes that rank fail at that op.
    int fail_rank = -1, fail_op = -1;
    if (const char* f = std::getenv("SHARDSIM_INJECT_FAILURE")) std::sscanf(f, "%d:%d", &fail_rank, &fail_op);
    for (const auto& op : m.schedule.ops)
        m.lanes->submit(op.id, op.stream, op.deps, [&m, &op, fail_rank, fail_op] {
            if (m.rank == fail_rank && op.id == fail_op)
                throw Error("injected failure at op " + std::to_string(op.id) + " (SHARDSIM_INJECT_FAILURE)");
            m.run_op(op);
        });
    m.lanes->drain();
    const MemoryByCategory after = m.dev.allocator().current();
    for (MemCategory c : kAllMemCategories) m.leftover[c] = after[c] - before[c];
    record_step(step - first_step_, before);
    if (remember_first_step_ && first_moments_.empty() && plan_->precision().moment_count > 0)
        for (const auto& u : plan_->units())
            for (std::size_t i = 0; i < plan_->unit_plan(u.index).state.chunks.size(); ++i) {
                std::int64_t first_row = 0;
                first_moments_[{u.index, static_cast<int>(i)}] = owned_values(u.index, static_cast<int>(i), &first_row, true);
            }

    StepResult r;
    for (double l : m.micro_losses) r.loss += l;
    if (!m.micro_losses.empty()) r.loss /= static_cast<double>(m.micro_losses.size());
    r.seconds = wall() - t_begin;
    m.step_seconds += r.seconds;
    return r;
}

// The step's records on the run's time axis: every op with what was measured in place of what
// was planned, and the memory samples in time order.
void Executor::record_step(int step, const MemoryByCategory& before) {
    Impl& m = *impl_;
    const double t0 = wall();
    double step_end = 0;
    for (const auto& op : m.schedule.ops) {
        timeline::OpRecord r = timeline::planned_record(op, m.time_offset + m.lanes->start(op.id),
                                                        m.time_offset + m.lanes->end(op.id), step);
        r.net = m.dev.allocator().op_net(op.id);
        if (op.collective) r.bytes = m.calls.size(op.id);
        step_end = std::max(step_end, m.lanes->end(op.id));
        timeline_.ops.push_back(r);
    }
    std::vector<timeline::MemorySample> samples;
    MemoryByCategory first = before;
    first[MemCategory::runtime_overhead] += m.runtime_bytes;
    samples.push_back({m.time_offset, -1, step, first});
    {
        std::lock_guard<std::mutex> lock(m.record_mu);
        for (const auto& s : m.samples) {
            const double t = s.phase == plan::Phase::start ? m.lanes->start(s.op) : m.lanes->end(s.op);
            MemoryByCategory b = s.bytes;
            b[MemCategory::runtime_overhead] += m.runtime_bytes;
            samples.push_back({m.time_offset + t, s.op, step, b});
        }
    }
    std::stable_sort(samples.begin(), samples.end(), [](const auto& a, const auto& b) { return a.t < b.t; });
    timeline_.memory.insert(timeline_.memory.end(), samples.begin(), samples.end());
    m.time_offset += step_end;
    m.record_seconds += wall() - t0;
}

double Executor::measurement_overhead() const {
    return impl_->step_seconds > 0 ? impl_->record_seconds / impl_->step_seconds : 0.0;
}

std::vector<std::string> Executor::check_against_plan() const {
    const Impl& m = *impl_;
    std::vector<std::string> out;
    const MemoryByCategory want = plan_->persistent();
    for (MemCategory c : kAllMemCategories) {
        if (c == MemCategory::runtime_overhead) continue;  // the runtime's own bytes are measured, not allocated by us
        if (m.initial_measured[c] != want[c])
            out.push_back("persistent " + std::string(category_name(c)) + ": measured " + std::to_string(m.initial_measured[c]) +
                          " B, the plan says " + std::to_string(want[c]) + " B");
    }
    for (const auto& op : m.schedule.ops) {
        if (!op.collective) continue;
        const std::int64_t got = m.calls.size(op.id);
        if (got != op.collective->size_bytes) {
            out.push_back("first collective that differs: op " + std::to_string(op.id) + " (" + plan::op_label(*plan_, op) +
                          "): moved " + std::to_string(got) + " B, the schedule says " + std::to_string(op.collective->size_bytes) + " B");
            break;
        }
    }
    for (MemCategory c : kAllMemCategories)
        if (m.leftover[c] != 0)
            out.push_back("after the step " + std::string(category_name(c)) + " holds " + std::to_string(m.leftover[c]) +
                          " B more than before it (the ledger frees everything the step allocates)");
    return out;
}

namespace {
std::vector<float> decode(Device& dev, const Resolved& buf, std::int64_t offset, std::int64_t n) {
    const DType dt = buf.spec->dtype;
    std::vector<unsigned char> raw(static_cast<std::size_t>(n * dtype_size(dt)));
    const char* src = static_cast<const char*>(buf.data) + offset * dtype_size(dt);
    if (buf.spec->side == plan::Side::host)
        std::memcpy(raw.data(), src, raw.size());
    else
        dev.copy_to_host(raw.data(), src, static_cast<std::int64_t>(raw.size()));
    dev.synchronize();
    std::vector<float> out(static_cast<std::size_t>(n));
    for (std::int64_t i = 0; i < n; ++i) {
        if (dt == DType::fp32) {
            std::memcpy(&out[static_cast<std::size_t>(i)], raw.data() + i * 4, 4);
        } else {
            std::uint16_t h;
            std::memcpy(&h, raw.data() + i * 2, 2);
            out[static_cast<std::size_t>(i)] = dt == DType::bf16 ? bf16_to_float(h) : fp16_to_float(h);
        }
    }
    return out;
}
}  // namespace

std::vector<float> Executor::owned_values(int unit, int chunk, std::int64_t* first_row, bool moment) const {
    const Impl& m = *impl_;
    const Resolved values = m.arena->get(moment ? plan_->buffers().unit(unit).moments[0] : plan_->buffers().trained_values(unit), 0);
    const auto& c = plan_->unit_plan(unit).state.chunks.at(static_cast<std::size_t>(chunk));
    const std::int64_t r = m.arena->rank_in(plan_->unit_plan(unit).state, plan::kShardGroup);
    *first_row = r * c.rows_per_rank;
    return decode(m.dev, values, own_rows_offset(*plan_, *values.spec, unit, c.tensor, r), c.owned_rows(r) * c.row_elements);
}

std::vector<float> Executor::full_values(int unit, int tensor, bool moment) const {
    const Impl& m = *impl_;
    const auto& up = plan_->unit_plan(unit);
    // Trained values at full precision (the master copy, when there is one) for trainable tensors;
    // the parameters as they are for frozen ones.
    for (std::size_t i = 0; i < up.state.chunks.size(); ++i) {
        const auto& c = up.state.chunks[i];
        if (c.tensor != tensor) continue;
        SHARDSIM_ASSERT(up.state.shards == 1, "full_values needs unsharded states");
        const Resolved values = m.arena->get(moment ? plan_->buffers().unit(unit).moments[0] : plan_->buffers().trained_values(unit), 0);
        return decode(m.dev, values, own_rows_offset(*plan_, *values.spec, unit, c.tensor, 0), c.rows * c.row_elements);
    }
    const Resolved params = m.arena->get(plan_->buffers().unit(unit).params, 0);
    SHARDSIM_ASSERT(up.params.shards == 1, "full_values needs unsharded parameters");
    for (const auto& c : up.params.chunks)
        if (c.tensor == tensor) return decode(m.dev, params, c.offset, c.rows * c.row_elements);
    return {};
}

}  // namespace shardsim::exec
