// libFuzzer harness: the INI reader (config/ini.hpp) on arbitrary bytes, then the job schema's
// resolver on what it read (types, ranges, choices, defaults), which every file kind shares.
#include "fuzz_common.hpp"
#include "shardsim/config/ini.hpp"
#include "shardsim/config/job.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    fuzz::expect_input_errors_only([&] {
        shardsim::Problems problems;
        const auto file = shardsim::config::parse_ini_text("fuzz.ini", fuzz::text_of(data, size), problems);
        for (const auto& e : file.entries)
            if (e.section.empty() || e.key.empty() || e.line < 1) __builtin_trap();  // the reader's own promise
        (void)shardsim::config::resolve(shardsim::config::job_schema(), file, {}, problems);
    });
    return 0;
}
