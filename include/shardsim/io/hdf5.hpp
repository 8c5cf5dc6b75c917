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
//                                   bytes, flops, collective, ranks
//   /rank_<r>/memory      compound: t, op_id, step, one int64 column per memory category, total
//   /rank_<r>             attrs: rank, device, host, peak_bytes, peak_<category> (breakdown at
//                                the peak), max_<category>, host_peak_bytes, step_time_s,
//                                compute_time_s, comm_time_s, exposed_comm_s,
//                                comm_<kind>_bytes, comm_<kind>_wire_bytes
//
// Ranks that share one timeline (all of them, in a simulation) share its datasets through
// HDF5 hard links, so a 1024-rank file stays small. Strings are fixed-length ASCII so that
// h5dump and h5py read every field without shardsim.
#include <string>

#include <mpi.h>

#include "shardsim/timeline/timeline.hpp"

namespace shardsim::io {

inline constexpr int kSchemaVersion = 1;

// Writes a whole run from one process (the simulator, or tools).
void write_run_file(const std::string& path, const timeline::RunTimeline& run);

// Collective over `comm`: every rank passes the run's shared attributes and its own timeline
// (run.timelines holds exactly one entry: this rank's); each rank writes its own group of one
// file with parallel HDF5.
void write_run_parallel(const std::string& path, const timeline::RunTimeline& local, MPI_Comm comm);

// Reads a file written by either writer; ranks that share datasets share one timeline.
timeline::RunTimeline read_run_file(const std::string& path);

}  // namespace shardsim::io
