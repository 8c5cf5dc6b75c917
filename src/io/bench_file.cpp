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
#include "shardsim/io/h5_util.hpp"

namespace shardsim::io {

namespace {

using bench::BenchGroup;
using bench::BenchRow;
using bench::BenchRun;

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

#define SHARDSIM_BENCH_COLUMN(type, record, member, h5type) \
    SHARDSIM_H5_CHECK(H5Tinsert((type).id(), #member, offsetof(record, member), (h5type)))

h5::Datatype group_type() {
    const h5::Datatype name = h5::string_type(kName, H5T_CSET_ASCII);
    h5::Datatype t{SHARDSIM_H5_CHECK(H5Tcreate(H5T_COMPOUND, sizeof(GroupRecord)))};
    SHARDSIM_BENCH_COLUMN(t, GroupRecord, name, name.id());
    SHARDSIM_BENCH_COLUMN(t, GroupRecord, ranks, H5T_NATIVE_INT64);
    SHARDSIM_BENCH_COLUMN(t, GroupRecord, nodes, H5T_NATIVE_INT64);
    SHARDSIM_BENCH_COLUMN(t, GroupRecord, per_node, H5T_NATIVE_INT64);
    SHARDSIM_BENCH_COLUMN(t, GroupRecord, instances, H5T_NATIVE_INT64);
    return t;
}

h5::Datatype row_type() {
    const h5::Datatype name = h5::string_type(kName, H5T_CSET_ASCII);
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

// ---- datasets -------------------------------------------------------------------------------------

// Units of the columns that have one, as the timeline file says them: "<column>.units" attributes
// (a matrix has one "units" attribute).
const std::vector<h5::Attr> kRowUnits = {
    {"size_bytes.units", std::string("bytes")},  {"time_s.units", std::string("seconds")},
    {"algbw_GBps.units", std::string("GB/s")},   {"busbw_GBps.units", std::string("GB/s")},
    {"raw_time_s.units", std::string("seconds")}, {"raw_busbw_GBps.units", std::string("GB/s")}};

template <class T>
void write_table(hid_t file, const char* name, const h5::Datatype& memory, const std::vector<T>& rows,
                 const std::vector<h5::Attr>& units = {}) {
    const h5::Datatype file_type = h5::packed(memory);
    const hsize_t n = rows.size();
    const h5::Dataspace space{SHARDSIM_H5_CHECK(H5Screate_simple(1, &n, nullptr))};
    const h5::Dataset d{SHARDSIM_H5_CHECK(H5Dcreate2(file, name, file_type.id(), space.id(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT))};
    h5::write_attributes(d.id(), units);
    if (!rows.empty()) SHARDSIM_H5_CHECK(H5Dwrite(d.id(), memory.id(), H5S_ALL, H5S_ALL, H5P_DEFAULT, rows.data()));
}

template <class T>
void write_matrix(hid_t file, const char* name, hid_t file_type, hid_t memory_type, const std::vector<T>& v,
                  std::int64_t ranks, std::size_t rows, const char* units = nullptr) {
    const hsize_t dims[2] = {static_cast<hsize_t>(ranks), static_cast<hsize_t>(rows)};
    const h5::Dataspace space{SHARDSIM_H5_CHECK(H5Screate_simple(2, dims, nullptr))};
    const h5::Dataset d{SHARDSIM_H5_CHECK(H5Dcreate2(file, name, file_type, space.id(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT))};
    if (units != nullptr) h5::write_attribute(d.id(), {"units", std::string(units)});
    if (!v.empty()) SHARDSIM_H5_CHECK(H5Dwrite(d.id(), memory_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, v.data()));
}

std::size_t elements(const h5::Dataset& d) {
    const h5::Dataspace space{SHARDSIM_H5_CHECK(H5Dget_space(d.id()))};
    return static_cast<std::size_t>(SHARDSIM_H5_CHECK(H5Sget_simple_extent_npoints(space.id())));
}

template <class T>
std::vector<T> read_all(hid_t file, const std::string& path, hid_t memory_type) {
    const h5::Dataset d = h5::open_dataset(file, path);
    std::vector<T> v(elements(d));
    if (!v.empty()) SHARDSIM_H5_CHECK(H5Dread(d.id(), memory_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, v.data()));
    return v;
}

RowRecord to_record(const BenchRun& run, const BenchRow& r) {
    const BenchGroup& g = run.groups.at(static_cast<std::size_t>(r.group));
    RowRecord rec{};
    h5::put_name(rec.group, g.name);
    rec.ranks = g.span.ranks;
    rec.nodes = g.span.nodes;
    rec.per_node = g.span.per_node;
    h5::put_name(rec.op, plan::collective_name(r.kind));
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
    if (!h5::has_attribute(f.id(), "format") || h5::read_text_attribute(f.id(), "/", "format") != kFormat)
        throw InputError(path + ": not a bench file (no format = '" + std::string(kFormat) +
                         "' attribute; allowed: a file written by shardsim bench --out)");
    const std::int64_t v = h5::read_int_attribute(f.id(), "/", "schema_version");
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
        h5::write_attributes(root, {{"format", std::string(kFormat)},
                                    {"schema_version", std::int64_t{kBenchSchemaVersion}},
                                    {"shardsim_version", version()},
                                    {"backend", run.backend},
                                    {"raw_library", run.raw_library},
                                    {"dtype", std::string(dtype_name(run.dtype))},
                                    {"world_size", run.world_size},
                                    {"nodes", run.nodes},
                                    {"ranks_per_node", run.ranks_per_node},
                                    {"iters", std::int64_t{run.iters}},
                                    {"warmup", std::int64_t{run.warmup}},
                                    {"topology", run.topology},
                                    {"hosts", join(run.hosts, ",")}});

        std::vector<GroupRecord> groups;
        for (const auto& g : run.groups) {
            GroupRecord rec{};
            h5::put_name(rec.name, g.name);
            rec.ranks = g.span.ranks;
            rec.nodes = g.span.nodes;
            rec.per_node = g.span.per_node;
            rec.instances = g.instances;
            groups.push_back(rec);
        }
        write_table(root, "groups", group_type(), groups);
        std::vector<RowRecord> rows;
        for (const auto& r : run.rows) rows.push_back(to_record(run, r));
        write_table(root, "rows", row_type(), rows, kRowUnits);
        const std::size_t n = run.rows.size();
        write_matrix(root, "rank_time_s", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, run.rank_time_s, run.world_size, n, "seconds");
        write_matrix(root, "rank_raw_time_s", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, run.rank_raw_time_s, run.world_size, n,
                     "seconds");
        write_matrix(root, "rank_wrong", H5T_STD_I64LE, H5T_NATIVE_INT64, run.rank_wrong, run.world_size, n);
        f.close();
    } catch (const Error& e) {
        throw Error(path + ": " + e.what(), e.debug_detail());
    }
}

BenchRun read_bench_file(const std::string& path) {
    const h5::QuietErrors quiet;
    try {
        const h5::File f = open_for_reading(path);
        const hid_t root = f.id();
        BenchRun run;
        run.backend = h5::read_text_attribute(root, "/", "backend");
        run.raw_library = h5::read_text_attribute(root, "/", "raw_library");
        const auto dt = parse_dtype(h5::read_text_attribute(root, "/", "dtype"));
        if (!dt) throw Error("unknown dtype '" + h5::read_text_attribute(root, "/", "dtype") + "'");
        run.dtype = *dt;
        run.world_size = h5::read_int_attribute(root, "/", "world_size");
        run.nodes = h5::read_int_attribute(root, "/", "nodes");
        run.ranks_per_node = h5::read_int_attribute(root, "/", "ranks_per_node");
        run.iters = static_cast<int>(h5::read_int_attribute(root, "/", "iters"));
        run.warmup = static_cast<int>(h5::read_int_attribute(root, "/", "warmup"));
        run.topology = h5::read_text_attribute(root, "/", "topology");
        run.hosts = split(h5::read_text_attribute(root, "/", "hosts"), ',');

        for (const auto& g : read_all<GroupRecord>(root, "/groups", group_type().id()))
        {
            // The file keeps sizes and spans; the stride follows from the placement (bench_groups).
            const std::string name = h5::get_name(g.name);
            const plan::RankGroup ranks{name, g.ranks, name == "replicate" ? run.ranks_per_node : 1};
            run.groups.push_back({name, ranks, {g.ranks, g.nodes, g.per_node}, g.instances});
        }
        for (const auto& rec : read_all<RowRecord>(root, "/rows", row_type().id())) {
            BenchRow r;
            const std::string group = h5::get_name(rec.group);
            const auto g = std::find_if(run.groups.begin(), run.groups.end(), [&](const BenchGroup& x) { return x.name == group; });
            if (g == run.groups.end()) throw Error("/rows names group '" + group + "', which /groups lacks");
            r.group = static_cast<int>(g - run.groups.begin());
            const auto kind = plan::parse_collective(h5::get_name(rec.op));
            if (!kind) throw Error("/rows names unknown op '" + h5::get_name(rec.op) + "'");
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
        throw Error(path + ": " + e.what(), e.debug_detail());
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
