#include "hdf5_format.hpp"

#include <algorithm>
#include <cstring>
#include <map>
#include <optional>

#include "shardsim/core/version.hpp"
#include "shardsim/io/hdf5.hpp"

namespace shardsim::io::detail {

using h5::get_name;
using h5::packed;
using h5::put_name;
using h5::string_type;
using h5::write_attributes;

// ---- strings ----------------------------------------------------------------------------------

std::optional<plan::OpStream> parse_op_stream(const std::string& s) {
    for (int i = 0; i < plan::kOpStreamCount; ++i)
        if (plan::op_stream_name(static_cast<plan::OpStream>(i)) == s) return static_cast<plan::OpStream>(i);
    return std::nullopt;
}

// ---- rows of /rank_<r>/ops and /rank_<r>/memory ------------------------------------------------

void insert(const h5::Datatype& compound, const std::string& name, std::size_t offset, hid_t type) {
    SHARDSIM_H5_CHECK(H5Tinsert(compound.id(), name.c_str(), offset, type));
}

h5::Datatype op_row_type() {
    const h5::Datatype name = string_type(kNameWidth, H5T_CSET_ASCII);
    h5::Datatype t{SHARDSIM_H5_CHECK(H5Tcreate(H5T_COMPOUND, sizeof(OpRow)))};
    insert(t, "op_id", offsetof(OpRow, op_id), H5T_NATIVE_INT32);
    insert(t, "kind", offsetof(OpRow, kind), name.id());
    insert(t, "unit", offsetof(OpRow, unit), H5T_NATIVE_INT32);
    insert(t, "stream", offsetof(OpRow, stream), name.id());
    insert(t, "micro_batch", offsetof(OpRow, micro_batch), H5T_NATIVE_INT32);
    insert(t, "step", offsetof(OpRow, step), H5T_NATIVE_INT32);
    insert(t, "t_start", offsetof(OpRow, t_start), H5T_NATIVE_DOUBLE);
    insert(t, "t_end", offsetof(OpRow, t_end), H5T_NATIVE_DOUBLE);
    insert(t, "bytes", offsetof(OpRow, bytes), H5T_NATIVE_INT64);
    insert(t, "flops", offsetof(OpRow, flops), H5T_NATIVE_DOUBLE);
    insert(t, "collective", offsetof(OpRow, collective), name.id());
    insert(t, "ranks", offsetof(OpRow, ranks), H5T_NATIVE_INT64);
    for (MemCategory c : kAllMemCategories)
        insert(t, "net_" + std::string(category_name(c)),
               offsetof(OpRow, net) + sizeof(std::int64_t) * static_cast<std::size_t>(category_index(c)), H5T_NATIVE_INT64);
    return t;
}

h5::Datatype memory_row_type() {
    h5::Datatype t{SHARDSIM_H5_CHECK(H5Tcreate(H5T_COMPOUND, sizeof(MemoryRow)))};
    insert(t, "t", offsetof(MemoryRow, t), H5T_NATIVE_DOUBLE);
    insert(t, "op_id", offsetof(MemoryRow, op_id), H5T_NATIVE_INT32);
    insert(t, "step", offsetof(MemoryRow, step), H5T_NATIVE_INT32);
    for (MemCategory c : kAllMemCategories)
        insert(t, std::string(category_name(c)),
               offsetof(MemoryRow, by_category) + sizeof(std::int64_t) * static_cast<std::size_t>(category_index(c)),
               H5T_NATIVE_INT64);
    insert(t, "total", offsetof(MemoryRow, total), H5T_NATIVE_INT64);
    return t;
}

RowTypes make_row_types() {
    RowTypes types;
    types.op_memory = op_row_type();
    types.op_file = packed(types.op_memory);
    types.sample_memory = memory_row_type();
    types.sample_file = packed(types.sample_memory);
    return types;
}

OpRow to_row(const OpRecord& op) {
    OpRow row{};
    row.op_id = op.op_id;
    put_name(row.kind, plan::op_kind_name(op.kind));
    row.unit = op.unit;
    put_name(row.stream, plan::op_stream_name(op.stream));
    row.micro_batch = op.micro_batch;
    row.step = op.step;
    row.t_start = op.t_start;
    row.t_end = op.t_end;
    row.bytes = op.bytes;
    row.flops = op.flops;
    put_name(row.collective,
             op.collective >= 0 ? plan::collective_name(static_cast<plan::CollectiveKind>(op.collective)) : "");
    row.ranks = op.ranks;
    for (MemCategory c : kAllMemCategories) row.net[category_index(c)] = op.net[c];
    return row;
}

OpRecord from_row(const OpRow& row, const std::string& dataset, std::size_t index) {
    const auto where = [&] { return dataset + " row " + std::to_string(index); };
    OpRecord op;
    op.op_id = row.op_id;
    const auto kind = plan::parse_op_kind(get_name(row.kind));
    if (!kind) throw Error(where() + ": unknown op kind '" + get_name(row.kind) + "'");
    op.kind = *kind;
    const auto stream = parse_op_stream(get_name(row.stream));
    if (!stream) throw Error(where() + ": unknown stream '" + get_name(row.stream) + "'");
    op.stream = *stream;
    op.unit = row.unit;
    op.micro_batch = row.micro_batch;
    op.step = row.step;
    op.t_start = row.t_start;
    op.t_end = row.t_end;
    op.bytes = row.bytes;
    op.flops = row.flops;
    const std::string collective = get_name(row.collective);
    if (!collective.empty()) {
        const auto c = plan::parse_collective(collective);
        if (!c) throw Error(where() + ": unknown collective '" + collective + "'");
        op.collective = static_cast<int>(*c);
    }
    op.ranks = row.ranks;
    for (MemCategory c : kAllMemCategories) op.net[c] = row.net[category_index(c)];
    return op;
}

MemoryRow to_row(const MemorySample& m) {
    MemoryRow row{};
    row.t = m.t;
    row.op_id = m.op_id;
    row.step = m.step;
    for (MemCategory c : kAllMemCategories) row.by_category[category_index(c)] = m.bytes[c];
    row.total = m.bytes.device_total();
    return row;
}

MemorySample from_row(const MemoryRow& row) {
    MemorySample m;
    m.t = row.t;
    m.op_id = row.op_id;
    m.step = row.step;
    for (MemCategory c : kAllMemCategories) m.bytes[c] = row.by_category[category_index(c)];
    return m;
}

// ---- attributes -------------------------------------------------------------------------------

bool is_standard_root(const std::string& name) {
    if (name == "schema_version" || name == "shardsim_version") return true;
    for (const auto& t : kRootTexts)
        if (name == t.name) return true;
    for (const auto& c : kRootCounts)
        if (name == c.name) return true;
    return false;
}

std::vector<Attr> root_attributes(const RunTimeline& run) {
    std::vector<Attr> attrs = {{"schema_version", std::int64_t{kSchemaVersion}}, {"shardsim_version", version()}};
    for (const auto& t : kRootTexts) attrs.push_back({t.name, run.*t.member});
    for (const auto& c : kRootCounts) attrs.push_back({c.name, run.*c.member});
    for (const auto& [name, value] : run.attributes) {
        if (is_standard_root(name))
            throw Error("run attribute '" + name + "' would replace the standard root attribute of that name");
        attrs.push_back({name, value});
    }
    return attrs;
}

template <class V>
V value_or_zero(const std::map<int, V>& m, int key) {
    const auto it = m.find(key);
    return it == m.end() ? V{} : it->second;
}

// Every rank's list has the same names in the same order (write_run_parallel relies on it).
std::vector<Attr> rank_attributes(std::int64_t rank, const RankTimeline& tl, const RankSummary& s) {
    std::vector<Attr> a = {{"rank", rank}, {"device", tl.device}, {"host", tl.host}, {"peak_bytes", s.peak_bytes}};
    for (MemCategory c : kAllMemCategories) a.push_back({"peak_" + std::string(category_name(c)), s.peak_breakdown[c]});
    for (MemCategory c : kAllMemCategories) a.push_back({"max_" + std::string(category_name(c)), s.max_by_category[c]});
    a.push_back({"host_peak_bytes", s.host_peak_bytes});
    a.push_back({"step_time_s", s.step_time});
    a.push_back({"compute_time_s", s.compute_time});
    a.push_back({"comm_time_s", s.comm_time});
    a.push_back({"exposed_comm_s", s.exposed_comm});
    for (int k = 0; k < plan::kCollectiveKindCount; ++k) {
        const std::string name = plan::collective_name(static_cast<plan::CollectiveKind>(k));
        a.push_back({"comm_" + name + "_bytes", value_or_zero(s.comm_size_bytes, k)});
        a.push_back({"comm_" + name + "_wire_bytes", value_or_zero(s.comm_wire_bytes, k)});
    }
    return a;
}

// ---- groups and datasets ----------------------------------------------------------------------

h5::Group create_rank_group(hid_t file, std::int64_t rank, const std::vector<Attr>& attrs) {
    h5::Group group{SHARDSIM_H5_CHECK(
        H5Gcreate2(file, rank_group_name(rank).c_str(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT))};
    write_attributes(group.id(), attrs);
    return group;
}

h5::Dataset create_table(hid_t loc, const char* name, const h5::Datatype& file_type, std::size_t rows) {
    const hsize_t dims[1] = {rows};
    const h5::Dataspace space{SHARDSIM_H5_CHECK(H5Screate_simple(1, dims, nullptr))};
    return h5::Dataset{
        SHARDSIM_H5_CHECK(H5Dcreate2(loc, name, file_type.id(), space.id(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT))};
}

// /units: one fixed-length string per unit, as wide as the longest name.
void write_units(hid_t file, const std::vector<std::string>& names, bool with_data) {
    std::size_t width = 1;
    for (const auto& n : names) width = std::max(width, n.size() + 1);
    const h5::Datatype type = string_type(width, H5T_CSET_ASCII);
    const h5::Dataset units = create_table(file, "units", type, names.size());
    if (!with_data || names.empty()) return;
    std::vector<char> packed_names(names.size() * width, '\0');
    for (std::size_t i = 0; i < names.size(); ++i) std::memcpy(&packed_names[i * width], names[i].data(), names[i].size());
    SHARDSIM_H5_CHECK(H5Dwrite(units.id(), type.id(), H5S_ALL, H5S_ALL, H5P_DEFAULT, packed_names.data()));
}

// Earliest format 1.8: an attribute over 64 KiB (a long INI text) then moves to dense storage
// instead of failing.
h5::PropList file_access() {
    h5::PropList fapl{SHARDSIM_H5_CHECK(H5Pcreate(H5P_FILE_ACCESS))};
    SHARDSIM_H5_CHECK(H5Pset_libver_bounds(fapl.id(), H5F_LIBVER_V18, H5F_LIBVER_LATEST));
    return fapl;
}

}  // namespace shardsim::io::detail
