#include "shardsim/io/h5_util.hpp"

#include <filesystem>
#include <fstream>

namespace shardsim::io::h5 {

namespace {

Attribute open_attribute(hid_t loc, const std::string& where, const std::string& name, H5T_class_t expected) {
    if (!has_attribute(loc, name)) throw Error(where + " has no attribute '" + name + "'");
    Attribute attr{SHARDSIM_H5_CHECK(H5Aopen(loc, name.c_str(), H5P_DEFAULT))};
    const Datatype type{SHARDSIM_H5_CHECK(H5Aget_type(attr.id()))};
    if (H5Tget_class(type.id()) != expected)
        throw Error(where + " attribute '" + name + "' is not " + (expected == H5T_STRING ? "a string" : "an integer"));
    return attr;
}

}  // namespace

Datatype string_type(std::size_t size, H5T_cset_t cset) {
    Datatype t{SHARDSIM_H5_CHECK(H5Tcopy(H5T_C_S1))};
    SHARDSIM_H5_CHECK(H5Tset_size(t.id(), size));
    SHARDSIM_H5_CHECK(H5Tset_strpad(t.id(), H5T_STR_NULLTERM));
    SHARDSIM_H5_CHECK(H5Tset_cset(t.id(), cset));
    return t;
}

Datatype packed(const Datatype& t) {
    Datatype p{SHARDSIM_H5_CHECK(H5Tcopy(t.id()))};
    SHARDSIM_H5_CHECK(H5Tpack(p.id()));
    return p;
}

void write_attribute(hid_t loc, const Attr& a) {
    const Dataspace scalar{SHARDSIM_H5_CHECK(H5Screate(H5S_SCALAR))};
    Datatype text;
    hid_t file_type = H5T_STD_I64LE;
    hid_t memory_type = H5T_NATIVE_INT64;
    const void* data = std::get_if<std::int64_t>(&a.value);
    if (const auto* real = std::get_if<double>(&a.value)) {
        file_type = H5T_IEEE_F64LE;
        memory_type = H5T_NATIVE_DOUBLE;
        data = real;
    } else if (const auto* s = std::get_if<std::string>(&a.value)) {
        text = string_type(s->size() + 1, H5T_CSET_UTF8);
        file_type = memory_type = text.id();
        data = s->c_str();
    }
    const Attribute attr{SHARDSIM_H5_CHECK(H5Acreate2(loc, a.name.c_str(), file_type, scalar.id(), H5P_DEFAULT, H5P_DEFAULT))};
    SHARDSIM_H5_CHECK(H5Awrite(attr.id(), memory_type, data));
}

void write_attributes(hid_t loc, const std::vector<Attr>& attrs) {
    for (const auto& a : attrs) write_attribute(loc, a);
}

std::optional<std::string> superblock_problem(const std::string& path, bool closed) {
    unsigned char b[72] = {};
    std::ifstream in(path, std::ios::binary);
    in.read(reinterpret_cast<char*>(b), sizeof b);
    std::error_code ec;
    const std::uintmax_t size = std::filesystem::file_size(path, ec);
    if (ec || in.gcount() < 48) return "not an HDF5 file: shorter than its superblock";
    static const unsigned char kSignature[8] = {0x89, 'H', 'D', 'F', '\r', '\n', 0x1a, '\n'};
    if (std::memcmp(b, kSignature, 8) != 0) return "not an HDF5 file: no HDF5 signature at its start";
    auto u64 = [&](int at) {
        std::uint64_t v = 0;
        for (int i = 7; i >= 0; --i) v = (v << 8) | b[at + i];
        return v;
    };
    constexpr std::uint64_t kUndefined = ~std::uint64_t{0};
    auto inside_or_undefined = [&](int at) { return u64(at) == kUndefined || u64(at) < size; };
    // Where the fields are (HDF5 file format specification, "Superblock"): version 0 (H5Fcreate's
    // default: checkpoints) and versions 2 and 3 (libver bounds from 1.8: timeline files).
    std::uint64_t end = 0;
    bool inside = false;
    if (b[8] == 0 && b[13] == 8 && b[14] == 8 && in.gcount() == static_cast<std::streamsize>(sizeof b)) {
        end = u64(40);
        inside = u64(24) == 0 && inside_or_undefined(32) && inside_or_undefined(48) && u64(64) < size;
    } else if ((b[8] == 2 || b[8] == 3) && b[9] == 8 && b[10] == 8) {
        end = u64(28);
        inside = u64(12) == 0 && inside_or_undefined(20) && u64(36) < size;
    } else {
        return "not a file shardsim wrote: an HDF5 superblock other than version 0, 2 or 3 with 8-byte addresses";
    }
    if (!inside || end > size || (closed && end != size))
        return "a damaged HDF5 file: its superblock names addresses outside the file's " + std::to_string(size) + " bytes";
    return std::nullopt;
}

bool has_attribute(hid_t loc, const std::string& name) { return SHARDSIM_H5_CHECK(H5Aexists(loc, name.c_str())) > 0; }

Datatype nul_padded(const Datatype& file_type) {
    Datatype t{SHARDSIM_H5_CHECK(H5Tcopy(file_type.id()))};
    SHARDSIM_H5_CHECK(H5Tset_strpad(t.id(), H5T_STR_NULLPAD));
    return t;
}

std::int64_t read_int_attribute(hid_t loc, const std::string& where, const std::string& name) {
    const Attribute attr = open_attribute(loc, where, name, H5T_INTEGER);
    std::int64_t value = 0;
    SHARDSIM_H5_CHECK(H5Aread(attr.id(), H5T_NATIVE_INT64, &value));
    return value;
}

std::string read_text_attribute(hid_t loc, const std::string& where, const std::string& name) {
    const Attribute attr = open_attribute(loc, where, name, H5T_STRING);
    const Datatype type{SHARDSIM_H5_CHECK(H5Aget_type(attr.id()))};
    if (SHARDSIM_H5_CHECK(H5Tis_variable_str(type.id())) > 0) {
        char* s = nullptr;
        SHARDSIM_H5_CHECK(H5Aread(attr.id(), type.id(), &s));
        std::string value = s != nullptr ? s : "";
        H5free_memory(s);
        return value;
    }
    const Datatype memory_type = nul_padded(type);
    std::string value(SHARDSIM_H5_CHECK(H5Tget_size(memory_type.id())), '\0');
    SHARDSIM_H5_CHECK(H5Aread(attr.id(), memory_type.id(), value.data()));
    value.resize(value.find('\0') == std::string::npos ? value.size() : value.find('\0'));
    return value;
}

Dataset open_dataset(hid_t loc, const std::string& path) {
    if (SHARDSIM_H5_CHECK(H5Lexists(loc, path.c_str(), H5P_DEFAULT)) <= 0) throw Error("no dataset " + path);
    return Dataset{SHARDSIM_H5_CHECK(H5Dopen2(loc, path.c_str(), H5P_DEFAULT))};
}

}  // namespace shardsim::io::h5
