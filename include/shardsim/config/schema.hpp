#pragma once
// The key table. One table per file kind (job, topology, model) drives three things that must
// never drift apart: parsing and validation, defaults, and the `--help` listing of every key.
#include <cstdint>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include "shardsim/config/ini.hpp"

namespace shardsim::config {

enum class ValueType { integer, number, boolean, text, choice, list };

struct KeySpec {
    std::string section;
    std::string key;
    ValueType type = ValueType::text;
    std::string unit;                 // "tokens", "GiB", "GB/s", ... ("" when unitless)
    std::string default_value;        // used when the key is absent and not required
    bool required = false;
    std::vector<std::string> choices;  // choice: the allowed values; list: allowed items (empty = any)
    double min = -std::numeric_limits<double>::infinity();
    double max = std::numeric_limits<double>::infinity();
    bool min_exclusive = false;
    bool allows_auto = false;         // "auto" is accepted too: the engine's own default (see help)
    std::string retired;              // non-empty: the key is gone, and this says what replaced it
    std::string help;

    std::string name() const { return section + "." + key; }
    std::string allowed() const;  // "integer >= 1", "true, false", "ddp, zero1, ..."
};

using Schema = std::vector<KeySpec>;

// A key set on the command line (`--set section.key=value`).
struct Override {
    std::string section;
    std::string key;
    std::string value;
    std::string origin;  // the argument as typed, for error messages
};
// Parses "section.key=value"; `prefix` (e.g. "topology.") selects and strips a namespace.
Override parse_override(const std::string& arg);

struct Value {
    std::string raw;
    std::string where;    // "file:line", "--set ...", or "default"
    bool explicit_ = false;
};

// Validated values of one file, with their origins.
class Values {
public:
    bool has(const std::string& name) const { return values_.count(name) != 0; }
    bool is_explicit(const std::string& name) const;
    const std::string& raw(const std::string& name) const;
    const std::string& where(const std::string& name) const;
    std::int64_t integer(const std::string& name) const;
    double number(const std::string& name) const;
    bool boolean(const std::string& name) const;
    std::string text(const std::string& name) const { return raw(name); }
    std::vector<std::string> list(const std::string& name) const;
    bool is_auto(const std::string& name) const { return raw(name) == "auto"; }

    void set(const std::string& name, Value v) { values_[name] = std::move(v); }

private:
    std::map<std::string, Value> values_;
};

// Checks every entry of `file` and every override against `schema` (unknown sections and keys,
// types, ranges, choices, missing required keys) and fills defaults. All problems are added to
// `problems`; the returned values are complete only when no problem was added.
Values resolve(const Schema& schema, const IniFile& file, const std::vector<Override>& overrides,
               Problems& problems);

// The help listing: one line per key with type, unit, default and allowed values.
std::string describe(const Schema& schema, const std::string& title);

// Strict conversions shared by the resolver and by callers that parse command-line values.
bool parse_integer(const std::string& s, std::int64_t& out);  // "12", "1e9" (when exact)
bool parse_number(const std::string& s, double& out);
bool parse_boolean(const std::string& s, bool& out);          // true | false
std::vector<std::string> parse_list(const std::string& s);    // comma-separated, trimmed

}  // namespace shardsim::config
