// Timeline files that HDF5 reads without complaint but that no run could have written: report
// and validate refuse each with the object, row and column named, exit 2 (issue 17).
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <fstream>
#include <functional>
#include <limits>

#include "shardsim/core/format.hpp"
#include "shardsim/io/h5_handles.hpp"
#include "test_util.hpp"

using namespace shardsim;
using shardsim::test::run_command;
using shardsim::test::TempDir;

namespace {

// A fresh 2-rank simulation of the tiny Llama (its ranks share one timeline through hard links).
std::string simulated(const TempDir& dir, const std::string& name) {
    const std::string path = dir.path(name);
    const auto r = run_command(test::shardsim_binary() + " simulate --job tiny-llama-cpu --out " + path);
    REQUIRE(r.exit_code == 0);
    return path;
}

void edit(const std::string& path, const std::function<void(hid_t)>& f) {
    const io::h5::File file{SHARDSIM_H5_CHECK(H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT))};
    f(file.id());
}

// Sets one column of one row of a compound dataset, through a memory type of that column alone.
template <class T>
void set_cell(const std::string& path, const std::string& dataset, const char* column, std::size_t row, T value, hid_t type) {
    edit(path, [&](hid_t file) {
        const io::h5::Dataset d{SHARDSIM_H5_CHECK(H5Dopen2(file, dataset.c_str(), H5P_DEFAULT))};
        const io::h5::Datatype one{SHARDSIM_H5_CHECK(H5Tcreate(H5T_COMPOUND, sizeof(T)))};
        SHARDSIM_H5_CHECK(H5Tinsert(one.id(), column, 0, type));
        const io::h5::Dataspace space{SHARDSIM_H5_CHECK(H5Dget_space(d.id()))};
        std::vector<T> cells(static_cast<std::size_t>(H5Sget_simple_extent_npoints(space.id())));
        REQUIRE(row < cells.size());
        SHARDSIM_H5_CHECK(H5Dread(d.id(), one.id(), H5S_ALL, H5S_ALL, H5P_DEFAULT, cells.data()));
        cells[row] = value;
        SHARDSIM_H5_CHECK(H5Dwrite(d.id(), one.id(), H5S_ALL, H5S_ALL, H5P_DEFAULT, cells.data()));
    });
}

void set_root_int(const std::string& path, const char* name, std::int64_t value) {
    edit(path, [&](hid_t file) {
        const io::h5::Attribute a{SHARDSIM_H5_CHECK(H5Aopen(file, name, H5P_DEFAULT))};
        SHARDSIM_H5_CHECK(H5Awrite(a.id(), H5T_NATIVE_INT64, &value));
    });
}

// Replaces /rank_0/<name> (rank 0's link only) by a dataset of the same type with no rows.
void empty_dataset(const std::string& path, const std::string& name) {
    edit(path, [&](hid_t file) {
        const std::string full = "/rank_0/" + name;
        io::h5::Datatype type;
        {
            const io::h5::Dataset d{SHARDSIM_H5_CHECK(H5Dopen2(file, full.c_str(), H5P_DEFAULT))};
            type = io::h5::Datatype{SHARDSIM_H5_CHECK(H5Dget_type(d.id()))};
        }
        SHARDSIM_H5_CHECK(H5Ldelete(file, full.c_str(), H5P_DEFAULT));
        const hsize_t dims[1] = {0};
        const io::h5::Dataspace space{SHARDSIM_H5_CHECK(H5Screate_simple(1, dims, nullptr))};
        const io::h5::Dataset d{
            SHARDSIM_H5_CHECK(H5Dcreate2(file, full.c_str(), type.id(), space.id(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT))};
    });
}

}  // namespace

TEST_CASE("corrupt timeline values: non-finite and absurd times, impossible bytes, steps and ranks, empty datasets") {
    TempDir dir;
    const std::string intact = simulated(dir, "intact.h5");
    REQUIRE(run_command(test::shardsim_binary() + " report " + intact).exit_code == 0);
    const double nan = std::numeric_limits<double>::quiet_NaN();
    const double inf = std::numeric_limits<double>::infinity();
    const std::string seconds = " (allowed: finite seconds within 1e9 of the run's start)";

    struct Case {
        std::string name;
        std::function<void(const std::string&)> corrupt;
        std::string why;
    };
    const std::vector<Case> cases = {
        {"NaN end time", [&](const std::string& f) { set_cell(f, "/rank_0/ops", "t_end", 3, nan, H5T_NATIVE_DOUBLE); },
         "/rank_0/ops row 3: t_end: bad value 'nan'" + seconds},
        {"infinite start time", [&](const std::string& f) { set_cell(f, "/rank_0/ops", "t_start", 0, -inf, H5T_NATIVE_DOUBLE); },
         "/rank_0/ops row 0: t_start: bad value '-inf'" + seconds},
        {"1e308 seconds", [&](const std::string& f) { set_cell(f, "/rank_0/ops", "t_end", 5, 1e308, H5T_NATIVE_DOUBLE); },
         "/rank_0/ops row 5: t_end: bad value '1e+308'" + seconds},
        {"an op that ends before it starts",
         [&](const std::string& f) { set_cell(f, "/rank_0/ops", "t_end", 1, -0.5, H5T_NATIVE_DOUBLE); },
         "/rank_0/ops row 1: t_end: bad value '-0.5' (allowed: at least t_start ("},
        {"NaN sample time", [&](const std::string& f) { set_cell(f, "/rank_0/memory", "t", 2, nan, H5T_NATIVE_DOUBLE); },
         "/rank_0/memory row 2: t: bad value 'nan'" + seconds},
        {"negative bytes", [&](const std::string& f) { set_cell<std::int64_t>(f, "/rank_0/ops", "bytes", 0, -1, H5T_NATIVE_INT64); },
         "/rank_0/ops row 0: bytes: bad value '-1' (allowed: integer in [0, 72057594037927936])"},
        {"INT64_MAX bytes",
         [&](const std::string& f) {
             set_cell<std::int64_t>(f, "/rank_0/ops", "bytes", 0, std::numeric_limits<std::int64_t>::max(), H5T_NATIVE_INT64);
         },
         "/rank_0/ops row 0: bytes: bad value '9223372036854775807' (allowed: integer in [0, 72057594037927936])"},
        {"negative memory",
         [&](const std::string& f) { set_cell<std::int64_t>(f, "/rank_0/memory", "params", 0, -4096, H5T_NATIVE_INT64); },
         "/rank_0/memory row 0: params: bad value '-4096' (allowed: integer in [0, 72057594037927936])"},
        {"a total that is not the sum",
         [&](const std::string& f) { set_cell<std::int64_t>(f, "/rank_0/memory", "total", 1, 7, H5T_NATIVE_INT64); },
         "/rank_0/memory row 1: total: bad value '7' (allowed: the sum of the device categories, "},
        {"NaN FLOPs", [&](const std::string& f) { set_cell(f, "/rank_0/ops", "flops", 2, nan, H5T_NATIVE_DOUBLE); },
         "/rank_0/ops row 2: flops: bad value 'nan' (allowed: finite, in [0, 1e30])"},
        {"steps 0", [&](const std::string& f) { set_root_int(f, "steps", 0); },
         "/: steps: bad value '0' (allowed: integer in [1, 1000000])"},
        {"steps -1", [&](const std::string& f) { set_root_int(f, "steps", -1); },
         "/: steps: bad value '-1' (allowed: integer in [1, 1000000])"},
        {"world_size lowered below the rank groups", [&](const std::string& f) { set_root_int(f, "world_size", 1); },
         "/: world_size: bad value '1': the file holds 2 rank groups (allowed: 2, one group /rank_<r> per rank)"},
        {"world_size 0", [&](const std::string& f) { set_root_int(f, "world_size", 0); },
         "/: world_size: bad value '0' (allowed: integer in [1, 1000000])"},
        {"world_size raised past the rank groups", [&](const std::string& f) { set_root_int(f, "world_size", 3); },
         "no group /rank_2 (allowed: a file written by shardsim simulate --out, run --out or validate --out-sim/--out-run)"},
        {"a 0-row ops dataset", [&](const std::string& f) { empty_dataset(f, "ops"); },
         "/rank_0/ops: no rows (allowed: one row per op of the step)"},
        {"a 0-row memory dataset", [&](const std::string& f) { empty_dataset(f, "memory"); },
         "/rank_0/memory: no rows (allowed: at least the state before the first op)"},
    };
    for (const auto& c : cases) {
        INFO(c.name);
        const std::string file = simulated(dir, "corrupt.h5");
        c.corrupt(file);
        const auto r = run_command(test::shardsim_binary() + " report " + file);
        CHECK(r.exit_code == 2);
        CHECK(r.output.rfind("cannot read timeline file '" + file + "': " + c.why, 0) == 0);
        CHECK(test::lines(r.output).size() == 1);
        const auto v = run_command(test::shardsim_binary() + " validate " + intact + " " + file);
        CHECK(v.exit_code == 2);
        CHECK(v.output == r.output);
    }
}

TEST_CASE("a corrupt file's errors carry no source path and no HDF5 error stack; --debug adds where") {
    TempDir dir;
    const std::string file = simulated(dir, "broken.h5");
    // Damage the metadata: HDF5 itself refuses the file (checksums), and before this fix printed
    // its error stack, "infinite loop closing library" and a line of "FL,FL,...".
    {
        std::fstream f(file, std::ios::in | std::ios::out | std::ios::binary);
        f.seekp(0, std::ios::end);
        const auto size = static_cast<std::streamoff>(f.tellp());
        for (std::streamoff at = 512; at < size; at += 997) {
            f.seekp(at);
            f.put('\x5a');
        }
    }
    const auto r = run_command(test::shardsim_binary() + " report " + file);
    CHECK(r.exit_code == 2);
    INFO(r.output);
    CHECK(test::lines(r.output).size() == 1);
    CHECK(r.output.rfind("cannot read timeline file '" + file + "': ", 0) == 0);
    for (const char* internal : {".cpp", "H5D", "H5G", "H5F", "HDF5-DIAG", "infinite loop", "FL,FL"}) {
        INFO(internal);
        CHECK(r.output.find(internal) == std::string::npos);
    }
    const auto d = run_command(test::shardsim_binary() + " --debug report " + file);
    CHECK(d.exit_code == 2);
    CHECK(d.output.find("(debug: raised at ") != std::string::npos);
    CHECK(d.output.find(".cpp:") != std::string::npos);
}

TEST_CASE("control characters from input never reach the terminal raw") {
    TempDir dir;
    // A job whose values would set the terminal title, clear the screen and ring the bell.
    const std::string job = dir.file("evil.ini", "[job]\nmodel = tiny-llama\ntopology = cpu-host\nname = \x1b]0;pwned\x07\n"
                                                 "[parallel]\nstrategy = \x1b[2Jddp\n[batch]\nseq_len = 16\n");
    auto r = run_command(test::shardsim_binary() + " simulate --job " + job);
    CHECK(r.exit_code == 2);
    CHECK(r.output.find('\x1b') == std::string::npos);
    CHECK(r.output.find('\x07') == std::string::npos);
    CHECK(r.output == job + ":4: bad line 'name = \\x1b]0;pwned\\x07': control characters or bytes that are not UTF-8 (allowed: "
                            "printable UTF-8 text and tabs)\n" +
                            job + ":6: bad line 'strategy = \\x1b[2Jddp': control characters or bytes that are not UTF-8 "
                                  "(allowed: printable UTF-8 text and tabs)\n" +
                            job + ":5: parallel.strategy: missing required key (allowed: ddp, zero1, zero2, zero3, "
                                  "fsdp-full-shard, fsdp-shard-grad-op, fsdp-no-shard, fsdp-hybrid-shard)\n");
    // --set values and unknown commands are echoed escaped too.
    r = run_command(test::shardsim_binary() + " simulate --set \"$(printf 'job.name=\\033]0;x\\007')\"");
    CHECK(r.exit_code == 2);
    CHECK(r.output == "--set job.name=\\x1b]0;x\\x07: control characters or bytes that are not UTF-8 (allowed: printable UTF-8 text)\n");
    r = run_command(test::shardsim_binary() + " \"$(printf '\\033[2J')\"");
    CHECK(r.exit_code == 2);
    CHECK(r.output.find('\x1b') == std::string::npos);
    CHECK(r.output.rfind("shardsim: unknown command '\\x1b[2J'", 0) == 0);
}

TEST_CASE("printable: controls, C1 controls and bytes that are not UTF-8 become \\xNN; other UTF-8 stays") {
    CHECK(printable("plain text, tabs\tand\nlines") == "plain text, tabs\\x09and\\x0alines");
    CHECK(printable("\x1b]0;title\x07\x7f") == "\\x1b]0;title\\x07\\x7f");
    CHECK(printable("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80") == "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");  // é € 😀
    CHECK(printable("\xc2\x9b" "31m") == "\\xc2\\x9b31m");    // U+009B, the one-byte CSI
    CHECK(printable("\x9b" "2J\xff\xc3") == "\\x9b2J\\xff\\xc3");  // stray continuation, invalid, truncated
    CHECK(printable("\xc0\xaf") == "\\xc0\\xaf");                // overlong '/'
    CHECK(printable("\xed\xa0\x80") == "\\xed\\xa0\\x80");        // a surrogate
    CHECK(is_printable("a\tb\r\nc", true));
    CHECK_FALSE(is_printable("a\tb"));
    CHECK_FALSE(is_printable(std::string("a\0b", 3), true));
}

TEST_CASE("report of a directory or a device: one line saying which, exit 2") {
    const std::string allowed = " (allowed: a file written by shardsim simulate --out, run --out or validate --out-sim/--out-run)\n";
    auto r = run_command(test::shardsim_binary() + " report /");
    CHECK(r.exit_code == 2);
    CHECK(r.output == "cannot read timeline file '/': is a directory" + allowed);
    r = run_command(test::shardsim_binary() + " report /dev/zero");
    CHECK(r.exit_code == 2);
    CHECK(r.output == "cannot read timeline file '/dev/zero': not a regular file" + allowed);
}
