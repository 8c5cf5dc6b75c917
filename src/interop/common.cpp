// The account of an import and the small helpers every reader shares.
#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "importer.hpp"
#include "shardsim/config/job.hpp"
#include "shardsim/core/format.hpp"

namespace shardsim::interop {

std::string ImportReport::text() const {
    std::string out;
    auto block = [&](const char* title, const std::vector<Note>& notes) {
        if (notes.empty()) return;
        out += std::string(title) + "\n";
        for (const auto& n : notes) out += "  " + n.key + ": " + n.text + "\n";
    };
    block("imported (key -> job key):", mapped);
    block("resolved:", resolved);
    block("ignored (no memory or time in a step):", ignored);
    block("WARNING: not modelled by shardsim (--strict refuses these):", unmodelled);
    return out;
}

namespace detail {

void Context::set(const std::string& where, const std::string& key, const std::string& value, const std::string& why) {
    const std::string topo = "topology.";
    const bool is_topology = key.rfind(topo, 0) == 0;
    const std::string name = is_topology ? key.substr(topo.size()) : key;
    const auto dot = name.rfind('.');
    config::Override o{name.substr(0, dot), name.substr(dot + 1), value, where};
    (is_topology ? topology : job).push_back(o);
    report.mapped.push_back({where, "-> " + key + " = " + value + (why.empty() ? "" : " (" + why + ")")});
}

bool job_has_key(const std::string& name) {
    for (const auto& k : config::job_schema())
        if (k.name() == name) return k.retired.empty();
    return false;
}

std::int64_t hidden_size(const model::Scenario& s) { return std::max(s.model.decoder.hidden, s.model.encoder.hidden); }

std::string count_text(std::int64_t v) {
    if (v >= 1'000'000 && v % 1'000'000 == 0) {
        int e = 0;
        std::int64_t m = v;
        while (m % 10 == 0) m /= 10, ++e;
        if (m < 10) return std::to_string(m) + "e" + std::to_string(e);
    }
    return std::to_string(v);
}

std::string exact_text(double v) {
    char buf[64];
    for (int p = 1; p <= 17; ++p) {
        std::snprintf(buf, sizeof buf, "%.*g", p, v);
        if (std::strtod(buf, nullptr) == v) break;
    }
    return buf;
}

std::string show(const nlohmann::json& v) { return v.is_string() ? v.get<std::string>() : v.dump(); }

bool is_auto(const nlohmann::json& v) { return v.is_string() && v.get<std::string>() == "auto"; }

std::optional<bool> get_bool(Context& c, const std::string& where, const nlohmann::json& v) {
    if (v.is_boolean()) return v.get<bool>();
    c.bad(where, show(v), "true, false");
    return std::nullopt;
}

std::optional<std::int64_t> get_count(Context& c, const std::string& where, const nlohmann::json& v, std::int64_t min) {
    // JSON writes 5e8 as a float; DeepSpeed takes any whole number.
    if (v.is_number()) {
        const double d = v.get<double>();
        if (d == std::floor(d) && d >= static_cast<double>(min) && d < 9.2e18) return static_cast<std::int64_t>(d);
    }
    c.bad(where, show(v), "a whole number >= " + std::to_string(min));
    return std::nullopt;
}

std::optional<double> get_number(Context& c, const std::string& where, const nlohmann::json& v) {
    if (v.is_number()) return v.get<double>();
    c.bad(where, show(v), "a number");
    return std::nullopt;
}

std::string read_file(const std::string& path, const std::string& what) {
    std::ifstream in(path);
    if (!in) throw InputError(path + ": cannot open " + what + " (expected: a readable file)");
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

int line_of_offset(const std::string& text, std::size_t offset) {
    int line = 1;
    for (std::size_t i = 0; i < offset && i < text.size(); ++i)
        if (text[i] == '\n') ++line;
    return line;
}

}  // namespace detail
}  // namespace shardsim::interop
