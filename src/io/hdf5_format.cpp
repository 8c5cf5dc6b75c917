#include "hdf5_format.hpp"

#include <algorithm>
#include <cstring>
#include <filesystem>
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

// ---- rows of /rank_<r>/ops, /rank_<r>/memory and /rank_<r>/steps -------------------------------

// A compound built column by column, with the unit of each column that has one.
struct Columns {
    RowType type;
    explicit Columns(std::size_t size) { type.memory = h5::Datatype{SHARDSIM_H5_CHECK(H5Tcreate(H5T_COMPOUND, size))}; }
    void add(const std::string& name, std::size_t offset, hid_t member, const char* unit = nullptr) {
        SHARDSIM_H5_CHECK(H5Tinsert(type.memory.id(), name.c_str(), offset, member));
        if (unit != nullptr) type.units.push_back({name + ".units", std::string(unit)});
    }
    RowType done() {
        type.file = packed(type.memory);
        return std::move(type);
    }
};

// Offset of element `i` of an array member that starts at `base`.
std::size_t element(std::size_t base, int i, std::size_t size) { return base + static_cast<std::size_t>(i) * size; }

RowType op_row_type() {
    const h5::Datatype name = string_type(kNameWidth, H5T_CSET_ASCII);
    Columns c(sizeof(OpRow));
    c.add("op_id", offsetof(OpRow, op_id), H5T_NATIVE_INT32);
    c.add("kind", offsetof(OpRow, kind), name.id());
    c.add("unit", offsetof(OpRow, unit), H5T_NATIVE_INT32);
    c.add("stream", offsetof(OpRow, stream), name.id());
    c.add("micro_batch", offsetof(OpRow, micro_batch), H5T_NATIVE_INT32);
    c.add("step", offsetof(OpRow, step), H5T_NATIVE_INT32);
    c.add("t_start", offsetof(OpRow, t_start), H5T_NATIVE_DOUBLE, kSeconds);
    c.add("t_end", offsetof(OpRow, t_end), H5T_NATIVE_DOUBLE, kSeconds);
    c.add("bytes", offsetof(OpRow, bytes), H5T_NATIVE_INT64, kBytes);
    c.add("flops", offsetof(OpRow, flops), H5T_NATIVE_DOUBLE, kFlops);
    c.add("collective", offsetof(OpRow, collective), name.id());
    c.add("ranks", offsetof(OpRow, ranks), H5T_NATIVE_INT64);
    for (MemCategory m : kAllMemCategories)
        c.add("net_" + std::string(category_name(m)), element(offsetof(OpRow, net), category_index(m), sizeof(std::int64_t)),
              H5T_NATIVE_INT64, kBytes);
    return c.done();
}

RowType memory_row_type() {
    Columns c(sizeof(MemoryRow));
    c.add("t", offsetof(MemoryRow, t), H5T_NATIVE_DOUBLE, kSeconds);
    c.add("op_id", offsetof(MemoryRow, op_id), H5T_NATIVE_INT32);
    c.add("step", offsetof(MemoryRow, step), H5T_NATIVE_INT32);
    for (MemCategory m : kAllMemCategories)
        c.add(std::string(category_name(m)), element(offsetof(MemoryRow, by_category), category_index(m), sizeof(std::int64_t)),
              H5T_NATIVE_INT64, kBytes);
    c.add("total", offsetof(MemoryRow, total), H5T_NATIVE_INT64, kBytes);
    return c.done();
}

RowType step_row_type() {
    Columns c(sizeof(StepRow));
    c.add("step", offsetof(StepRow, step), H5T_NATIVE_INT32);
    const std::pair<const char*, std::size_t> seconds[] = {
        {"t_start_s", offsetof(StepRow, t_start_s)},           {"t_end_s", offsetof(StepRow, t_end_s)},
        {"step_time_s", offsetof(StepRow, step_time_s)},       {"compute_time_s", offsetof(StepRow, compute_time_s)},
        {"comm_time_s", offsetof(StepRow, comm_time_s)},       {"exposed_comm_s", offsetof(StepRow, exposed_comm_s)},
        {"copy_time_s", offsetof(StepRow, copy_time_s)},       {"host_time_s", offsetof(StepRow, host_time_s)}};
    for (const auto& [name, offset] : seconds) c.add(name, offset, H5T_NATIVE_DOUBLE, kSeconds);
    c.add("flops", offsetof(StepRow, flops), H5T_NATIVE_DOUBLE, kFlops);
    c.add("peak_bytes", offsetof(StepRow, peak_bytes), H5T_NATIVE_INT64, kBytes);
    c.add("peak_op", offsetof(StepRow, peak_op), H5T_NATIVE_INT32);
    for (MemCategory m : kAllMemCategories)
        c.add("peak_" + std::string(category_name(m)),
              element(offsetof(StepRow, peak_by_category), category_index(m), sizeof(std::int64_t)), H5T_NATIVE_INT64, kBytes);
    for (MemCategory m : kAllMemCategories)
        c.add("max_" + std::string(category_name(m)),
              element(offsetof(StepRow, max_by_category), category_index(m), sizeof(std::int64_t)), H5T_NATIVE_INT64, kBytes);
    c.add("host_peak_bytes", offsetof(StepRow, host_peak_bytes), H5T_NATIVE_INT64, kBytes);
    for (int k = 0; k < plan::kCollectiveKindCount; ++k) {
        const std::string kind = plan::collective_name(static_cast<plan::CollectiveKind>(k));
        c.add("comm_" + kind + "_bytes", element(offsetof(StepRow, comm_bytes), k, sizeof(std::int64_t)), H5T_NATIVE_INT64, kBytes);
        c.add("comm_" + kind + "_wire_bytes", element(offsetof(StepRow, comm_wire_bytes), k, sizeof(double)), H5T_NATIVE_DOUBLE,
              kBytes);
    }
    return c.done();
}

RowTypes make_row_types() {
    RowTypes types;
    types.op = op_row_type();
    types.sample = memory_row_type();
    types.step = step_row_type();
    return types;
}

template <class V>
V value_or_zero(const std::map<int, V>& m, int key) {
    const auto it = m.find(key);
    return it == m.end() ? V{} : it->second;
}

StepRow step_row(const RankTimeline& one, int step) {
    const RankSummary s = one.summarize();
    StepRow row{};
    row.step = step;
    for (std::size_t i = 0; i < one.ops.size(); ++i) {
        row.t_start_s = i == 0 ? one.ops[i].t_start : std::min(row.t_start_s, one.ops[i].t_start);
        row.t_end_s = i == 0 ? one.ops[i].t_end : std::max(row.t_end_s, one.ops[i].t_end);
    }
    row.step_time_s = s.step_time;
    row.compute_time_s = s.compute_time;
    row.comm_time_s = s.comm_time;
    row.exposed_comm_s = s.exposed_comm;
    row.copy_time_s = s.copy_time;
    row.host_time_s = s.host_time;
    row.flops = s.flops;
    row.peak_bytes = s.peak_bytes;
    row.peak_op = s.peak_op;
    for (MemCategory m : kAllMemCategories) {
        row.peak_by_category[category_index(m)] = s.peak_breakdown[m];
        row.max_by_category[category_index(m)] = s.max_by_category[m];
    }
    row.host_peak_bytes = s.host_peak_bytes;
    for (int k = 0; k < plan::kCollectiveKindCount; ++k) {
        row.comm_bytes[k] = value_or_zero(s.comm_size_bytes, k);
        row.comm_wire_bytes[k] = value_or_zero(s.comm_wire_bytes, k);
    }
    return row;
}

std::vector<StepRow> step_rows(const RankTimeline& tl) {
    std::vector<StepRow> rows;
    for (int step : tl.steps()) rows.push_back(step_row(tl.only_step(step), step));
    return rows;
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
    if (name == "schema_version" || name == "shardsim_version" || name == "complete" || name == "completion") return true;
    for (const auto& t : kRootTexts)
        if (name == t.name) return true;
    for (const auto& c : kRootCounts)
        if (name == c.name) return true;
    for (const auto& c : kRootOptionalCounts)
        if (name == c.name) return true;
    return false;
}

std::vector<Attr> root_attributes(const RunTimeline& run) {
    std::vector<Attr> attrs = {{"schema_version", std::int64_t{kSchemaVersion}}, {"shardsim_version", version()}};
    for (const auto& t : kRootTexts) attrs.push_back({t.name, run.*t.member});
    for (const auto& c : kRootCounts) attrs.push_back({c.name, run.*c.member});
    for (const auto& c : kRootOptionalCounts) attrs.push_back({c.name, run.*c.member});
    attrs.push_back({"complete", std::int64_t{run.complete ? 1 : 0}});
    attrs.push_back({"completion", run.completion});
    for (const auto& [name, value] : run.attributes) {
        if (is_standard_root(name))
            throw Error("run attribute '" + name + "' would replace the standard root attribute of that name");
        attrs.push_back({name, value});
    }
    return attrs;
}

// Every rank's list has the same names in the same order (write_run_parallel relies on it).
// Figures per step are in /rank_<r>/steps.
std::vector<Attr> rank_attributes(std::int64_t rank, const RankTimeline& tl) {
    return {{"rank", rank},
            {"device", tl.device},
            {"host", tl.host},
            {"allocated_peak_bytes", tl.allocated_peak_bytes},
            {"reserved_peak_bytes", tl.reserved_peak_bytes}};
}

// ---- groups and datasets ----------------------------------------------------------------------

h5::Group create_rank_group(hid_t file, std::int64_t rank, const std::vector<Attr>& attrs) {
    h5::Group group{SHARDSIM_H5_CHECK(
        H5Gcreate2(file, rank_group_name(rank).c_str(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT))};
    write_attributes(group.id(), attrs);
    return group;
}

h5::Dataset create_table(hid_t loc, const char* name, const RowType& type, std::size_t rows) {
    const hsize_t dims[1] = {rows};
    const h5::Dataspace space{SHARDSIM_H5_CHECK(H5Screate_simple(1, dims, nullptr))};
    h5::Dataset dataset{
        SHARDSIM_H5_CHECK(H5Dcreate2(loc, name, type.file.id(), space.id(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT))};
    write_attributes(dataset.id(), type.units);
    return dataset;
}

// /units: one fixed-length string per unit, as wide as the longest name.
void write_units(hid_t file, const std::vector<std::string>& names, bool with_data) {
    std::size_t width = 1;
    for (const auto& n : names) width = std::max(width, n.size() + 1);
    const h5::Datatype type = string_type(width, H5T_CSET_ASCII);
    const hsize_t dims[1] = {names.size()};
    const h5::Dataspace space{SHARDSIM_H5_CHECK(H5Screate_simple(1, dims, nullptr))};
    const h5::Dataset units{
        SHARDSIM_H5_CHECK(H5Dcreate2(file, "units", type.id(), space.id(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT))};
    if (!with_data || names.empty()) return;
    std::vector<char> packed_names(names.size() * width, '\0');
    for (std::size_t i = 0; i < names.size(); ++i) std::memcpy(&packed_names[i * width], names[i].data(), names[i].size());
    SHARDSIM_H5_CHECK(H5Dwrite(units.id(), type.id(), H5S_ALL, H5S_ALL, H5P_DEFAULT, packed_names.data()));
}

namespace {

// A compound of fixed columns laid out at run time (string widths depend on the data), filled
// row by row into one packed byte buffer.
class PackedTable {
public:
    void column(const std::string& name, hid_t type, std::size_t size) {
        cols_.push_back({name, type, offset_, size});
        offset_ += size;
    }
    void string_column(const std::string& name, std::size_t width) {
        strings_.push_back(string_type(width, H5T_CSET_ASCII));
        column(name, strings_.back().id(), width);
    }
    void row() { data_.resize(data_.size() + offset_, '\0'); }
    template <class T>
    void set(std::size_t col, T value) {
        std::memcpy(&data_[data_.size() - offset_ + cols_[col].offset], &value, sizeof(T));
    }
    void set_text(std::size_t col, const std::string& text) {
        std::memcpy(&data_[data_.size() - offset_ + cols_[col].offset], text.data(), std::min(text.size(), cols_[col].size - 1));
    }
    void write(hid_t file, const char* name, std::size_t rows, bool with_data, const std::vector<Attr>& attrs) {
        const h5::Datatype type{SHARDSIM_H5_CHECK(H5Tcreate(H5T_COMPOUND, std::max<std::size_t>(offset_, 1)))};
        for (const auto& c : cols_) SHARDSIM_H5_CHECK(H5Tinsert(type.id(), c.name.c_str(), c.offset, c.type));
        const hsize_t dims[1] = {rows};
        const h5::Dataspace space{SHARDSIM_H5_CHECK(H5Screate_simple(1, dims, nullptr))};
        const h5::Dataset d{SHARDSIM_H5_CHECK(H5Dcreate2(file, name, type.id(), space.id(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT))};
        write_attributes(d.id(), attrs);
        if (with_data && rows > 0) SHARDSIM_H5_CHECK(H5Dwrite(d.id(), type.id(), H5S_ALL, H5S_ALL, H5P_DEFAULT, data_.data()));
    }

private:
    struct Col {
        std::string name;
        hid_t type;
        std::size_t offset, size;
    };
    std::vector<Col> cols_;
    std::vector<h5::Datatype> strings_;
    std::size_t offset_ = 0;
    std::vector<char> data_;
};

std::size_t widest(std::size_t w, const std::string& s) { return std::max(w, s.size() + 1); }

}  // namespace

void write_buffer_tables(hid_t file, const RunTimeline& run, bool with_data) {
    if (run.buffers.empty()) return;
    std::size_t name_w = 1, cat_w = 1, dt_w = 1, role_w = 1, acc_w = 1;
    for (const auto& b : run.buffers) name_w = widest(name_w, b.name), cat_w = widest(cat_w, b.category), dt_w = widest(dt_w, b.dtype);
    for (const auto& u : run.op_buffers) role_w = widest(role_w, u.role), acc_w = widest(acc_w, u.access);
    PackedTable b;
    b.column("id", H5T_NATIVE_INT32, 4);
    b.string_column("name", name_w);
    b.string_column("category", cat_w);
    b.string_column("dtype", dt_w);
    b.column("bytes", H5T_NATIVE_INT64, 8);
    b.column("unit", H5T_NATIVE_INT32, 4);
    b.column("parent", H5T_NATIVE_INT32, 4);
    b.column("offset", H5T_NATIVE_INT64, 8);
    b.column("host", H5T_NATIVE_INT8, 1);
    b.column("pinned", H5T_NATIVE_INT8, 1);
    b.column("persistent", H5T_NATIVE_INT8, 1);
    for (const auto& x : run.buffers) {
        b.row();
        b.set(0, x.id);
        b.set_text(1, x.name);
        b.set_text(2, x.category);
        b.set_text(3, x.dtype);
        b.set(4, x.bytes);
        b.set(5, x.unit);
        b.set(6, x.parent);
        b.set(7, x.offset);
        b.set(8, static_cast<std::int8_t>(x.host));
        b.set(9, static_cast<std::int8_t>(x.pinned));
        b.set(10, static_cast<std::int8_t>(x.persistent));
    }
    b.write(file, "buffers", run.buffers.size(), with_data, {{"bytes.units", std::string(kBytes)}, {"offset.units", std::string(kBytes)}});
    PackedTable u;
    u.column("op_id", H5T_NATIVE_INT32, 4);
    u.column("buffer", H5T_NATIVE_INT32, 4);
    u.column("instance", H5T_NATIVE_INT32, 4);
    u.string_column("role", role_w);
    u.string_column("access", acc_w);
    for (const auto& x : run.op_buffers) {
        u.row();
        u.set(0, x.op_id);
        u.set(1, x.buffer);
        u.set(2, x.instance);
        u.set_text(3, x.role);
        u.set_text(4, x.access);
    }
    u.write(file, "op_buffers", run.op_buffers.size(), with_data, {});
}

void publish(const std::string& partial, const std::string& path) {
    std::error_code ec;
    std::filesystem::rename(partial, path, ec);
    if (ec) throw Error("cannot rename '" + partial + "' to '" + path + "': " + ec.message());
}

// Earliest format 1.8: an attribute over 64 KiB (a long INI text) then moves to dense storage
// instead of failing.
h5::PropList file_access() {
    h5::PropList fapl{SHARDSIM_H5_CHECK(H5Pcreate(H5P_FILE_ACCESS))};
    SHARDSIM_H5_CHECK(H5Pset_libver_bounds(fapl.id(), H5F_LIBVER_V18, H5F_LIBVER_LATEST));
    return fapl;
}

}  // namespace shardsim::io::detail
