// Engine behaviours the simulator must reproduce whatever the link speed (issue 13, item 6):
// DeepSpeed ZeRO-2's peak does not grow with gradient accumulation; bucket_mib changes the
// number of reductions and the bucket memory; FSDP's rate limiter bounds the all-gathers in flight;
// DeepSpeed ZeRO-3's all-gathers follow the host, whatever the link speed.
#include <doctest/doctest.h>

#include <algorithm>
#include <map>

#include "shardsim/model/scenario.hpp"
#include "shardsim/sim/predict.hpp"

using namespace shardsim;

namespace {

timeline::RunTimeline predict(const std::string& job, const std::vector<std::string>& sets) {
    return sim::predict(model::load_scenario(job, sets)).run;
}

std::int64_t peak(const timeline::RunTimeline& run) {
    std::int64_t p = 0;
    for (const auto& tl : run.timelines) p = std::max(p, tl.summarize().peak_bytes);
    return p;
}

// The most all-gathered FSDP units alive at once, from the simulated ops: a unit counts from the
// start of its all-gather to the end of the reshard that frees it (the root units, kept gathered
// into backward by FSDP, are left out).
int most_gathered_at_once(const timeline::RunTimeline& run) {
    const auto& ops = run.timelines[0].ops;
    std::map<int, double> gathered_at;  // unit -> all-gather start
    std::vector<std::pair<double, int>> events;
    for (const auto& op : ops) {
        if (op.kind == plan::OpKind::all_gather && op.micro_batch >= 0) gathered_at[op.unit] = op.t_start;
        if (op.kind == plan::OpKind::reshard && gathered_at.count(op.unit)) {
            events.push_back({gathered_at[op.unit], +1});
            events.push_back({op.t_end, -1});
            gathered_at.erase(op.unit);
        }
    }
    std::sort(events.begin(), events.end(), [](const auto& a, const auto& b) { return a.first != b.first ? a.first < b.first : a.second < b.second; });
    int live = 0, most = 0;
    for (const auto& e : events) most = std::max(most, live += e.second);
    return most;
}

const std::string kXxl = std::string(SHARDSIM_SOURCE_DIR) + "/jobs/flan-t5-xxl-zero3-8x-a100-40g.ini";
const std::string kLlama = std::string(SHARDSIM_SOURCE_DIR) + "/jobs/llama-7b-fsdp-6x-a100-40g.ini";

}  // namespace

TEST_CASE("DeepSpeed ZeRO-2: the peak stays flat over grad_accum 1, 4, 16 on PCIe and NVLink") {
    for (const char* link : {"pcie", "nvlink"}) {
        CAPTURE(link);
        std::vector<std::int64_t> peaks;
        for (const char* ga : {"1", "4", "16"})
            peaks.push_back(peak(predict(kLlama, {"parallel.strategy=zero2", std::string("batch.grad_accum=") + ga,
                                                  std::string("topology.intra_node.kind=") + link})));
        const auto [lo, hi] = std::minmax_element(peaks.begin(), peaks.end());
        MESSAGE(std::string(link) << ": peaks " << peaks[0] << ", " << peaks[1] << ", " << peaks[2] << " bytes");
        CHECK(static_cast<double>(*hi - *lo) < 0.02 * static_cast<double>(*lo));
    }
}

TEST_CASE("DeepSpeed ZeRO-2: bucket_mib changes the number of all-reduces and the bucket memory") {
    auto reductions = [](const timeline::RunTimeline& run) {
        int n = 0;
        for (const auto& op : run.timelines[0].ops) n += op.kind == plan::OpKind::all_reduce;
        return n;
    };
    auto comm_buffers = [](const timeline::RunTimeline& run) {
        std::int64_t m = 0;
        for (const auto& s : run.timelines[0].memory) m = std::max(m, s.bytes[MemCategory::comm_buffers]);
        return m;
    };
    const auto small = predict(kLlama, {"parallel.strategy=zero2", "parallel.bucket_mib=50"});
    const auto large = predict(kLlama, {"parallel.strategy=zero2", "parallel.bucket_mib=1000"});
    CHECK(reductions(small) > 2 * reductions(large));
    CHECK(comm_buffers(small) < comm_buffers(large));
}

TEST_CASE("FSDP: limit_all_gathers bounds the units gathered at once; without it forward runs ahead") {
    // All-gathers quick next to the compute, so the CPU's run-ahead shows: H100 NVLink's 450 GB/s at
    // full efficiency (sim/links.hpp) against the A100's compute.
    const std::vector<std::string> base = {"topology.intra_node.kind=nvlink", "topology.intra_node.bandwidth_gbps=450",
                                           "topology.intra_node.efficiency=1"};
    auto with = base, without = base;
    with.push_back("fsdp.limit_all_gathers=true");
    without.push_back("fsdp.limit_all_gathers=false");
    const int limited = most_gathered_at_once(predict(kLlama, with));
    const int unlimited = most_gathered_at_once(predict(kLlama, without));
    MESSAGE("units gathered at once: " << limited << " with the limiter, " << unlimited << " without");
    // Two reshards may be queued when the next all-gather is issued, one unit computes and one is
    // prefetched: the limiter's bound.
    CHECK(limited <= 4);
    CHECK(unlimited > limited);
}

TEST_CASE("DeepSpeed ZeRO-3: all-gathers follow the host, so fast links never gather the model ahead of compute") {
    // FLAN-T5-XXL on NVSwitch: the all-gathers take a tenth of the compute. The coordinator holds the
    // current call's unit, the prefetch (5e7 elements: one next unit) and the units the reuse distance
    // keeps from forward to backward (1e9 elements: the last decoder blocks and the head); the
    // fetch-event rule (two all-gathers not yet waited for) bounds the comm stream only against
    // itself, so without the host the all-gathers would run to the end of backward.
    const auto run = predict(kXxl, {});
    const int most = most_gathered_at_once(run);
    MESSAGE("units gathered at once: " << most);
    CHECK(most >= 2);  // the prefetch overlaps the current call
    CHECK(most <= 6);
    // The verdict the seed reports: the run fits in 40 GB without offload.
    CHECK(peak(run) <= 40LL << 30);
}

TEST_CASE("seed scenarios: the device verdict their published runs report") {
    // Hugging Face PEFT's table (T0-3B, mT0-XXL, BLOOMZ-7B1 on one A100 80G): full fine-tuning of
    // mT0-XXL and BLOOMZ-7B1 ran out of GPU memory, every other row ran; the DeepSpeed ZeRO-3 rows
    // (CodeT5+ 2B, FLAN-T5-XL and -XXL) and the FSDP Llama row ran on the hardware named. The GPT-2
    // XL row is left out: its published context and batch are not the job's (the job takes 1024
    // tokens per sequence, where shardsim predicts eager attention does not fit and plan picks sdpa).
    const std::vector<std::pair<std::string, bool>> seeds = {
        {"bloomz-7b1-full-1x-a100-80g", false},          {"bloomz-7b1-lora-1x-a100-80g", true},
        {"bloomz-7b1-lora-zero3-offload-1x-a100-80g", true}, {"mt0-xxl-full-1x-a100-80g", false},
        {"mt0-xxl-lora-1x-a100-80g", true},              {"mt0-xxl-lora-zero3-offload-1x-a100-80g", true},
        {"t0-3b-full-1x-a100-80g", true},                {"t0-3b-lora-1x-a100-80g", true},
        {"t0-3b-lora-zero3-offload-1x-a100-80g", true},  {"codet5p-2b-lora-1x-rtx4090", true},
        {"codet5p-2b-zero3-offload-2x-a100-40g", true},  {"flan-t5-xl-zero3-offload-2x-rtx4090", true},
        {"flan-t5-xl-zero3-8x-a100-40g", true},          {"flan-t5-xl-zero3-offload-8x-a100-40g", true},
        {"flan-t5-xxl-zero3-8x-a100-40g", true},         {"flan-t5-xxl-zero3-offload-8x-a100-40g", true},
        {"llama-7b-fsdp-6x-a100-40g", true},
    };
    for (const auto& seed : seeds) {
        const std::string& job = seed.first;
        const bool ran = seed.second;
        const auto run = predict(std::string(SHARDSIM_SOURCE_DIR) + "/jobs/" + job + ".ini", {});
        const std::int64_t capacity = run.gpu_memory_bytes;
        INFO(job << ": peak " << peak(run) << " B of " << capacity);
        CHECK((peak(run) <= capacity) == ran);
    }
}
