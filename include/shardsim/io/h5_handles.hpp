#pragma once
// Thin owners of HDF5 identifiers and the check macro for HDF5 calls: the C boundary of io/.
// Handles are move-only; destructors close with the nothrow twin, and `close()` is there for
// the one close whose failure matters (a file being written: it flushes).
#include <hdf5.h>

#include <utility>

namespace shardsim::io::h5 {

// Throws shardsim::Error naming the failed call, where it was made, and HDF5's innermost error.
// Must run right after the failing call: any other HDF5 call clears the error stack.
[[noreturn]] void throw_failed(const char* call, const char* file, int line);

// HDF5 reports failure as a negative hid_t, herr_t, htri_t or ssize_t.
template <class T>
T checked(T result, const char* call, const char* file, int line) {
    if (result < 0) throw_failed(call, file, line);
    return result;
}

template <herr_t (*Close)(hid_t)>
class Handle {
public:
    Handle() = default;
    explicit Handle(hid_t id) : id_(id) {}
    ~Handle() { close_nothrow(); }
    Handle(Handle&& other) noexcept : id_(std::exchange(other.id_, H5I_INVALID_HID)) {}
    Handle& operator=(Handle&& other) noexcept {
        if (this != &other) {
            close_nothrow();
            id_ = std::exchange(other.id_, H5I_INVALID_HID);
        }
        return *this;
    }
    Handle(const Handle&) = delete;
    Handle& operator=(const Handle&) = delete;

    hid_t id() const { return id_; }
    bool valid() const { return id_ >= 0; }

    void close() {
        const hid_t id = std::exchange(id_, H5I_INVALID_HID);
        if (id >= 0) checked(Close(id), "close", __FILE__, __LINE__);
    }
    void close_nothrow() noexcept {
        const hid_t id = std::exchange(id_, H5I_INVALID_HID);
        if (id >= 0) Close(id);
    }

private:
    hid_t id_ = H5I_INVALID_HID;
};

using File = Handle<H5Fclose>;
using Group = Handle<H5Gclose>;
using Dataset = Handle<H5Dclose>;
using Dataspace = Handle<H5Sclose>;
using Datatype = Handle<H5Tclose>;
using Attribute = Handle<H5Aclose>;
using PropList = Handle<H5Pclose>;

// While alive, HDF5 does not print its error stack to stderr: failures surface as exceptions
// carrying the innermost message instead (an absent file would otherwise print ~20 lines).
class QuietErrors {
public:
    QuietErrors();
    ~QuietErrors();
    QuietErrors(const QuietErrors&) = delete;
    QuietErrors& operator=(const QuietErrors&) = delete;

private:
    H5E_auto2_t func_ = nullptr;
    void* data_ = nullptr;
};

}  // namespace shardsim::io::h5

// Named so, not H5CHECK: HDF5 defines that one itself.
#define SHARDSIM_H5_CHECK(call) ::shardsim::io::h5::checked((call), #call, __FILE__, __LINE__)
