#pragma once
// The shipped inputs (topologies/*.ini, jobs/*.ini, models/*.ini), compiled into the binary so
// that `shardsim simulate` answers from any folder and names like `6x-a100-40g` resolve.
#include <optional>
#include <string>
#include <vector>

namespace shardsim::config {

struct EmbeddedFile {
    std::string kind;  // "topologies", "jobs", "models"
    std::string name;  // file name without ".ini"
    std::string text;
};

const std::vector<EmbeddedFile>& embedded_files();
std::optional<std::string> embedded_text(const std::string& kind, const std::string& name);
std::vector<std::string> embedded_names(const std::string& kind);

// The folder a shipped file "lives in" inside the binary ("<shipped>/jobs"): a relative path
// written in a shipped file (`model = ../models/mini-llama.ini` in a job) resolves from it to the
// shipped file of that name, wherever the binary runs and however the file was named.
std::string embedded_dir(const std::string& kind);

// Resolves a reference that is either a shipped name of `kind` or a path. Returns the text and
// sets `path` to what should be shown in messages; nullopt when neither exists or the file cannot
// be read, with the reason in `why` for a path ("no such file", "is a directory", ...). A relative
// path from a shipped file's folder (see embedded_dir) resolves among the shipped files.
struct ResolvedFile {
    std::string path;
    std::string text;
    std::string dir;  // folder of the file (embedded_dir(kind) for shipped ones)
};
std::optional<ResolvedFile> resolve_file(const std::string& kind, const std::string& ref, const std::string& dir,
                                         std::string* why = nullptr);

}  // namespace shardsim::config
