// The timeline file written step by step (RunFileAppender): the layout is hdf5_format.hpp's, the
// datasets chunked and extended as steps come, the file flushed after each.
#include <algorithm>
#include <filesystem>

#include "hdf5_format.hpp"
#include "shardsim/io/hdf5.hpp"

namespace shardsim::io {

using namespace detail;

namespace {

// Rows per chunk: a step of a small model is a few hundred ops, of a large one a few thousand.
constexpr hsize_t kChunkRows = 1024;
constexpr hsize_t kStepChunkRows = 64;

h5::Dataset create_growing_table(hid_t loc, const char* name, const RowType& type, hsize_t chunk_rows) {
    const hsize_t dims[1] = {0}, max_dims[1] = {H5S_UNLIMITED};
    const h5::Dataspace space{SHARDSIM_H5_CHECK(H5Screate_simple(1, dims, max_dims))};
    const h5::PropList dcpl{SHARDSIM_H5_CHECK(H5Pcreate(H5P_DATASET_CREATE))};
    SHARDSIM_H5_CHECK(H5Pset_chunk(dcpl.id(), 1, &chunk_rows));
    h5::Dataset dataset{SHARDSIM_H5_CHECK(H5Dcreate2(loc, name, type.file.id(), space.id(), H5P_DEFAULT, dcpl.id(), H5P_DEFAULT))};
    h5::write_attributes(dataset.id(), type.units);
    return dataset;
}

template <class Row>
void append_rows(const h5::Dataset& dataset, const RowType& type, const std::vector<Row>& rows) {
    if (rows.empty()) return;
    hsize_t old_rows = 0;
    {
        const h5::Dataspace space{SHARDSIM_H5_CHECK(H5Dget_space(dataset.id()))};
        SHARDSIM_H5_CHECK(H5Sget_simple_extent_dims(space.id(), &old_rows, nullptr));
    }
    const hsize_t new_rows[1] = {old_rows + rows.size()};
    SHARDSIM_H5_CHECK(H5Dset_extent(dataset.id(), new_rows));
    const h5::Dataspace file_space{SHARDSIM_H5_CHECK(H5Dget_space(dataset.id()))};
    const hsize_t start[1] = {old_rows}, count[1] = {rows.size()};
    SHARDSIM_H5_CHECK(H5Sselect_hyperslab(file_space.id(), H5S_SELECT_SET, start, nullptr, count, nullptr));
    const h5::Dataspace memory_space{SHARDSIM_H5_CHECK(H5Screate_simple(1, count, nullptr))};
    SHARDSIM_H5_CHECK(H5Dwrite(dataset.id(), type.memory.id(), memory_space.id(), file_space.id(), H5P_DEFAULT, rows.data()));
}

void replace_attribute(hid_t loc, const h5::Attr& a) {
    if (h5::has_attribute(loc, a.name)) SHARDSIM_H5_CHECK(H5Adelete(loc, a.name.c_str()));
    h5::write_attribute(loc, a);
}

}  // namespace

struct RunFileAppender::Tables {
    h5::Group group;
    h5::Dataset ops, memory, steps;
};

RunFileAppender::RunFileAppender(std::string path, const timeline::RunTimeline& header)
    : path_(std::move(path)), header_(header) {
    header_.timelines.clear();
    header_.class_of_rank.clear();
    header_.complete = false;
    header_.completion = "running: no step finished yet";
    const h5::QuietErrors quiet;
    try {
        if (header_.world_size < 1) throw Error("world_size is " + std::to_string(header_.world_size));
        const std::vector<h5::Attr> root = root_attributes(header_);
        const h5::PropList fapl = file_access();
        file_ = h5::File{SHARDSIM_H5_CHECK(H5Fcreate(partial_path(path_).c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, fapl.id()))};
        h5::write_attributes(file_.id(), root);
        write_units(file_.id(), header_.unit_names, true);
        write_buffer_tables(file_.id(), header_, true);
        SHARDSIM_H5_CHECK(H5Fflush(file_.id(), H5F_SCOPE_GLOBAL));
    } catch (const Error& e) {
        throw Error("cannot write timeline file '" + partial_path(path_) + "': " + e.what());
    }
}

RunFileAppender::~RunFileAppender() = default;  // a file not finished stays at path + ".partial"

void RunFileAppender::append(const std::vector<timeline::RankTimeline>& ranks, const std::string& completion) {
    const h5::QuietErrors quiet;
    try {
        if (ranks.size() != static_cast<std::size_t>(header_.world_size))
            throw Error(std::to_string(ranks.size()) + " timelines for world_size " + std::to_string(header_.world_size));
        const RowTypes types = make_row_types();
        for (std::size_t r = 0; r < ranks.size(); ++r) {
            if (tables_.size() <= r) {
                Tables t;
                t.group = create_rank_group(file_.id(), static_cast<std::int64_t>(r), rank_attributes(static_cast<std::int64_t>(r), ranks[r]));
                t.ops = create_growing_table(t.group.id(), "ops", types.op, kChunkRows);
                t.memory = create_growing_table(t.group.id(), "memory", types.sample, kChunkRows);
                t.steps = create_growing_table(t.group.id(), "steps", types.step, kStepChunkRows);
                tables_.push_back(std::move(t));
            }
            const Tables& t = tables_[r];
            append_rows(t.ops, types.op, rows_of<OpRow>(ranks[r].ops));
            append_rows(t.memory, types.sample, rows_of<MemoryRow>(ranks[r].memory));
            append_rows(t.steps, types.step, step_rows(ranks[r]));
        }
        replace_attribute(file_.id(), {"completion", completion});
        // On disk as it stands: a run that dies before the next append leaves this, readable.
        SHARDSIM_H5_CHECK(H5Fflush(file_.id(), H5F_SCOPE_GLOBAL));
    } catch (const Error& e) {
        throw Error("cannot write timeline file '" + partial_path(path_) + "': " + e.what());
    }
}

void RunFileAppender::finish(bool complete, const std::string& completion) {
    const h5::QuietErrors quiet;
    try {
        replace_attribute(file_.id(), {"complete", std::int64_t{complete ? 1 : 0}});
        replace_attribute(file_.id(), {"completion", completion});
        tables_.clear();
        file_.close();
        publish(partial_path(path_), path_);
    } catch (const Error& e) {
        throw Error("cannot write timeline file '" + path_ + "': " + e.what());
    }
}

}  // namespace shardsim::io
