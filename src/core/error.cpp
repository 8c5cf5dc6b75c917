#include "shardsim/core/error.hpp"

#include "shardsim/core/checked.hpp"

namespace shardsim {

namespace {
std::string joined(const std::vector<std::string>& lines) {
    std::string s;
    for (const auto& l : lines) {
        if (!s.empty()) s += '\n';
        s += l;
    }
    return s;
}
}  // namespace

InputError::InputError(std::vector<std::string> problems, std::string debug_detail)
    : Error(joined(problems), std::move(debug_detail)), problems_(std::move(problems)) {}

void Problems::append(const Problems& other) {
    lines_.insert(lines_.end(), other.lines_.begin(), other.lines_.end());
}

void Problems::throw_if_any() const {
    if (!lines_.empty()) throw InputError(lines_);
}

void throw_overflow(const char* what, std::int64_t a, char op, std::int64_t b) {
    throw OverflowError(std::string(what) + " overflows int64: " + std::to_string(a) + " " + op + " " + std::to_string(b) +
                        " is beyond 9223372036854775807 (allowed: sizes whose element and byte counts stay below 2^63; "
                        "lower the batch, the sequence lengths or the model's dimensions)");
}

void throw_error(const char* file, int line, const std::string& what) {
    throw Error(what, std::string(file) + ":" + std::to_string(line));
}

}  // namespace shardsim
