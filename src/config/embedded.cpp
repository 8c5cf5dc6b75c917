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

std::optional<ResolvedFile> resolve_file(const std::string& kind, const std::string& ref, const std::string& dir,
                                         std::string* why) {
    namespace fs = std::filesystem;
    const bool looks_like_path = ref.find('/') != std::string::npos || fs::path(ref).extension() == ".ini";
    if (!looks_like_path) {
        if (auto text = embedded_text(kind, ref)) return ResolvedFile{"<" + kind + "/" + ref + ".ini>", *text, ""};
        return std::nullopt;
    }
    fs::path p(ref);
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
