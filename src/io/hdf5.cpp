#include "shardsim/io/hdf5.hpp"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "shardsim/comm/mpi.hpp"
#include "shardsim/core/error.hpp"
#include "shardsim/core/version.hpp"
#include "shardsim/io/h5_handles.hpp"

namespace shardsim::io {

namespace {

using timeline::MemorySample;
using timeline::OpRecord;
using timeline::RankSummary;
using timeline::RankTimeline;
using timeline::RunTimeline;


// ---- strings ----------------------------------------------------------------------------------

// Op kinds, streams and collectives are short words from fixed tables: one width fits them all.
constexpr std::size_t kNameWidth = 16;  // NUL included

h5::Datatype string_type(std::size_t size, H5T_cset_t cset) {
    h5::Datatype t{SHARDSIM_H5_CHECK(H5Tcopy(H5T_C_S1))};
    SHARDSIM_H5_CHECK(H5Tset_size(t.id(), size));
    SHARDSIM_H5_CHECK(H5Tset_strpad(t.id(), H5T_STR_NULLTERM));
    SHARDSIM_H5_CHECK(H5Tset_cset(t.id(), cset));
    return t;
}

void put_name(char (&dst)[kNameWidth], const std::string& s) {
    SHARDSIM_ASSERT(s.size() < kNameWidth, "name '" + s + "' is too long for an HDF5 name column");
    std::memset(dst, 0, kNameWidth);
    std::memcpy(dst, s.data(), s.size());
}

std::string get_name(const char (&src)[kNameWidth]) {
    return std::string(src, static_cast<std::size_t>(std::find(src, src + kNameWidth, '\0') - src));
}

std::optional<plan::OpStream> parse_op_stream(const std::string& s) {
    for (int i = 0; i < plan::kOpStreamCount; ++i)
        if (plan::op_stream_name(static_cast<plan::OpStream>(i)) == s) return static_cast<plan::OpStream>(i);
    return std::nullopt;
}

// ---- rows of /rank_<r>/ops and /rank_<r>/memory ------------------------------------------------

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

void insert(const h5::Datatype& compound, const std::string& name, std::size_t offset, hid_t type) {
    SHARDSIM_H5_CHECK(H5Tinsert(compound.id(), name.c_str(), offset, type));
}

h5::Datatype packed(const h5::Datatype& t) {
    h5::Datatype p{SHARDSIM_H5_CHECK(H5Tcopy(t.id()))};
    SHARDSIM_H5_CHECK(H5Tpack(p.id()));
    return p;
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

OpRecord from_row(const OpRow& row, const std::string& where) {
    OpRecord op;
    op.op_id = row.op_id;
    const auto kind = plan::parse_op_kind(get_name(row.kind));
    if (!kind) throw Error(where + ": unknown op kind '" + get_name(row.kind) + "'");
    op.kind = *kind;
    const auto stream = parse_op_stream(get_name(row.stream));
    if (!stream) throw Error(where + ": unknown stream '" + get_name(row.stream) + "'");
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
        if (!c) throw Error(where + ": unknown collective '" + collective + "'");
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

template <class Row, class Record>
std::vector<Row> rows_of(const std::vector<Record>& records) {
    std::vector<Row> rows;
    rows.reserve(records.size());
    for (const auto& r : records) rows.push_back(to_row(r));
    return rows;
}

// ---- attributes -------------------------------------------------------------------------------

using AttrValue = std::variant<std::int64_t, double, std::string>;
struct Attr {
    std::string name;
    AttrValue value;
};

// Numbers are stored little-endian whatever the host; strings as scalar fixed-length, NUL-
// terminated UTF-8 (a user's INI text may hold any character), which h5py reads as bytes.
void write_attribute(hid_t loc, const Attr& a) {
    const h5::Dataspace scalar{SHARDSIM_H5_CHECK(H5Screate(H5S_SCALAR))};
    h5::Datatype text;
    hid_t file_type = H5T_STD_I64LE;
    hid_t memory_type = H5T_NATIVE_INT64;
    const void* data = std::get_if<std::int64_t>(&a.value);
    if (const auto* real = std::get_if<double>(&a.value)) {
        file_type = H5T_IEEE_F64LE;
        memory_type = H5T_NATIVE_DOUBLE;
        data = real;
    } else if (const auto* s = std::get_if<std::string>(&a.value)) {
        text = string_type(s->size() + 1, H5T_CSET_UTF8);
        file_type = memory_type = text.id();
        data = s->c_str();
    }
    const h5::Attribute attr{
        SHARDSIM_H5_CHECK(H5Acreate2(loc, a.name.c_str(), file_type, scalar.id(), H5P_DEFAULT, H5P_DEFAULT))};
    SHARDSIM_H5_CHECK(H5Awrite(attr.id(), memory_type, data));
}

void write_attributes(hid_t loc, const std::vector<Attr>& attrs) {
    for (const auto& a : attrs) write_attribute(loc, a);
}

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

std::string rank_group_name(std::int64_t rank) { return "rank_" + std::to_string(rank); }

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

template <class Row>
void write_rows(const h5::Dataset& dataset, const h5::Datatype& memory_type, const std::vector<Row>& rows) {
    if (rows.empty()) return;  // a zero-row dataset is complete once created
    SHARDSIM_H5_CHECK(H5Dwrite(dataset.id(), memory_type.id(), H5S_ALL, H5S_ALL, H5P_DEFAULT, rows.data()));
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

// ---- the one-process writer --------------------------------------------------------------------

void check_classes(const RunTimeline& run) {
    if (run.world_size < 1) throw Error("world_size is " + std::to_string(run.world_size));
    if (run.class_of_rank.size() != static_cast<std::size_t>(run.world_size))
        throw Error("class_of_rank has " + std::to_string(run.class_of_rank.size()) + " entries for world_size " +
                    std::to_string(run.world_size));
    for (std::size_t r = 0; r < run.class_of_rank.size(); ++r) {
        const int c = run.class_of_rank[r];
        if (c < 0 || static_cast<std::size_t>(c) >= run.timelines.size())
            throw Error("class_of_rank[" + std::to_string(r) + "] is " + std::to_string(c) + ", but there are " +
                        std::to_string(run.timelines.size()) + " timelines");
    }
}

// The first rank of each class holds the class's datasets; the other ranks hard-link to them.
void write_ranks(hid_t file, const RunTimeline& run, const RowTypes& types) {
    std::vector<std::optional<RankSummary>> summaries(run.timelines.size());
    std::vector<std::int64_t> holder(run.timelines.size(), -1);
    for (std::int64_t r = 0; r < run.world_size; ++r) {
        const auto c = static_cast<std::size_t>(run.class_of_rank[static_cast<std::size_t>(r)]);
        const RankTimeline& tl = run.timelines[c];
        if (!summaries[c]) summaries[c] = tl.summarize();
        const h5::Group group = create_rank_group(file, r, rank_attributes(r, tl, *summaries[c]));
        if (holder[c] < 0) {
            holder[c] = r;
            const h5::Dataset ops = create_table(group.id(), "ops", types.op_file, tl.ops.size());
            write_rows(ops, types.op_memory, rows_of<OpRow>(tl.ops));
            const h5::Dataset memory = create_table(group.id(), "memory", types.sample_file, tl.memory.size());
            write_rows(memory, types.sample_memory, rows_of<MemoryRow>(tl.memory));
            continue;
        }
        for (const char* table : {"ops", "memory"}) {
            const std::string target = "/" + rank_group_name(holder[c]) + "/" + table;
            SHARDSIM_H5_CHECK(H5Lcreate_hard(file, target.c_str(), group.id(), table, H5P_DEFAULT, H5P_DEFAULT));
        }
    }
}

// ---- the parallel writer -------------------------------------------------------------------------

// Attribute values laid flat so that MPI can gather them. Every rank builds its list with the
// same function, so names and types agree and only the values travel.
struct FlatValues {
    std::vector<std::int64_t> ints;  // integer values and string lengths, in list order
    std::vector<double> reals;
    std::string chars;  // the strings, concatenated
};

FlatValues flatten(const std::vector<Attr>& attrs) {
    FlatValues f;
    for (const auto& a : attrs) {
        if (const auto* i = std::get_if<std::int64_t>(&a.value)) {
            f.ints.push_back(*i);
        } else if (const auto* d = std::get_if<double>(&a.value)) {
            f.reals.push_back(*d);
        } else {
            const auto& s = std::get<std::string>(a.value);
            f.ints.push_back(static_cast<std::int64_t>(s.size()));
            f.chars += s;
        }
    }
    return f;
}

// `shape` gives the names and types; the values come from one rank's part of the gathered arrays.
std::vector<Attr> unflatten(const std::vector<Attr>& shape, const std::int64_t* ints, const double* reals,
                            const char* chars) {
    std::vector<Attr> attrs;
    for (const auto& a : shape) {
        if (std::holds_alternative<std::int64_t>(a.value)) {
            attrs.push_back({a.name, *ints++});
        } else if (std::holds_alternative<double>(a.value)) {
            attrs.push_back({a.name, *reals++});
        } else {
            const auto length = static_cast<std::size_t>(*ints++);
            attrs.push_back({a.name, std::string(chars, length)});
            chars += length;
        }
    }
    return attrs;
}

std::vector<std::vector<Attr>> allgather_attributes(const std::vector<Attr>& mine, MPI_Comm comm, int size) {
    const FlatValues flat = flatten(mine);
    const int n_ints = static_cast<int>(flat.ints.size());
    const int n_reals = static_cast<int>(flat.reals.size());
    std::vector<std::int64_t> ints(flat.ints.size() * static_cast<std::size_t>(size));
    std::vector<double> reals(flat.reals.size() * static_cast<std::size_t>(size));
    SHARDSIM_MPI_CHECK(MPI_Allgather(flat.ints.data(), n_ints, MPI_INT64_T, ints.data(), n_ints, MPI_INT64_T, comm));
    SHARDSIM_MPI_CHECK(MPI_Allgather(flat.reals.data(), n_reals, MPI_DOUBLE, reals.data(), n_reals, MPI_DOUBLE, comm));
    const int n_chars = static_cast<int>(flat.chars.size());
    std::vector<int> counts(static_cast<std::size_t>(size)), offsets(static_cast<std::size_t>(size));
    SHARDSIM_MPI_CHECK(MPI_Allgather(&n_chars, 1, MPI_INT, counts.data(), 1, MPI_INT, comm));
    int total = 0;
    for (int r = 0; r < size; ++r) {
        offsets[static_cast<std::size_t>(r)] = total;
        total += counts[static_cast<std::size_t>(r)];
    }
    std::string chars(static_cast<std::size_t>(total), '\0');
    SHARDSIM_MPI_CHECK(MPI_Allgatherv(flat.chars.data(), n_chars, MPI_CHAR, chars.data(), counts.data(),
                                         offsets.data(), MPI_CHAR, comm));
    std::vector<std::vector<Attr>> all;
    for (std::size_t r = 0; r < static_cast<std::size_t>(size); ++r)
        all.push_back(unflatten(mine, &ints[r * flat.ints.size()], &reals[r * flat.reals.size()],
                                chars.data() + offsets[r]));
    return all;
}

struct TableSizes {
    std::size_t ops = 0;
    std::size_t samples = 0;
};

std::vector<TableSizes> allgather_sizes(const RankTimeline& tl, MPI_Comm comm, int size) {
    const std::int64_t mine[2] = {static_cast<std::int64_t>(tl.ops.size()), static_cast<std::int64_t>(tl.memory.size())};
    std::vector<std::int64_t> all(2 * static_cast<std::size_t>(size));
    SHARDSIM_MPI_CHECK(MPI_Allgather(mine, 2, MPI_INT64_T, all.data(), 2, MPI_INT64_T, comm));
    std::vector<TableSizes> sizes;
    for (std::size_t r = 0; r < static_cast<std::size_t>(size); ++r)
        sizes.push_back({static_cast<std::size_t>(all[2 * r]), static_cast<std::size_t>(all[2 * r + 1])});
    return sizes;
}

std::uint64_t fingerprint(const std::vector<Attr>& root, const std::vector<std::string>& units) {
    const FlatValues f = flatten(root);
    std::string bytes = f.chars;
    bytes.append(reinterpret_cast<const char*>(f.ints.data()), f.ints.size() * sizeof(std::int64_t));
    bytes.append(reinterpret_cast<const char*>(f.reals.data()), f.reals.size() * sizeof(double));
    for (const auto& u : units) bytes += u + '\0';
    return std::hash<std::string>{}(bytes);
}

// Every rank checks its input and all agree on the verdict before the first collective HDF5
// call, so that all ranks throw together instead of some waiting forever in H5Fcreate.
void check_parallel_input(const RunTimeline& local, MPI_Comm comm, int size) {
    enum : int { kNotOneTimeline = 1, kWorldSize = 2, kBadRoot = 4, kRootDiffers = 8 };
    int bad = 0;
    if (local.timelines.size() != 1) bad |= kNotOneTimeline;
    if (local.world_size != size) bad |= kWorldSize;
    std::uint64_t print = 0;
    try {
        print = fingerprint(root_attributes(local), local.unit_names);
    } catch (const Error&) {
        bad |= kBadRoot;
    }
    std::uint64_t low = 0, high = 0;
    SHARDSIM_MPI_CHECK(MPI_Allreduce(&print, &low, 1, MPI_UINT64_T, MPI_MIN, comm));
    SHARDSIM_MPI_CHECK(MPI_Allreduce(&print, &high, 1, MPI_UINT64_T, MPI_MAX, comm));
    if (low != high) bad |= kRootDiffers;
    int any = 0;
    SHARDSIM_MPI_CHECK(MPI_Allreduce(&bad, &any, 1, MPI_INT, MPI_BOR, comm));
    if (any == 0) return;
    std::string why;
    const auto add = [&](const std::string& s) { why += (why.empty() ? "" : "; ") + s; };
    if (any & kNotOneTimeline) add("each rank must pass exactly one timeline (its own)");
    if (any & kWorldSize) add("world_size differs from the communicator's " + std::to_string(size) + " ranks");
    if (any & kBadRoot) add("the run attributes collide with standard root attributes");
    if (any & kRootDiffers) add("the ranks passed different run attributes or unit names");
    throw Error(why);
}

// ---- the reader -----------------------------------------------------------------------------------

bool has_attribute(hid_t loc, const std::string& name) {
    return SHARDSIM_H5_CHECK(H5Aexists(loc, name.c_str())) > 0;
}

// `where` names the object in messages: "/" or "/rank_3".
h5::Attribute open_attribute(hid_t loc, const std::string& where, const std::string& name, H5T_class_t expected) {
    if (!has_attribute(loc, name)) throw Error(where + " has no attribute '" + name + "'");
    h5::Attribute attr{SHARDSIM_H5_CHECK(H5Aopen(loc, name.c_str(), H5P_DEFAULT))};
    const h5::Datatype type{SHARDSIM_H5_CHECK(H5Aget_type(attr.id()))};
    if (H5Tget_class(type.id()) != expected)
        throw Error(where + " attribute '" + name + "' is not " + (expected == H5T_STRING ? "a string" : "an integer"));
    return attr;
}

// A fixed-length string type read NUL-padded, so a string that fills its width keeps its last
// character (NUL-terminated would drop it).
h5::Datatype nul_padded(const h5::Datatype& file_type) {
    h5::Datatype t{SHARDSIM_H5_CHECK(H5Tcopy(file_type.id()))};
    SHARDSIM_H5_CHECK(H5Tset_strpad(t.id(), H5T_STR_NULLPAD));
    return t;
}

std::int64_t read_int_attribute(hid_t loc, const std::string& where, const std::string& name) {
    const h5::Attribute attr = open_attribute(loc, where, name, H5T_INTEGER);
    std::int64_t value = 0;
    SHARDSIM_H5_CHECK(H5Aread(attr.id(), H5T_NATIVE_INT64, &value));
    return value;
}

// Fixed-length strings (what shardsim writes) and variable-length ones (what h5py writes from a
// Python str) both read.
std::string read_text_attribute(hid_t loc, const std::string& where, const std::string& name) {
    const h5::Attribute attr = open_attribute(loc, where, name, H5T_STRING);
    const h5::Datatype type{SHARDSIM_H5_CHECK(H5Aget_type(attr.id()))};
    if (SHARDSIM_H5_CHECK(H5Tis_variable_str(type.id())) > 0) {
        char* s = nullptr;
        SHARDSIM_H5_CHECK(H5Aread(attr.id(), type.id(), &s));
        std::string value = s != nullptr ? s : "";
        H5free_memory(s);
        return value;
    }
    const h5::Datatype memory_type = nul_padded(type);
    std::string value(SHARDSIM_H5_CHECK(H5Tget_size(memory_type.id())), '\0');
    SHARDSIM_H5_CHECK(H5Aread(attr.id(), memory_type.id(), value.data()));
    value.resize(value.find('\0') == std::string::npos ? value.size() : value.find('\0'));
    return value;
}

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

void check_schema(hid_t file) {
    if (!has_attribute(file, "schema_version"))
        throw Error("no schema_version attribute: not a shardsim timeline file");
    const std::int64_t version = read_int_attribute(file, "/", "schema_version");
    if (version != kSchemaVersion)
        throw Error("schema_version is " + std::to_string(version) + ", this shardsim reads " +
                    std::to_string(kSchemaVersion));
}

// Further string attributes become RunTimeline::attributes; other extra attributes are skipped.
RunTimeline read_root(hid_t file) {
    RunTimeline run;
    for (const auto& t : kRootTexts) run.*t.member = read_text_attribute(file, "/", t.name);
    for (const auto& c : kRootCounts) run.*c.member = read_int_attribute(file, "/", c.name);
    for (const auto& name : attribute_names(file)) {
        if (is_standard_root(name)) continue;
        const h5::Attribute attr{SHARDSIM_H5_CHECK(H5Aopen(file, name.c_str(), H5P_DEFAULT))};
        const h5::Datatype type{SHARDSIM_H5_CHECK(H5Aget_type(attr.id()))};
        if (H5Tget_class(type.id()) == H5T_STRING) run.attributes[name] = read_text_attribute(file, "/", name);
    }
    return run;
}

h5::Dataset open_dataset(hid_t loc, const std::string& path) {
    if (SHARDSIM_H5_CHECK(H5Lexists(loc, path.c_str(), H5P_DEFAULT)) <= 0) throw Error("no dataset " + path);
    return h5::Dataset{SHARDSIM_H5_CHECK(H5Dopen2(loc, path.c_str(), H5P_DEFAULT))};
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
    const auto op_rows = read_rows<OpRow>(ops, types.op_memory, where + "/ops");
    for (std::size_t i = 0; i < op_rows.size(); ++i)
        tl.ops.push_back(from_row(op_rows[i], where + "/ops row " + std::to_string(i)));
    for (const auto& row : read_rows<MemoryRow>(memory, types.sample_memory, where + "/memory"))
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

void write_run_file(const std::string& path, const RunTimeline& run) {
    const h5::QuietErrors quiet;
    try {
        check_classes(run);
        const std::vector<Attr> root = root_attributes(run);
        const RowTypes types = make_row_types();
        const h5::PropList fapl = file_access();
        h5::File file{SHARDSIM_H5_CHECK(H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, fapl.id()))};
        write_attributes(file.id(), root);
        write_units(file.id(), run.unit_names, true);
        write_ranks(file.id(), run, types);
        file.close();
    } catch (const Error& e) {
        throw Error("cannot write timeline file '" + path + "': " + e.what());
    }
}

void write_run_parallel(const std::string& path, const RunTimeline& local, MPI_Comm comm) {
    int me = 0, size = 0;
    SHARDSIM_MPI_CHECK(MPI_Comm_rank(comm, &me));
    SHARDSIM_MPI_CHECK(MPI_Comm_size(comm, &size));
    const h5::QuietErrors quiet;
    try {
        check_parallel_input(local, comm, size);
        const RankTimeline& mine = local.timelines.front();
        const auto attrs = allgather_attributes(rank_attributes(me, mine, mine.summarize()), comm, size);
        const auto sizes = allgather_sizes(mine, comm, size);
        const std::vector<Attr> root = root_attributes(local);
        const RowTypes types = make_row_types();
        const h5::PropList fapl = file_access();
        SHARDSIM_H5_CHECK(H5Pset_fapl_mpio(fapl.id(), comm, MPI_INFO_NULL));
        h5::File file{SHARDSIM_H5_CHECK(H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, fapl.id()))};
        // Metadata calls are collective: every rank creates every group, attribute and dataset
        // with the same arguments. Raw data is written independently, each rank its own rows.
        write_attributes(file.id(), root);
        write_units(file.id(), local.unit_names, me == 0);
        for (int r = 0; r < size; ++r) {
            const auto& rank_sizes = sizes[static_cast<std::size_t>(r)];
            const h5::Group group = create_rank_group(file.id(), r, attrs[static_cast<std::size_t>(r)]);
            const h5::Dataset ops = create_table(group.id(), "ops", types.op_file, rank_sizes.ops);
            const h5::Dataset memory = create_table(group.id(), "memory", types.sample_file, rank_sizes.samples);
            if (r != me) continue;
            write_rows(ops, types.op_memory, rows_of<OpRow>(mine.ops));
            write_rows(memory, types.sample_memory, rows_of<MemoryRow>(mine.memory));
        }
        file.close();
    } catch (const Error& e) {
        throw Error("cannot write timeline file '" + path + "' (rank " + std::to_string(me) + "): " + e.what());
    }
}

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
        check_schema(file.id());
        RunTimeline run = read_root(file.id());
        run.unit_names = read_units(file.id());
        read_ranks(file.id(), run);
        return run;
    } catch (const Error& e) {
        throw InputError(prefix + e.what() + allowed);
    }
}

}  // namespace shardsim::io
