#include "shardsim/io/h5_handles.hpp"

#include <string>

#include "shardsim/core/error.hpp"

namespace shardsim::io::h5 {

namespace {
// Walked upward, the first entry is where HDF5 detected the problem: the most specific message.
herr_t take_innermost(unsigned n, const H5E_error2_t* err, void* out) {
    if (n == 0 && err->desc != nullptr) *static_cast<std::string*>(out) = err->desc;
    return 0;
}
}  // namespace

void throw_failed(const char* call, const char* file, int line) {
    std::string detail;
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, take_innermost, &detail);
    H5Eclear2(H5E_DEFAULT);
    // The user reads what HDF5 found; the call and where it was made are for --debug.
    throw Error("HDF5 error: " + (detail.empty() ? std::string("the library reported no reason") : detail),
                std::string(file) + ":" + std::to_string(line) + ": " + call);
}

QuietErrors::QuietErrors() {
    H5Eget_auto2(H5E_DEFAULT, &func_, &data_);
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
}

QuietErrors::~QuietErrors() { H5Eset_auto2(H5E_DEFAULT, func_, data_); }

}  // namespace shardsim::io::h5
