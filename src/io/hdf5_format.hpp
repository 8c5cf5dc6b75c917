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

// Each row type as an HDF5 compound twice: in memory (the struct, padding included) and in the
// file (packed). Reads match members by name, so the reader does not depend on column order.
struct RowTypes {
    h5::Datatype op_memory, op_file, sample_memory, sample_file;
};

// Row types as HDF5 compounds (in memory and packed in the file), and the conversions.
RowTypes make_row_types();
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

bool is_standard_root(const std::string& name);
std::vector<Attr> root_attributes(const RunTimeline& run);
// Every rank's list has the same names in the same order (write_run_parallel relies on it).
std::vector<Attr> rank_attributes(std::int64_t rank, const RankTimeline& tl, const RankSummary& s);

inline std::string rank_group_name(std::int64_t rank) { return "rank_" + std::to_string(rank); }
h5::Group create_rank_group(hid_t file, std::int64_t rank, const std::vector<Attr>& attrs);
h5::Dataset create_table(hid_t loc, const char* name, const h5::Datatype& file_type, std::size_t rows);
template <class Row>
void write_rows(const h5::Dataset& dataset, const h5::Datatype& memory_type, const std::vector<Row>& rows) {
    if (rows.empty()) return;  // a zero-row dataset is complete once created
    SHARDSIM_H5_CHECK(H5Dwrite(dataset.id(), memory_type.id(), H5S_ALL, H5S_ALL, H5P_DEFAULT, rows.data()));
}

// /units: one fixed-length string per unit, as wide as the longest name.
void write_units(hid_t file, const std::vector<std::string>& names, bool with_data);
h5::PropList file_access();

}  // namespace shardsim::io::detail
