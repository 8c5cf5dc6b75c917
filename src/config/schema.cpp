#include "shardsim/config/schema.hpp"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <set>

#include "shardsim/core/format.hpp"

namespace shardsim::config {

namespace {
std::string number_text(double v) {
    if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
    if (v == std::floor(v) && std::fabs(v) < 1e15) return std::to_string(static_cast<long long>(v));
    std::string s = format_fixed(v, 6);
    while (s.back() == '0') s.pop_back();
    return s;
}
}  // namespace

std::string KeySpec::allowed() const {
    auto range = [&](const std::string& kind) {
        std::string s = kind;
        const bool lo = !std::isinf(min), hi = !std::isinf(max);
        if (lo && hi) return s + (min_exclusive ? " in (" : " in [") + number_text(min) + ", " + number_text(max) + "]";
        if (lo) return s + (min_exclusive ? " > " : " >= ") + number_text(min);
        if (hi) return s + " <= " + number_text(max);
        return s;
    };
    if (allows_auto) {
        KeySpec plain = *this;
        plain.allows_auto = false;
        return "auto, or " + plain.allowed();
    }
    switch (type) {
        case ValueType::integer: return range("integer");
        case ValueType::number: return range("number");
        case ValueType::boolean: return "true, false";
        case ValueType::text: return "text";
        case ValueType::choice: return join(choices, ", ");
        case ValueType::list:
            return choices.empty() ? "comma-separated list" : "comma-separated list of: " + join(choices, ", ");
    }
    return "";
}

bool parse_integer(const std::string& s, std::int64_t& out) {
    if (s.empty()) return false;
    char* end = nullptr;
    errno = 0;
    const long long v = std::strtoll(s.c_str(), &end, 10);
    if (errno == 0 && end && *end == '\0') {
        out = v;
        return true;
    }
    // Scientific notation is accepted when it names an exact integer ("1e9").
    double d = 0;
    if (!parse_number(s, d) || d != std::floor(d) || std::fabs(d) > 9.2e18) return false;
    out = static_cast<std::int64_t>(d);
    return true;
}

bool parse_number(const std::string& s, double& out) {
    if (s.empty()) return false;
    char* end = nullptr;
    errno = 0;
    const double v = std::strtod(s.c_str(), &end);
    if (errno != 0 || !end || *end != '\0' || !std::isfinite(v)) return false;
    out = v;
    return true;
}

bool parse_boolean(const std::string& s, bool& out) {
    if (s == "true") return out = true, true;
    if (s == "false") return out = false, true;
    return false;
}

std::vector<std::string> parse_list(const std::string& s) {
    std::vector<std::string> out;
    if (trim(s).empty()) return out;
    for (const auto& item : split(s, ',')) out.push_back(trim(item));
    return out;
}

Override parse_override(const std::string& arg) {
    if (!is_printable(arg))
        throw InputError("--set " + printable(arg) +
                         ": control characters or bytes that are not UTF-8 (allowed: printable UTF-8 text)");
    const auto eq = arg.find('=');
    const auto dot = arg.substr(0, eq).rfind('.');
    if (eq == std::string::npos || dot == std::string::npos || dot == 0 || eq == dot + 1)
        throw InputError("--set " + arg + ": bad override (expected: section.key=value, e.g. batch.micro_batch=4)");
    Override o;
    o.section = arg.substr(0, dot);
    o.key = arg.substr(dot + 1, eq - dot - 1);
    o.value = trim(arg.substr(eq + 1));
    o.origin = "--set " + arg;
    return o;
}

bool Values::is_explicit(const std::string& name) const {
    auto it = values_.find(name);
    return it != values_.end() && it->second.explicit_;
}

const std::string& Values::raw(const std::string& name) const {
    auto it = values_.find(name);
    SHARDSIM_ASSERT(it != values_.end(), "no value for key " + name);
    return it->second.raw;
}

const std::string& Values::where(const std::string& name) const {
    auto it = values_.find(name);
    SHARDSIM_ASSERT(it != values_.end(), "no value for key " + name);
    return it->second.where;
}

std::int64_t Values::integer(const std::string& name) const {
    std::int64_t v = 0;
    SHARDSIM_ASSERT(parse_integer(raw(name), v), name + " is not an integer");
    return v;
}

double Values::number(const std::string& name) const {
    double v = 0;
    SHARDSIM_ASSERT(parse_number(raw(name), v), name + " is not a number");
    return v;
}

bool Values::boolean(const std::string& name) const {
    bool v = false;
    SHARDSIM_ASSERT(parse_boolean(raw(name), v), name + " is not a boolean");
    return v;
}

std::vector<std::string> Values::list(const std::string& name) const { return parse_list(raw(name)); }

namespace {

const KeySpec* find_spec(const Schema& schema, const std::string& section, const std::string& key) {
    for (const auto& k : schema)
        if (k.section == section && k.key == key) return &k;
    return nullptr;
}

std::vector<std::string> sections_of(const Schema& schema) {
    std::vector<std::string> out;
    for (const auto& k : schema)
        if (std::find(out.begin(), out.end(), k.section) == out.end()) out.push_back(k.section);
    return out;
}

// The keys a user may set in a section: retired ones are refused with a pointer of their own.
std::vector<std::string> keys_of(const Schema& schema, const std::string& section) {
    std::vector<std::string> out;
    for (const auto& k : schema)
        if (k.section == section && k.retired.empty()) out.push_back(k.key);
    return out;
}

bool value_ok(const KeySpec& spec, const std::string& raw) {
    if (spec.allows_auto && raw == "auto") return true;
    auto in_range = [&](double v) {
        if (v < spec.min || v > spec.max) return false;
        if (spec.min_exclusive && v == spec.min) return false;
        return true;
    };
    switch (spec.type) {
        case ValueType::integer: {
            std::int64_t v = 0;
            return parse_integer(raw, v) && in_range(static_cast<double>(v));
        }
        case ValueType::number: {
            double v = 0;
            return parse_number(raw, v) && in_range(v);
        }
        case ValueType::boolean: {
            bool b = false;
            return parse_boolean(raw, b);
        }
        case ValueType::text: return !raw.empty();
        case ValueType::choice:
            return std::find(spec.choices.begin(), spec.choices.end(), raw) != spec.choices.end();
        case ValueType::list: {
            for (const auto& item : parse_list(raw)) {
                if (item.empty()) return false;
                if (!spec.choices.empty() &&
                    std::find(spec.choices.begin(), spec.choices.end(), item) == spec.choices.end())
                    return false;
            }
            return true;
        }
    }
    return false;
}

}  // namespace

Values resolve(const Schema& schema, const IniFile& file, const std::vector<Override>& overrides,
               Problems& problems) {
    Values values;
    const auto sections = sections_of(schema);
    auto check = [&](const std::string& where, const std::string& section, const std::string& key,
                     const std::string& raw) -> const KeySpec* {
        if (std::find(sections.begin(), sections.end(), section) == sections.end()) {
            problems.add(where + ": " + section + "." + key + ": unknown section [" + section +
                         "] (allowed: " + join(sections, ", ") + ")");
            return nullptr;
        }
        const KeySpec* spec = find_spec(schema, section, key);
        if (!spec) {
            problems.add(where + ": " + section + "." + key + ": unknown key (allowed in [" + section +
                         "]: " + join(keys_of(schema, section), ", ") + ")");
            return nullptr;
        }
        if (!spec->retired.empty()) {
            problems.add(where + ": " + spec->name() + ": retired: " + spec->retired + " (allowed: remove it)");
            return nullptr;
        }
        if (!value_ok(*spec, raw)) {
            problems.add(where + ": " + spec->name() + ": bad value '" + raw + "' (allowed: " +
                         spec->allowed() + ")");
            return nullptr;
        }
        return spec;
    };
    for (const auto& s : file.sections) {
        if (std::find(sections.begin(), sections.end(), s.name) == sections.end())
            problems.add(file.path + ":" + std::to_string(s.line) + ": [" + s.name +
                         "]: unknown section (allowed: " + join(sections, ", ") + ")");
    }
    std::set<std::string> present;  // given, even if with a bad value: not also "missing"
    for (const auto& e : file.entries) {
        if (std::find(sections.begin(), sections.end(), e.section) == sections.end()) continue;  // said above
        present.insert(e.section + "." + e.key);
        const std::string where = file.path + ":" + std::to_string(e.line);
        if (const KeySpec* spec = check(where, e.section, e.key, e.value))
            values.set(spec->name(), {e.value, where, true});
    }
    for (const auto& o : overrides) {
        present.insert(o.section + "." + o.key);
        if (const KeySpec* spec = check(o.origin, o.section, o.key, o.value))
            values.set(spec->name(), {o.value, o.origin, true});
    }
    for (const auto& spec : schema) {
        if (values.has(spec.name()) || present.count(spec.name()) || !spec.retired.empty()) continue;
        if (spec.required) {
            const IniSection* sec = file.find_section(spec.section);
            const std::string where = sec ? file.path + ":" + std::to_string(sec->line) : file.path;
            problems.add(where + ": " + spec.name() + ": missing required key (allowed: " + spec.allowed() + ")");
            continue;
        }
        values.set(spec.name(), {spec.default_value, "default", false});
    }
    return values;
}

std::string describe(const Schema& schema, const std::string& title) {
    std::string out = title + "\n";
    TextTable t({"key", "type", "unit", "default", "allowed", "meaning"});
    for (const auto& k : schema) {
        if (!k.retired.empty()) continue;
        const char* type = "";
        switch (k.type) {
            case ValueType::integer: type = "integer"; break;
            case ValueType::number: type = "number"; break;
            case ValueType::boolean: type = "boolean"; break;
            case ValueType::text: type = "text"; break;
            case ValueType::choice: type = "choice"; break;
            case ValueType::list: type = "list"; break;
        }
        t.add_row({k.name(), type, k.unit.empty() ? "-" : k.unit,
                   k.required ? "(required)" : (k.default_value.empty() ? "\"\"" : k.default_value),
                   k.allowed(), k.help});
    }
    for (std::size_t c = 0; c < 6; ++c) t.align_left(c);
    return out + t.str();
}

}  // namespace shardsim::config
