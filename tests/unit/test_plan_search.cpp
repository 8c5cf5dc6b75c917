// The plan search ([Note: plan search]): what it prunes never fits when simulated in full, the
// setups it evaluates in memory are the jobs it writes, and `shardsim plan` from the command line
// (answers, JSON, CSV, --emit, bad input, no feasible setup).
#include <doctest/doctest.h>
#include <unistd.h>

#include <filesystem>
#include <random>

#include "shardsim/core/error.hpp"
#include "shardsim/io/json.hpp"
#include "shardsim/sim/predict.hpp"
#include "shardsim/study/search.hpp"
#include "test_util.hpp"

using namespace shardsim;

namespace {

study::PlanRequest llama_request() {
    study::PlanRequest r;
    r.model = "llama-7b";
    r.seq_len = 512;
    r.global_batch = 16;
    r.gpus = {"v100-16g", "a10g", "a100-40g"};
    r.max_gpus = 8;
    r.threads = 1;
    return r;
}

// Up to `n` of the visited setups, drawn uniformly (reservoir sampling, fixed seed).
struct Sample {
    std::size_t n;
    std::mt19937 rng{20261206};
    std::size_t seen = 0;
    std::vector<study::Setup> kept;
    void offer(const study::Setup& x) {
        ++seen;
        if (kept.size() < n) kept.push_back(x);
        else if (auto k = std::uniform_int_distribution<std::size_t>(0, seen - 1)(rng); k < n) kept[k] = x;
    }
};

}  // namespace

TEST_CASE("plan search: no pruned setup fits when simulated in full, over a random sample of the space") {
    const study::Space space = study::build_space(llama_request());
    Sample pruned{250}, ranked{40};
    const auto fast = study::run_fast_stages(space, 1, 10, [&](const study::Ranked& r, bool p) { (p ? pruned : ranked).offer(r.setup); });
    INFO(fast.stats.candidates, " candidates, ", fast.stats.pruned, " pruned, ", fast.stats.ranked, " ranked");
    REQUIRE(fast.stats.pruned > 1000);
    REQUIRE(fast.stats.ranked > 100);
    int refused = 0;
    for (const auto& c : study::confirm(space, pruned.kept, 2)) {
        INFO(study::setup_label(space, c.setup), " on ", c.setup.gpus, " GPUs: ", c.reason);
        if (c.reason.rfind("invalid", 0) == 0) {
            ++refused;
            continue;
        }
        const bool host_over = c.host_memory_bytes > 0 && c.host_peak_bytes_per_node > c.host_memory_bytes;
        CHECK((c.peak_bytes > c.gpu_memory_bytes || host_over));
    }
    CHECK(refused == 0);
    // And the ranked ones are jobs the plan accepts (the search checked them with the plan's rules).
    for (const auto& c : study::confirm(space, ranked.kept, 2)) CHECK(c.reason.rfind("invalid", 0) != 0);
}

TEST_CASE("plan search: a setup applied in memory is the job its --set arguments make") {
    const study::Space space = study::build_space(llama_request());
    Sample sample{30};
    study::run_fast_stages(space, 1, 10, [&](const study::Ranked& r, bool) { sample.offer(r.setup); });
    for (const auto& x : sample.kept) {
        const auto sets = study::setup_sets(space, x);
        const model::Scenario a = model::load_scenario_text(space.base_path, space.base_text, space.base_dir, sets);
        model::Scenario b = study::base_scenario(space, x.node_type);
        study::apply_setup(space, x, b);
        INFO(study::setup_label(space, x), " on ", x.gpus, " GPUs");
        const sim::Prediction pa = sim::predict(a), pb = sim::predict(b);
        CHECK(pa.device_peak_bytes() == pb.device_peak_bytes());
        CHECK(pa.run.world_size == pb.run.world_size);
        CHECK(a.topology.host.memory_bytes == b.topology.host.memory_bytes);
        CHECK(pa.schedule.ops.size() == pb.schedule.ops.size());
    }
}

TEST_CASE("shardsim plan: answers, JSON contract, CSV, --emit runs as simulated") {
    namespace fs = std::filesystem;
    const fs::path dir = fs::temp_directory_path() / ("shardsim-plan-test-" + std::to_string(::getpid()));
    fs::remove_all(dir);
    const std::string base = test::shardsim_binary() + " plan --model llama-7b --gpus a100-40g,a100-80g --seq-len 1024 --global-batch 32 "
                                                       "--max-gpus 16 --top 5 --quiet";
    const auto j = test::run_command(base + " --json --emit " + dir.string());
    INFO(j.output);
    REQUIRE(j.exit_code == 0);
    const io::Json out = io::Json::parse(j.output);
    const io::Json& search = out.at("search");
    CHECK(search.at("candidates").as_int() == search.at("invalid").as_int() + search.at("pruned").as_int() + search.at("ranked").as_int());
    CHECK(search.at("simulated").as_int() >= 5);
    const io::Json& results = out.at("results");
    REQUIRE(results.size() >= 5);
    const io::Json& best = results[0];
    CHECK(best.at("fits").as_bool());
    CHECK(!best.contains("reason"));
    for (const char* k : {"gpu", "gpus", "nodes", "strategy", "keys", "peak_bytes", "host_peak_bytes_per_node", "step_time_s",
                          "tokens_per_s", "mfu", "cost_per_mtok"})
        CHECK_MESSAGE(best.contains(k), k);
    for (std::size_t i = 1; i < results.size(); ++i) {
        CHECK(results[i].contains("reason"));
        if (results[i].at("fits").as_bool()) CHECK(results[i].at("tokens_per_s").as_number() <= best.at("tokens_per_s").as_number());
    }
    // The job, its topology, the sbatch script, the framework's config and its launch line.
    REQUIRE(out.at("emitted").size() == 5);
    const std::string strategy = best.at("strategy").as_string();
    CHECK(fs::exists(dir / (strategy.rfind("zero", 0) == 0 ? "ds_config.json" : "accelerate_config.yaml")));
    CHECK(fs::exists(dir / "launch.sh"));
    // The emitted job simulates to the same numbers.
    const auto sim = test::run_command(test::shardsim_binary() + " simulate --json --job " + (dir / "job.ini").string());
    REQUIRE(sim.exit_code == 0);
    const io::Json s = io::Json::parse(sim.output);
    CHECK(s.at("step_time_s").as_number() == doctest::Approx(best.at("step_time_s").as_number()).epsilon(1e-9));
    CHECK(s.at("world_size").as_int() == best.at("gpus").as_int());
    CHECK(fs::exists(dir / "job.sbatch"));
    fs::remove_all(dir);

    // CSV: one header and a row per simulated setup, the same numbers as the JSON.
    const auto c = test::run_command(base + " --csv");
    REQUIRE(c.exit_code == 0);
    const auto rows = test::lines(c.output);
    REQUIRE(rows.size() == results.size() + 1);
    CHECK(rows[0].rfind("rank,gpu,gpus,", 0) == 0);
    CHECK(rows[1].find("," + std::to_string(best.at("peak_bytes").as_int()) + ",") != std::string::npos);
}

TEST_CASE("shardsim plan: bad input is one line with exit 2; nothing feasible is exit 3 with the closest miss") {
    const std::string b = test::shardsim_binary() + " plan --quiet ";
    for (const std::string bad : {"--model nope --seq-len 8 --global-batch 8", "--model tiny-llama --seq-len 8 --global-batch 8 --gpus b200",
                                  "--model tiny-llama --seq-len 8 --global-batch 8 --objective fastest",
                                  "--model tiny-llama --seq-len 8 --global-batch 8 --fix batch.micro_batch=1 --fix batch.micro_batch=2",
                                  "--model tiny-llama --seq-len 8 --global-batch 0", "--model tiny-llama --global-batch 8",
                                  "--model tiny-llama --seq-len 8 --global-batch 8 --allow magic"}) {
        const auto e = test::run_command(b + bad);
        INFO(bad, ": ", e.output);
        CHECK(e.exit_code == 2);
        CHECK(test::lines(e.output).size() == 1);
    }
    const auto none = test::run_command(b + "--model llama-2-70b --gpus rtx4090 --seq-len 2048 --global-batch 8 --max-gpus 2");
    INFO(none.output);
    CHECK(none.exit_code == 3);
    CHECK(none.output.find("closest miss") != std::string::npos);
    CHECK(none.output.find("GiB") != std::string::npos);
}

TEST_CASE("shardsim plan --job: every GPU seed scenario's own setup is judged, and the search never picks a slower one") {
    int seeds = 0;
    for (const auto& entry : std::filesystem::directory_iterator(test::source_dir() + "/jobs")) {
        const std::string name = entry.path().stem().string();
        if (!entry.is_regular_file() || entry.path().extension() != ".ini" || name.find("cpu") != std::string::npos) continue;
        const auto r = test::run_command(test::shardsim_binary() + " plan --quiet --json --top 3 --job " + name);
        INFO(name, ": ", r.output.substr(0, 400));
        REQUIRE(r.exit_code == 0);
        const io::Json j = io::Json::parse(r.output);
        REQUIRE(j.contains("job_setup"));
        const io::Json& own = j.at("job_setup");
        const io::Json& best = j.at("results")[0];
        CHECK(best.at("fits").as_bool());
        CHECK(!j.at("job_setup_note").as_string().empty());
        // The seed that fits is matched or beaten; the one that does not says by how much.
        if (own.at("fits").as_bool()) CHECK(own.at("tokens_per_s").as_number() <= best.at("tokens_per_s").as_number() * (1 + 1e-9));
        else CHECK(own.at("reason").as_string().find("GiB") != std::string::npos);
        ++seeds;
    }
    CHECK(seeds >= 15);
}
