#include "shardsim/io/hdf5.hpp"

#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "hdf5_format.hpp"
#include "shardsim/comm/mpi.hpp"
#include "shardsim/core/error.hpp"

namespace shardsim::io {

namespace {

using namespace detail;

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

constexpr const char* kTables[] = {"ops", "memory", "steps"};

// The first rank of each class holds the class's datasets; the other ranks hard-link to them.
void write_ranks(hid_t file, const RunTimeline& run, const RowTypes& types) {
    std::vector<std::int64_t> holder(run.timelines.size(), -1);
    for (std::int64_t r = 0; r < run.world_size; ++r) {
        const auto c = static_cast<std::size_t>(run.class_of_rank[static_cast<std::size_t>(r)]);
        const RankTimeline& tl = run.timelines[c];
        const h5::Group group = create_rank_group(file, r, rank_attributes(r, tl));
        if (holder[c] < 0) {
            holder[c] = r;
            write_rows(create_table(group.id(), "ops", types.op, tl.ops.size()), types.op, rows_of<OpRow>(tl.ops));
            write_rows(create_table(group.id(), "memory", types.sample, tl.memory.size()), types.sample,
                       rows_of<MemoryRow>(tl.memory));
            const std::vector<StepRow> steps = step_rows(tl);
            write_rows(create_table(group.id(), "steps", types.step, steps.size()), types.step, steps);
            continue;
        }
        for (const char* table : kTables) {
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
        // data() + offset, not &v[offset]: a rank may have no real (or no integer) attributes,
        // and indexing an empty vector is undefined.
        all.push_back(unflatten(mine, ints.data() + r * flat.ints.size(), reals.data() + r * flat.reals.size(),
                                chars.data() + offsets[r]));
    return all;
}

struct TableSizes {
    std::size_t ops = 0;
    std::size_t samples = 0;
    std::size_t steps = 0;
};

std::vector<TableSizes> allgather_sizes(const RankTimeline& tl, std::size_t steps, MPI_Comm comm, int size) {
    const std::int64_t mine[3] = {static_cast<std::int64_t>(tl.ops.size()), static_cast<std::int64_t>(tl.memory.size()),
                                  static_cast<std::int64_t>(steps)};
    std::vector<std::int64_t> all(3 * static_cast<std::size_t>(size));
    SHARDSIM_MPI_CHECK(MPI_Allgather(mine, 3, MPI_INT64_T, all.data(), 3, MPI_INT64_T, comm));
    std::vector<TableSizes> sizes;
    for (std::size_t r = 0; r < static_cast<std::size_t>(size); ++r)
        sizes.push_back({static_cast<std::size_t>(all[3 * r]), static_cast<std::size_t>(all[3 * r + 1]),
                         static_cast<std::size_t>(all[3 * r + 2])});
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

}  // namespace

void check_output_path(const std::string& option, const std::string& path) {
    namespace fs = std::filesystem;
    const std::string allowed = " (allowed: a new or existing regular file in an existing folder this process can write to)";
    const auto bad = [&](const std::string& why) { return InputError(option + ": bad value '" + path + "': " + why + allowed); };
    if (path.empty()) throw bad("an empty path");
    std::error_code ec;
    const fs::file_status st = fs::status(path, ec);
    if (fs::is_directory(st)) throw bad("is a folder");
    if (fs::exists(st) && !fs::is_regular_file(st))
        throw bad("is not a regular file (a device, a pipe or a socket), and the file is published by renaming a new one over it");
    fs::path folder = fs::path(path).parent_path();
    if (folder.empty()) folder = ".";
    const fs::file_status fst = fs::status(folder, ec);
    if (!fs::exists(fst)) throw bad("folder '" + folder.string() + "' does not exist");
    if (!fs::is_directory(fst)) throw bad("'" + folder.string() + "' is not a folder");
    // The file is written beside its final name and renamed: a new file there is what to try, under
    // a name of its own (another run may be writing path + ".partial" right now).
    std::string probe = (folder / ".shardsim-write-test-XXXXXX").string();
    const int fd = ::mkstemp(probe.data());
    if (fd < 0) throw bad("cannot create a file in folder '" + folder.string() + "' (" + std::strerror(errno) + ")");
    ::close(fd);
    fs::remove(probe, ec);
}

void write_run_file(const std::string& path, const RunTimeline& run) {
    const h5::QuietErrors quiet;
    const std::string partial = partial_path(path);
    try {
        check_classes(run);
        const std::vector<Attr> root = root_attributes(run);
        const RowTypes types = make_row_types();
        const h5::PropList fapl = file_access();
        h5::File file{SHARDSIM_H5_CHECK(H5Fcreate(partial.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, fapl.id()))};
        write_attributes(file.id(), root);
        write_units(file.id(), run.unit_names, true);
        write_buffer_tables(file.id(), run, true);
        write_ranks(file.id(), run, types);
        file.close();
        publish(partial, path);
    } catch (const Error& e) {
        std::error_code ec;
        std::filesystem::remove(partial, ec);
        throw Error("cannot write timeline file '" + path + "': " + e.what(), e.debug_detail());
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
        const auto attrs = allgather_attributes(rank_attributes(me, mine), comm, size);
        const std::vector<StepRow> my_steps = step_rows(mine);
        const auto sizes = allgather_sizes(mine, my_steps.size(), comm, size);
        const std::vector<Attr> root = root_attributes(local);
        const RowTypes types = make_row_types();
        const h5::PropList fapl = file_access();
        SHARDSIM_H5_CHECK(H5Pset_fapl_mpio(fapl.id(), comm, MPI_INFO_NULL));
        h5::File file{SHARDSIM_H5_CHECK(H5Fcreate(partial_path(path).c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, fapl.id()))};
        // Metadata calls are collective: every rank creates every group, attribute and dataset
        // with the same arguments. Raw data is written independently, each rank its own rows.
        write_attributes(file.id(), root);
        write_units(file.id(), local.unit_names, me == 0);
        write_buffer_tables(file.id(), local, me == 0);
        for (int r = 0; r < size; ++r) {
            const auto& rank_sizes = sizes[static_cast<std::size_t>(r)];
            const h5::Group group = create_rank_group(file.id(), r, attrs[static_cast<std::size_t>(r)]);
            const h5::Dataset ops = create_table(group.id(), "ops", types.op, rank_sizes.ops);
            const h5::Dataset memory = create_table(group.id(), "memory", types.sample, rank_sizes.samples);
            const h5::Dataset steps = create_table(group.id(), "steps", types.step, rank_sizes.steps);
            if (r != me) continue;
            write_rows(ops, types.op, rows_of<OpRow>(mine.ops));
            write_rows(memory, types.sample, rows_of<MemoryRow>(mine.memory));
            write_rows(steps, types.step, my_steps);
        }
        file.close();  // collective: every rank's rows are in the file once it returns
        // Rank 0 publishes it; every rank returns once it is there (or throws if it is not).
        std::string failed;
        if (me == 0) {
            try {
                publish(partial_path(path), path);
            } catch (const Error& e) {
                failed = e.what();
            }
        }
        int ok = failed.empty() ? 1 : 0;
        SHARDSIM_MPI_CHECK(MPI_Bcast(&ok, 1, MPI_INT, 0, comm));
        if (!ok) throw Error(me == 0 ? failed : "rank 0 could not publish it");
    } catch (const Error& e) {
        throw Error("cannot write timeline file '" + path + "' (rank " + std::to_string(me) + "): " + e.what(), e.debug_detail());
    }
}

}  // namespace shardsim::io
