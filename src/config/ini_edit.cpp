#include "shardsim/config/ini_edit.hpp"

#include <map>
#include <sstream>

namespace shardsim::config {

namespace {
std::string line_of(const IniEdit& e) {
    return e.key + " = " + e.value + (e.comment.empty() ? "" : "  # " + e.comment);
}
}  // namespace

std::string edit_ini_text(const IniFile& file, const std::vector<IniEdit>& edits, const std::string& preamble) {
    std::vector<std::string> lines;
    std::istringstream in(file.text);
    for (std::string l; std::getline(in, l);) lines.push_back(l);

    // The last line (1-based) of each section: its header or its last entry.
    std::map<std::string, int> section_end;
    for (const auto& s : file.sections) section_end[s.name] = s.line;
    for (const auto& e : file.entries) section_end[e.section] = std::max(section_end[e.section], e.line);

    std::map<int, std::vector<std::string>> after;  // inserted after line n (1-based)
    std::map<std::string, std::vector<std::string>> appended;  // new sections
    std::vector<std::string> new_sections;
    for (const auto& e : edits) {
        if (const IniEntry* entry = file.find(e.section, e.key)) {
            lines[static_cast<std::size_t>(entry->line - 1)] = line_of(e);
        } else if (section_end.count(e.section)) {
            after[section_end[e.section]].push_back(line_of(e));
        } else {
            if (!appended.count(e.section)) new_sections.push_back(e.section);
            appended[e.section].push_back(line_of(e));
        }
    }
    std::string out = preamble;
    for (std::size_t i = 0; i < lines.size(); ++i) {
        out += lines[i] + "\n";
        if (auto it = after.find(static_cast<int>(i + 1)); it != after.end())
            for (const auto& l : it->second) out += l + "\n";
    }
    for (const auto& s : new_sections) {
        out += "\n[" + s + "]\n";
        for (const auto& l : appended[s]) out += l + "\n";
    }
    return out;
}

}  // namespace shardsim::config
