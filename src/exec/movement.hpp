#pragma once
// Data movement between the arrangements of a unit's buffers ([Note: FSDP tensors] in
// plan/layout.hpp, [Note: buffer table] in plan/buffers.hpp). Each function reads the layouts from
// the buffers' specs; none knows which strategy it serves.
#include "executor_impl.hpp"

namespace shardsim::exec {

using device::Tensor;

Tensor flat(void* data, DType dtype, std::int64_t n);
// n elements from src (sdt) to dst (ddt), converting, on the device.
void copy_elements(Device& dev, const void* src, DType sdt, void* dst, DType ddt, std::int64_t n);
// `bytes` from src to dst, each on its side (device or host), as they are.
void transfer(Device& dev, void* dst, plan::Side dst_side, const void* src, plan::Side src_side, std::int64_t bytes);
// Unsharded (a 1-shard layout) -> gathered (every rank's shard, rank-major, padding zero), converting.
void pack_all(Device& dev, const plan::ShardingPlan& plan, const Resolved& src, const Resolved& dst);
// Gathered -> unsharded (real rows only), converting.
void unpack_all(Device& dev, const plan::ShardingPlan& plan, const Resolved& src, const Resolved& dst);
// Unsharded -> dst's own shard of its layout (the rank dst holds), real rows only, converting.
void pack_shard(Device& dev, const plan::ShardingPlan& plan, const Resolved& src, const Resolved& dst);
// Where rank `rank`'s rows of the unit's trainable tensor `chunk` (its state layout) sit in a
// buffer: in the rank's own shard of the state partition, or among all rows of a 1-shard layout.
std::int64_t own_rows_offset(const plan::ShardingPlan& plan, const plan::BufferSpec& b, std::size_t chunk, std::int64_t rank);
// This rank's rows of every trainable tensor of the unit, from src to dst, converting on the
// device; across sides the dtypes must agree. Padding and other rows of dst are left as they are.
void copy_own_rows(Device& dev, const plan::ShardingPlan& plan, const Resolved& src, const Resolved& dst, std::int64_t rank);
// Where a reduction's result lands: added into a shard, or written over this rank's rows of
// unsharded gradients.
void land(Device& math, const plan::ShardingPlan& plan, const Resolved& reduced, const Resolved& result, std::int64_t rank);

}  // namespace shardsim::exec
