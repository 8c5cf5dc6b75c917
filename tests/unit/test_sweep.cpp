// simulate --sweep: one row per value, rows agree with plain simulate, bad keys and values are
// one-line errors. And bench's command-line errors (checked before MPI starts).
#include <doctest/doctest.h>

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
    const auto r = study::run_sweep("llama-7b-fsdp-6x-a100-40g", {}, study::parse_sweep("fsdp.backward_prefetch=none,backward_post,backward_pre"));
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

    for (const std::string bad : {"--sweep parallel.nope=1,2", "--sweep batch.micro_batch=1,x", "--sweep prefetch",
                                  "--sweep batch.micro_batch=1 --out x.h5"}) {
        const auto e = test::run_command(test::shardsim_binary() + " simulate " + bad);
        INFO(bad, ": ", e.output);
        CHECK(e.exit_code == 2);
        CHECK(test::lines(e.output).size() == 1);
    }
    const auto named = test::run_command(test::shardsim_binary() + " simulate --sweep batch.micro_batch=1,x");
    CHECK(named.output.find("--sweep batch.micro_batch=x") != std::string::npos);
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
