// libFuzzer harness: the checkpoint reader (io/checkpoint.hpp), as `run --resume` reads a
// checkpoint. The bytes are a one-rank checkpoint's rank file beside a fixed meta.json; a file
// that opens has every slice its index lists read back (rows assembled, checksums checked).
// Seeds: rank files written by `run --checkpoint` (see run.sh).
#include <hdf5.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "fuzz_common.hpp"
#include "shardsim/io/checkpoint.hpp"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    H5dont_atexit();
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace shardsim;
    namespace fs = std::filesystem;
    static const fs::path folder = fs::temp_directory_path() / ("shardsim-fuzz-ckpt-" + std::to_string(getpid()));
    static const bool made = [] {
        fs::create_directories(folder);
        std::ofstream(folder / "meta.json") << R"({"format": 1, "steps_done": 1, "world_size": 1})" << "\n";
        return true;
    }();
    (void)made;
    {
        std::ofstream out(io::checkpoint::rank_file(folder.string(), 0), std::ios::binary | std::ios::trunc);
        out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
    }
    fuzz::expect_input_errors_only([&] {
        io::checkpoint::Reader reader(folder.string());
        for (exec::StateSlice s : reader.slices()) reader.read(s);
    });
    if (H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL) != 0) {
        std::fprintf(stderr, "fuzz_checkpoint: %zd HDF5 object(s) left open\n", H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL));
        __builtin_trap();
    }
    return 0;
}
