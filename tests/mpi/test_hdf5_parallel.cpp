// The parallel HDF5 writer: every rank writes its own timeline into one file; rank 0 reads the
// file back and checks every rank's data, and h5dump must read it too.
#include <doctest/doctest.h>
#include <mpi.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string>

#include "shardsim/core/error.hpp"
#include "shardsim/io/h5_handles.hpp"
#include "shardsim/io/hdf5.hpp"

namespace {

using namespace shardsim;
using timeline::MemorySample;
using timeline::OpRecord;
using timeline::RankTimeline;
using timeline::RunTimeline;

struct CommInfo {
    int rank = 0;
    int size = 1;
};

CommInfo info_of(MPI_Comm comm) {
    CommInfo i;
    MPI_Comm_rank(comm, &i.rank);
    MPI_Comm_size(comm, &i.size);
    return i;
}

// Rank 0 of `comm` picks a fresh name in the temp directory and every rank learns it.
std::string shared_temp_path(MPI_Comm comm) {
    static int counter = 0;
    std::string path;
    if (info_of(comm).rank == 0) {
        int world_rank = 0;
        MPI_Comm_rank(MPI_COMM_WORLD, &world_rank);
        path = (std::filesystem::temp_directory_path() /
                ("shardsim_test_hdf5_parallel_" + std::to_string(::getpid()) + "_" + std::to_string(world_rank) + "_" +
                 std::to_string(counter) + ".h5"))
                   .string();
    }
    ++counter;
    int length = static_cast<int>(path.size());
    MPI_Bcast(&length, 1, MPI_INT, 0, comm);
    path.resize(static_cast<std::size_t>(length));
    MPI_Bcast(path.data(), length, MPI_CHAR, 0, comm);
    return path;
}

// Removed by the rank that owns it, at the end of its scope.
struct FileRemover {
    std::string path;
    bool owner = false;
    ~FileRemover() {
        std::error_code ec;
        if (owner) std::filesystem::remove(path, ec);
    }
};

// Rank r: r + 1 ops, r + 2 memory samples, names of different lengths; steps alternate between
// the run's two (a reader refuses empty datasets and steps beyond the run's).
RankTimeline rank_timeline(int r) {
    RankTimeline tl;
    tl.rank = r;
    tl.device = r % 2 == 0 ? "cpu" : "NVIDIA H100 80GB HBM3 #" + std::to_string(r);
    tl.host = "node" + std::string(static_cast<std::size_t>(r), 'x');
    for (int i = 0; i <= r; ++i) {
        OpRecord op;
        op.op_id = i;
        op.t_start = 0.1 * i + 0.001 * r;
        op.t_end = op.t_start + 0.05;
        op.unit = i % 3;
        op.micro_batch = i % 2;
        op.step = r % 2;
        if (i % 2 == 0) {
            op.kind = plan::OpKind::forward;
            op.stream = plan::OpStream::compute;
            op.flops = 1e9 * (r + 1) + i;
        } else {
            op.kind = plan::OpKind::reduce_scatter;
            op.stream = plan::OpStream::comm;
            op.collective = static_cast<int>(plan::CollectiveKind::reduce_scatter);
            op.bytes = (std::int64_t{1} << 32) + 1000 * r + i;
            op.ranks = 2 + r;
        }
        tl.ops.push_back(op);
    }
    for (int i = 0; i <= r + 1; ++i) {
        MemorySample m;
        m.t = 0.1 * i;
        m.op_id = i - 1;
        m.step = r % 2;
        for (MemCategory c : kAllMemCategories) m.bytes[c] = 1000000LL * r + 1000 * i + category_index(c);
        tl.memory.push_back(m);
    }
    return tl;
}

RunTimeline local_run(RankTimeline mine, int size) {
    RunTimeline run;
    run.mode = "run";
    run.backend = "mpi";
    run.job_text = "[model]\npreset = tiny\n";
    run.topology_text = "[gpu]\nname = cpu\n";
    run.job_name = "tiny-ddp";
    run.world_size = size;
    run.gpu_memory_bytes = 1 << 30;
    run.host_memory_bytes = std::int64_t{64} << 30;
    run.gpus_per_node = size;
    run.steps = 2;
    run.param_count = 123456;
    run.trainable_param_count = 1234;
    run.unit_names = {"embed", "block.0", "head"};
    run.attributes = {{"slurm_job_id", "77"}};
    run.timelines = {std::move(mine)};
    return run;
}

void check_same_timeline(const RankTimeline& got, const RankTimeline& want) {
    CHECK(got.device == want.device);
    CHECK(got.host == want.host);
    REQUIRE(got.ops.size() == want.ops.size());
    for (std::size_t i = 0; i < want.ops.size(); ++i) {
        const OpRecord& g = got.ops[i];
        const OpRecord& w = want.ops[i];
        CHECK(g.op_id == w.op_id);
        CHECK(g.kind == w.kind);
        CHECK(g.stream == w.stream);
        CHECK(g.unit == w.unit);
        CHECK(g.micro_batch == w.micro_batch);
        CHECK(g.step == w.step);
        CHECK(g.t_start == w.t_start);
        CHECK(g.t_end == w.t_end);
        CHECK(g.bytes == w.bytes);
        CHECK(g.flops == w.flops);
        CHECK(g.collective == w.collective);
        CHECK(g.ranks == w.ranks);
    }
    REQUIRE(got.memory.size() == want.memory.size());
    for (std::size_t i = 0; i < want.memory.size(); ++i) {
        CHECK(got.memory[i].t == want.memory[i].t);
        CHECK(got.memory[i].op_id == want.memory[i].op_id);
        CHECK(got.memory[i].step == want.memory[i].step);
        CHECK(got.memory[i].bytes == want.memory[i].bytes);
    }
}

template <class T>
T read_attribute(hid_t loc, const char* name, hid_t type) {
    const io::h5::Attribute attr{SHARDSIM_H5_CHECK(H5Aopen(loc, name, H5P_DEFAULT))};
    T value{};
    SHARDSIM_H5_CHECK(H5Aread(attr.id(), type, &value));
    return value;
}

// One column of a compound dataset, read by name (HDF5 converts members by name).
template <class T>
std::vector<T> read_column(hid_t file, const std::string& dataset, const char* column, hid_t type) {
    const io::h5::Dataset d{SHARDSIM_H5_CHECK(H5Dopen2(file, dataset.c_str(), H5P_DEFAULT))};
    const io::h5::Dataspace space{SHARDSIM_H5_CHECK(H5Dget_space(d.id()))};
    std::vector<T> values(static_cast<std::size_t>(H5Sget_simple_extent_npoints(space.id())));
    const io::h5::Datatype one{SHARDSIM_H5_CHECK(H5Tcreate(H5T_COMPOUND, sizeof(T)))};
    SHARDSIM_H5_CHECK(H5Tinsert(one.id(), column, 0, type));
    if (!values.empty()) SHARDSIM_H5_CHECK(H5Dread(d.id(), one.id(), H5S_ALL, H5S_ALL, H5P_DEFAULT, values.data()));
    return values;
}

// Rank 0's whole check of a file written by `size` ranks from rank_timeline(r).
void check_parallel_file(const std::string& path, int size) {
    const RunTimeline back = io::read_run_file(path);
    const RunTimeline want = local_run(RankTimeline{}, size);
    CHECK(back.mode == want.mode);
    CHECK(back.backend == want.backend);
    CHECK(back.job_text == want.job_text);
    CHECK(back.topology_text == want.topology_text);
    CHECK(back.job_name == want.job_name);
    CHECK(back.world_size == size);
    CHECK(back.gpu_memory_bytes == want.gpu_memory_bytes);
    CHECK(back.host_memory_bytes == want.host_memory_bytes);
    CHECK(back.gpus_per_node == want.gpus_per_node);
    CHECK(back.steps == want.steps);
    CHECK(back.param_count == want.param_count);
    CHECK(back.trainable_param_count == want.trainable_param_count);
    CHECK(back.unit_names == want.unit_names);
    CHECK(back.attributes == want.attributes);
    // No hard links in a parallel file: every rank is its own class.
    REQUIRE(back.timelines.size() == static_cast<std::size_t>(size));
    const io::h5::File file{SHARDSIM_H5_CHECK(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT))};
    for (int r = 0; r < size; ++r) {
        CAPTURE(r);
        CHECK(back.class_of_rank[static_cast<std::size_t>(r)] == r);
        const RankTimeline expected = rank_timeline(r);
        check_same_timeline(back.rank(r), expected);
        const io::h5::Group g{SHARDSIM_H5_CHECK(H5Gopen2(file.id(), ("/rank_" + std::to_string(r)).c_str(), H5P_DEFAULT))};
        CHECK(read_attribute<std::int64_t>(g.id(), "rank", H5T_NATIVE_INT64) == r);
        // Per step, in /rank_<r>/steps: one row per recorded step.
        const std::string steps = "/rank_" + std::to_string(r) + "/steps";
        const auto step = read_column<std::int32_t>(file.id(), steps, "step", H5T_NATIVE_INT32);
        const auto peak = read_column<std::int64_t>(file.id(), steps, "peak_bytes", H5T_NATIVE_INT64);
        const auto act = read_column<std::int64_t>(file.id(), steps, "max_activations", H5T_NATIVE_INT64);
        const auto exposed = read_column<double>(file.id(), steps, "exposed_comm_s", H5T_NATIVE_DOUBLE);
        const auto rs_bytes = read_column<std::int64_t>(file.id(), steps, "comm_reduce_scatter_bytes", H5T_NATIVE_INT64);
        const auto rs_wire = read_column<double>(file.id(), steps, "comm_reduce_scatter_wire_bytes", H5T_NATIVE_DOUBLE);
        const std::vector<int> recorded = expected.steps();
        REQUIRE(step.size() == recorded.size());
        for (std::size_t i = 0; i < recorded.size(); ++i) {
            const auto s = expected.only_step(recorded[i]).summarize();
            CHECK(step[i] == recorded[i]);
            CHECK(peak[i] == s.peak_bytes);
            CHECK(act[i] == s.max_by_category[MemCategory::activations]);
            CHECK(exposed[i] == s.exposed_comm);
            const int rs = static_cast<int>(plan::CollectiveKind::reduce_scatter);
            CHECK(rs_bytes[i] == (s.comm_size_bytes.count(rs) ? s.comm_size_bytes.at(rs) : 0));
            CHECK(rs_wire[i] == (s.comm_wire_bytes.count(rs) ? s.comm_wire_bytes.at(rs) : 0.0));
        }
    }
}

}  // namespace

TEST_CASE("hdf5 parallel: every rank writes its own timeline into one file") {
    const CommInfo me = info_of(MPI_COMM_WORLD);
    const FileRemover file{shared_temp_path(MPI_COMM_WORLD), me.rank == 0};
    io::write_run_parallel(file.path, local_run(rank_timeline(me.rank), me.size), MPI_COMM_WORLD);
    MPI_Barrier(MPI_COMM_WORLD);
    if (me.rank != 0) return;
    check_parallel_file(file.path, me.size);
    CHECK(std::system(("h5dump -H '" + file.path + "' > /dev/null 2>&1").c_str()) == 0);
    CHECK(std::system(("h5dump '" + file.path + "' > /dev/null 2>&1").c_str()) == 0);
}

TEST_CASE("hdf5 parallel: a sub-communicator writes a file of its own ranks") {
    const CommInfo world = info_of(MPI_COMM_WORLD);
    MPI_Comm half = MPI_COMM_NULL;
    MPI_Comm_split(MPI_COMM_WORLD, world.rank % 2, world.rank, &half);
    const CommInfo me = info_of(half);
    {
        const FileRemover file{shared_temp_path(half), me.rank == 0};
        io::write_run_parallel(file.path, local_run(rank_timeline(me.rank), me.size), half);
        MPI_Barrier(half);
        if (me.rank == 0) check_parallel_file(file.path, me.size);
    }
    MPI_Comm_free(&half);
}

TEST_CASE("hdf5 parallel: bad input on one rank makes every rank throw, none hang") {
    const CommInfo me = info_of(MPI_COMM_WORLD);
    const FileRemover file{shared_temp_path(MPI_COMM_WORLD), me.rank == 0};

    RunTimeline run = local_run(rank_timeline(me.rank), me.size);
    if (me.rank == me.size - 1) run.timelines.push_back(rank_timeline(0));
    CHECK_THROWS_AS(io::write_run_parallel(file.path, run, MPI_COMM_WORLD), Error);

    // Ranks that disagree need two ranks to disagree.
    if (me.size > 1) {
        run = local_run(rank_timeline(me.rank), me.size);
        if (me.rank == me.size - 1) run.job_name = "another job";
        CHECK_THROWS_AS(io::write_run_parallel(file.path, run, MPI_COMM_WORLD), Error);
    }

    run = local_run(rank_timeline(me.rank), me.size + 1);
    CHECK_THROWS_AS(io::write_run_parallel(file.path, run, MPI_COMM_WORLD), Error);
    // The check comes before the file is created.
    MPI_Barrier(MPI_COMM_WORLD);
    if (me.rank == 0) CHECK_FALSE(std::filesystem::exists(file.path));
}
