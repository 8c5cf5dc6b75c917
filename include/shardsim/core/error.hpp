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

class Error : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// Bad input: every problem found, one line each, reported together.
class InputError : public Error {
public:
    explicit InputError(std::vector<std::string> problems);
    explicit InputError(const std::string& problem) : InputError(std::vector<std::string>{problem}) {}
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

[[noreturn]] void throw_error(const char* file, int line, const std::string& what);

}  // namespace shardsim

// Internal invariant: a bug in shardsim if it fails, not bad input.
#define SHARDSIM_ASSERT(cond, msg)                                                     \
    do {                                                                               \
        if (!(cond)) ::shardsim::throw_error(__FILE__, __LINE__,                       \
                                             std::string("internal: ") + #cond + ": " + (msg)); \
    } while (0)
