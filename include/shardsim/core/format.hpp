#pragma once
// Human-readable numbers: binary sizes in GiB/MiB, bandwidth in decimal GB/s (as nccl-tests).
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace shardsim {

std::string format_bytes(std::int64_t bytes);      // "1.50 GiB", "12.0 MiB", "512 B"
std::string format_gib(double bytes, int precision = 2);
std::string format_count(std::int64_t n);         // "6.74B", "124.4M", "3.2K"
std::string format_seconds(double s);             // "12.3 ms", "1.20 s", "850 us"
std::string format_fixed(double v, int precision);
// How `value` differs from `reference`: "+12.3%", "-40.0%" while within a factor of two, then
// the ratio ("x3.41", "x331"): a run 331 times slower reads better so than "+33000.0%". "-" when
// the reference is 0 and the value is not (nothing to compare with), "+0.0%" when both are 0.
std::string format_change(double value, double reference);
std::string join(const std::vector<std::string>& parts, const std::string& sep);
std::vector<std::string> split(const std::string& s, char sep);
// "8", "64K", "8M", "1G" (powers of 1024); nullopt when it is not one.
std::optional<std::int64_t> parse_byte_size(const std::string& s);
std::string trim(const std::string& s);

// `s` made safe to print on one terminal line: control characters (C0 including newline and tab,
// DEL, and the C1 controls U+0080..U+009F) and bytes that are not UTF-8 become \xNN, so input
// that reaches a message cannot move the cursor, retitle the terminal or clear the screen. Other
// UTF-8 text is kept as it is.
std::string printable(const std::string& s);
// Whether `s` needs no escaping; `allow_lines` also accepts newline, carriage return and tab
// (multi-line texts such as a stored INI file).
bool is_printable(const std::string& s, bool allow_lines = false);

// A fixed-width text table: columns right-aligned except the first.
class TextTable {
public:
    explicit TextTable(std::vector<std::string> header) : header_(std::move(header)) {}
    void add_row(std::vector<std::string> row) { rows_.push_back(std::move(row)); }
    void add_units(std::vector<std::string> units) { units_ = std::move(units); }
    void align_left(std::size_t column);  // the first column is always left-aligned
    std::string str() const;

private:
    std::vector<std::string> header_;
    std::vector<std::string> units_;
    std::vector<std::vector<std::string>> rows_;
    std::vector<bool> left_;
};

}  // namespace shardsim
