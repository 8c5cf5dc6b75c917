#pragma once
// Errors. Inside the project everything is an exception; the C libraries (MPI, NCCL, CUDA, HDF5)
// are wrapped by check macros at their boundary only (see the backend headers).
#include <stdexcept>
#include <string>
#include <vector>

namespace shardsim {

// Exit codes of the binary: 2 for bad input (files, options, impossible plans), 1 for failures
// at run time, 3 for a validation or plan check that did not hold.
inline constexpr int kExitBadInput = 2;
inline constexpr int kExitFailure = 1;
inline constexpr int kExitCheckFailed = 3;

// what() is the message for the user. Where the error was raised in shardsim's sources (file and
// line, the C call that failed) is kept apart in debug_detail(): `--debug` prints it, nothing
// else does, so no user-facing message names an internal source file.
class Error : public std::runtime_error {
public:
    explicit Error(const std::string& what, std::string debug_detail = "")
        : std::runtime_error(what), debug_detail_(std::move(debug_detail)) {}
    const std::string& debug_detail() const { return debug_detail_; }

private:
    std::string debug_detail_;
};

// Bad input: every problem found, one line each, reported together.
class InputError : public Error {
public:
    explicit InputError(std::vector<std::string> problems, std::string debug_detail = "");
    explicit InputError(const std::string& problem, std::string debug_detail = "")
        : InputError(std::vector<std::string>{problem}, std::move(debug_detail)) {}
    const std::vector<std::string>& problems() const { return problems_; }

private:
    std::vector<std::string> problems_;
};

// Collects problems while a file or a plan is checked, so that all of them are reported at once.
class Problems {
public:
    void add(std::string line) { lines_.push_back(std::move(line)); }
    bool empty() const { return lines_.empty(); }
    const std::vector<std::string>& lines() const { return lines_; }
    void append(const Problems& other);
    void throw_if_any() const;

private:
    std::vector<std::string> lines_;
};

// Throws Error(what) with "file:line" as its debug detail.
[[noreturn]] void throw_error(const char* file, int line, const std::string& what);

}  // namespace shardsim

// Internal invariant: a bug in shardsim if it fails, not bad input.
#define SHARDSIM_ASSERT(cond, msg)                                                     \
    do {                                                                               \
        if (!(cond)) ::shardsim::throw_error(__FILE__, __LINE__,                       \
                                             std::string("internal: ") + #cond + ": " + (msg)); \
    } while (0)
