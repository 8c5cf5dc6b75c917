#pragma once
// The HDF5 timeline file (schema_version 2; docs/hdf5.md is its reference), the same for
// `simulate` and `run`:
//
//   /                     attrs: schema_version, shardsim_version, mode (simulate|run), backend,
//                                job_name, job (INI text), topology (INI text), effective_job,
//                                effective_topology, effective_model, world_size,
//                                gpu_memory_bytes, host_memory_bytes, gpus_per_node, steps (asked
//                                for), param_count, trainable_param_count, complete (1 | 0),
//                                completion, and any RunTimeline::attributes entry
//   /units                dataset of strings: unit names; ops.unit indexes it
//   /rank_<r>/ops         compound: op_id, kind, unit, stream, micro_batch, step, t_start, t_end,
//                                   bytes, flops, collective, ranks,
//                                   net_<category> (bytes the op allocated minus freed)
//   /rank_<r>/memory      compound: t, op_id, step, one int64 column per memory category, total
//   /rank_<r>/steps       compound, one row per recorded step: step, t_start_s, t_end_s,
//                                   step_time_s, compute_time_s, comm_time_s, exposed_comm_s,
//                                   copy_time_s, host_time_s, flops, peak_bytes, peak_op,
//                                   peak_<category> (breakdown at the peak), max_<category>,
//                                   host_peak_bytes, comm_<kind>_bytes, comm_<kind>_wire_bytes
//   /rank_<r>             attrs: rank, device, host
// Every column with a unit has an attribute "<column>.units" on its dataset: "seconds",
// "bytes" or "FLOPs".
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
//     micro_batch -1 for none); bytes, ranks and the memory columns int64; times in seconds on
//     the run's time axis (steps back to back) and flops float64. `total` is the device total
//     (all categories but `offloaded`).
//   - /units: NUL-terminated ASCII, as wide as the longest name plus one.
// The reader rebuilds each class's timeline from its datasets and the device and host
// attributes; further string attributes at the root come back in RunTimeline::attributes. It
// reads schema_version 1 files too (no steps dataset, no completeness: taken as complete).
#include <string>

#include <mpi.h>

#include "shardsim/io/h5_handles.hpp"
#include "shardsim/timeline/timeline.hpp"

namespace shardsim::io {

inline constexpr int kSchemaVersion = 2;
inline constexpr int kOldestReadableSchema = 1;

// `option` (e.g. "--out") names a timeline file to write: refuses, with one line naming the
// option, the path and why, an empty path, a folder, something that is not a regular file (a
// device such as /dev/full), a missing folder, and a folder where no file can be created.
// Throws InputError; call it before the work whose result goes there.
void check_output_path(const std::string& option, const std::string& path);

// Writes a whole run from one process (the simulator, or tools). The file is written to
// `path` + ".partial" and renamed to `path` once complete (a reader never sees half of it).
void write_run_file(const std::string& path, const timeline::RunTimeline& run);

// Collective over `comm`: every rank passes the run's shared attributes and its own timeline
// (run.timelines holds exactly one entry: this rank's; class_of_rank is ignored, world_size must
// be the size of `comm`, group r is rank r of `comm`); each rank writes its own group of one
// file with parallel HDF5. Bad input anywhere makes every rank throw before the file is created.
// An HDF5 failure later is thrown on the rank that hit it only: the caller aborts the job.
// Published by rename as write_run_file is (rank 0 renames once every rank has written).
void write_run_parallel(const std::string& path, const timeline::RunTimeline& local, MPI_Comm comm);

// The file of a run that is still going, written as its steps finish (one process writes it: the
// measured run's rank 0). It lives at `path` + ".partial" while the run goes, with complete = 0,
// and is flushed after every append, so a process that dies between appends leaves a readable
// file with every step appended so far. finish() sets complete and completion, closes it and
// renames it to `path`. Every rank is its own class (no hard links).
class RunFileAppender {
public:
    // `header`: the run's attributes and unit names (its timelines are ignored).
    RunFileAppender(std::string path, const timeline::RunTimeline& header);
    ~RunFileAppender();  // without finish(): the file stays at path + ".partial"
    RunFileAppender(const RunFileAppender&) = delete;
    RunFileAppender& operator=(const RunFileAppender&) = delete;

    // One or more finished steps of every rank (ranks[r]: rank r's ops and samples of them), and
    // what the file says of itself until the next append ("running: ...").
    void append(const std::vector<timeline::RankTimeline>& ranks, const std::string& completion);
    void finish(bool complete, const std::string& completion);

private:
    struct Tables;
    std::string path_;
    timeline::RunTimeline header_;
    h5::File file_;
    std::vector<Tables> tables_;
};

// Reads a file written by either writer; ranks that share datasets share one timeline.
timeline::RunTimeline read_run_file(const std::string& path);

}  // namespace shardsim::io
