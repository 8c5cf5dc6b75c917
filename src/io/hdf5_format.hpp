#pragma once
// The timeline file's layout, shared by its writers (hdf5.cpp) and its reader (hdf5_read.cpp):
// the rows of /rank_<r>/ops and /rank_<r>/memory, the attributes, the groups and datasets.
// Private to io/; the format itself is documented in the README.
#include <hdf5.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "shardsim/core/error.hpp"
#include "shardsim/io/h5_handles.hpp"
#include "shardsim/io/h5_util.hpp"
#include "shardsim/timeline/timeline.hpp"

namespace shardsim::io::detail {

using timeline::MemorySample;
using timeline::OpRecord;
using timeline::RankSummary;
using timeline::RankTimeline;
using timeline::RunTimeline;

// Op kinds, streams and collectives are short words from fixed tables: one width fits them all.
constexpr std::size_t kNameWidth = 16;  // NUL included

struct OpRow {
    std::int32_t op_id;
    char kind[kNameWidth];
    std::int32_t unit;
    char stream[kNameWidth];
    std::int32_t micro_batch;
    std::int32_t step;
    double t_start;
    double t_end;
    std::int64_t bytes;
    double flops;
    char collective[kNameWidth];
    std::int64_t ranks;
    std::int64_t net[kMemCategoryCount];  // bytes the op allocated minus freed, per category
};

struct MemoryRow {
    double t;
    std::int32_t op_id;
    std::int32_t step;
    std::int64_t by_category[kMemCategoryCount];
    std::int64_t total;
};

// One optimizer step of one rank, summarised (/rank_<r>/steps): what a reader wants per step
// without replaying the ops. Written, never read back (the reader recomputes it from the ops).
struct StepRow {
    std::int32_t step;
    double t_start_s, t_end_s;  // on the file's time axis
    double step_time_s, compute_time_s, comm_time_s, exposed_comm_s, copy_time_s, host_time_s;
    double flops;
    std::int64_t peak_bytes;
    std::int32_t peak_op;
    std::int64_t peak_by_category[kMemCategoryCount];  // the breakdown at the step's peak
    std::int64_t max_by_category[kMemCategoryCount];   // each category's own maximum in the step
    std::int64_t host_peak_bytes;
    std::int64_t comm_bytes[plan::kCollectiveKindCount];       // nccl-tests sizes, summed per kind
    double comm_wire_bytes[plan::kCollectiveKindCount];        // bytes this rank put on the wire
};

// Units of the columns that have one, written as attributes "<column>.units" on each dataset.
inline constexpr const char* kSeconds = "seconds";
inline constexpr const char* kBytes = "bytes";
inline constexpr const char* kFlops = "FLOPs";

// Each row type as an HDF5 compound twice: in memory (the struct, padding included) and in the
// file (packed), with the unit of each column that has one. Reads match members by name, so the
// reader does not depend on column order.
struct RowType {
    h5::Datatype memory, file;
    std::vector<h5::Attr> units;  // "<column>.units" = "seconds" | "bytes" | "FLOPs"
};
struct RowTypes {
    RowType op, sample, step;
};

// Row types as HDF5 compounds (in memory and packed in the file), and the conversions.
RowTypes make_row_types();
std::vector<StepRow> step_rows(const RankTimeline& tl);
OpRow to_row(const OpRecord& op);
OpRecord from_row(const OpRow& row, const std::string& dataset, std::size_t index);  // names "<dataset> row <index>" in errors
MemoryRow to_row(const MemorySample& m);
MemorySample from_row(const MemoryRow& row);

template <class Row, class Record>
std::vector<Row> rows_of(const std::vector<Record>& records) {
    std::vector<Row> rows;
    rows.reserve(records.size());
    for (const auto& r : records) rows.push_back(to_row(r));
    return rows;
}

using h5::Attr;

// The root attributes that are RunTimeline fields: one table for the writer and the reader.
struct RootText {
    const char* name;
    std::string RunTimeline::*member;
};
struct RootCount {
    const char* name;
    std::int64_t RunTimeline::*member;
};
constexpr RootText kRootTexts[] = {
    {"mode", &RunTimeline::mode},         {"backend", &RunTimeline::backend},
    {"job_name", &RunTimeline::job_name}, {"job", &RunTimeline::job_text},
    {"topology", &RunTimeline::topology_text},
};
constexpr RootCount kRootCounts[] = {
    {"world_size", &RunTimeline::world_size},
    {"gpu_memory_bytes", &RunTimeline::gpu_memory_bytes},
    {"host_memory_bytes", &RunTimeline::host_memory_bytes},
    {"gpus_per_node", &RunTimeline::gpus_per_node},
    {"steps", &RunTimeline::steps},
    {"param_count", &RunTimeline::param_count},
    {"trainable_param_count", &RunTimeline::trainable_param_count},
};
// Added after schema 2 was first written: read when present (0 otherwise).
constexpr RootCount kRootOptionalCounts[] = {
    {"host_process_bytes", &RunTimeline::host_process_bytes},
    {"host_pinned_slack_bytes", &RunTimeline::host_pinned_slack_bytes},
    {"host_is_device", &RunTimeline::host_is_device},
    {"reported_host_bytes", &RunTimeline::reported_host_bytes},
};

bool is_standard_root(const std::string& name);
std::vector<Attr> root_attributes(const RunTimeline& run);
// Every rank's list has the same names in the same order (write_run_parallel relies on it).
std::vector<Attr> rank_attributes(std::int64_t rank, const RankTimeline& tl);

inline std::string rank_group_name(std::int64_t rank) { return "rank_" + std::to_string(rank); }
h5::Group create_rank_group(hid_t file, std::int64_t rank, const std::vector<Attr>& attrs);
// A one-dimensional dataset of `rows` rows of `type`, its columns' units as attributes.
h5::Dataset create_table(hid_t loc, const char* name, const RowType& type, std::size_t rows);
template <class Row>
void write_rows(const h5::Dataset& dataset, const RowType& type, const std::vector<Row>& rows) {
    if (rows.empty()) return;  // a zero-row dataset is complete once created
    SHARDSIM_H5_CHECK(H5Dwrite(dataset.id(), type.memory.id(), H5S_ALL, H5S_ALL, H5P_DEFAULT, rows.data()));
}

// Files are written beside their final name and renamed onto it once whole, so that a reader
// never sees half a file at that name.
inline std::string partial_path(const std::string& path) { return path + ".partial"; }
void publish(const std::string& partial, const std::string& path);

// /units: one fixed-length string per unit, as wide as the longest name.
void write_units(hid_t file, const std::vector<std::string>& names, bool with_data);
// /buffers and /op_buffers (RunTimeline::buffers, op_buffers), when the run has them. Written,
// not read back: they describe the plan for readers of the file.
void write_buffer_tables(hid_t file, const RunTimeline& run, bool with_data);
h5::PropList file_access();

}  // namespace shardsim::io::detail
