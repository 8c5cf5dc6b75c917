#include "shardsim/io/bench_file.hpp"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstring>
#include <filesystem>

#include "shardsim/core/error.hpp"
#include "shardsim/core/format.hpp"
#include "shardsim/core/version.hpp"
#include "shardsim/io/h5_handles.hpp"

namespace shardsim::io {

namespace {

using exec::BenchGroup;
using exec::BenchRow;
using exec::BenchRun;

constexpr std::size_t kName = 16;  // NUL included
constexpr const char* kFormat = "shardsim-bench";

struct GroupRecord {
    char name[kName];
    std::int64_t ranks, nodes, per_node, instances;
};

struct RowRecord {
    char group[kName];
    std::int64_t ranks, nodes, per_node;
    char op[kName];
    std::int64_t size_bytes, count;
    std::int32_t in_place;
    double time_s, algbw_GBps, busbw_GBps;
    std::int64_t wrong;
    double raw_time_s, raw_busbw_GBps, ours_over_raw;
};

void put(char (&dst)[kName], const std::string& s) {
    SHARDSIM_ASSERT(s.size() < kName, "name '" + s + "' is too long for a bench file column");
    std::memset(dst, 0, kName);
    std::memcpy(dst, s.data(), s.size());
}

std::string get(const char (&src)[kName]) {
    return std::string(src, static_cast<std::size_t>(std::find(src, src + kName, '\0') - src));
}

h5::Datatype name_type() {
    h5::Datatype t{SHARDSIM_H5_CHECK(H5Tcopy(H5T_C_S1))};
    SHARDSIM_H5_CHECK(H5Tset_size(t.id(), kName));
    SHARDSIM_H5_CHECK(H5Tset_strpad(t.id(), H5T_STR_NULLTERM));
    return t;
}

#define SHARDSIM_BENCH_COLUMN(type, record, member, h5type) \
    SHARDSIM_H5_CHECK(H5Tinsert((type).id(), #member, offsetof(record, member), (h5type)))

h5::Datatype group_type() {
    const h5::Datatype name = name_type();
    h5::Datatype t{SHARDSIM_H5_CHECK(H5Tcreate(H5T_COMPOUND, sizeof(GroupRecord)))};
    SHARDSIM_BENCH_COLUMN(t, GroupRecord, name, name.id());
    SHARDSIM_BENCH_COLUMN(t, GroupRecord, ranks, H5T_NATIVE_INT64);
    SHARDSIM_BENCH_COLUMN(t, GroupRecord, nodes, H5T_NATIVE_INT64);
    SHARDSIM_BENCH_COLUMN(t, GroupRecord, per_node, H5T_NATIVE_INT64);
    SHARDSIM_BENCH_COLUMN(t, GroupRecord, instances, H5T_NATIVE_INT64);
    return t;
}

h5::Datatype row_type() {
    const h5::Datatype name = name_type();
    h5::Datatype t{SHARDSIM_H5_CHECK(H5Tcreate(H5T_COMPOUND, sizeof(RowRecord)))};
    SHARDSIM_BENCH_COLUMN(t, RowRecord, group, name.id());
    SHARDSIM_BENCH_COLUMN(t, RowRecord, ranks, H5T_NATIVE_INT64);
    SHARDSIM_BENCH_COLUMN(t, RowRecord, nodes, H5T_NATIVE_INT64);
    SHARDSIM_BENCH_COLUMN(t, RowRecord, per_node, H5T_NATIVE_INT64);
    SHARDSIM_BENCH_COLUMN(t, RowRecord, op, name.id());
    SHARDSIM_BENCH_COLUMN(t, RowRecord, size_bytes, H5T_NATIVE_INT64);
    SHARDSIM_BENCH_COLUMN(t, RowRecord, count, H5T_NATIVE_INT64);
    SHARDSIM_BENCH_COLUMN(t, RowRecord, in_place, H5T_NATIVE_INT32);
    SHARDSIM_BENCH_COLUMN(t, RowRecord, time_s, H5T_NATIVE_DOUBLE);
    SHARDSIM_BENCH_COLUMN(t, RowRecord, algbw_GBps, H5T_NATIVE_DOUBLE);
    SHARDSIM_BENCH_COLUMN(t, RowRecord, busbw_GBps, H5T_NATIVE_DOUBLE);
    SHARDSIM_BENCH_COLUMN(t, RowRecord, wrong, H5T_NATIVE_INT64);
    SHARDSIM_BENCH_COLUMN(t, RowRecord, raw_time_s, H5T_NATIVE_DOUBLE);
    SHARDSIM_BENCH_COLUMN(t, RowRecord, raw_busbw_GBps, H5T_NATIVE_DOUBLE);
    SHARDSIM_BENCH_COLUMN(t, RowRecord, ours_over_raw, H5T_NATIVE_DOUBLE);
    return t;
}

#undef SHARDSIM_BENCH_COLUMN

// The file keeps the in-memory layout without its padding.
h5::Datatype packed(const h5::Datatype& t) {
    h5::Datatype p{SHARDSIM_H5_CHECK(H5Tcopy(t.id()))};
    SHARDSIM_H5_CHECK(H5Tpack(p.id()));
    return p;
}

// ---- attributes -----------------------------------------------------------------------------------

void write_text(hid_t loc, const std::string& name, const std::string& value) {
    h5::Datatype t{SHARDSIM_H5_CHECK(H5Tcopy(H5T_C_S1))};
    SHARDSIM_H5_CHECK(H5Tset_size(t.id(), value.size() + 1));
    SHARDSIM_H5_CHECK(H5Tset_strpad(t.id(), H5T_STR_NULLTERM));
    SHARDSIM_H5_CHECK(H5Tset_cset(t.id(), H5T_CSET_UTF8));
    const h5::Dataspace scalar{SHARDSIM_H5_CHECK(H5Screate(H5S_SCALAR))};
    const h5::Attribute a{SHARDSIM_H5_CHECK(H5Acreate2(loc, name.c_str(), t.id(), scalar.id(), H5P_DEFAULT, H5P_DEFAULT))};
    SHARDSIM_H5_CHECK(H5Awrite(a.id(), t.id(), value.c_str()));
}

void write_int(hid_t loc, const std::string& name, std::int64_t value) {
    const h5::Dataspace scalar{SHARDSIM_H5_CHECK(H5Screate(H5S_SCALAR))};
    const h5::Attribute a{SHARDSIM_H5_CHECK(H5Acreate2(loc, name.c_str(), H5T_STD_I64LE, scalar.id(), H5P_DEFAULT, H5P_DEFAULT))};
    SHARDSIM_H5_CHECK(H5Awrite(a.id(), H5T_NATIVE_INT64, &value));
}

h5::Attribute open_attribute(hid_t loc, const std::string& name, H5T_class_t cls) {
    if (SHARDSIM_H5_CHECK(H5Aexists(loc, name.c_str())) <= 0) throw Error("no attribute '" + name + "' at /");
    h5::Attribute a{SHARDSIM_H5_CHECK(H5Aopen(loc, name.c_str(), H5P_DEFAULT))};
    const h5::Datatype t{SHARDSIM_H5_CHECK(H5Aget_type(a.id()))};
    if (H5Tget_class(t.id()) != cls) throw Error("attribute '" + name + "' at / has the wrong type");
    return a;
}

std::string read_text(hid_t loc, const std::string& name) {
    const h5::Attribute a = open_attribute(loc, name, H5T_STRING);
    const h5::Datatype t{SHARDSIM_H5_CHECK(H5Aget_type(a.id()))};
    if (SHARDSIM_H5_CHECK(H5Tis_variable_str(t.id())) > 0) {
        char* s = nullptr;
        SHARDSIM_H5_CHECK(H5Aread(a.id(), t.id(), &s));
        std::string v = s != nullptr ? s : "";
        H5free_memory(s);
        return v;
    }
    std::string v(SHARDSIM_H5_CHECK(H5Tget_size(t.id())), '\0');
    SHARDSIM_H5_CHECK(H5Aread(a.id(), t.id(), v.data()));
    return v.substr(0, v.find('\0'));
}

std::int64_t read_int(hid_t loc, const std::string& name) {
    const h5::Attribute a = open_attribute(loc, name, H5T_INTEGER);
    std::int64_t v = 0;
    SHARDSIM_H5_CHECK(H5Aread(a.id(), H5T_NATIVE_INT64, &v));
    return v;
}

// ---- datasets -------------------------------------------------------------------------------------

template <class T>
void write_table(hid_t file, const char* name, const h5::Datatype& memory, const std::vector<T>& rows) {
    const h5::Datatype file_type = packed(memory);
    const hsize_t n = rows.size();
    const h5::Dataspace space{SHARDSIM_H5_CHECK(H5Screate_simple(1, &n, nullptr))};
    const h5::Dataset d{SHARDSIM_H5_CHECK(H5Dcreate2(file, name, file_type.id(), space.id(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT))};
    if (!rows.empty()) SHARDSIM_H5_CHECK(H5Dwrite(d.id(), memory.id(), H5S_ALL, H5S_ALL, H5P_DEFAULT, rows.data()));
}

template <class T>
void write_matrix(hid_t file, const char* name, hid_t file_type, hid_t memory_type, const std::vector<T>& v,
                  std::int64_t ranks, std::size_t rows) {
    const hsize_t dims[2] = {static_cast<hsize_t>(ranks), static_cast<hsize_t>(rows)};
    const h5::Dataspace space{SHARDSIM_H5_CHECK(H5Screate_simple(2, dims, nullptr))};
    const h5::Dataset d{SHARDSIM_H5_CHECK(H5Dcreate2(file, name, file_type, space.id(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT))};
    if (!v.empty()) SHARDSIM_H5_CHECK(H5Dwrite(d.id(), memory_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, v.data()));
}

h5::Dataset open_dataset(hid_t file, const std::string& path) {
    if (SHARDSIM_H5_CHECK(H5Lexists(file, path.c_str(), H5P_DEFAULT)) <= 0) throw Error("no dataset " + path);
    return h5::Dataset{SHARDSIM_H5_CHECK(H5Dopen2(file, path.c_str(), H5P_DEFAULT))};
}

std::size_t elements(const h5::Dataset& d) {
    const h5::Dataspace space{SHARDSIM_H5_CHECK(H5Dget_space(d.id()))};
    return static_cast<std::size_t>(SHARDSIM_H5_CHECK(H5Sget_simple_extent_npoints(space.id())));
}

template <class T>
std::vector<T> read_all(hid_t file, const std::string& path, hid_t memory_type) {
    const h5::Dataset d = open_dataset(file, path);
    std::vector<T> v(elements(d));
    if (!v.empty()) SHARDSIM_H5_CHECK(H5Dread(d.id(), memory_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, v.data()));
    return v;
}

RowRecord to_record(const BenchRun& run, const BenchRow& r) {
    const BenchGroup& g = run.groups.at(static_cast<std::size_t>(r.group));
    RowRecord rec{};
    put(rec.group, g.name);
    rec.ranks = g.span.ranks;
    rec.nodes = g.span.nodes;
    rec.per_node = g.span.per_node;
    put(rec.op, plan::collective_name(r.kind));
    rec.size_bytes = r.size_bytes;
    rec.count = r.count;
    rec.in_place = r.in_place ? 1 : 0;
    rec.time_s = r.time_s;
    rec.algbw_GBps = plan::algbw_GBps(r.size_bytes, r.time_s);
    rec.busbw_GBps = plan::busbw_GBps(r.kind, r.size_bytes, g.span.ranks, r.time_s);
    rec.wrong = r.wrong;
    rec.raw_time_s = r.raw_time_s;
    rec.raw_busbw_GBps = std::isnan(r.raw_time_s) ? r.raw_time_s : plan::busbw_GBps(r.kind, r.size_bytes, g.span.ranks, r.raw_time_s);
    rec.ours_over_raw = std::isnan(r.raw_time_s) ? r.raw_time_s : rec.busbw_GBps / rec.raw_busbw_GBps;
    return rec;
}

h5::File open_for_reading(const std::string& path) {
    if (!std::filesystem::exists(path)) throw InputError(path + ": no such file (allowed: a file written by shardsim bench --out)");
    if (H5Fis_hdf5(path.c_str()) <= 0) throw InputError(path + ": not an HDF5 file (allowed: a file written by shardsim bench --out)");
    h5::File f{SHARDSIM_H5_CHECK(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT))};
    if (SHARDSIM_H5_CHECK(H5Aexists(f.id(), "format")) <= 0 || read_text(f.id(), "format") != kFormat)
        throw InputError(path + ": not a bench file (no format = '" + std::string(kFormat) +
                         "' attribute; allowed: a file written by shardsim bench --out)");
    const std::int64_t v = read_int(f.id(), "schema_version");
    if (v != kBenchSchemaVersion)
        throw InputError(path + ": bench file schema_version " + std::to_string(v) + " (allowed: " +
                         std::to_string(kBenchSchemaVersion) + ")");
    return f;
}

}  // namespace

void write_bench_file(const std::string& path, const BenchRun& run) {
    const h5::QuietErrors quiet;
    try {
        h5::File f{SHARDSIM_H5_CHECK(H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT))};
        const hid_t root = f.id();
        write_text(root, "format", kFormat);
        write_int(root, "schema_version", kBenchSchemaVersion);
        write_text(root, "shardsim_version", version());
        write_text(root, "backend", run.backend);
        write_text(root, "raw_library", run.raw_library);
        write_text(root, "dtype", std::string(dtype_name(run.dtype)));
        write_int(root, "world_size", run.world_size);
        write_int(root, "nodes", run.nodes);
        write_int(root, "ranks_per_node", run.ranks_per_node);
        write_int(root, "iters", run.iters);
        write_int(root, "warmup", run.warmup);
        write_text(root, "topology", run.topology);
        write_text(root, "hosts", join(run.hosts, ","));

        std::vector<GroupRecord> groups;
        for (const auto& g : run.groups) {
            GroupRecord rec{};
            put(rec.name, g.name);
            rec.ranks = g.span.ranks;
            rec.nodes = g.span.nodes;
            rec.per_node = g.span.per_node;
            rec.instances = g.instances;
            groups.push_back(rec);
        }
        write_table(root, "groups", group_type(), groups);
        std::vector<RowRecord> rows;
        for (const auto& r : run.rows) rows.push_back(to_record(run, r));
        write_table(root, "rows", row_type(), rows);
        const std::size_t n = run.rows.size();
        write_matrix(root, "rank_time_s", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, run.rank_time_s, run.world_size, n);
        write_matrix(root, "rank_raw_time_s", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, run.rank_raw_time_s, run.world_size, n);
        write_matrix(root, "rank_wrong", H5T_STD_I64LE, H5T_NATIVE_INT64, run.rank_wrong, run.world_size, n);
        f.close();
    } catch (const Error& e) {
        throw Error(path + ": " + e.what());
    }
}

BenchRun read_bench_file(const std::string& path) {
    const h5::QuietErrors quiet;
    try {
        const h5::File f = open_for_reading(path);
        const hid_t root = f.id();
        BenchRun run;
        run.backend = read_text(root, "backend");
        run.raw_library = read_text(root, "raw_library");
        const auto dt = parse_dtype(read_text(root, "dtype"));
        if (!dt) throw Error("unknown dtype '" + read_text(root, "dtype") + "'");
        run.dtype = *dt;
        run.world_size = read_int(root, "world_size");
        run.nodes = read_int(root, "nodes");
        run.ranks_per_node = read_int(root, "ranks_per_node");
        run.iters = static_cast<int>(read_int(root, "iters"));
        run.warmup = static_cast<int>(read_int(root, "warmup"));
        run.topology = read_text(root, "topology");
        run.hosts = split(read_text(root, "hosts"), ',');

        for (const auto& g : read_all<GroupRecord>(root, "/groups", group_type().id()))
            run.groups.push_back({get(g.name), {g.ranks, g.nodes, g.per_node}, g.instances});
        for (const auto& rec : read_all<RowRecord>(root, "/rows", row_type().id())) {
            BenchRow r;
            const std::string group = get(rec.group);
            const auto g = std::find_if(run.groups.begin(), run.groups.end(), [&](const BenchGroup& x) { return x.name == group; });
            if (g == run.groups.end()) throw Error("/rows names group '" + group + "', which /groups lacks");
            r.group = static_cast<int>(g - run.groups.begin());
            const auto kind = plan::parse_collective(get(rec.op));
            if (!kind) throw Error("/rows names unknown op '" + get(rec.op) + "'");
            r.kind = *kind;
            r.size_bytes = rec.size_bytes;
            r.count = rec.count;
            r.in_place = rec.in_place != 0;
            r.time_s = rec.time_s;
            r.raw_time_s = rec.raw_time_s;
            r.wrong = rec.wrong;
            run.rows.push_back(r);
        }
        run.rank_time_s = read_all<double>(root, "/rank_time_s", H5T_NATIVE_DOUBLE);
        run.rank_raw_time_s = read_all<double>(root, "/rank_raw_time_s", H5T_NATIVE_DOUBLE);
        run.rank_wrong = read_all<std::int64_t>(root, "/rank_wrong", H5T_NATIVE_INT64);
        const std::size_t expect = run.rows.size() * static_cast<std::size_t>(run.world_size);
        if (run.rank_time_s.size() != expect || run.rank_raw_time_s.size() != expect || run.rank_wrong.size() != expect)
            throw Error("per-rank datasets are not world_size x rows");
        return run;
    } catch (const InputError&) {
        throw;
    } catch (const Error& e) {
        throw Error(path + ": " + e.what());
    }
}

std::vector<double> read_bench_column(const std::string& path, const std::string& column) {
    const h5::QuietErrors quiet;
    const h5::File f = open_for_reading(path);
    h5::Datatype t{SHARDSIM_H5_CHECK(H5Tcreate(H5T_COMPOUND, sizeof(double)))};
    SHARDSIM_H5_CHECK(H5Tinsert(t.id(), column.c_str(), 0, H5T_NATIVE_DOUBLE));
    return read_all<double>(f.id(), "/rows", t.id());
}

}  // namespace shardsim::io
