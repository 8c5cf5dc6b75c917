// The HDF5 timeline file from one process: every field round-trips, shared timelines are
// stored once, and a file that is absent or not ours is refused with a one-line message.
#include <doctest/doctest.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>

#include "shardsim/core/error.hpp"
#include "shardsim/io/h5_handles.hpp"
#include "shardsim/io/h5_util.hpp"
#include "shardsim/io/hdf5.hpp"

namespace {

using namespace shardsim;
using timeline::MemorySample;
using timeline::OpRecord;
using timeline::RankTimeline;
using timeline::RunTimeline;

// A file in the temp directory, removed when the test is done with it.
class TempFile {
public:
    TempFile() {
        static int counter = 0;
        path_ = (std::filesystem::temp_directory_path() /
                 ("shardsim_test_hdf5_" + std::to_string(::getpid()) + "_" + std::to_string(counter++) + ".h5"))
                    .string();
    }
    ~TempFile() {
        std::error_code ec;
        std::filesystem::remove(path_, ec);
    }
    TempFile(const TempFile&) = delete;
    TempFile& operator=(const TempFile&) = delete;
    const std::string& path() const { return path_; }

private:
    std::string path_;
};

OpRecord op(int id, plan::OpKind kind, plan::OpStream stream, double t_start, double t_end) {
    OpRecord r;
    r.op_id = id;
    r.kind = kind;
    r.stream = stream;
    r.t_start = t_start;
    r.t_end = t_end;
    // A distinct net change per category, negative ones and some beyond 32 bits.
    for (MemCategory c : kAllMemCategories) r.net[c] = (id + 1) * (category_index(c) - 4) * 1'000'000'007LL;
    return r;
}

OpRecord collective(int id, plan::OpKind kind, plan::CollectiveKind c, double t_start, double t_end,
                    std::int64_t bytes, std::int64_t ranks) {
    OpRecord r = op(id, kind, plan::OpStream::comm, t_start, t_end);
    r.collective = static_cast<int>(c);
    r.bytes = bytes;
    r.ranks = ranks;
    return r;
}

// Distinct values in every category, some beyond 32 bits.
MemorySample sample(double t, int op_id, int step, std::int64_t seed) {
    MemorySample m;
    m.t = t;
    m.op_id = op_id;
    m.step = step;
    for (MemCategory c : kAllMemCategories) m.bytes[c] = (seed << 33) + 1000 * seed + category_index(c) * 7 + 1;
    return m;
}

// A ZeRO-3-like step: gather, forward, backward, reduce-scatter, optimizer, and a copy.
RankTimeline timeline_a() {
    RankTimeline tl;
    tl.device = "A100-SXM4-40GB (simulated)";
    tl.host = "node-a";
    tl.ops.push_back(collective(0, plan::OpKind::all_gather, plan::CollectiveKind::all_gather, 0.0, 0.002,
                                std::int64_t{3} << 31, 4));
    OpRecord fwd = op(1, plan::OpKind::forward, plan::OpStream::compute, 0.002, 0.010);
    fwd.unit = 1;
    fwd.micro_batch = 0;
    fwd.flops = 1.25e12;
    tl.ops.push_back(fwd);
    OpRecord bwd = op(2, plan::OpKind::backward, plan::OpStream::compute, 0.010, 0.030);
    bwd.unit = 2;
    bwd.micro_batch = 1;
    bwd.flops = 2.5e12;
    tl.ops.push_back(bwd);
    OpRecord rs = collective(3, plan::OpKind::reduce_scatter, plan::CollectiveKind::reduce_scatter, 0.025, 0.040,
                             1 << 20, 4);
    rs.unit = 2;
    tl.ops.push_back(rs);
    OpRecord step = op(4, plan::OpKind::optimizer_step, plan::OpStream::host, 0.040, 0.045);
    step.step = 2;  // the last of the run's 3 steps
    tl.ops.push_back(step);
    OpRecord copy = op(5, plan::OpKind::upload_update, plan::OpStream::copy, 0.045, 0.047);
    copy.bytes = 123456789;
    tl.ops.push_back(copy);
    for (int i = 0; i < 7; ++i) tl.memory.push_back(sample(0.007 * i, i - 1, i / 4, i + 1));
    return tl;
}

// A DDP-like step on a CPU rank: different kinds, streams and sizes.
RankTimeline timeline_b() {
    RankTimeline tl;
    tl.device = "cpu";
    tl.host = "a-much-longer-host-name.cluster.example";
    OpRecord fwd = op(0, plan::OpKind::forward, plan::OpStream::compute, 0.0, 0.5);
    fwd.unit = 0;
    fwd.flops = 3e9;
    tl.ops.push_back(fwd);
    tl.ops.push_back(op(1, plan::OpKind::reshard, plan::OpStream::compute, 0.5, 0.5));
    tl.ops.push_back(collective(2, plan::OpKind::all_reduce, plan::CollectiveKind::all_reduce, 0.3, 0.9, 4096, 2));
    tl.ops.push_back(collective(3, plan::OpKind::all_gather, plan::CollectiveKind::broadcast, 0.9, 1.0, 64, 2));
    for (int i = 0; i < 3; ++i) tl.memory.push_back(sample(0.4 * i, i - 1, 0, 50 + i));
    return tl;
}

RunTimeline two_class_run() {
    RunTimeline run;
    run.mode = "run";
    run.backend = "mpi";
    run.job_text = "[model]\npreset = llama-7b\n# ×2 nodes\n";
    run.topology_text = "[gpu]\nname = A100\n";
    run.job_name = "fsdp-llama7b";
    run.world_size = 4;
    run.gpu_memory_bytes = std::int64_t{40} << 30;
    run.host_memory_bytes = std::int64_t{512} << 30;
    run.gpus_per_node = 2;
    run.steps = 3;
    run.param_count = 6738415616;
    run.trainable_param_count = 4194304;
    run.unit_names = {"embed", "block.0", "block.1", "head"};
    run.attributes = {{"effective_job", "[model]\npreset = llama-7b\n"}, {"slurm_job_id", "4242"}, {"empty", ""}};
    run.timelines = {timeline_a(), timeline_b()};
    run.class_of_rank = {0, 1, 0, 1};
    return run;
}

void check_same_op(const OpRecord& got, const OpRecord& want) {
    CHECK(got.op_id == want.op_id);
    CHECK(got.kind == want.kind);
    CHECK(got.stream == want.stream);
    CHECK(got.unit == want.unit);
    CHECK(got.micro_batch == want.micro_batch);
    CHECK(got.step == want.step);
    CHECK(got.t_start == want.t_start);
    CHECK(got.t_end == want.t_end);
    CHECK(got.bytes == want.bytes);
    CHECK(got.flops == want.flops);
    CHECK(got.collective == want.collective);
    CHECK(got.ranks == want.ranks);
    CHECK(got.net == want.net);
}

void check_same_timeline(const RankTimeline& got, const RankTimeline& want) {
    CHECK(got.device == want.device);
    CHECK(got.host == want.host);
    REQUIRE(got.ops.size() == want.ops.size());
    for (std::size_t i = 0; i < want.ops.size(); ++i) check_same_op(got.ops[i], want.ops[i]);
    REQUIRE(got.memory.size() == want.memory.size());
    for (std::size_t i = 0; i < want.memory.size(); ++i) {
        CHECK(got.memory[i].t == want.memory[i].t);
        CHECK(got.memory[i].op_id == want.memory[i].op_id);
        CHECK(got.memory[i].step == want.memory[i].step);
        CHECK(got.memory[i].bytes == want.memory[i].bytes);
    }
}

void check_same_root(const RunTimeline& got, const RunTimeline& want) {
    CHECK(got.mode == want.mode);
    CHECK(got.backend == want.backend);
    CHECK(got.job_text == want.job_text);
    CHECK(got.topology_text == want.topology_text);
    CHECK(got.job_name == want.job_name);
    CHECK(got.world_size == want.world_size);
    CHECK(got.gpu_memory_bytes == want.gpu_memory_bytes);
    CHECK(got.host_memory_bytes == want.host_memory_bytes);
    CHECK(got.gpus_per_node == want.gpus_per_node);
    CHECK(got.steps == want.steps);
    CHECK(got.param_count == want.param_count);
    CHECK(got.trainable_param_count == want.trainable_param_count);
    CHECK(got.unit_names == want.unit_names);
    CHECK(got.attributes == want.attributes);
    CHECK(got.complete == want.complete);
    CHECK(got.completion == want.completion);
}

std::string error_of(const std::function<void()>& f) {
    try {
        f();
    } catch (const Error& e) {
        return e.what();
    }
    return "";
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
    const io::h5::Dataset d = io::h5::open_dataset(file, dataset);
    const io::h5::Dataspace space{SHARDSIM_H5_CHECK(H5Dget_space(d.id()))};
    std::vector<T> values(static_cast<std::size_t>(H5Sget_simple_extent_npoints(space.id())));
    const io::h5::Datatype one{SHARDSIM_H5_CHECK(H5Tcreate(H5T_COMPOUND, sizeof(T)))};
    SHARDSIM_H5_CHECK(H5Tinsert(one.id(), column, 0, type));
    if (!values.empty()) SHARDSIM_H5_CHECK(H5Dread(d.id(), one.id(), H5S_ALL, H5S_ALL, H5P_DEFAULT, values.data()));
    return values;
}

bool have_h5dump() { return std::system("command -v h5dump > /dev/null 2>&1") == 0; }

}  // namespace

TEST_CASE("hdf5: a two-class run round-trips every field") {
    const RunTimeline run = two_class_run();
    const TempFile file;
    io::write_run_file(file.path(), run);
    const RunTimeline back = io::read_run_file(file.path());
    check_same_root(back, run);
    // Ranks 0 and 2 share one timeline, 1 and 3 another: the hard links keep the classes.
    CHECK(back.timelines.size() == 2);
    CHECK(back.class_of_rank == std::vector<int>{0, 1, 0, 1});
    for (std::int64_t r = 0; r < run.world_size; ++r) {
        CAPTURE(r);
        check_same_timeline(back.rank(r), run.rank(r));
    }
    CHECK(back.timelines[0].rank == 0);
    CHECK(back.timelines[1].rank == 1);
}

TEST_CASE("hdf5: a steps dataset per rank holds each step's figures, not sums over steps") {
    const RunTimeline run = two_class_run();
    const TempFile file;
    io::write_run_file(file.path(), run);
    const io::h5::File f{SHARDSIM_H5_CHECK(H5Fopen(file.path().c_str(), H5F_ACC_RDONLY, H5P_DEFAULT))};
    for (std::int64_t r = 0; r < run.world_size; ++r) {
        CAPTURE(r);
        const RankTimeline& tl = run.rank(r);
        const std::string steps = "/rank_" + std::to_string(r) + "/steps";
        const io::h5::Group g{SHARDSIM_H5_CHECK(H5Gopen2(f.id(), ("/rank_" + std::to_string(r)).c_str(), H5P_DEFAULT))};
        CHECK(read_attribute<std::int64_t>(g.id(), "rank", H5T_NATIVE_INT64) == r);
        CHECK_FALSE(io::h5::has_attribute(g.id(), "step_time_s"));  // no summed attributes any more
        const auto step = read_column<std::int32_t>(f.id(), steps, "step", H5T_NATIVE_INT32);
        const std::vector<int> recorded = tl.steps();
        CHECK(step == std::vector<std::int32_t>(recorded.begin(), recorded.end()));
        const auto step_time = read_column<double>(f.id(), steps, "step_time_s", H5T_NATIVE_DOUBLE);
        const auto exposed = read_column<double>(f.id(), steps, "exposed_comm_s", H5T_NATIVE_DOUBLE);
        const auto peak = read_column<std::int64_t>(f.id(), steps, "peak_bytes", H5T_NATIVE_INT64);
        const auto max_act = read_column<std::int64_t>(f.id(), steps, "max_activations", H5T_NATIVE_INT64);
        const auto ag = read_column<std::int64_t>(f.id(), steps, "comm_all_gather_bytes", H5T_NATIVE_INT64);
        REQUIRE(step_time.size() == step.size());
        for (std::size_t i = 0; i < step.size(); ++i) {
            const auto s = tl.only_step(step[i]).summarize();
            CHECK(step_time[i] == s.step_time);
            CHECK(exposed[i] == s.exposed_comm);
            CHECK(peak[i] == s.peak_bytes);
            CHECK(max_act[i] == s.max_by_category[MemCategory::activations]);
            const int k = static_cast<int>(plan::CollectiveKind::all_gather);
            CHECK(ag[i] == (s.comm_size_bytes.count(k) ? s.comm_size_bytes.at(k) : 0));
        }
    }
    // Rank 0 records steps 0, 1 and 2: three rows, and step 2's time is its own, not the file's.
    CHECK(run.rank(0).steps() == std::vector<int>{0, 1, 2});
    CHECK(run.rank(0).only_step(2).summarize().step_time == doctest::Approx(0.005));
    CHECK(run.rank(0).summarize().step_time == doctest::Approx(0.047));
    CHECK(run.rank(0).summarize().comm_size_bytes.at(static_cast<int>(plan::CollectiveKind::all_gather)) > 0);
    CHECK(run.rank(1).summarize().exposed_comm > 0);
}

TEST_CASE("hdf5: every column with a unit says it, and the root says the schema and completeness") {
    RunTimeline run = two_class_run();
    run.complete = false;
    run.completion = "stopped by SIGTERM after step 2 of 3";
    const TempFile file;
    io::write_run_file(file.path(), run);
    const io::h5::File f{SHARDSIM_H5_CHECK(H5Fopen(file.path().c_str(), H5F_ACC_RDONLY, H5P_DEFAULT))};
    CHECK(io::h5::read_int_attribute(f.id(), "/", "schema_version") == 2);
    CHECK(io::h5::read_int_attribute(f.id(), "/", "complete") == 0);
    CHECK(io::h5::read_text_attribute(f.id(), "/", "completion") == run.completion);
    const auto units = [&](const std::string& dataset, const std::string& column) {
        const io::h5::Dataset d = io::h5::open_dataset(f.id(), dataset);
        return io::h5::read_text_attribute(d.id(), dataset, column + ".units");
    };
    CHECK(units("/rank_1/ops", "t_start") == "seconds");
    CHECK(units("/rank_1/ops", "bytes") == "bytes");
    CHECK(units("/rank_1/ops", "flops") == "FLOPs");
    CHECK(units("/rank_1/ops", "net_activations") == "bytes");
    CHECK(units("/rank_1/memory", "t") == "seconds");
    CHECK(units("/rank_1/memory", "optimizer_states") == "bytes");
    CHECK(units("/rank_1/memory", "total") == "bytes");
    CHECK(units("/rank_1/steps", "step_time_s") == "seconds");
    CHECK(units("/rank_1/steps", "flops") == "FLOPs");
    CHECK(units("/rank_1/steps", "comm_all_reduce_wire_bytes") == "bytes");
    const io::h5::Dataset ops = io::h5::open_dataset(f.id(), "/rank_1/ops");
    CHECK_FALSE(io::h5::has_attribute(ops.id(), "kind.units"));  // a name has no unit
    const RunTimeline back = io::read_run_file(file.path());
    CHECK_FALSE(back.complete);
    CHECK(back.completion == run.completion);
}

TEST_CASE("hdf5: a schema 1 file is still read, as a complete one") {
    const TempFile file;
    io::write_run_file(file.path(), two_class_run());
    {  // What schema 1 lacked: completeness and the steps datasets.
        const io::h5::File f{SHARDSIM_H5_CHECK(H5Fopen(file.path().c_str(), H5F_ACC_RDWR, H5P_DEFAULT))};
        const io::h5::Attribute a{SHARDSIM_H5_CHECK(H5Aopen(f.id(), "schema_version", H5P_DEFAULT))};
        const std::int64_t one = 1;
        SHARDSIM_H5_CHECK(H5Awrite(a.id(), H5T_NATIVE_INT64, &one));
        SHARDSIM_H5_CHECK(H5Adelete(f.id(), "complete"));
        SHARDSIM_H5_CHECK(H5Adelete(f.id(), "completion"));
        for (int r = 0; r < 4; ++r) SHARDSIM_H5_CHECK(H5Ldelete(f.id(), ("/rank_" + std::to_string(r) + "/steps").c_str(), H5P_DEFAULT));
    }
    const RunTimeline back = io::read_run_file(file.path());
    CHECK(back.complete);
    check_same_timeline(back.rank(1), two_class_run().rank(1));
}

TEST_CASE("hdf5: ranks sharing one timeline store it once") {
    RunTimeline run = two_class_run();
    RankTimeline big = timeline_a();
    for (int i = 0; i < 4000; ++i) big.ops.push_back(op(10 + i, plan::OpKind::forward, plan::OpStream::compute, i, i + 1));
    run.timelines = {big};
    run.world_size = 1;
    run.class_of_rank = {0};
    const TempFile one;
    io::write_run_file(one.path(), run);
    run.world_size = 256;
    run.class_of_rank.assign(256, 0);
    const TempFile many;
    io::write_run_file(many.path(), run);
    const auto size_one = std::filesystem::file_size(one.path());
    const auto size_many = std::filesystem::file_size(many.path());
    MESSAGE("1 rank: " << size_one << " bytes, 256 ranks sharing it: " << size_many << " bytes");
    // 255 more copies of ~4000 rows would add tens of MB; groups with their attributes add a few KiB each.
    CHECK(size_many < size_one + 255 * 8192);
    const RunTimeline back = io::read_run_file(many.path());
    CHECK(back.timelines.size() == 1);
    CHECK(back.class_of_rank.size() == 256);
    check_same_timeline(back.rank(255), big);
}

TEST_CASE("hdf5: classes are numbered by their first rank in the file") {
    RunTimeline run = two_class_run();
    run.world_size = 3;
    run.class_of_rank = {1, 0, 0};
    const TempFile file;
    io::write_run_file(file.path(), run);
    const RunTimeline back = io::read_run_file(file.path());
    check_same_root(back, run);
    CHECK(back.class_of_rank == std::vector<int>{0, 1, 1});
    for (std::int64_t r = 0; r < run.world_size; ++r) check_same_timeline(back.rank(r), run.rank(r));
}

TEST_CASE("hdf5: an empty timeline can be written but is refused when read, naming the dataset") {
    RunTimeline run = two_class_run();
    RankTimeline empty;
    run.timelines = {empty, timeline_b()};
    run.world_size = 3;
    run.class_of_rank = {1, 0, 0};
    const TempFile file;
    io::write_run_file(file.path(), run);
    const std::string message = error_of([&] { io::read_run_file(file.path()); });
    CHECK(message == "cannot read timeline file '" + file.path() + "': /rank_1/ops: no rows (allowed: one row per op of the step)");
}

TEST_CASE("hdf5: INI texts beyond 64 KiB fit in attributes") {
    RunTimeline run = two_class_run();
    for (int i = 0; i < 8000; ++i) run.job_text += "key_" + std::to_string(i) + " = some value\n";
    REQUIRE(run.job_text.size() > 2 * 65536);
    run.attributes["effective_job"] = run.job_text;
    const TempFile file;
    io::write_run_file(file.path(), run);
    check_same_root(io::read_run_file(file.path()), run);
}

TEST_CASE("hdf5: h5dump reads the whole file and shows the hard links") {
    if (!have_h5dump()) {
        MESSAGE("skipped: h5dump not on PATH (apt-get install hdf5-tools)");
        return;
    }
    const TempFile file;
    io::write_run_file(file.path(), two_class_run());
    CHECK(std::system(("h5dump '" + file.path() + "' > /dev/null 2>&1").c_str()) == 0);
    CHECK(std::system(("h5dump -H '" + file.path() + "' | grep -q 'HARDLINK \"/rank_0/ops\"'").c_str()) == 0);
    CHECK(std::system(("h5dump -H '" + file.path() + "' | grep -q 'HARDLINK \"/rank_1/memory\"'").c_str()) == 0);
}

TEST_CASE("hdf5: an absent, foreign or newer file is refused in one line naming it") {
    const TempFile file;
    const auto check_refused = [&](const std::string& why) {
        const std::string message = error_of([&] { io::read_run_file(file.path()); });
        CAPTURE(message);
        CHECK(message.find(file.path()) != std::string::npos);
        CHECK(message.find(why) != std::string::npos);
        CHECK(message.find('\n') == std::string::npos);
        CHECK_THROWS_AS(io::read_run_file(file.path()), InputError);  // bad input: exit 2
    };
    check_refused("no such file");

    std::ofstream(file.path()) << "[model]\nthis is not HDF5\n";
    check_refused("not an HDF5 file");

    // A 49-byte file whose superblock made HDF5 allocate 2 GiB while opening it (found by
    // fuzz_checkpoint, in tests/fuzz/corpus/): refused before HDF5 reads it.
    std::filesystem::copy_file(std::string(SHARDSIM_SOURCE_DIR) + "/tests/fuzz/corpus/hdf5/oom-superblock-49-bytes.bin", file.path(),
                               std::filesystem::copy_options::overwrite_existing);
    check_refused("not a file shardsim wrote");

    {
        const io::h5::File f{SHARDSIM_H5_CHECK(H5Fcreate(file.path().c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT))};
    }
    check_refused("not a shardsim timeline file");

    io::write_run_file(file.path(), two_class_run());
    {
        const io::h5::File f{SHARDSIM_H5_CHECK(H5Fopen(file.path().c_str(), H5F_ACC_RDWR, H5P_DEFAULT))};
        const io::h5::Attribute a{SHARDSIM_H5_CHECK(H5Aopen(f.id(), "schema_version", H5P_DEFAULT))};
        const std::int64_t newer = io::kSchemaVersion + 1;
        SHARDSIM_H5_CHECK(H5Awrite(a.id(), H5T_NATIVE_INT64, &newer));
    }
    check_refused("schema_version is " + std::to_string(io::kSchemaVersion + 1));

    io::write_run_file(file.path(), two_class_run());
    {
        const io::h5::File f{SHARDSIM_H5_CHECK(H5Fopen(file.path().c_str(), H5F_ACC_RDWR, H5P_DEFAULT))};
        SHARDSIM_H5_CHECK(H5Ldelete(f.id(), "/rank_3", H5P_DEFAULT));
    }
    check_refused("no group /rank_3");
}

TEST_CASE("hdf5: a unit index beyond /units is refused with the row") {
    RunTimeline run = two_class_run();
    run.unit_names.resize(2);  // timeline_a's backward is on unit 2
    const TempFile file;
    io::write_run_file(file.path(), run);
    CHECK(error_of([&] { io::read_run_file(file.path()); }) ==
          "cannot read timeline file '" + file.path() + "': /rank_0/ops row 2: unit: bad value '2' (allowed: integer in [-1, 1])");
}

TEST_CASE("hdf5: the writer refuses an inconsistent run") {
    const TempFile file;
    RunTimeline run = two_class_run();
    run.class_of_rank = {0, 1, 2, 0};
    std::string message = error_of([&] { io::write_run_file(file.path(), run); });
    CHECK(message.find("class_of_rank[2] is 2") != std::string::npos);
    CHECK(message.find(file.path()) != std::string::npos);

    run = two_class_run();
    run.attributes["mode"] = "simulate";
    message = error_of([&] { io::write_run_file(file.path(), run); });
    CHECK(message.find("'mode'") != std::string::npos);

    // The user reads the file and HDF5's reason; the call and the source line are for --debug.
    try {
        io::write_run_file("/nonexistent-dir/x.h5", two_class_run());
        FAIL("no error");
    } catch (const Error& e) {
        message = e.what();
        CHECK(message.find("/nonexistent-dir/x.h5") != std::string::npos);
        CHECK(message.find("HDF5 error: ") != std::string::npos);
        CHECK(message.find("H5Fcreate") == std::string::npos);
        CHECK(message.find(".cpp") == std::string::npos);
        CHECK(e.debug_detail().find("H5Fcreate") != std::string::npos);
        CHECK(e.debug_detail().find(".cpp:") != std::string::npos);
    }
}
