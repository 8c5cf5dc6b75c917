#include "shardsim/config/ini.hpp"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "shardsim/core/format.hpp"

namespace shardsim::config {

const IniEntry* IniFile::find(const std::string& section, const std::string& key) const {
    for (const auto& e : entries)
        if (e.section == section && e.key == key) return &e;
    return nullptr;
}

const IniSection* IniFile::find_section(const std::string& section) const {
    for (const auto& s : sections)
        if (s.name == section) return &s;
    return nullptr;
}

namespace {
// Removes a trailing comment: `#` or `;` at the start or after whitespace.
std::string strip_comment(const std::string& line) {
    for (std::size_t i = 0; i < line.size(); ++i) {
        if ((line[i] == '#' || line[i] == ';') && (i == 0 || line[i - 1] == ' ' || line[i - 1] == '\t'))
            return line.substr(0, i);
    }
    return line;
}

bool valid_name(const std::string& s) {
    if (s.empty()) return false;
    for (char c : s)
        if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.')) return false;
    return true;
}
}  // namespace

IniFile parse_ini_text(const std::string& path, const std::string& text, Problems& problems) {
    IniFile f;
    f.path = path;
    f.text = text;
    std::istringstream in(text);
    std::string raw;
    std::string section;
    int lineno = 0;
    auto where = [&] { return path + ":" + std::to_string(lineno) + ": "; };
    while (std::getline(in, raw)) {
        ++lineno;
        // Control characters have no place in a configuration file, and echoed into a message
        // they could drive the terminal: refused on any line, comments included.
        std::string body = raw;
        if (!body.empty() && body.back() == '\r') body.pop_back();  // CRLF files
        std::replace(body.begin(), body.end(), '\t', ' ');
        if (!is_printable(body)) {
            problems.add(where() + "bad line '" + printable(trim(raw)) +
                         "': control characters or bytes that are not UTF-8 (allowed: printable UTF-8 text and tabs)");
            continue;
        }
        const std::string line = trim(strip_comment(raw));
        if (line.empty()) continue;
        if (line.front() == '[') {
            if (line.back() != ']') {
                problems.add(where() + "bad section header '" + line + "' (expected: [name])");
                continue;
            }
            section = trim(line.substr(1, line.size() - 2));
            if (!valid_name(section)) {
                problems.add(where() + "bad section name '" + section + "' (allowed: letters, digits, _ - .)");
                continue;
            }
            if (f.find_section(section)) {
                problems.add(where() + "[" + section + "]: section appears twice");
                continue;
            }
            f.sections.push_back({section, lineno});
            continue;
        }
        const auto eq = line.find('=');
        if (eq == std::string::npos) {
            problems.add(where() + "bad line '" + line + "' (expected: key = value)");
            continue;
        }
        const std::string key = trim(line.substr(0, eq));
        const std::string value = trim(line.substr(eq + 1));
        if (section.empty()) {
            problems.add(where() + key + ": key outside any section (expected a [section] first)");
            continue;
        }
        if (!valid_name(key)) {
            problems.add(where() + "bad key name '" + key + "' (allowed: letters, digits, _ - .)");
            continue;
        }
        if (const IniEntry* prev = f.find(section, key)) {
            problems.add(where() + section + "." + key + ": set twice (first at line " +
                         std::to_string(prev->line) + ")");
            continue;
        }
        f.entries.push_back({section, key, value, lineno});
    }
    return f;
}

std::optional<std::string> read_input_file(const std::string& path, std::string& why) {
    namespace fs = std::filesystem;
    std::error_code ec;
    const fs::file_status st = fs::status(path, ec);
    if (ec || !fs::exists(st)) {
        why = "no such file";
        return std::nullopt;
    }
    if (fs::is_directory(st)) {
        why = "is a directory";
        return std::nullopt;
    }
    // Devices, pipes and sockets could be endless (/dev/zero) or block forever.
    if (!fs::is_regular_file(st)) {
        why = "is not a regular file";
        return std::nullopt;
    }
    const auto size = fs::file_size(path, ec);
    if (ec || size > static_cast<std::uintmax_t>(kMaxInputFileBytes)) {
        why = ec ? "cannot be read" : "is larger than 16 MiB (" + std::to_string(size) + " bytes)";
        return std::nullopt;
    }
    std::ifstream in(path, std::ios::binary);
    std::stringstream ss;
    if (in) ss << in.rdbuf();
    if (!in) {
        why = "cannot be read";
        return std::nullopt;
    }
    return ss.str();
}

IniFile read_ini_file(const std::string& path, Problems& problems) {
    std::string why;
    const auto text = read_input_file(path, why);
    if (!text) throw InputError(path + ": cannot read file: " + why);
    return parse_ini_text(path, *text, problems);
}

}  // namespace shardsim::config
