// simulate --sweep: one row per value, rows agree with plain simulate, bad keys and values are
// one-line errors. And bench's command-line errors (checked before MPI starts).
#include <doctest/doctest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>

#include "shardsim/core/error.hpp"
#include "shardsim/io/json.hpp"
#include "shardsim/study/sweep.hpp"
#include "test_util.hpp"

using namespace shardsim;

TEST_CASE("parse_sweep") {
    const auto s = study::parse_sweep("batch.micro_batch=1, 2,4");
    CHECK(s.key == "batch.micro_batch");
    CHECK(s.values == std::vector<std::string>{"1", "2", "4"});
    CHECK_THROWS_AS(study::parse_sweep("batch.micro_batch"), InputError);
    CHECK_THROWS_AS(study::parse_sweep("micro_batch=1,2"), InputError);
    CHECK_THROWS_AS(study::parse_sweep("batch.micro_batch=1,,2"), InputError);
}

TEST_CASE("sweep rows: one per value, each what simulate says for that value") {
    const auto r = study::run_sweep("llama-7b-fsdp-6x-a100-40g", {}, {study::parse_sweep("fsdp.backward_prefetch=none,backward_post,backward_pre")});
    const auto& rows = r.json.at("rows").as_array();
    REQUIRE(rows.size() == 3);
    CHECK(rows[0].at("value").as_string() == "none");
    for (const auto& row : rows) {
        CHECK(row.at("world_size").as_int() == 6);
        CHECK(row.at("exposed_comm_fraction").as_number() ==
              doctest::Approx(row.at("exposed_comm_s").as_number() / row.at("step_time_s").as_number()));
    }
    // No prefetch leaves more communication exposed than prefetching one unit ahead.
    CHECK(rows[0].at("exposed_comm_s").as_number() > rows[2].at("exposed_comm_s").as_number());
    CHECK(r.text.find("fsdp.backward_prefetch") != std::string::npos);

    const auto one = test::run_command(test::shardsim_binary() + " simulate --json --set fsdp.backward_prefetch=backward_pre");
    REQUIRE(one.exit_code == 0);
    const auto plain = io::Json::parse(one.output);
    CHECK(plain.at("step_time_s").as_number() == doctest::Approx(rows[2].at("step_time_s").as_number()));
}

TEST_CASE("simulate --sweep from the command line: world size via topology keys, strategy, errors") {
    const auto r = test::run_command(test::shardsim_binary() +
                                     " simulate --sweep topology.cluster.gpus_per_node=2,4,6 --json");
    REQUIRE(r.exit_code == 0);
    const auto j = io::Json::parse(r.output);
    REQUIRE(j.at("rows").size() == 3);
    CHECK(j.at("rows")[2].at("world_size").as_int() == 6);

    const auto text = test::run_command(test::shardsim_binary() + " simulate --sweep parallel.strategy=zero2,zero3");
    REQUIRE(text.exit_code == 0);
    CHECK(text.output.find("zero3") != std::string::npos);
    CHECK(text.output.find("most exposed op") != std::string::npos);

    // Bad input in every point (an unknown key, a malformed argument) is still one line and exit 2.
    for (const std::string bad : {"--sweep parallel.nope=1,2", "--sweep batch.micro_batch=0,x", "--sweep prefetch",
                                  "--sweep batch.micro_batch=1 --sweep batch.micro_batch=2", "--sweep batch.micro_batch=1 --json --csv"}) {
        const auto e = test::run_command(test::shardsim_binary() + " simulate " + bad);
        INFO(bad, ": ", e.output);
        CHECK(e.exit_code == 2);
        CHECK(test::lines(e.output).size() == 1);
    }
    const auto named = test::run_command(test::shardsim_binary() + " simulate --sweep batch.micro_batch=0,x");
    CHECK(named.output.find("--sweep batch.micro_batch=0") != std::string::npos);
}

namespace {

// One CSV line split into fields ("" quoting as written by the sweep).
std::vector<std::string> csv_fields(const std::string& line) {
    std::vector<std::string> out(1);
    bool quoted = false;
    for (std::size_t i = 0; i < line.size(); ++i) {
        const char c = line[i];
        if (quoted && c == '"' && i + 1 < line.size() && line[i + 1] == '"') out.back() += '"', ++i;
        else if (c == '"') quoted = !quoted;
        else if (c == ',' && !quoted) out.emplace_back();
        else out.back() += c;
    }
    return out;
}

}  // namespace

TEST_CASE("sweep grid: every point a row, invalid points rows with their reason, CSV and JSON agree") {
    const auto r = study::run_sweep("llama-7b-fsdp-6x-a100-40g", {},
                                    {study::parse_sweep("parallel.strategy=fsdp-full-shard,fsdp-hybrid-shard,zero2"),
                                     study::parse_sweep("batch.micro_batch=1,2")});
    const auto& rows = r.json.at("rows").as_array();
    REQUIRE(rows.size() == 6);
    CHECK(r.valid == 4);
    CHECK(rows[1].at("values").at("parallel.strategy").as_string() == "fsdp-full-shard");
    CHECK(rows[1].at("values").at("batch.micro_batch").as_string() == "2");
    // One node of 6 GPUs has nothing to replicate: the plan's reason, said as --sweep.
    REQUIRE(rows[2].contains("error"));
    CHECK(rows[2].at("error").as_string().find("--sweep parallel.strategy=fsdp-hybrid-shard") != std::string::npos);
    CHECK(r.text.find("invalid: ") != std::string::npos);
    for (const auto& row : rows) {
        if (row.contains("error")) continue;
        // tokens/s is the whole job's: micro-batch x ranks x sequence over the step.
        CHECK(row.at("tokens_per_s").as_number() > 0);
        CHECK(row.at("mfu").as_number() > 0);
        CHECK(row.at("mfu").as_number() < 1);
        std::int64_t sum = 0;
        for (const auto& [k, v] : row.at("peak_by_category").as_object()) sum += v.as_int();
        CHECK(sum == row.at("peak_bytes").as_int());
        CHECK(row.at("comm_bytes_per_rank").size() > 0);
    }
    // Twice the micro-batch, twice the tokens per step.
    CHECK(rows[1].at("tokens_per_s").as_number() / rows[1].at("step_time_s").as_number() * rows[0].at("step_time_s").as_number() ==
          doctest::Approx(2 * rows[0].at("tokens_per_s").as_number()));

    // CSV round trip: the same rows, the same numbers.
    const auto lines = test::lines(r.csv);
    REQUIRE(lines.size() == rows.size() + 1);
    const auto head = csv_fields(lines[0]);
    auto col = [&](const std::string& name) { return static_cast<std::size_t>(std::find(head.begin(), head.end(), name) - head.begin()); };
    REQUIRE(col("error") < head.size());
    for (std::size_t i = 0; i < rows.size(); ++i) {
        const auto f = csv_fields(lines[i + 1]);
        REQUIRE(f.size() == head.size());
        CHECK(f[col("parallel.strategy")] == rows[i].at("values").at("parallel.strategy").as_string());
        if (rows[i].contains("error")) {
            CHECK(f[col("error")] == rows[i].at("error").as_string());
            continue;
        }
        CHECK(std::stoll(f[col("peak_bytes")]) == rows[i].at("peak_bytes").as_int());
        CHECK(std::stod(f[col("step_time_s")]) == doctest::Approx(rows[i].at("step_time_s").as_number()).epsilon(1e-6));
        CHECK(std::stoll(f[col("peak_activations_bytes")]) == rows[i].at("peak_by_category").at("activations").as_int());
    }
}

TEST_CASE("sweep: topology keys sweep freely (hybrid over nodes from a one-node topology), --out DIR writes a file per row") {
    namespace fs = std::filesystem;
    const fs::path dir = fs::temp_directory_path() / ("shardsim-sweep-test-" + std::to_string(::getpid()));
    fs::remove_all(dir);
    const auto e = test::run_command(test::shardsim_binary() + " simulate --set job.topology=8x-a100-40g --set parallel.strategy=fsdp-hybrid-shard "
                                     "--sweep topology.cluster.nodes=1,2,4 --json --out " + dir.string());
    INFO(e.output);
    REQUIRE(e.exit_code == 0);
    const auto j = io::Json::parse(e.output);
    const auto& rows = j.at("rows");
    REQUIRE(rows.size() == 3);
    CHECK(rows[0].contains("error"));
    CHECK(rows[1].at("world_size").as_int() == 16);
    CHECK(rows[2].at("world_size").as_int() == 32);
    CHECK(fs::exists(rows[1].at("file").as_string()));
    CHECK(fs::exists(rows[2].at("file").as_string()));
    CHECK(!fs::exists(dir / "row-1.h5"));
    fs::remove_all(dir);
}

TEST_CASE("bench: bad options are one-line errors with exit 2, before MPI starts") {
    for (const std::string bad : {"--op all_gather,gather", "--min-bytes 8X", "--max-bytes 5G", "--min-bytes 1M --max-bytes 1K",
                                  "--factor 1", "--iters 0", "--dtype fp64", "--backend gloo", "--out /nonexistent/dir/b.h5"}) {
        const auto e = test::run_command(test::shardsim_binary() + " bench " + bad);
        INFO(bad, ": ", e.output);
        CHECK(e.exit_code == 2);
        CHECK(test::lines(e.output).size() == 1);
    }
}
