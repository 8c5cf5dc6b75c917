#include "shardsim/core/format.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>

#include "shardsim/core/units.hpp"

namespace shardsim {

std::string format_change(double value, double reference) {
    if (reference == 0) return value == 0 ? "+0.0%" : "-";
    const double ratio = value / reference;
    if (!std::isfinite(ratio)) return "-";
    if (ratio < 2) return (ratio >= 1 ? "+" : "") + format_fixed(100 * (ratio - 1), 1) + "%";
    return "x" + format_fixed(ratio, ratio >= 100 ? 0 : ratio >= 10 ? 1 : 2);
}

std::string format_fixed(double v, int precision) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.*f", precision, v);
    return buf;
}

std::string format_bytes(std::int64_t bytes) {
    const double b = static_cast<double>(bytes);
    const double a = std::fabs(b);
    if (a >= kGiB) return format_fixed(b / kGiB, 2) + " GiB";
    if (a >= kMiB) return format_fixed(b / kMiB, 1) + " MiB";
    if (a >= kKiB) return format_fixed(b / kKiB, 1) + " KiB";
    return std::to_string(bytes) + " B";
}

std::string format_gib(double bytes, int precision) { return format_fixed(bytes / kGiB, precision); }

std::string format_count(std::int64_t n) {
    const double v = static_cast<double>(n);
    if (n >= 1'000'000'000) return format_fixed(v / 1e9, 2) + "B";
    if (n >= 1'000'000) return format_fixed(v / 1e6, 1) + "M";
    if (n >= 1'000) return format_fixed(v / 1e3, 1) + "K";
    return std::to_string(n);
}

std::string format_seconds(double s) {
    const double a = std::fabs(s);
    if (a >= 1.0) return format_fixed(s, 3) + " s";
    if (a >= 1e-3) return format_fixed(s * 1e3, 2) + " ms";
    return format_fixed(s * 1e6, 1) + " us";
}

std::string join(const std::vector<std::string>& parts, const std::string& sep) {
    std::string s;
    for (std::size_t i = 0; i < parts.size(); ++i) {
        if (i) s += sep;
        s += parts[i];
    }
    return s;
}

std::vector<std::string> split(const std::string& s, char sep) {
    std::vector<std::string> out;
    std::string cur;
    for (char c : s) {
        if (c == sep) {
            out.push_back(cur);
            cur.clear();
        } else {
            cur += c;
        }
    }
    out.push_back(cur);
    return out;
}

std::string trim(const std::string& s) {
    const auto b = s.find_first_not_of(" \t\r\n");
    if (b == std::string::npos) return {};
    const auto e = s.find_last_not_of(" \t\r\n");
    return s.substr(b, e - b + 1);
}

namespace {
// Length of the valid UTF-8 sequence of a printable code point at s[i], or 0 (a control
// character, or not UTF-8).
std::size_t printable_length(const std::string& s, std::size_t i) {
    const auto b = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
    const unsigned char c = b(i);
    if (c >= 0x20 && c < 0x7f) return 1;
    std::size_t n = 0;
    std::uint32_t cp = 0;
    if (c >= 0xc2 && c <= 0xdf) n = 2, cp = c & 0x1fu;
    else if (c >= 0xe0 && c <= 0xef) n = 3, cp = c & 0x0fu;
    else if (c >= 0xf0 && c <= 0xf4) n = 4, cp = c & 0x07u;
    else return 0;
    if (i + n > s.size()) return 0;
    for (std::size_t k = 1; k < n; ++k) {
        if ((b(i + k) & 0xc0u) != 0x80u) return 0;
        cp = (cp << 6) | (b(i + k) & 0x3fu);
    }
    const std::uint32_t least[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < least[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;  // overlong, beyond, surrogate
    if (cp >= 0x80 && cp <= 0x9f) return 0;                                          // C1 controls
    return n;
}
}  // namespace

std::string printable(const std::string& s) {
    std::string out;
    out.reserve(s.size());
    for (std::size_t i = 0; i < s.size();) {
        if (const std::size_t n = printable_length(s, i)) {
            out.append(s, i, n);
            i += n;
            continue;
        }
        static const char* hex = "0123456789abcdef";
        const auto c = static_cast<unsigned char>(s[i++]);
        out += "\\x";
        out += hex[c >> 4];
        out += hex[c & 15];
    }
    return out;
}

bool is_printable(const std::string& s, bool allow_lines) {
    for (std::size_t i = 0; i < s.size();) {
        if (const std::size_t n = printable_length(s, i)) {
            i += n;
        } else if (allow_lines && (s[i] == '\n' || s[i] == '\r' || s[i] == '\t')) {
            ++i;
        } else {
            return false;
        }
    }
    return true;
}

void TextTable::align_left(std::size_t column) {
    if (left_.size() <= column) left_.resize(column + 1, false);
    left_[column] = true;
}

std::string TextTable::str() const {
    std::vector<std::size_t> width(header_.size(), 0);
    auto widen = [&](const std::vector<std::string>& row) {
        for (std::size_t i = 0; i < row.size() && i < width.size(); ++i)
            width[i] = std::max(width[i], row[i].size());
    };
    widen(header_);
    widen(units_);
    for (const auto& r : rows_) widen(r);
    auto line = [&](const std::vector<std::string>& row) {
        std::string s;
        for (std::size_t i = 0; i < width.size(); ++i) {
            const std::string cell = i < row.size() ? row[i] : "";
            const std::string pad(width[i] - cell.size(), ' ');
            if (i) s += "  ";
            const bool left = i == 0 || (i < left_.size() && left_[i]);
            s += left ? cell + pad : pad + cell;
        }
        while (!s.empty() && s.back() == ' ') s.pop_back();
        return s + "\n";
    };
    std::string out = line(header_);
    if (!units_.empty()) out += line(units_);
    for (const auto& r : rows_) out += line(r);
    return out;
}

std::optional<std::int64_t> parse_byte_size(const std::string& s) {
    std::size_t digits = 0;
    while (digits < s.size() && std::isdigit(static_cast<unsigned char>(s[digits]))) ++digits;
    if (digits == 0 || digits > 12) return std::nullopt;
    const std::int64_t v = std::stoll(s.substr(0, digits));
    const std::string suffix = s.substr(digits);
    if (suffix.empty()) return v;
    if (suffix.size() != 1) return std::nullopt;
    switch (std::toupper(static_cast<unsigned char>(suffix[0]))) {
        case 'K': return v << 10;
        case 'M': return v << 20;
        case 'G': return v << 30;
    }
    return std::nullopt;
}

}  // namespace shardsim
