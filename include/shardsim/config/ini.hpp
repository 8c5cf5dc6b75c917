#pragma once
// A small INI reader that remembers where every value came from, so that every later error can
// name `file:line`. Syntax: `[section]`, `key = value`, comments start with `#` or `;` (also after
// a value when preceded by whitespace).
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "shardsim/core/error.hpp"

namespace shardsim::config {

struct IniEntry {
    std::string section;
    std::string key;
    std::string value;
    int line = 0;
};

struct IniSection {
    std::string name;
    int line = 0;
};

struct IniFile {
    std::string path;  // as given by the user (or "<embedded:NAME>")
    std::string text;  // the whole file, kept for the HDF5 attributes and reports
    std::vector<IniSection> sections;
    std::vector<IniEntry> entries;

    const IniEntry* find(const std::string& section, const std::string& key) const;
    const IniSection* find_section(const std::string& section) const;
};

// The largest job, topology or model file read: the biggest shipped one is ~3 KiB.
inline constexpr std::int64_t kMaxInputFileBytes = 16 * 1024 * 1024;

// Reads a user's input file: a regular file of at most kMaxInputFileBytes. On failure returns
// nullopt and sets `why` to what is wrong ("no such file", "is a directory", "is not a regular
// file", "is larger than 16 MiB", "cannot be read"), for the caller's one-line error.
std::optional<std::string> read_input_file(const std::string& path, std::string& why);

// Syntax problems are added to `problems` as `path:line: ...`; parsing continues past them.
IniFile parse_ini_text(const std::string& path, const std::string& text, Problems& problems);
// Reads the file; an unreadable file is an InputError naming the path.
IniFile read_ini_file(const std::string& path, Problems& problems);

}  // namespace shardsim::config
