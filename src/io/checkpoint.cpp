// Sharded checkpoints (io/checkpoint.hpp).
#include "shardsim/io/checkpoint.hpp"

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "shardsim/config/limits.hpp"
#include "shardsim/core/error.hpp"
#include "shardsim/io/h5_util.hpp"

namespace shardsim::io::checkpoint {

namespace fs = std::filesystem;

namespace {

constexpr int kFormat = 1;

// The /index row as the file keeps it.
struct IndexRow {
    char state[16];
    std::int32_t unit, tensor;
    std::int64_t first_row, rows, row_elements, total_rows;
    char dtype[8];
    std::int64_t offset, length;
    std::uint64_t checksum;
};

h5::Datatype index_type() {
    h5::Datatype t{SHARDSIM_H5_CHECK(H5Tcreate(H5T_COMPOUND, sizeof(IndexRow)))};
    const h5::Datatype state = h5::string_type(sizeof(IndexRow::state), H5T_CSET_ASCII);
    const h5::Datatype dtype = h5::string_type(sizeof(IndexRow::dtype), H5T_CSET_ASCII);
    SHARDSIM_H5_CHECK(H5Tinsert(t.id(), "state", HOFFSET(IndexRow, state), state.id()));
    SHARDSIM_H5_CHECK(H5Tinsert(t.id(), "unit", HOFFSET(IndexRow, unit), H5T_NATIVE_INT32));
    SHARDSIM_H5_CHECK(H5Tinsert(t.id(), "tensor", HOFFSET(IndexRow, tensor), H5T_NATIVE_INT32));
    SHARDSIM_H5_CHECK(H5Tinsert(t.id(), "first_row", HOFFSET(IndexRow, first_row), H5T_NATIVE_INT64));
    SHARDSIM_H5_CHECK(H5Tinsert(t.id(), "rows", HOFFSET(IndexRow, rows), H5T_NATIVE_INT64));
    SHARDSIM_H5_CHECK(H5Tinsert(t.id(), "row_elements", HOFFSET(IndexRow, row_elements), H5T_NATIVE_INT64));
    SHARDSIM_H5_CHECK(H5Tinsert(t.id(), "total_rows", HOFFSET(IndexRow, total_rows), H5T_NATIVE_INT64));
    SHARDSIM_H5_CHECK(H5Tinsert(t.id(), "dtype", HOFFSET(IndexRow, dtype), dtype.id()));
    SHARDSIM_H5_CHECK(H5Tinsert(t.id(), "offset", HOFFSET(IndexRow, offset), H5T_NATIVE_INT64));
    SHARDSIM_H5_CHECK(H5Tinsert(t.id(), "length", HOFFSET(IndexRow, length), H5T_NATIVE_INT64));
    SHARDSIM_H5_CHECK(H5Tinsert(t.id(), "checksum", HOFFSET(IndexRow, checksum), H5T_NATIVE_UINT64));
    return t;
}

// FNV-1a, 64 bits: enough to tell a damaged or truncated slice from the one written.
std::uint64_t fnv1a(const unsigned char* p, std::size_t n) {
    std::uint64_t h = 14695981039346656037ull;
    for (std::size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 1099511628211ull;
    return h;
}

std::string key_of(const std::string& state, int unit, int tensor) {
    return state + "/" + std::to_string(unit) + "/" + std::to_string(tensor);
}

std::string read_text(const std::string& path) {
    std::ifstream in(path);
    if (!in) throw InputError(path + ": cannot be read");
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
}

void write_then_rename(const std::string& path, const std::string& text) {
    const std::string tmp = path + ".tmp";
    {
        std::ofstream out(tmp);
        out << text;
        out.flush();
        if (!out) throw Error(tmp + ": write failed");
    }
    fs::rename(tmp, path);
}

// An index row must describe bytes inside /data that hold whole rows of its tensor.
void check_row(const IndexRow& r, std::int64_t data_bytes, const std::string& where) {
    const auto dt = parse_dtype(h5::get_name(r.dtype));
    const bool rows_ok = dt && r.row_elements > 0 && r.total_rows > 0 && r.first_row >= 0 && r.rows > 0 &&
                         r.rows <= r.total_rows && r.first_row <= r.total_rows - r.rows &&
                         r.row_elements <= config::limits::kParams / r.total_rows;
    const bool bytes_ok = rows_ok && r.offset >= 0 && r.length == r.rows * r.row_elements * dtype_size(*dt) &&
                          r.length <= data_bytes && r.offset <= data_bytes - r.length;
    if (!rows_ok || !bytes_ok)
        throw InputError(where + ": rows " + std::to_string(r.first_row) + "+" + std::to_string(r.rows) + " of " +
                         std::to_string(r.total_rows) + " x " + std::to_string(r.row_elements) + " " + h5::get_name(r.dtype) +
                         " at bytes " + std::to_string(r.offset) + "+" + std::to_string(r.length) + " of " + std::to_string(data_bytes) +
                         ": not a slice of whole rows inside /data (the file is damaged)");
}

}  // namespace

struct Reader::Entry {
    std::size_t file = 0;
    IndexRow row{};
};

std::string step_name(std::int64_t steps_done) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "step-%06lld", static_cast<long long>(steps_done));
    return buf;
}

std::string partial_dir(const std::string& dir, std::int64_t steps_done) {
    return (fs::path(dir) / ("." + step_name(steps_done) + ".partial")).string();
}

std::string rank_file(const std::string& folder, int rank) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "rank-%05d.h5", rank);
    return (fs::path(folder) / buf).string();
}

void write_rank_file(const std::string& folder, int rank, const std::vector<exec::StateSlice>& slices) {
    std::vector<IndexRow> index;
    std::vector<unsigned char> data;
    for (const auto& s : slices) {
        IndexRow r{};
        h5::put_name(r.state, s.state);
        r.unit = s.unit;
        r.tensor = s.tensor;
        r.first_row = s.first_row;
        r.rows = s.rows;
        r.row_elements = s.row_elements;
        r.total_rows = s.total_rows;
        h5::put_name(r.dtype, std::string(dtype_name(s.dtype)));
        r.offset = static_cast<std::int64_t>(data.size());
        r.length = static_cast<std::int64_t>(s.bytes.size());
        r.checksum = fnv1a(s.bytes.data(), s.bytes.size());
        data.insert(data.end(), s.bytes.begin(), s.bytes.end());
        index.push_back(r);
    }
    const std::string path = rank_file(folder, rank);
    const h5::QuietErrors quiet;
    h5::File f{SHARDSIM_H5_CHECK(H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT))};
    h5::write_attributes(f.id(), {{"format", std::int64_t{kFormat}}, {"rank", std::int64_t{rank}}});
    {
        const hsize_t n = data.size();
        const h5::Dataspace space{SHARDSIM_H5_CHECK(H5Screate_simple(1, &n, nullptr))};
        const h5::Dataset d{SHARDSIM_H5_CHECK(H5Dcreate2(f.id(), "data", H5T_STD_U8LE, space.id(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT))};
        if (n > 0) SHARDSIM_H5_CHECK(H5Dwrite(d.id(), H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, data.data()));
    }
    {
        const hsize_t n = index.size();
        const h5::Datatype mem = index_type();
        const h5::Datatype file_type = h5::packed(mem);
        const h5::Dataspace space{SHARDSIM_H5_CHECK(H5Screate_simple(1, &n, nullptr))};
        const h5::Dataset d{SHARDSIM_H5_CHECK(H5Dcreate2(f.id(), "index", file_type.id(), space.id(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT))};
        if (n > 0) SHARDSIM_H5_CHECK(H5Dwrite(d.id(), mem.id(), H5S_ALL, H5S_ALL, H5P_DEFAULT, index.data()));
    }
    f.close();
}

std::string publish(const std::string& dir, std::int64_t steps_done, const Json& meta) {
    const std::string partial = partial_dir(dir, steps_done);
    const std::string final_dir = (fs::path(dir) / step_name(steps_done)).string();
    write_then_rename((fs::path(partial) / "meta.json").string(), meta.dump() + "\n");
    std::error_code ec;
    fs::remove_all(final_dir, ec);  // an earlier attempt's checkpoint of the same step (a requeued job)
    fs::rename(partial, final_dir);
    write_then_rename((fs::path(dir) / "latest").string(), step_name(steps_done) + "\n");
    return final_dir;
}

Reader::Reader(const std::string& dir) {
    folder_ = dir;
    const fs::path latest = fs::path(dir) / "latest";
    std::error_code ec;
    if (fs::is_regular_file(latest, ec)) {
        std::string name = read_text(latest.string());
        while (!name.empty() && (name.back() == '\n' || name.back() == ' ')) name.pop_back();
        folder_ = (fs::path(dir) / name).string();
    }
    const std::string meta_path = (fs::path(folder_) / "meta.json").string();
    if (!fs::is_regular_file(meta_path, ec))
        throw InputError("--resume: bad value '" + dir + "': no checkpoint there (allowed: a --checkpoint folder with a 'latest' file, or one of its step-N folders)");
    const std::int64_t world = read_meta(meta_path);
    const h5::QuietErrors quiet;
    for (int r = 0; r < world; ++r) {
        const std::string path = rank_file(folder_, r);
        if (!fs::is_regular_file(path, ec)) throw InputError(folder_ + ": rank " + std::to_string(r) + "'s file " + path + " is missing");
        try {
            read_index(path);
        } catch (const InputError&) {
            throw;
        } catch (const Error& e) {
            throw InputError(path + ": cannot be read as a checkpoint file: " + e.what() + " (allowed: a file shardsim run --checkpoint wrote)");
        }
    }
}

// meta.json: format, world size and steps done checked; returns the world size.
std::int64_t Reader::read_meta(const std::string& meta_path) {
    try {
        meta_ = Json::parse(read_text(meta_path));
    } catch (const InputError&) {
        throw;
    } catch (const Error& e) {
        throw InputError(meta_path + ": not JSON: " + e.what());
    }
    auto number = [&](const char* key) -> std::int64_t {
        if (!meta_.is_object() || !meta_.contains(key) || !meta_.at(key).is_number())
            throw InputError(meta_path + ": " + key + ": missing or not a number (allowed: a meta.json shardsim run --checkpoint wrote)");
        return meta_.at(key).as_int();
    };
    if (number("format") != kFormat) throw InputError(meta_path + ": format: not a shardsim checkpoint of format " + std::to_string(kFormat));
    const std::int64_t done = number("steps_done"), world = number("world_size");
    if (done < 0 || done > config::limits::kSteps)
        throw InputError(meta_path + ": steps_done: bad value " + std::to_string(done) + " (allowed: 0 to " + std::to_string(config::limits::kSteps) + ")");
    if (world < 1 || world > config::limits::kWorld)
        throw InputError(meta_path + ": world_size: bad value " + std::to_string(world) + " (allowed: 1 to " +
                         std::to_string(config::limits::kWorld) + ")");
    return world;
}

// One rank file's /index, each row checked against /data.
void Reader::read_index(const std::string& path) {
    if (const auto why = h5::superblock_problem(path, true))
        throw InputError(path + ": " + *why + " (allowed: a file run --checkpoint wrote)");
    const h5::Datatype mem = index_type();
    const h5::File f{SHARDSIM_H5_CHECK(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT))};
    const h5::Dataset d = h5::open_dataset(f.id(), "index");
    const h5::Dataspace space{SHARDSIM_H5_CHECK(H5Dget_space(d.id()))};
    const hssize_t n = SHARDSIM_H5_CHECK(H5Sget_simple_extent_npoints(space.id()));
    if (static_cast<std::uintmax_t>(n) > fs::file_size(path) / sizeof(IndexRow) + 1)
        throw InputError(path + ": /index: " + std::to_string(n) + " rows, more than the file can hold (the file is damaged)");
    std::vector<IndexRow> rows(static_cast<std::size_t>(n));
    if (n > 0) SHARDSIM_H5_CHECK(H5Dread(d.id(), mem.id(), H5S_ALL, H5S_ALL, H5P_DEFAULT, rows.data()));
    const h5::Dataset data = h5::open_dataset(f.id(), "data");
    const h5::Dataspace data_space{SHARDSIM_H5_CHECK(H5Dget_space(data.id()))};
    const std::int64_t data_bytes = SHARDSIM_H5_CHECK(H5Sget_simple_extent_npoints(data_space.id()));
    // Written contiguous and uncompressed: /data cannot be larger than the file.
    if (static_cast<std::uintmax_t>(data_bytes) > fs::file_size(path))
        throw InputError(path + ": /data: " + std::to_string(data_bytes) + " bytes, more than the file holds (the file is damaged)");
    for (std::size_t i = 0; i < rows.size(); ++i) {
        check_row(rows[i], data_bytes, path + " /index row " + std::to_string(i));
        index_.emplace(key_of(h5::get_name(rows[i].state), rows[i].unit, rows[i].tensor), Entry{files_.size(), rows[i]});
    }
    files_.push_back(path);
}

// An entry's bytes from its file, checksum checked.
void Reader::read_bytes(const Entry& entry, std::vector<unsigned char>& bytes, const std::string& what) const {
    const IndexRow& e = entry.row;
    const std::string& path = files_[entry.file];
    try {
        const h5::QuietErrors quiet;
        const h5::File f{SHARDSIM_H5_CHECK(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT))};
        const h5::Dataset d = h5::open_dataset(f.id(), "data");
        const h5::Dataspace space{SHARDSIM_H5_CHECK(H5Dget_space(d.id()))};
        const hsize_t start = static_cast<hsize_t>(e.offset), count = static_cast<hsize_t>(e.length);
        SHARDSIM_H5_CHECK(H5Sselect_hyperslab(space.id(), H5S_SELECT_SET, &start, nullptr, &count, nullptr));
        const h5::Dataspace mem{SHARDSIM_H5_CHECK(H5Screate_simple(1, &count, nullptr))};
        bytes.resize(static_cast<std::size_t>(e.length));
        SHARDSIM_H5_CHECK(H5Dread(d.id(), H5T_NATIVE_UINT8, mem.id(), space.id(), H5P_DEFAULT, bytes.data()));
    } catch (const Error& err) {
        bytes.clear();
        throw InputError(path + ": cannot be read as a checkpoint file: " + err.what());
    }
    if (fnv1a(bytes.data(), bytes.size()) != e.checksum) {
        bytes.clear();
        throw InputError(what + " rows " + std::to_string(e.first_row) + ".." + std::to_string(e.first_row + e.rows) + " in " + path +
                         ": checksum mismatch (the file is damaged)");
    }
}

std::vector<exec::StateSlice> Reader::slices() const {
    std::vector<exec::StateSlice> out;
    for (const auto& [key, e] : index_) {
        exec::StateSlice s;
        s.state = h5::get_name(e.row.state);
        s.unit = e.row.unit;
        s.tensor = e.row.tensor;
        s.first_row = e.row.first_row;
        s.rows = e.row.rows;
        s.row_elements = e.row.row_elements;
        s.total_rows = e.row.total_rows;
        s.dtype = *parse_dtype(h5::get_name(e.row.dtype));
        out.push_back(std::move(s));
    }
    return out;
}

Reader::~Reader() = default;

std::int64_t Reader::steps_done() const { return meta_.at("steps_done").as_int(); }

void Reader::read(exec::StateSlice& s) {
    const std::string key = key_of(s.state, s.unit, s.tensor);
    const std::string what = folder_ + ": " + s.state + " of unit " + std::to_string(s.unit) + " tensor " + std::to_string(s.tensor);
    const std::int64_t row_bytes = s.row_elements * dtype_size(s.dtype);
    s.bytes.assign(static_cast<std::size_t>(s.rows * row_bytes), 0);
    std::int64_t covered = 0;
    const auto [lo, hi] = index_.equal_range(key);
    for (auto it = lo; it != hi; ++it) {
        const IndexRow& e = it->second.row;
        if (h5::get_name(e.dtype) != dtype_name(s.dtype) || e.row_elements != s.row_elements || e.total_rows != s.total_rows)
            throw InputError(what + ": the checkpoint holds it as " + h5::get_name(e.dtype) + " rows of " + std::to_string(e.row_elements) +
                             " elements (" + std::to_string(e.total_rows) + " rows), this job as " + std::string(dtype_name(s.dtype)) + " rows of " +
                             std::to_string(s.row_elements) + " (" + std::to_string(s.total_rows) +
                             " rows) (allowed: the same model and precision as the run that wrote it)");
        const std::int64_t from = std::max(e.first_row, s.first_row), to = std::min(e.first_row + e.rows, s.first_row + s.rows);
        if (from >= to) continue;
        auto& bytes = verified_[{it->second.file, e.offset, e.length}];
        if (bytes.empty() && e.length > 0) read_bytes(it->second, bytes, what);
        std::memcpy(s.bytes.data() + (from - s.first_row) * row_bytes, bytes.data() + (from - e.first_row) * row_bytes,
                    static_cast<std::size_t>((to - from) * row_bytes));
        covered += to - from;
    }
    if (covered != s.rows)
        throw InputError(what + ": rows " + std::to_string(s.first_row) + ".." + std::to_string(s.first_row + s.rows) +
                         " are not all in the checkpoint (" + std::to_string(covered) + " of " + std::to_string(s.rows) +
                         " found; allowed: a checkpoint of the same model)");
}

}  // namespace shardsim::io::checkpoint
