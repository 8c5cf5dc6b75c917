// The timeline file's reader (the writers are in hdf5.cpp, the layout in hdf5_format.hpp).
#include <algorithm>
#include <array>
#include <climits>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "hdf5_format.hpp"
#include "shardsim/config/limits.hpp"
#include "shardsim/core/error.hpp"
#include "shardsim/core/format.hpp"
#include "shardsim/io/hdf5.hpp"

namespace shardsim::io {

namespace {

using namespace detail;
using h5::has_attribute;
using h5::nul_padded;
using h5::open_dataset;
using h5::read_int_attribute;
using h5::read_text_attribute;

// ---- values no writer produces ----------------------------------------------------------------------
// A file can be valid HDF5 with every dataset in place and still hold values that no run could
// have produced (a flipped bit, a hand edit, a truncated copy): NaN or 1e308 seconds, negative
// or INT64_MAX bytes, zero steps, fewer ranks than groups. Each is refused with the object, row
// and column named, before a report adds them up into nonsense or overflows.

// Thrown with "<object>[ row N]: <column>: bad value '<v>' (allowed: ...)"; read_run_file adds
// the file.
class BadValue : public Error {
public:
    using Error::Error;
};

constexpr double kMaxSeconds = 1e9;                          // ~31 years from the start of a run
constexpr double kMaxFlops = 1e30;                           // one op: 30 years at 1 EFLOP/s
constexpr std::int64_t kMaxBytes = std::int64_t{1} << 56;    // one op or category: 64 PiB

std::string real_text(double v) {
    char buf[40];
    std::snprintf(buf, sizeof buf, "%.17g", v);
    return buf;
}

// Where a value sits: an object ("/", "/rank_3/ops") and, for datasets, a row. Made into text
// only for a message, so that checking millions of good rows builds no strings.
struct At {
    const std::string& object;
    std::size_t row = static_cast<std::size_t>(-1);
    std::string text() const { return row == static_cast<std::size_t>(-1) ? object : object + " row " + std::to_string(row); }
};

[[noreturn]] void bad_value(const At& at, std::string_view column, const std::string& value, const std::string& allowed) {
    throw BadValue(at.text() + ": " + std::string(column) + ": bad value '" + printable(value) + "' (allowed: " + allowed + ")");
}

void check_int(const At& at, std::string_view column, std::int64_t v, std::int64_t lo, std::int64_t hi) {
    if (v < lo || v > hi)
        bad_value(at, column, std::to_string(v), "integer in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
}

void check_seconds(const At& at, std::string_view column, double v) {
    if (!std::isfinite(v) || std::fabs(v) > kMaxSeconds)
        bad_value(at, column, real_text(v), "finite seconds within 1e9 of the run's start");
}

void check_text(const At& at, std::string_view name, const std::string& v, bool lines = false) {
    if (!is_printable(v, lines)) bad_value(at, name, v, lines ? "printable UTF-8 text" : "one line of printable UTF-8 text");
}

void check_root(const RunTimeline& run, std::int64_t rank_groups) {
    const std::string root = "/";
    const At at{root};
    check_int(at, "world_size", run.world_size, 1, config::limits::kWorld);
    // Fewer groups than ranks is said by the reader, naming the first missing one.
    if (rank_groups > run.world_size)
        throw BadValue("/: world_size: bad value '" + std::to_string(run.world_size) + "': the file holds " +
                       std::to_string(rank_groups) + " rank groups (allowed: " + std::to_string(rank_groups) +
                       ", one group /rank_<r> per rank)");
    check_int(at, "steps", run.steps, 1, config::limits::kSteps);
    check_int(at, "gpus_per_node", run.gpus_per_node, 1, config::limits::kGpusPerNode);
    const auto max_memory = static_cast<std::int64_t>(config::limits::kMemoryGiB) * kGiB;
    check_int(at, "gpu_memory_bytes", run.gpu_memory_bytes, 0, max_memory);
    check_int(at, "host_memory_bytes", run.host_memory_bytes, 0, max_memory);
    check_int(at, "param_count", run.param_count, 0, config::limits::kParams);
    check_int(at, "trainable_param_count", run.trainable_param_count, 0, run.param_count);
    check_text(at, "mode", run.mode);
    check_text(at, "backend", run.backend);
    check_text(at, "job_name", run.job_name);
    check_text(at, "job", run.job_text, true);
    check_text(at, "topology", run.topology_text, true);
    for (const auto& [name, value] : run.attributes) check_text(at, name, value, true);
}

void check_units(const std::vector<std::string>& names) {
    const std::string units = "/units";
    for (std::size_t i = 0; i < names.size(); ++i) check_text(At{units, i}, "name", names[i]);
}

// One row of /rank_<r>/ops; `bytes_sum` adds up this dataset's bytes (the summaries sum them).
void check_op(const OpRecord& op, const RunTimeline& run, const At& at, std::int64_t& bytes_sum) {
    static const auto net_names = [] {
        std::array<std::string, kMemCategoryCount> n;
        for (MemCategory c : kAllMemCategories) n[static_cast<std::size_t>(category_index(c))] = "net_" + std::string(category_name(c));
        return n;
    }();
    check_int(at, "op_id", op.op_id, 0, INT32_MAX);
    check_int(at, "unit", op.unit, -1, static_cast<std::int64_t>(run.unit_names.size()) - 1);
    check_int(at, "micro_batch", op.micro_batch, -1, config::limits::kGradAccum - 1);
    check_int(at, "step", op.step, 0, run.steps - 1);
    check_seconds(at, "t_start", op.t_start);
    check_seconds(at, "t_end", op.t_end);
    if (op.t_end < op.t_start) bad_value(at, "t_end", real_text(op.t_end), "at least t_start (" + real_text(op.t_start) + ")");
    check_int(at, "bytes", op.bytes, 0, kMaxBytes);
    if (__builtin_add_overflow(bytes_sum, op.bytes, &bytes_sum))
        bad_value(at, "bytes", std::to_string(op.bytes), "bytes whose sum over the dataset stays below 2^63");
    if (!std::isfinite(op.flops) || op.flops < 0 || op.flops > kMaxFlops)
        bad_value(at, "flops", real_text(op.flops), "finite, in [0, 1e30]");
    check_int(at, "ranks", op.ranks, op.collective >= 0 ? 1 : 0, config::limits::kWorld);
    for (MemCategory c : kAllMemCategories)
        check_int(at, net_names[static_cast<std::size_t>(category_index(c))], op.net[c], -kMaxBytes, kMaxBytes);
}

// One row of /rank_<r>/memory.
void check_sample(const MemoryRow& row, const RunTimeline& run, const At& at) {
    check_seconds(at, "t", row.t);
    check_int(at, "op_id", row.op_id, -1, INT32_MAX);
    check_int(at, "step", row.step, 0, run.steps - 1);
    std::int64_t device = 0;
    for (MemCategory c : kAllMemCategories) {
        const std::int64_t v = row.by_category[category_index(c)];
        check_int(at, category_name(c), v, 0, kMaxBytes);
        if (on_device(c)) device += v;  // at most 9 x 2^56: no overflow
    }
    if (row.total != device)
        bad_value(at, "total", std::to_string(row.total), "the sum of the device categories, " + std::to_string(device));
}

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
                       const RowTypes& types, const RunTimeline& run) {
    const std::string where = "/" + rank_group_name(rank);
    RankTimeline tl;
    tl.rank = static_cast<int>(rank);
    tl.device = read_text_attribute(group, where, "device");
    tl.host = read_text_attribute(group, where, "host");
    for (auto [name, member] : {std::pair{"allocated_peak_bytes", &RankTimeline::allocated_peak_bytes},
                                std::pair{"reserved_peak_bytes", &RankTimeline::reserved_peak_bytes}})
        if (h5::has_attribute(group, name)) {
            tl.*member = read_int_attribute(group, where, name);
            check_int(At{where}, name, tl.*member, 0, kMaxBytes);
        }
    check_text(At{where}, "device", tl.device);
    check_text(At{where}, "host", tl.host);
    const std::string ops_name = where + "/ops", memory_name = where + "/memory";
    const auto op_rows = read_rows<OpRow>(ops, types.op.memory, ops_name);
    if (op_rows.empty()) throw BadValue(ops_name + ": no rows (allowed: one row per op of the step)");
    tl.ops.reserve(op_rows.size());
    std::int64_t bytes_sum = 0;
    for (std::size_t i = 0; i < op_rows.size(); ++i) {
        tl.ops.push_back(from_row(op_rows[i], ops_name, i));
        check_op(tl.ops.back(), run, At{ops_name, i}, bytes_sum);
    }
    const auto memory_rows = read_rows<MemoryRow>(memory, types.sample.memory, memory_name);
    if (memory_rows.empty()) throw BadValue(memory_name + ": no rows (allowed: at least the state before the first op)");
    tl.memory.reserve(memory_rows.size());
    for (std::size_t i = 0; i < memory_rows.size(); ++i) {
        check_sample(memory_rows[i], run, At{memory_name, i});
        tl.memory.push_back(from_row(memory_rows[i]));
    }
    return tl;
}

herr_t count_rank_group(hid_t, const char* name, const H5L_info_t*, void* out) noexcept {
    if (std::string(name).rfind("rank_", 0) == 0) ++*static_cast<std::int64_t*>(out);
    return 0;
}

// Links named rank_* at the root: the writers make one group per rank and nothing else so named.
std::int64_t rank_group_count(hid_t file) {
    std::int64_t n = 0;
    hsize_t index = 0;
    SHARDSIM_H5_CHECK(H5Literate(file, H5_INDEX_NAME, H5_ITER_INC, &index, count_rank_group, &n));
    return n;
}

// Ranks whose ops and memory are the same objects (hard links) share one timeline class.
void read_ranks(hid_t file, RunTimeline& run) {
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
        if (added) run.timelines.push_back(read_rank(group.id(), r, ops, memory, types, run));
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
    if (std::filesystem::is_directory(path, ec)) throw InputError(prefix + "is a directory" + allowed);
    if (!std::filesystem::is_regular_file(path, ec)) throw InputError(prefix + "not a regular file" + allowed);
    if (const auto why = h5::superblock_problem(path, false)) throw InputError(prefix + *why + allowed);
    const h5::QuietErrors quiet;
    const hid_t id = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
    if (id < 0) throw InputError(prefix + "not an HDF5 file, or not readable" + allowed);
    const h5::File file{id};
    try {
        RunTimeline run = read_root(file.id(), check_schema(file.id()));
        check_root(run, rank_group_count(file.id()));
        run.unit_names = read_units(file.id());
        check_units(run.unit_names);
        read_ranks(file.id(), run);
        return run;
    } catch (const BadValue& e) {
        throw InputError(prefix + e.what(), e.debug_detail());
    } catch (const Error& e) {
        throw InputError(prefix + e.what() + allowed, e.debug_detail());
    }
}

}  // namespace shardsim::io
