#pragma once
// Data movement between the arrangements of the plan's buffers ([Note: FSDP tensors] in
// plan/layout.hpp, [Note: buffer table] in plan/buffers.hpp). Each function reads the layouts from
// the buffers' specs — a unit's layouts, or a layout over several units' tensors (a gradient
// bucket) — and none knows which strategy it serves.
#include "executor_impl.hpp"

namespace shardsim::exec {

using device::Tensor;

Tensor flat(void* data, DType dtype, std::int64_t n);
// n elements from src (sdt) to dst (ddt), converting, on the device.
void copy_elements(Device& dev, const void* src, DType sdt, void* dst, DType ddt, std::int64_t n);
// `bytes` from src to dst, each on its side (device or host), as they are.
void transfer(Device& dev, void* dst, plan::Side dst_side, const void* src, plan::Side src_side, std::int64_t bytes);
// Into dst, every tensor it lays out, taken from whichever source lays that tensor out: dst
// unsharded (real rows back to back) or gathered (every rank's rows, rank-major, padding zero).
// A dst without a layout (a cast copy, a bucket's storage) takes its one source element by element.
void pack_into(Device& dev, const plan::ShardingPlan& plan, const std::vector<Resolved>& sources, const Resolved& dst);
// Gathered -> unsharded (real rows only), converting.
void unpack_all(Device& dev, const plan::ShardingPlan& plan, const Resolved& src, const Resolved& dst);
// Unsharded -> dst's own shard of its layout (the rank dst holds), real rows only, converting.
void pack_shard(Device& dev, const plan::ShardingPlan& plan, const Resolved& src, const Resolved& dst);
// Where rank `rank`'s rows of a trainable tensor (in its unit's state partition) sit in a buffer:
// in the rank's own shard of that partition, or among all rows of a 1-shard layout.
std::int64_t own_rows_offset(const plan::ShardingPlan& plan, const plan::BufferSpec& b, int unit, int tensor, std::int64_t rank);
// This rank's rows of every trainable tensor of src's unit, from src to dst, converting on the
// device; across sides the dtypes must agree. Padding and other rows of dst are left as they are.
void copy_own_rows(Device& dev, const plan::ShardingPlan& plan, const Resolved& src, const Resolved& dst, std::int64_t rank);
// Where a reduction's result lands, tensor by tensor: this rank's rows of each tensor `reduced`
// lays out, added into the result buffer of its unit when that is a shard, or written over its
// rows when the result holds unsharded gradients.
void land(Device& math, const plan::ShardingPlan& plan, const Resolved& reduced, const std::vector<Resolved>& results,
          std::int64_t rank);

}  // namespace shardsim::exec
