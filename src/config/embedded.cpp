#include "shardsim/config/embedded.hpp"

#include "shardsim/config/ini.hpp"

#include <filesystem>

namespace shardsim::config {

// Defined in the file the build generates from topologies/, jobs/ and models/.
const std::vector<EmbeddedFile>& generated_embedded_files();

const std::vector<EmbeddedFile>& embedded_files() { return generated_embedded_files(); }

std::optional<std::string> embedded_text(const std::string& kind, const std::string& name) {
    for (const auto& f : embedded_files())
        if (f.kind == kind && f.name == name) return f.text;
    return std::nullopt;
}

std::vector<std::string> embedded_names(const std::string& kind) {
    std::vector<std::string> out;
    for (const auto& f : embedded_files())
        if (f.kind == kind) out.push_back(f.name);
    return out;
}

namespace {

constexpr const char* kShipped = "<shipped>";

std::optional<ResolvedFile> shipped(const std::string& kind, const std::string& name) {
    if (auto text = embedded_text(kind, name)) return ResolvedFile{"<" + kind + "/" + name + ".ini>", *text, embedded_dir(kind)};
    return std::nullopt;
}

// "../models/mini-llama.ini" from "<shipped>/jobs" is the shipped model "mini-llama"; any other
// relative path from a shipped folder names no file.
std::optional<ResolvedFile> shipped_relative(const std::string& kind, const std::string& ref, const std::string& dir) {
    namespace fs = std::filesystem;
    const fs::path p = (fs::path(dir) / ref).lexically_normal();
    std::vector<std::string> parts;
    for (const auto& part : p) parts.push_back(part.string());
    if (parts.size() != 3 || parts[0] != kShipped || parts[1] != kind || fs::path(parts[2]).extension() != ".ini")
        return std::nullopt;
    return shipped(kind, fs::path(parts[2]).stem().string());
}

}  // namespace

std::string embedded_dir(const std::string& kind) { return std::string(kShipped) + "/" + kind; }

std::optional<ResolvedFile> resolve_file(const std::string& kind, const std::string& ref, const std::string& dir,
                                         std::string* why) {
    namespace fs = std::filesystem;
    const bool looks_like_path = ref.find('/') != std::string::npos || fs::path(ref).extension() == ".ini";
    if (!looks_like_path) return shipped(kind, ref);
    fs::path p(ref);
    if (p.is_relative() && dir.rfind(kShipped, 0) == 0) return shipped_relative(kind, ref, dir);
    if (p.is_relative() && !dir.empty()) p = fs::path(dir) / p;
    std::string reason;
    const auto text = read_input_file(p.string(), reason);
    if (!text) {
        if (why) *why = reason;
        return std::nullopt;
    }
    return ResolvedFile{p.lexically_normal().string(), *text, p.parent_path().string()};
}

}  // namespace shardsim::config
