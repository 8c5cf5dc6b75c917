#include "shardsim/exec/verify.hpp"

#include <cmath>

#include "shardsim/comm/mpi.hpp"

namespace shardsim::exec {

using device::make_cpu_device;

namespace {

// The same job as a plain single-process run: DDP on one rank, all the micro-batches of the
// global batch accumulated, nothing offloaded.
model::Scenario reference_scenario(const plan::ShardingPlan& p) {
    model::Scenario s = p.scenario();
    s.job.grad_accum = s.job.grad_accum * p.groups().world();
    s.job.strategy = config::Strategy::ddp;
    s.job.world_size = 1;
    s.job.shard_size = 0;
    s.job.secondary_shard = 0;
    s.job.offload_optimizer = false;
    s.job.offload_params = false;
    s.topology.nodes = 1;
    s.topology.gpus_per_node = 1;
    return s;
}

}  // namespace

namespace {

// How far a sharded value may be from the reference, for the job's precision and optimizer
// (verify.hpp says why).
struct Tolerance {
    std::string rule;
    bool adam = false, fp32_sums = false, all_fp32 = false;
    DType narrow = DType::fp32;
    double lr = 0;
    int steps = 0;

    Tolerance(const plan::ShardingPlan& p, int s) : lr(p.scenario().job.lr), steps(s) {
        const auto& prec = p.precision();
        fp32_sums = prec.grads == DType::fp32 && prec.reduce == DType::fp32;
        all_fp32 = fp32_sums && prec.params == DType::fp32;
        narrow = prec.grads != DType::fp32 ? prec.grads : prec.reduce;
        adam = p.scenario().job.optimizer == config::OptimizerKind::adamw;
        rule = adam ? (all_fp32 ? "AdamW in fp32: first moments to 1e-5, parameters within AdamW's step (2 * lr * steps)"
                                : "AdamW with 16-bit values: parameters within AdamW's step, 2 * lr * steps / max|reference| (loose)")
                    : fp32_sums ? "fp32 sums: 1e-5" : std::string(dtype_name(narrow)) + " sums under SGD: its epsilon";
    }
    // What sums of gradients agree to: the first moments, and SGD's parameters.
    double sums() const {
        if (fp32_sums) return kToleranceFp32;
        return narrow == DType::bf16 ? 1.0 / 256 : 1.0 / 2048;
    }
    double params(double scale) const {
        if (!adam) return sums();
        return std::max(all_fp32 ? kToleranceFp32 : 0.0, scale > 0 ? 2.0 * lr * steps / scale : 1.0);
    }
    // AdamW's first moment is linear in the gradients: it checks every reduction exactly, as long
    // as the two runs computed their gradients from the same parameters (fp32 throughout).
    bool checks_moments() const { return adam && all_fp32; }
};

struct LocalWorst {
    double rel = 0, tolerance = 0;
    bool ok = true;
    std::string tensor;
};

// This rank's rows of every trainable tensor (or of its first moment after the first step) against
// the reference's.
LocalWorst compare_tensors(const Executor& sharded, const Executor& reference, const Tolerance& tol, bool moment) {
    const auto& p = sharded.plan();
    LocalWorst w;
    for (const auto& unit : p.units()) {
        const auto& up = p.unit_plan(unit.index);
        for (std::size_t i = 0; i < up.state.chunks.size(); ++i) {
            const auto& c = up.state.chunks[i];
            std::int64_t first_row = 0;
            auto mine = sharded.owned_values(unit.index, static_cast<int>(i), &first_row, moment);
            if (moment) mine = sharded.first_step_moments().at({unit.index, static_cast<int>(i)});
            const auto full = reference.full_values(unit.index, c.tensor, moment);
            double scale = 0, diff = 0;
            for (float v : full) scale = std::max(scale, static_cast<double>(std::fabs(v)));
            for (std::size_t k = 0; k < mine.size(); ++k) {
                const float ref = full[static_cast<std::size_t>(first_row * c.row_elements) + k];
                diff = std::max(diff, static_cast<double>(std::fabs(mine[k] - ref)));
            }
            const double rel = scale > 0 ? diff / scale : diff;
            const double t = moment ? tol.sums() : tol.params(scale);
            w.ok = w.ok && rel <= t;
            const std::string name = unit.tensors[static_cast<std::size_t>(c.tensor)].name + (moment ? " (exp_avg)" : "");
            if (rel / t > (w.tolerance > 0 ? w.rel / w.tolerance : 0)) w = {rel, t, w.ok, name};
        }
    }
    return w;
}

// The worst tensor over all ranks (by its difference over its tolerance): its difference,
// tolerance and name from the rank that saw it.
VerifyResult agree_on_worst(const LocalWorst& w, MPI_Comm world) {
    VerifyResult r;
    struct {
        double value;
        int rank;
    } in{w.tolerance > 0 ? w.rel / w.tolerance : w.rel, 0}, out{0, 0};
    SHARDSIM_MPI_CHECK(MPI_Comm_rank(world, &in.rank));
    SHARDSIM_MPI_CHECK(MPI_Allreduce(&in, &out, 1, MPI_DOUBLE_INT, MPI_MAXLOC, world));
    double figures[2] = {w.rel, w.tolerance};
    SHARDSIM_MPI_CHECK(MPI_Bcast(figures, 2, MPI_DOUBLE, out.rank, world));
    r.max_rel_diff = figures[0];
    r.tolerance = figures[1];
    r.worst_tensor = w.tensor;
    int ok = w.ok ? 1 : 0, all_ok = 0;
    SHARDSIM_MPI_CHECK(MPI_Allreduce(&ok, &all_ok, 1, MPI_INT, MPI_MIN, world));
    int len = static_cast<int>(r.worst_tensor.size());
    SHARDSIM_MPI_CHECK(MPI_Bcast(&len, 1, MPI_INT, out.rank, world));
    r.worst_tensor.resize(static_cast<std::size_t>(len));
    SHARDSIM_MPI_CHECK(MPI_Bcast(r.worst_tensor.data(), len, MPI_CHAR, out.rank, world));
    r.passed = all_ok == 1;
    return r;
}

}  // namespace

VerifyResult verify_against_reference(const Executor& sharded, int steps, MPI_Comm world) {
    const auto& p = sharded.plan();
    const auto ref_plan = plan::ShardingPlan::build(reference_scenario(p));
    const auto ref_schedule = plan::build_schedule(*ref_plan);
    auto device = make_cpu_device(1);
    comm::MpiCommunicator self(MPI_COMM_SELF, false);
    Executor reference(ref_plan, ref_schedule, *device, *device, Communicators(plan::kGroupCount, &self), 0);
    const Tolerance tol(p, steps);
    // The first moments after the first step, computed from the same parameters on both sides.
    const bool moments = tol.checks_moments() && !sharded.first_step_moments().empty();
    LocalWorst m;
    for (int s = 0; s < steps; ++s) {
        reference.run_step(s);
        if (s == 0 && moments) m = compare_tensors(sharded, reference, tol, true);
    }
    LocalWorst w = compare_tensors(sharded, reference, tol, false);
    if (moments) {
        const bool ok = w.ok && m.ok;
        if (m.rel / m.tolerance > w.rel / w.tolerance) w = m;
        w.ok = ok;
    }
    VerifyResult r = agree_on_worst(w, world);
    r.rule = tol.rule;
    if (tol.checks_moments() && !moments) r.rule = "AdamW in fp32 (first moments not kept): parameters within AdamW's step (2 * lr * steps)";
    return r;
}

}  // namespace shardsim::exec
