#pragma once
// What every HDF5 file of shardsim (timelines, bench sweeps) writes and reads the same way:
// fixed-length string types and name columns, packed compounds, scalar attributes, datasets
// looked up by path with a clear error.
#include <hdf5.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "shardsim/core/error.hpp"
#include "shardsim/io/h5_handles.hpp"

namespace shardsim::io::h5 {

// A fixed-length, NUL-terminated string type of `size` bytes in `cset`.
Datatype string_type(std::size_t size, H5T_cset_t cset);
// A compound as the file keeps it: the in-memory layout without its padding.
Datatype packed(const Datatype& t);

// Name columns: short words in a fixed-width char array, NUL included.
template <std::size_t N>
void put_name(char (&dst)[N], const std::string& s) {
    SHARDSIM_ASSERT(s.size() < N, "name '" + s + "' is too long for an HDF5 name column");
    std::memset(dst, 0, N);
    std::memcpy(dst, s.data(), s.size());
}
template <std::size_t N>
std::string get_name(const char (&src)[N]) {
    return std::string(src, static_cast<std::size_t>(std::find(src, src + N, '\0') - src));
}

// Scalar attributes: numbers little-endian whatever the host, strings fixed-length NUL-terminated
// UTF-8 (h5py reads them as bytes).
using AttrValue = std::variant<std::int64_t, double, std::string>;
struct Attr {
    std::string name;
    AttrValue value;
};
void write_attribute(hid_t loc, const Attr& a);
void write_attributes(hid_t loc, const std::vector<Attr>& attrs);

// Reading them back; `where` names the object in messages ("/", "/rank_3"). Strings may be
// fixed-length (what shardsim writes) or variable-length (what h5py writes from a str).
bool has_attribute(hid_t loc, const std::string& name);
std::int64_t read_int_attribute(hid_t loc, const std::string& where, const std::string& name);
std::string read_text_attribute(hid_t loc, const std::string& where, const std::string& name);

// A fixed-length string type read NUL-padded, so a string that fills its width keeps its last
// character (NUL-terminated would drop it).
Datatype nul_padded(const Datatype& file_type);

Dataset open_dataset(hid_t loc, const std::string& path);

// What is wrong with `path`'s HDF5 superblock for a file shardsim wrote, checked before HDF5 reads
// it (a crafted superblock makes the library allocate gigabytes while opening a 49-byte file:
// found by fuzz_checkpoint): a version 0, 2 or 3 superblock as shardsim's writers make them, with
// 8-byte addresses that lie inside the file, an end-of-file address at most its size (`closed`: equal to it; a file
// still being written, or cut short by a kill, may have flushed less). nullopt when it is fine.
std::optional<std::string> superblock_problem(const std::string& path, bool closed);

}  // namespace shardsim::io::h5
