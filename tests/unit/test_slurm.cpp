// `shardsim slurm`: the resources the generator derives from shipped jobs, the requests it
// refuses (each refusal one line, `--option: bad value 'v': factors (allowed: ...)`), the script
// it writes, and the launch environment a rank reads under srun and mpirun.
#include <doctest/doctest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <map>
#include <regex>

#include "shardsim/config/launch.hpp"
#include "shardsim/core/error.hpp"
#include "shardsim/core/format.hpp"
#include "shardsim/launch/slurm.hpp"
#include "shardsim/report/summary.hpp"
#include "shardsim/sim/predict.hpp"
#include "test_util.hpp"

using namespace shardsim;
using launch::SlurmLauncher;
using launch::SlurmMode;
using launch::SlurmOptions;

namespace {

// A tiny job on CPU ranks, as the Slurm tests run it.
const char* kTinyCpuJob =
    "[job]\nmodel = tiny-llama\ntopology = cpu-host\n[parallel]\nstrategy = zero3\n[deepspeed]\nhf_auto = true\n"
    "[precision]\nparams = fp32\n[batch]\nmicro_batch = 2\nseq_len = 32\n";

model::Scenario scenario(const std::string& job, const std::vector<std::string>& sets = {}) {
    return model::load_scenario(job, sets);
}

SlurmOptions options(const std::string& job, const std::vector<std::string>& sets = {}) {
    SlurmOptions o;
    o.job = job;
    o.sets = sets;
    return o;
}

std::vector<std::string> refusal(const model::Scenario& s, const SlurmOptions& o) {
    try {
        launch::derive_slurm_resources(s, o);
    } catch (const InputError& e) {
        return e.problems();
    }
    return {};
}

std::int64_t gib_of(const std::string& mem) {  // "15G" -> 15
    REQUIRE(!mem.empty());
    REQUIRE(mem.back() == 'G');
    return std::stoll(mem.substr(0, mem.size() - 1));
}

config::EnvLookup env_of(std::map<std::string, std::string> vars) {
    return [vars](const std::string& name) -> std::optional<std::string> {
        auto it = vars.find(name);
        if (it == vars.end()) return std::nullopt;
        return it->second;
    };
}

}  // namespace

TEST_CASE("slurm: resources derived from shipped jobs and their topologies") {
    struct Case {
        std::string job;
        std::vector<std::string> sets;
        std::int64_t nodes, tasks, gpus, cpus;
        bool fits = true;  // predicted to fit its GPUs; else a warning, not a refusal
    };
    const std::vector<Case> cases = {
        // one rank per GPU of the topology, 2 CPUs per GPU rank
        {"llama-7b-fsdp-6x-a100-40g", {}, 1, 6, 6, 2},
        {"flan-t5-xl-zero3-8x-a100-40g", {}, 1, 8, 8, 2},
        {"gpt2-xl-fsdp-2x-titan-rtx", {}, 1, 2, 2, 2, false},
        {"t0-3b-lora-1x-a100-80g", {}, 1, 1, 1, 2},
        {"codet5p-2b-lora-1x-rtx4090", {}, 1, 1, 1, 2},
        // optimizer offload: 2 more CPUs per rank for the host optimizer step
        {"t0-3b-lora-zero3-offload-1x-a100-80g", {}, 1, 1, 1, 4},
        {"flan-t5-xxl-zero3-offload-8x-a100-40g", {}, 1, 8, 8, 4},
        // world_size below the node's GPUs: only those
        {"llama-7b-fsdp-6x-a100-40g", {"job.topology=8x-a100-40g", "parallel.world_size=4"}, 1, 4, 4, 2},
        // several nodes: the topology's
        {"llama-7b-fsdp-6x-a100-40g", {"job.topology=4x8-h100-ib"}, 4, 8, 8, 2},
        {"llama-7b-fsdp-6x-a100-40g", {"job.topology=4x8-h100-ib", "parallel.strategy=fsdp-hybrid-shard"}, 4, 8, 8, 2},
    };
    for (const auto& c : cases) {
        INFO(c.job << " " << join(c.sets, " "));
        const auto r = launch::derive_slurm_resources(scenario(c.job, c.sets), options(c.job, c.sets));
        CHECK(r.nodes == c.nodes);
        CHECK(r.tasks_per_node == c.tasks);
        CHECK(r.gpus_per_node == c.gpus);
        CHECK(r.cpus_per_task == c.cpus);
        CHECK(r.time == launch::kDefaultTime);
        CHECK(r.launcher == SlurmLauncher::srun);
        CHECK(r.warnings.size() == (c.fits ? 0u : 1u));
        // Memory: every rank's process overhead at least, with headroom, never more than the topology's host.
        const auto s = scenario(c.job, c.sets);
        CHECK(gib_of(r.mem) * kGiB >= c.tasks * scenario(c.job, c.sets).topology.host.process_bytes);
        CHECK(gib_of(r.mem) * kGiB <= s.topology.host.memory_bytes);
        CHECK(r.table.size() == 6);
    }
}

TEST_CASE("slurm: the memory need is simulate's host figure, for every shipped job") {
    for (const auto& entry : std::filesystem::directory_iterator(std::string(SHARDSIM_SOURCE_DIR) + "/jobs")) {
        if (entry.path().extension() != ".ini") continue;  // jobs/seed-configs/: the frameworks' configs
        const std::string job = entry.path().stem().string();
        CAPTURE(job);
        const auto s = scenario(job);
        const io::Json j = report::summary_json(sim::predict(s).run);
        const auto r = launch::derive_slurm_resources(s, options(job));
        const std::string figure = "the predicted host use per node, " + format_bytes(j.at("host_peak_bytes_per_node").as_int());
        CHECK(r.table[4].origin.find(figure) != std::string::npos);
    }
}

TEST_CASE("slurm: memory per node follows the simulated host memory") {
    // No offload: 6 GPU ranks x 2 GiB of process overhead x 1.25 = 15 GiB.
    const auto plain = launch::derive_slurm_resources(scenario("llama-7b-fsdp-6x-a100-40g"), options("llama-7b-fsdp-6x-a100-40g"));
    CHECK(plain.mem == "15G");
    // Offload: the optimizer states on the host come on top, per rank.
    const auto off = launch::derive_slurm_resources(scenario("flan-t5-xxl-zero3-offload-8x-a100-40g"),
                                                    options("flan-t5-xxl-zero3-offload-8x-a100-40g"));
    CHECK(gib_of(off.mem) > 8 * 20);
    CHECK(off.table[4].origin.find("offloaded") != std::string::npos);
    // A CPU host: the device is host memory too, and a process needs less.
    test::TempDir dir;
    const std::string job = dir.file("tiny.ini", kTinyCpuJob);
    const auto cpu = launch::derive_slurm_resources(scenario(job, {"topology.cluster.gpus_per_node=6"}),
                                                    options(job, {"topology.cluster.gpus_per_node=6"}));
    CHECK(cpu.nodes == 1);
    CHECK(cpu.tasks_per_node == 6);
    CHECK(cpu.gpus_per_node == 0);
    CHECK(cpu.cpus_per_task == 1);
    CHECK(gib_of(cpu.mem) == 4);  // 6 x 0.5 GiB x 1.25 = 3.75 GiB, plus the tiny model
    // Predicted host need above the topology's: requested anyway, with a warning.
    const std::vector<std::string> small_host = {"topology.host.memory_gib=50"};
    const auto over = launch::derive_slurm_resources(scenario("codet5p-2b-zero3-offload-2x-a100-40g", small_host),
                                                     options("codet5p-2b-zero3-offload-2x-a100-40g", small_host));
    REQUIRE(over.warnings.size() == 1);
    CHECK(over.warnings[0].find("has 50.00 GiB (host.memory_gib)") != std::string::npos);
    CHECK(gib_of(over.mem) * kGiB > 50 * kGiB);
    // A plan predicted not to fit its GPUs: a warning, not a refusal.
    const auto big = launch::derive_slurm_resources(scenario("mt0-xxl-full-1x-a100-80g"), options("mt0-xxl-full-1x-a100-80g"));
    REQUIRE(big.warnings.size() == 1);
    CHECK(big.warnings[0].find("device memory") == 0);
}

TEST_CASE("slurm: explicit options that agree with the job are taken") {
    auto o = options("llama-7b-fsdp-6x-a100-40g");
    o.nodes = 1;
    o.gpus_per_node = 6;
    o.cpus_per_task = 8;
    o.mem = "0";
    o.time = "1-00:00:00";
    o.partition = "gpu,gpu-long";
    o.account = "proj_42";
    o.launcher = SlurmLauncher::mpirun;
    const auto r = launch::derive_slurm_resources(scenario(o.job), o);
    CHECK(r.cpus_per_task == 8);
    CHECK(r.mem == "0");
    CHECK(r.time == "1-00:00:00");
    CHECK(r.launcher == SlurmLauncher::mpirun);
    CHECK(r.table.size() == 8);
    for (const char* t : {"5", "30:00", "12:30:00", "2-0", "2-12:00", "INFINITE"}) {
        o.time = t;
        INFO(t);
        CHECK_NOTHROW(launch::derive_slurm_resources(scenario(o.job), o));
    }
    // The simulator needs one process and no GPU, whatever the job's topology.
    auto sim = options("llama-7b-fsdp-6x-a100-40g", {"job.topology=4x8-h100-ib"});
    sim.mode = SlurmMode::simulate;
    const auto rs = launch::derive_slurm_resources(scenario(sim.job, sim.sets), sim);
    CHECK(rs.nodes == 1);
    CHECK(rs.tasks_per_node == 1);
    CHECK(rs.gpus_per_node == 0);
    CHECK(rs.time == launch::kDefaultSimulateTime);
}

TEST_CASE("slurm: impossible requests are refused, one line each with the factors") {
    test::TempDir dir;
    const std::string tiny = dir.file("tiny.ini", kTinyCpuJob);
    struct Case {
        std::string name;
        std::string job;
        std::vector<std::string> sets;
        std::function<void(SlurmOptions&)> ask;
        std::vector<std::string> lines;  // each expected line: its start, then fragments it contains
    };
    const std::vector<Case> cases = {
        {"more GPUs per node than the topology has", "llama-7b-fsdp-6x-a100-40g", {"topology.cluster.gpus_per_node=4"},
         [](SlurmOptions& o) { o.gpus_per_node = 6; },
         {"--gpus-per-node: bad value '6': 6 GPUs per node asked on topology 6x-a100-40g, which has 4|(allowed: 4)"}},
        {"fewer GPUs than the ranks of a node", "flan-t5-xl-zero3-8x-a100-40g", {},
         [](SlurmOptions& o) { o.gpus_per_node = 6; },
         {"--gpus-per-node: bad value '6': 8 ranks on 1 node need 8 GPUs per node (one per rank)|"
          "topology 8x-a100-40g: 1 node x 8 GPUs|parallel.world_size = 0 (all of them): 8 ranks|(allowed: 8)"}},
        {"nodes x GPUs is not the world size", "llama-7b-fsdp-6x-a100-40g", {},
         [](SlurmOptions& o) { o.nodes = 2; o.gpus_per_node = 4; },
         {"--nodes x --gpus-per-node: bad value '2 x 4': 8 GPUs for 6 ranks (one GPU per rank)|(allowed: 1 x 6)"}},
        {"nodes other than the topology's", "llama-7b-fsdp-6x-a100-40g", {},
         [](SlurmOptions& o) { o.nodes = 2; },
         {"--nodes: bad value '2': the job's nodes are the topology's|topology.cluster.nodes|(allowed: 1)"}},
        {"too few nodes for a multi-node topology", "llama-7b-fsdp-6x-a100-40g", {"job.topology=4x8-h100-ib"},
         [](SlurmOptions& o) { o.nodes = 2; },
         {"--nodes: bad value '2'|4 nodes x 8 GPUs|32 ranks|(allowed: 4)"}},
        {"GPUs asked for a CPU topology", tiny, {"topology.cluster.gpus_per_node=2"},
         [](SlurmOptions& o) { o.gpus_per_node = 2; },
         {"--gpus-per-node: bad value '2': topology cpu-host is a CPU host (gpu.kind = cpu)|(allowed: 0, or leave it out)"}},
        {"no GPU for a GPU topology", "llama-7b-fsdp-6x-a100-40g", {},
         [](SlurmOptions& o) { o.gpus_per_node = 0; },
         {"--gpus-per-node: bad value '0': one rank per GPU (A100-PCIE-40GB)|(allowed: 6)"}},
        {"the simulator on several nodes, with GPUs, under mpirun", "llama-7b-fsdp-6x-a100-40g", {},
         [](SlurmOptions& o) { o.mode = SlurmMode::simulate; o.nodes = 3; o.gpus_per_node = 6; o.launcher = SlurmLauncher::mpirun; },
         {"--nodes: bad value '3': --mode simulate runs one process on one node|(allowed: 1)",
          "--gpus-per-node: bad value '6': --mode simulate predicts 6x-a100-40g without using a GPU",
          "--launcher: bad value 'mpirun': --mode simulate runs one process|(allowed: srun)"}},
        {"no CPU", "llama-7b-fsdp-6x-a100-40g", {}, [](SlurmOptions& o) { o.cpus_per_task = 0; },
         {"--cpus-per-task: bad value '0'|(allowed: integer >= 1)"}},
        {"memory in no Slurm spelling", "llama-7b-fsdp-6x-a100-40g", {}, [](SlurmOptions& o) { o.mem = "12GB"; },
         {"--mem: bad value '12GB': not a Slurm size|(allowed: a size per node such as 64G"}},
        {"less memory than the ranks need", "llama-7b-fsdp-6x-a100-40g", {}, [](SlurmOptions& o) { o.mem = "4G"; },
         {"--mem: bad value '4G': the job needs the predicted host use per node, 12.00 GiB (per rank: 0 B offloaded + 2.00 GiB process (host.process_gib)) per node|"
          "(allowed: at least 12G, or 0 for all of the node's memory)"}},
        {"a time limit in no Slurm spelling", "llama-7b-fsdp-6x-a100-40g", {}, [](SlurmOptions& o) { o.time = "2h"; },
         {"--time: bad value '2h': not a Slurm time limit|(allowed: minutes, minutes:seconds, hours:minutes:seconds"}},
        {"names that would break the #SBATCH line", "llama-7b-fsdp-6x-a100-40g", {},
         [](SlurmOptions& o) { o.partition = "gpu\n#SBATCH --x"; o.account = "a b"; },
         {"--partition: bad value 'gpu\n#SBATCH --x': not a Slurm name|(allowed: letters, digits",
          "--account: bad value 'a b': not a Slurm name"}},
    };
    const std::regex shape("--[a-z-]+( x --[a-z-]+)?: bad value '[^']*': [\\s\\S]+ \\(allowed: [\\s\\S]+\\)");
    for (const auto& c : cases) {
        INFO(c.name);
        auto o = options(c.job, c.sets);
        c.ask(o);
        const auto lines = refusal(scenario(c.job, c.sets), o);
        REQUIRE(lines.size() == c.lines.size());
        for (std::size_t i = 0; i < lines.size(); ++i) {
            INFO(lines[i]);
            CHECK(std::regex_match(lines[i], shape));
            const auto parts = split(c.lines[i], '|');
            CHECK(lines[i].rfind(parts[0], 0) == 0);
            for (std::size_t k = 1; k < parts.size(); ++k) CHECK(lines[i].find(parts[k]) != std::string::npos);
        }
    }
}

TEST_CASE("slurm: the script carries the resources, the effective configuration and the launch") {
    auto o = options("llama-7b-fsdp-6x-a100-40g", {"batch.micro_batch=2", "job.name=it's mine"});
    o.partition = "gpu";
    o.account = "proj";
    const auto s = scenario(o.job, o.sets);
    const std::string script = launch::slurm_script(s, o);
    const auto ls = test::lines(script);
    REQUIRE(!ls.empty());
    CHECK(ls[0] == "#!/bin/bash");
    for (const char* l : {"#SBATCH --nodes=1", "#SBATCH --ntasks-per-node=6", "#SBATCH --gpus-per-node=6",
                          "#SBATCH --cpus-per-task=2", "#SBATCH --mem=15G", "#SBATCH --time=00:30:00",
                          "#SBATCH --partition=gpu", "#SBATCH --account=proj", "#SBATCH --output=%x-%j.out",
                          "#SBATCH --job-name=shardsim-it_s_mine"}) {
        INFO(l);
        CHECK(std::find(ls.begin(), ls.end(), l) != ls.end());
    }
    // The header: comments only, up to the first command; the effective job and topology in it.
    std::size_t first_command = 0;
    while (first_command < ls.size() && (ls[first_command].empty() || ls[first_command][0] == '#')) ++first_command;
    REQUIRE(first_command < ls.size());
    CHECK(ls[first_command] == "set -euo pipefail");
    const std::string header = join(std::vector<std::string>(ls.begin(), ls.begin() + static_cast<long>(first_command)), "\n");
    for (const char* h : {"#   micro_batch = 2", "#   strategy = fsdp-full-shard", "#   [cluster]", "#   gpus_per_node = 6",
                          "#   name = A100-PCIE-40GB", "Effective job configuration", "Effective topology configuration",
                          "SHARDSIM_OUT_DIR", "$SHARDSIM_OUT_DIR/$SLURM_JOB_ID/run.h5", "peak device memory per rank"}) {
        INFO(h);
        CHECK(header.find(h) != std::string::npos);
    }
    // #SBATCH lines only in the block at the top: none of the configuration can make one.
    std::size_t sbatch_lines = 0;
    for (const auto& l : ls) sbatch_lines += l.rfind("#SBATCH", 0) == 0;
    CHECK(sbatch_lines == 10);
    // Not even from a value with a newline in it (sbatch reads #SBATCH lines up to the first
    // command): control characters in a --set value are bad input before any script is made.
    auto evil = options("llama-7b-fsdp-6x-a100-40g", {"job.name=x\n#SBATCH --exclusive"});
    CHECK_THROWS_AS(scenario(evil.job, evil.sets), InputError);
    // The launch: srun with PMIx that ends the step when a rank fails; mpirun as the alternative.
    CHECK(script.find("srun --mpi=pmix --kill-on-bad-exit=1 --nodes=1 --ntasks-per-node=6 --cpus-per-task=2") != std::string::npos);
    CHECK(script.find("mpirun -np 6 --map-by ppr:6:node --bind-to none") != std::string::npos);
    CHECK(script.find("SHARDSIM_JOB=${SHARDSIM_JOB:-llama-7b-fsdp-6x-a100-40g}") != std::string::npos);
    CHECK(script.find("CMD=(\"$SHARDSIM\" run --job \"$SHARDSIM_JOB\" --set batch.micro_batch=2 --set 'job.name=it'\\''s mine' "
                      "--out \"$OUT_DIR/run.h5\" ${EXTRA_ARGS[@]+\"${EXTRA_ARGS[@]}\"})") != std::string::npos);
    CHECK(script.find("OUT_DIR=${SHARDSIM_OUT_DIR:-${SLURM_SUBMIT_DIR:-$PWD}/shardsim-out}/${SLURM_JOB_ID:-local}") != std::string::npos);
}

TEST_CASE("slurm: each mode runs its subcommand and writes its file") {
    struct Case {
        SlurmMode mode;
        const char* command;
        bool launched;
    };
    for (const Case& c :
         {Case{SlurmMode::run, "run --job \"$SHARDSIM_JOB\" --out \"$OUT_DIR/run.h5\"", true},
          Case{SlurmMode::simulate, "simulate --job \"$SHARDSIM_JOB\" --out \"$OUT_DIR/simulate.h5\"", false},
          Case{SlurmMode::validate,
               "validate --job \"$SHARDSIM_JOB\" --out-sim \"$OUT_DIR/simulate.h5\" --out-run \"$OUT_DIR/run.h5\"", true},
          // bench measures the allocation the job's shape asks for; it takes no job
          Case{SlurmMode::bench, "bench --out \"$OUT_DIR/bench.h5\" ${EXTRA_ARGS[@]+\"${EXTRA_ARGS[@]}\"})", true}}) {
        auto o = options("gpt2-xl-fsdp-2x-titan-rtx");
        o.mode = c.mode;
        const std::string script = launch::slurm_script(scenario(o.job), o);
        INFO(launch::slurm_mode_name(c.mode));
        CHECK(script.find(std::string("CMD=(\"$SHARDSIM\" ") + c.command) != std::string::npos);
        CHECK((script.find("srun --mpi=pmix") != std::string::npos) == c.launched);
        CHECK((script.find("#SBATCH --gpus-per-node=2") != std::string::npos) == c.launched);
    }
    CHECK(launch::parse_slurm_mode("bench") == SlurmMode::bench);
    CHECK(!launch::parse_slurm_mode("train"));
    CHECK(launch::shell_quote("jobs/a-b_c.ini") == "jobs/a-b_c.ini");
    CHECK(launch::shell_quote("a b") == "'a b'");
    CHECK(launch::shell_quote("$HOME") == "'$HOME'");
}

TEST_CASE("slurm: the command line writes the script or refuses with exit code 2") {
    test::TempDir dir;
    const std::string bin = test::shardsim_binary();
    const auto ok = test::run_command(bin + " slurm --job gpt2-xl-fsdp-2x-titan-rtx --time 10 --out " + dir.path("a.sbatch"));
    CHECK(ok.exit_code == 0);
    // The plan is predicted not to fit its 24 GB GPUs: said on stderr, the script is written anyway.
    CHECK(ok.output.find("shardsim slurm: warning: device memory") != std::string::npos);
    std::ifstream in(dir.path("a.sbatch"));
    const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    CHECK(text.find("#SBATCH --time=10\n") != std::string::npos);

    // More GPUs per node than the topology has: the job gets them (--set written into the script).
    const auto more = test::run_command(bin + " slurm --job llama-7b-fsdp-6x-a100-40g --gpus-per-node 8");
    CHECK(more.exit_code == 0);
    CHECK(more.output.find("#SBATCH --gpus-per-node=8\n") != std::string::npos);
    CHECK(more.output.find("--set topology.cluster.gpus_per_node=8 --out") != std::string::npos);

    const auto mode = test::run_command(bin + " slurm --mode train");
    CHECK(mode.exit_code == kExitBadInput);
    CHECK(mode.output == "--mode: bad value 'train' (allowed: run, simulate, validate, bench)\n");
}

TEST_CASE("slurm: --nodes and --gpus-per-node shape the job; a missing network is named once, completely") {
    const std::string bin = test::shardsim_binary();
    const std::string base = bin + " slurm --job llama-7b-fsdp-6x-a100-40g --nodes 2 --gpus-per-node 8";
    const auto refused = test::run_command(base);
    CHECK(refused.exit_code == kExitBadInput);
    const auto out = test::lines(refused.output);
    REQUIRE(out.size() == 1);
    INFO(out[0]);
    CHECK(out[0].rfind("--nodes: bad value '2': 2 nodes of topology 6x-a100-40g, which has no network between nodes", 0) == 0);
    // What it says to add, taken from the message itself (a choice and a value filled in), is enough.
    std::smatch kind, bandwidth, topology;
    REQUIRE(std::regex_search(out[0], kind, std::regex("--set (topology\\.inter_node\\.kind=)([a-z]+)\\|")));
    REQUIRE(std::regex_search(out[0], bandwidth, std::regex("--set (topology\\.inter_node\\.bandwidth_gbps=)<")));
    REQUIRE(std::regex_search(out[0], topology, std::regex("--set (job\\.topology=)([a-z0-9x-]+)")));
    const auto fixed = test::run_command(base + " --set " + kind[1].str() + kind[2].str() + " --set " + bandwidth[1].str() + "25");
    CHECK(fixed.exit_code == 0);
    for (const char* l : {"#SBATCH --nodes=2\n", "#SBATCH --ntasks-per-node=8\n", "#SBATCH --gpus-per-node=8\n",
                          "--set topology.cluster.nodes=2 --set topology.cluster.gpus_per_node=8 --out",
                          "#SBATCH --job-name=shardsim-llama-7b-fsdp-full-shard-2x8-a100-pcie-40gb\n"}) {
        INFO(l);
        CHECK(fixed.output.find(l) != std::string::npos);
    }
    const auto other = test::run_command(base + " --set " + topology[1].str() + topology[2].str());
    CHECK(other.exit_code == 0);
    CHECK(other.output.find("#SBATCH --nodes=2\n") != std::string::npos);

    // Library level: the overrides, and none when the shape is the job's already.
    auto o = options("llama-7b-fsdp-6x-a100-40g", {"job.topology=4x8-h100-ib"});
    o.nodes = 2;
    CHECK(launch::shape_overrides(scenario(o.job, o.sets), o) == std::vector<std::string>{"topology.cluster.nodes=2"});
    o.nodes = 4;
    o.gpus_per_node = 8;
    CHECK(launch::shape_overrides(scenario(o.job, o.sets), o).empty());
    // A world size the job fixes follows the shape asked for.
    auto fixed_world = options("llama-7b-fsdp-6x-a100-40g", {"parallel.world_size=4"});
    fixed_world.gpus_per_node = 6;
    CHECK(launch::shape_overrides(scenario(fixed_world.job, fixed_world.sets), fixed_world) ==
          std::vector<std::string>{"parallel.world_size=0"});
}

TEST_CASE("slurm: the job name follows the effective job") {
    const auto name = [](const std::vector<std::string>& sets) {
        return launch::slurm_job_name(scenario("llama-7b-fsdp-6x-a100-40g", sets));
    };
    CHECK(name({}) == "shardsim-llama-7b-fsdp-6x-a100-40g");
    CHECK(name({"batch.micro_batch=4"}) == "shardsim-llama-7b-fsdp-6x-a100-40g");  // the same job, another batch
    CHECK(name({"job.topology=4x8-h100-ib"}) == "shardsim-llama-7b-fsdp-full-shard-4x8-h100-ib");
    CHECK(name({"parallel.strategy=zero2"}) == "shardsim-llama-7b-zero2-6x-a100-40g");
    CHECK(name({"topology.cluster.gpus_per_node=4"}) == "shardsim-llama-7b-fsdp-full-shard-1x4-a100-pcie-40gb");
    CHECK(name({"job.topology=4x8-h100-ib", "job.name=mine"}) == "shardsim-mine");
}

TEST_CASE("slurm: site set-up, exclusive nodes, bindings, NCCL_DEBUG and requeue in the script") {
    auto o = options("llama-7b-fsdp-6x-a100-40g");
    o.setup = {"module load cuda/12.4", "source \"$HOME/venv/bin/activate\""};
    o.exclusive = true;
    o.gpu_bind = "closest";
    o.cpu_bind = "cores";
    o.nccl_debug = "INFO";
    o.requeue = true;
    o.signal_grace_s = 300;
    const std::string script = launch::slurm_script(scenario(o.job), o);
    for (const char* l : {"#SBATCH --exclusive\n", "#SBATCH --requeue\n", "#SBATCH --signal=TERM@300\n", "#SBATCH --open-mode=append\n",
                          "set +u\nmodule load cuda/12.4\nsource \"$HOME/venv/bin/activate\"\nif [ -n \"${SHARDSIM_SETUP:-}\" ]; then\n",
                          "--cpus-per-task=2 --gpu-bind=closest --cpu-bind=cores \\\n", "export NCCL_DEBUG=${NCCL_DEBUG:-INFO}\n",
                          "trap 'signalled=1' TERM\n", "scontrol requeue \"$SLURM_JOB_ID\"",
                          "OUT_DIR=$OUT_DIR/restart-$SLURM_RESTART_COUNT", "CKPT_DIR=${SHARDSIM_CHECKPOINT_DIR:-$OUT_DIR/checkpoints}\n",
                          "if [ -f \"$CKPT_DIR/latest\" ]; then RESUME_ARGS=(--resume \"$CKPT_DIR\"); fi\n",
                          " --checkpoint \"$CKPT_DIR\" --checkpoint-every \"${SHARDSIM_CHECKPOINT_EVERY:-0}\" ${RESUME_ARGS[@]+\"${RESUME_ARGS[@]}\"}"}) {
        INFO(l);
        CHECK(script.find(l) != std::string::npos);
    }
    // The set-up comes before the binary is looked for: it may be what puts shardsim on PATH.
    CHECK(script.find("module load cuda/12.4") < script.find("command -v \"$SHARDSIM\""));
    // The heap settings are for Open MPI's reductions on CPU ranks; a GPU job reduces with NCCL.
    CHECK(script.find("MALLOC_MMAP_THRESHOLD_") == std::string::npos);
    test::TempDir dir;
    const std::string tiny = dir.file("tiny.ini", kTinyCpuJob);
    auto cpu = options(tiny, {"topology.cluster.gpus_per_node=2"});
    CHECK(launch::slurm_script(scenario(cpu.job, cpu.sets), cpu).find("export MALLOC_MMAP_THRESHOLD_=") != std::string::npos);

    // What does not fit is refused, one line each.
    const auto refused = [&](SlurmOptions x, const std::string& start) {
        INFO(start);
        const auto lines = refusal(scenario(x.job, x.sets), x);
        REQUIRE(lines.size() == 1);
        CHECK(lines[0].rfind(start, 0) == 0);
    };
    auto m = options("llama-7b-fsdp-6x-a100-40g");
    m.launcher = SlurmLauncher::mpirun;
    m.gpu_bind = "closest";
    refused(m, "--gpu-bind: bad value 'closest': srun binds the ranks it starts; this script starts them with mpirun");
    auto c = cpu;
    c.nccl_debug = "INFO";
    refused(c, "--nccl-debug: bad value 'INFO': topology cpu-host is a CPU host");
    auto n = options("llama-7b-fsdp-6x-a100-40g");
    n.nccl_debug = "LOUD";
    refused(n, "--nccl-debug: bad value 'LOUD': not an NCCL_DEBUG level");
    auto v = options("llama-7b-fsdp-6x-a100-40g");
    v.mode = SlurmMode::validate;
    v.requeue = true;
    refused(v, "--requeue: bad value 'validate'");
    auto g = options("llama-7b-fsdp-6x-a100-40g");
    g.requeue = true;
    g.signal_grace_s = 0;
    refused(g, "--signal-grace: bad value '0'");
}

TEST_CASE("slurm: every script is bash 4.2 (RHEL 7) syntax, arrays included") {
    // Bash before 4.4 calls an empty "${A[@]}" unbound under set -u: every array that can be empty
    // is expanded as ${A[@]+"${A[@]}"}; CMD never is. Nor any syntax newer than 4.2.
    test::TempDir dir;
    const std::string tiny = dir.file("tiny.ini", kTinyCpuJob);
    const std::regex expansion("(\\$\\{([A-Z_]+)\\[@\\]\\+)?\"\\$\\{([A-Z_]+)\\[@\\]\\}\"");
    const std::vector<std::string> newer = {"${!", "declare -n", "local -n", "wait -n", "mapfile -d", "readarray -d",
                                            "[[ -v", "[-1]", "EPOCHREALTIME", "EPOCHSECONDS", "@Q}", "@E}", "@P}", "@A}"};
    int scripts = 0;
    for (SlurmMode mode : {SlurmMode::run, SlurmMode::simulate, SlurmMode::validate, SlurmMode::bench})
        for (bool requeue : {false, true})
            for (const std::string& job : {std::string("llama-7b-fsdp-6x-a100-40g"), tiny}) {
                if (requeue && mode != SlurmMode::run) continue;
                auto o = options(job, job == tiny ? std::vector<std::string>{"topology.cluster.gpus_per_node=2"}
                                                  : std::vector<std::string>{});
                o.mode = mode;
                o.requeue = requeue;
                o.setup = {"module load x"};
                const std::string script = launch::slurm_script(scenario(o.job, o.sets), o);
                const std::string body = script.substr(script.find("\nset -euo pipefail\n"));
                INFO(launch::slurm_mode_name(mode) << " requeue " << requeue << " " << job);
                int arrays = 0;
                for (std::sregex_iterator it(body.begin(), body.end(), expansion), end; it != end; ++it, ++arrays) {
                    const std::string name = (*it)[3];
                    INFO((*it)[0].str());
                    CHECK((name == "CMD" || (*it)[2] == name));
                }
                CHECK(arrays >= 2);
                CHECK(body.find("[@]}") != std::string::npos);
                for (const auto& construct : newer) {
                    INFO(construct);
                    CHECK(body.find(construct) == std::string::npos);
                }
                const std::string file = dir.file("s" + std::to_string(scripts++) + ".sbatch", script);
                CHECK(test::run_command("bash -n " + file).exit_code == 0);
            }
    CHECK(scripts == 10);
    // The templates in slurm/ too.
    int templates = 0;
    for (const auto& entry : std::filesystem::directory_iterator(test::source_dir() + "/slurm")) {
        if (entry.path().extension() != ".sbatch") continue;
        INFO(entry.path());
        std::ifstream in(entry.path());
        const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        for (std::sregex_iterator it(text.begin(), text.end(), expansion), end; it != end; ++it) {
            INFO((*it)[0].str());
            CHECK(((*it)[3] == "CMD" || (*it)[2] == (*it)[3]));
        }
        for (const auto& construct : newer) CHECK(text.find(construct) == std::string::npos);
        CHECK(text.find("SHARDSIM_SETUP") != std::string::npos);
        ++templates;
    }
    CHECK(templates == 5);
}

TEST_CASE("launch environment: local rank, Slurm attributes and GPU binding") {
    // srun: one task per rank, SLURM_LOCALID is the task's.
    const auto srun = config::read_launch_env(env_of({{"SLURM_JOB_ID", "42"}, {"SLURM_STEP_ID", "0"},
                                                      {"SLURM_JOB_NUM_NODES", "2"}, {"SLURM_JOB_NODELIST", "gpu[01-02]"},
                                                      {"SLURM_JOB_PARTITION", "gpu"}, {"SLURM_LOCALID", "3"},
                                                      {"CUDA_VISIBLE_DEVICES", "0,1,2,3,4,5"}}));
    REQUIRE(srun.slurm);
    CHECK(srun.local_rank == 3);
    CHECK(srun.local_rank_source == "SLURM_LOCALID");
    const auto attrs = srun.attributes();
    CHECK(attrs.at("slurm_job_id") == "42");
    CHECK(attrs.at("slurm_step_id") == "0");
    CHECK(attrs.at("slurm_job_num_nodes") == "2");
    CHECK(attrs.at("slurm_job_nodelist") == "gpu[01-02]");
    CHECK(attrs.at("slurm_job_partition") == "gpu");
    CHECK(attrs.count("slurm_cluster_name") == 0);
    const auto b = config::bind_gpu(*srun.local_rank, srun.local_rank_source, 6, srun.cuda_visible);
    CHECK(b.device == 3);
    CHECK(b.visible_as == "3");
    CHECK(b.description == "local rank 3 (SLURM_LOCALID) -> GPU 3 of 6 visible (CUDA_VISIBLE_DEVICES=0,1,2,3,4,5)");

    // mpirun inside an allocation: SLURM_LOCALID is the launcher daemon's (0 on every rank), as
    // measured in tests/slurm; Open MPI's own variable wins.
    const auto mpirun = config::read_launch_env(env_of({{"SLURM_JOB_ID", "43"}, {"SLURM_LOCALID", "0"},
                                                        {"OMPI_COMM_WORLD_LOCAL_RANK", "5"}}));
    CHECK(mpirun.local_rank == 5);
    CHECK(mpirun.local_rank_source == "OMPI_COMM_WORLD_LOCAL_RANK");
    CHECK(mpirun.attributes().count("slurm_step_id") == 0);

    // Nothing: no Slurm attributes, the executor asks MPI for the node-local rank.
    const auto none = config::read_launch_env(env_of({}));
    CHECK(!none.slurm);
    CHECK(!none.local_rank);
    CHECK(none.attributes().empty());

    CHECK_THROWS_AS(config::read_launch_env(env_of({{"SLURM_LOCALID", "x"}})), InputError);

    // One GPU per task (--gpus-per-task=1): whatever the local rank, that GPU.
    const auto one = config::bind_gpu(4, "SLURM_LOCALID", 1, std::string("GPU-8d1c"));
    CHECK(one.device == 0);
    CHECK(one.visible_as == "GPU-8d1c");
    // More ranks than GPUs on a node: refused with the factors.
    try {
        config::bind_gpu(6, "SLURM_LOCALID", 6, std::string("0,1,2,3,4,5"));
        FAIL("no error");
    } catch (const Error& e) {
        CHECK(std::string(e.what()) ==
              "local rank 6 (SLURM_LOCALID) has no GPU: 6 visible (CUDA_VISIBLE_DEVICES=0,1,2,3,4,5); "
              "start one rank per GPU (--ntasks-per-node equal to --gpus-per-node)");
    }
    CHECK_THROWS_AS(config::bind_gpu(0, "SLURM_LOCALID", 0, std::nullopt), Error);
}
