#pragma once
// A small INI reader that remembers where every value came from, so that every later error can
// name `file:line`. Syntax: `[section]`, `key = value`, comments start with `#` or `;` (also after
// a value when preceded by whitespace).
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

// Syntax problems are added to `problems` as `path:line: ...`; parsing continues past them.
IniFile parse_ini_text(const std::string& path, const std::string& text, Problems& problems);
// Reads the file; an unreadable file is an InputError naming the path.
IniFile read_ini_file(const std::string& path, Problems& problems);

}  // namespace shardsim::config
