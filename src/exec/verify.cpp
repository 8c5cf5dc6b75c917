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
    s.job.offload_optimizer = false;
    s.job.offload_params = false;
    s.topology.nodes = 1;
    s.topology.gpus_per_node = 1;
    return s;
}

}  // namespace

VerifyResult verify_against_reference(const Executor& sharded, int steps, MPI_Comm world) {
    const auto& p = sharded.plan();
    const auto ref_plan = plan::ShardingPlan::build(reference_scenario(p));
    const auto ref_schedule = plan::build_schedule(*ref_plan);
    auto device = make_cpu_device(1);
    comm::MpiCommunicator self(MPI_COMM_SELF, false);
    Executor reference(ref_plan, ref_schedule, *device, *device, Communicators(plan::kGroupCount, &self), 0);
    for (int s = 0; s < steps; ++s) reference.run_step(s);

    VerifyResult r;
    const auto& prec = p.precision();
    const auto& job = p.scenario().job;
    const bool fp32_sums = prec.grads == DType::fp32 && prec.reduce == DType::fp32;
    const bool all_fp32 = fp32_sums && prec.params == DType::fp32;
    const DType narrow = prec.grads != DType::fp32 ? prec.grads : prec.reduce;
    const bool adam = job.optimizer == config::OptimizerKind::adamw;
    const bool loose = adam && !all_fp32;
    r.rule = loose ? "AdamW with 16-bit values: 2 * lr * steps / max|reference| (loose)"
                   : fp32_sums ? "fp32 sums: 1e-5" : std::string(dtype_name(narrow)) + " sums under SGD: its epsilon";
    auto tolerance_for = [&](double scale) {
        if (loose) return scale > 0 ? 2.0 * job.lr * steps / scale : 1.0;
        if (fp32_sums) return kToleranceFp32;
        return narrow == DType::bf16 ? 1.0 / 256 : 1.0 / 2048;
    };
    double local = 0, local_tol = 0;
    bool local_ok = true;
    for (const auto& unit : p.units()) {
        const auto& up = p.unit_plan(unit.index);
        for (std::size_t i = 0; i < up.state.chunks.size(); ++i) {
            const auto& c = up.state.chunks[i];
            std::int64_t first_row = 0;
            const auto mine = sharded.owned_values(unit.index, static_cast<int>(i), &first_row);
            const auto full = reference.full_values(unit.index, c.tensor);
            double scale = 0, diff = 0;
            for (float v : full) scale = std::max(scale, static_cast<double>(std::fabs(v)));
            for (std::size_t k = 0; k < mine.size(); ++k) {
                const float ref = full[static_cast<std::size_t>(first_row * c.row_elements) + k];
                diff = std::max(diff, static_cast<double>(std::fabs(mine[k] - ref)));
            }
            const double rel = scale > 0 ? diff / scale : diff;
            const double tol = tolerance_for(scale);
            local_ok = local_ok && rel <= tol;
            if (rel > local) {
                local = rel;
                local_tol = tol;
                r.worst_tensor = unit.tensors[static_cast<std::size_t>(c.tensor)].name;
            }
        }
    }
    // The worst tensor over all ranks: its value, and its name from the rank that saw it.
    struct {
        double value;
        int rank;
    } in{local, 0}, out{0, 0};
    SHARDSIM_MPI_CHECK(MPI_Comm_rank(world, &in.rank));
    SHARDSIM_MPI_CHECK(MPI_Allreduce(&in, &out, 1, MPI_DOUBLE_INT, MPI_MAXLOC, world));
    r.max_rel_diff = out.value;
    r.tolerance = local_tol;
    SHARDSIM_MPI_CHECK(MPI_Bcast(&r.tolerance, 1, MPI_DOUBLE, out.rank, world));
    int ok = local_ok ? 1 : 0, all_ok = 0;
    SHARDSIM_MPI_CHECK(MPI_Allreduce(&ok, &all_ok, 1, MPI_INT, MPI_MIN, world));
    int len = static_cast<int>(r.worst_tensor.size());
    SHARDSIM_MPI_CHECK(MPI_Bcast(&len, 1, MPI_INT, out.rank, world));
    r.worst_tensor.resize(static_cast<std::size_t>(len));
    SHARDSIM_MPI_CHECK(MPI_Bcast(r.worst_tensor.data(), len, MPI_CHAR, out.rank, world));
    r.passed = all_ok == 1;
    return r;
}

}  // namespace shardsim::exec
