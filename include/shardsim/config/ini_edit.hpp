#pragma once
// Writing a changed copy of an INI file: the user's text, comments and order kept, the given
// keys set. `calibrate` writes its fitted topology this way.
#include <string>
#include <vector>

#include "shardsim/config/ini.hpp"

namespace shardsim::config {

struct IniEdit {
    std::string section;
    std::string key;
    std::string value;
    std::string comment;  // appended to the line as "# comment" ("" for none)
};

// `file`'s text with each edit applied: an existing `key = value` line is replaced; a key the
// file lacks goes after the last line of its section; a section the file lacks is appended.
// `preamble` (comment lines, each starting with '#') goes before everything.
std::string edit_ini_text(const IniFile& file, const std::vector<IniEdit>& edits, const std::string& preamble);

}  // namespace shardsim::config
