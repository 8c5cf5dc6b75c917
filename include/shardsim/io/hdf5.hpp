#pragma once
// The HDF5 timeline file (schema_version 1), the same for `simulate` and `run`:
//
//   /                     attrs: schema_version, shardsim_version, mode (simulate|run), backend,
//                                job_name, job (INI text), topology (INI text), effective_job,
//                                effective_topology, world_size, gpu_memory_bytes,
//                                host_memory_bytes, gpus_per_node, steps, param_count,
//                                trainable_param_count, and any RunTimeline::attributes entry
//   /units                dataset of strings: unit names; ops.unit indexes it
//   /rank_<r>/ops         compound: op_id, kind, unit, stream, micro_batch, step, t_start, t_end,
//                                   bytes, flops, collective, ranks,
//                                   net_<category> (bytes the op allocated minus freed)
//   /rank_<r>/memory      compound: t, op_id, step, one int64 column per memory category, total
//   /rank_<r>             attrs: rank, device, host, peak_bytes, peak_<category> (breakdown at
//                                the peak), max_<category>, host_peak_bytes, step_time_s,
//                                compute_time_s, comm_time_s, exposed_comm_s,
//                                comm_<kind>_bytes, comm_<kind>_wire_bytes
//
// Ranks that share one timeline (all of them, in a simulation) share its datasets through
// HDF5 hard links, so a 1024-rank file stays small; the parallel writer gives every rank its
// own datasets. Strings are fixed-length so that h5dump and h5py read every field without
// shardsim (h5py gives them as bytes):
//   - attributes: scalar, NUL-terminated, UTF-8 (INI texts are the user's), one byte longer
//     than the text; integers int64, reals float64, both little-endian. Attributes over
//     64 KiB (long INI texts) go to dense storage, hence the 1.8 file format at the least.
//   - compound columns kind, stream, collective: 16 bytes, NUL-terminated ASCII; collective is
//     "" for ops that are not collectives. op_id, unit, micro_batch, step are int32 (unit and
//     micro_batch -1 for none); bytes, ranks and the memory columns int64; times in seconds
//     from the start of the step and flops float64. `total` is the device total (all
//     categories but `offloaded`).
//   - /units: NUL-terminated ASCII, as wide as the longest name plus one.
// comm_<kind>_bytes sum nccl-tests sizes (int64), comm_<kind>_wire_bytes the bytes this rank
// put on the wire (float64); every collective kind is present, 0 when unused.
// The reader rebuilds each class's timeline from its datasets and the device and host
// attributes; further string attributes at the root come back in RunTimeline::attributes.
#include <string>

#include <mpi.h>

#include "shardsim/timeline/timeline.hpp"

namespace shardsim::io {

inline constexpr int kSchemaVersion = 1;

// Writes a whole run from one process (the simulator, or tools).
void write_run_file(const std::string& path, const timeline::RunTimeline& run);

// Collective over `comm`: every rank passes the run's shared attributes and its own timeline
// (run.timelines holds exactly one entry: this rank's; class_of_rank is ignored, world_size must
// be the size of `comm`, group r is rank r of `comm`); each rank writes its own group of one
// file with parallel HDF5. Bad input anywhere makes every rank throw before the file is created.
// An HDF5 failure later is thrown on the rank that hit it only: the caller aborts the job.
void write_run_parallel(const std::string& path, const timeline::RunTimeline& local, MPI_Comm comm);

// Reads a file written by either writer; ranks that share datasets share one timeline.
timeline::RunTimeline read_run_file(const std::string& path);

}  // namespace shardsim::io
