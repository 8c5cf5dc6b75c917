// The timeline file's reader (the writers are in hdf5.cpp, the layout in hdf5_format.hpp).
#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "hdf5_format.hpp"
#include "shardsim/core/error.hpp"
#include "shardsim/io/hdf5.hpp"

namespace shardsim::io {

namespace {

using namespace detail;
using h5::has_attribute;
using h5::nul_padded;
using h5::open_dataset;
using h5::read_int_attribute;
using h5::read_text_attribute;

// ---- the reader -----------------------------------------------------------------------------------

herr_t collect_name(hid_t, const char* name, const H5A_info_t*, void* out) noexcept {
    try {
        static_cast<std::vector<std::string>*>(out)->emplace_back(name);
        return 0;
    } catch (...) {
        return -1;
    }
}

std::vector<std::string> attribute_names(hid_t loc) {
    std::vector<std::string> names;
    hsize_t index = 0;
    SHARDSIM_H5_CHECK(H5Aiterate2(loc, H5_INDEX_NAME, H5_ITER_INC, &index, collect_name, &names));
    return names;
}

std::int64_t check_schema(hid_t file) {
    if (!has_attribute(file, "schema_version"))
        throw Error("no schema_version attribute: not a shardsim timeline file");
    const std::int64_t version = read_int_attribute(file, "/", "schema_version");
    if (version < kOldestReadableSchema || version > kSchemaVersion)
        throw Error("schema_version is " + std::to_string(version) + ", this shardsim reads " +
                    std::to_string(kOldestReadableSchema) + " to " + std::to_string(kSchemaVersion));
    return version;
}

// Further string attributes become RunTimeline::attributes; other extra attributes are skipped.
// Schema 1 had no completeness attributes: its files were written whole, at the end.
RunTimeline read_root(hid_t file, std::int64_t schema) {
    RunTimeline run;
    for (const auto& t : kRootTexts) run.*t.member = read_text_attribute(file, "/", t.name);
    for (const auto& c : kRootCounts) run.*c.member = read_int_attribute(file, "/", c.name);
    for (const auto& c : kRootOptionalCounts)
        if (has_attribute(file, c.name)) run.*c.member = read_int_attribute(file, "/", c.name);
    if (schema >= 2) {
        run.complete = read_int_attribute(file, "/", "complete") != 0;
        run.completion = read_text_attribute(file, "/", "completion");
    }
    for (const auto& name : attribute_names(file)) {
        if (is_standard_root(name)) continue;
        const h5::Attribute attr{SHARDSIM_H5_CHECK(H5Aopen(file, name.c_str(), H5P_DEFAULT))};
        const h5::Datatype type{SHARDSIM_H5_CHECK(H5Aget_type(attr.id()))};
        if (H5Tget_class(type.id()) == H5T_STRING) run.attributes[name] = read_text_attribute(file, "/", name);
    }
    return run;
}

std::size_t row_count(const h5::Dataset& dataset, const std::string& where) {
    const h5::Dataspace space{SHARDSIM_H5_CHECK(H5Dget_space(dataset.id()))};
    if (SHARDSIM_H5_CHECK(H5Sget_simple_extent_ndims(space.id())) != 1) throw Error(where + " is not one-dimensional");
    return static_cast<std::size_t>(SHARDSIM_H5_CHECK(H5Sget_simple_extent_npoints(space.id())));
}

// HDF5 would leave a member missing from the file silently unset; name it instead.
void require_columns(const h5::Dataset& dataset, const h5::Datatype& memory_type, const std::string& where) {
    const h5::Datatype file_type{SHARDSIM_H5_CHECK(H5Dget_type(dataset.id()))};
    if (H5Tget_class(file_type.id()) != H5T_COMPOUND) throw Error(where + " is not a compound dataset");
    const int n = SHARDSIM_H5_CHECK(H5Tget_nmembers(memory_type.id()));
    for (int i = 0; i < n; ++i) {
        char* raw = H5Tget_member_name(memory_type.id(), static_cast<unsigned>(i));
        const std::string name = raw != nullptr ? raw : "";
        H5free_memory(raw);
        if (H5Tget_member_index(file_type.id(), name.c_str()) < 0)
            throw Error(where + " has no column '" + name + "'");
    }
}

template <class Row>
std::vector<Row> read_rows(const h5::Dataset& dataset, const h5::Datatype& memory_type, const std::string& where) {
    require_columns(dataset, memory_type, where);
    std::vector<Row> rows(row_count(dataset, where));
    if (!rows.empty())
        SHARDSIM_H5_CHECK(H5Dread(dataset.id(), memory_type.id(), H5S_ALL, H5S_ALL, H5P_DEFAULT, rows.data()));
    return rows;
}

std::vector<std::string> read_units(hid_t file) {
    const h5::Dataset units = open_dataset(file, "/units");
    const h5::Datatype type{SHARDSIM_H5_CHECK(H5Dget_type(units.id()))};
    if (H5Tget_class(type.id()) != H5T_STRING || SHARDSIM_H5_CHECK(H5Tis_variable_str(type.id())) > 0)
        throw Error("/units is not a dataset of fixed-length strings");
    const h5::Datatype memory_type = nul_padded(type);
    const std::size_t width = H5Tget_size(memory_type.id());
    const std::size_t n = row_count(units, "/units");
    std::vector<char> packed_names(n * width);
    if (n > 0) SHARDSIM_H5_CHECK(H5Dread(units.id(), memory_type.id(), H5S_ALL, H5S_ALL, H5P_DEFAULT, packed_names.data()));
    std::vector<std::string> names;
    for (std::size_t i = 0; i < n; ++i) {
        const char* begin = &packed_names[i * width];
        names.emplace_back(begin, static_cast<std::size_t>(std::find(begin, begin + width, '\0') - begin));
    }
    return names;
}

// The identity of an object in its file: two links to one dataset give the same key.
std::string object_key(hid_t object) {
#if H5_VERSION_GE(1, 12, 0)
    H5O_info2_t info;
    SHARDSIM_H5_CHECK(H5Oget_info3(object, &info, H5O_INFO_BASIC));
    return std::string(reinterpret_cast<const char*>(&info.token), sizeof info.token);
#else
    H5O_info_t info;
    SHARDSIM_H5_CHECK(H5Oget_info2(object, &info, H5O_INFO_BASIC));
    return std::to_string(info.addr);
#endif
}

RankTimeline read_rank(hid_t group, std::int64_t rank, const h5::Dataset& ops, const h5::Dataset& memory,
                       const RowTypes& types) {
    const std::string where = "/" + rank_group_name(rank);
    RankTimeline tl;
    tl.rank = static_cast<int>(rank);
    tl.device = read_text_attribute(group, where, "device");
    tl.host = read_text_attribute(group, where, "host");
    for (auto [name, member] : {std::pair{"allocated_peak_bytes", &RankTimeline::allocated_peak_bytes},
                                std::pair{"reserved_peak_bytes", &RankTimeline::reserved_peak_bytes}})
        if (h5::has_attribute(group, name)) tl.*member = read_int_attribute(group, where, name);
    const auto op_rows = read_rows<OpRow>(ops, types.op.memory, where + "/ops");
    for (std::size_t i = 0; i < op_rows.size(); ++i)
        tl.ops.push_back(from_row(op_rows[i], where + "/ops row " + std::to_string(i)));
    for (const auto& row : read_rows<MemoryRow>(memory, types.sample.memory, where + "/memory"))
        tl.memory.push_back(from_row(row));
    return tl;
}

// Ranks whose ops and memory are the same objects (hard links) share one timeline class.
void read_ranks(hid_t file, RunTimeline& run) {
    if (run.world_size < 1) throw Error("world_size is " + std::to_string(run.world_size));
    const RowTypes types = make_row_types();
    std::map<std::string, int> class_of_key;
    for (std::int64_t r = 0; r < run.world_size; ++r) {
        const std::string where = "/" + rank_group_name(r);
        if (SHARDSIM_H5_CHECK(H5Lexists(file, where.c_str(), H5P_DEFAULT)) <= 0) throw Error("no group " + where);
        const h5::Group group{SHARDSIM_H5_CHECK(H5Gopen2(file, where.c_str(), H5P_DEFAULT))};
        const h5::Dataset ops = open_dataset(file, where + "/ops");
        const h5::Dataset memory = open_dataset(file, where + "/memory");
        const auto [it, added] = class_of_key.try_emplace(object_key(ops.id()) + "|" + object_key(memory.id()),
                                                          static_cast<int>(run.timelines.size()));
        if (added) run.timelines.push_back(read_rank(group.id(), r, ops, memory, types));
        run.class_of_rank.push_back(it->second);
    }
}

}  // namespace

RunTimeline read_run_file(const std::string& path) {
    // The user named the file: whatever is wrong with it is bad input (exit 2), said in one line.
    const std::string prefix = "cannot read timeline file '" + path + "': ";
    const std::string allowed = " (allowed: a file written by shardsim simulate --out, run --out or validate --out-sim/--out-run)";
    std::error_code ec;
    if (!std::filesystem::exists(path, ec)) throw InputError(prefix + "no such file" + allowed);
    if (!std::filesystem::is_regular_file(path, ec)) throw InputError(prefix + "not a regular file" + allowed);
    const h5::QuietErrors quiet;
    const hid_t id = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
    if (id < 0) throw InputError(prefix + "not an HDF5 file, or not readable" + allowed);
    const h5::File file{id};
    try {
        RunTimeline run = read_root(file.id(), check_schema(file.id()));
        run.unit_names = read_units(file.id());
        read_ranks(file.id(), run);
        return run;
    } catch (const Error& e) {
        throw InputError(prefix + e.what() + allowed);
    }
}

}  // namespace shardsim::io
