// libFuzzer harness: the timeline file reader (io/hdf5.hpp). The bytes are written to a file and
// read back as `shardsim report` and `validate` read theirs; a file that reads is summarised and
// validated against itself. Seeds: files written by `simulate --out` (see run.sh).
#include <hdf5.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "fuzz_common.hpp"
#include "shardsim/io/hdf5.hpp"
#include "shardsim/report/validate.hpp"

// As the shardsim binary does (cli/app.cpp): no shutdown of HDF5 at exit, which after some
// corrupted files cannot finish and says so on stderr.
extern "C" int LLVMFuzzerInitialize(int*, char***) {
    H5dont_atexit();
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace shardsim;
    static const std::string path =
        (std::filesystem::temp_directory_path() / ("shardsim-fuzz-" + std::to_string(getpid()) + ".h5")).string();
    {
        std::ofstream out(path, std::ios::binary | std::ios::trunc);
        out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
    }
    fuzz::expect_input_errors_only([&] {
        const timeline::RunTimeline run = io::read_run_file(path);
        (void)report::summary_text(run);
        (void)report::validate_runs(run, run, report::Thresholds{});
    });
    // Whatever the file held, the reader closed everything it opened.
    if (H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL) != 0) {
        std::fprintf(stderr, "fuzz_hdf5: %zd HDF5 object(s) left open\n", H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL));
        __builtin_trap();
    }
    return 0;
}
