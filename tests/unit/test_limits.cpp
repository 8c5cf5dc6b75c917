// Reliability of sizes: every size key has a finite, documented maximum; byte and element
// arithmetic is checked, so an overflow is an InputError naming what overflowed.
#include <doctest/doctest.h>

#include <climits>
#include <cmath>
#include <set>

#include "shardsim/config/job.hpp"
#include "shardsim/config/limits.hpp"
#include "shardsim/config/topology.hpp"
#include "shardsim/core/dtype.hpp"
#include "shardsim/core/memory.hpp"
#include "shardsim/model/spec.hpp"
#include "shardsim/timeline/timeline.hpp"

using namespace shardsim;

TEST_CASE("every integer and every size in the job, topology and model schemas has a finite maximum, shown in --help") {
    // Rates and ratios of the optimizer are not sizes: nothing is allocated or multiplied by them.
    const std::set<std::string> not_sizes = {"job.seed",          "optimizer.lr",   "optimizer.weight_decay",
                                             "optimizer.beta1",   "optimizer.beta2", "optimizer.eps",
                                             "optimizer.momentum", "lora.alpha"};
    int checked = 0;
    for (const config::Schema* schema : {&config::job_schema(), &config::topology_schema(), &model::model_schema()}) {
        for (const auto& k : *schema) {
            if (k.type != config::ValueType::integer && k.type != config::ValueType::number) continue;
            if (not_sizes.count(k.name())) continue;
            if (!k.retired.empty()) continue;  // refused whatever its value, with a pointer to its successor
            INFO(k.name());
            CHECK(std::isfinite(k.max));
            CHECK(k.max < 9.2e18);
            CHECK(k.allowed().find(" in ") != std::string::npos);  // "integer in [1, 1048576]"
            ++checked;
        }
    }
    CHECK(checked >= 40);
}

TEST_CASE("maxima keep the quantities derived from one key exact") {
    // The schedule numbers micro-batches with an int.
    static_assert(config::limits::kGradAccum <= INT_MAX);
    // The largest device and host memory and overhead, in bytes, and the largest model in fp32
    // with two Adam moments, are far inside int64.
    CHECK(static_cast<double>(config::limits::kMemoryGiB) * kGiB < 1e17);
    CHECK(static_cast<double>(config::limits::kBufferMiB) * kMiB < 1e17);
    CHECK(checked_mul(config::limits::kParams, 16) > 0);
    // nodes x GPUs per node at their maxima is exact, and compared against the world maximum.
    CHECK(checked_mul(config::limits::kNodes, config::limits::kGpusPerNode) > config::limits::kWorld);
}

TEST_CASE("byte and element arithmetic is checked: an overflow throws an InputError naming the quantity") {
    const Bytes big(INT64_MAX - 1);
    CHECK_THROWS_AS(big + Bytes(2), OverflowError);
    CHECK_THROWS_AS(Bytes(INT64_MIN) - Bytes(1), OverflowError);
    CHECK_THROWS_AS(Elements(INT64_MAX / 2 + 1) * 2, OverflowError);
    CHECK_THROWS_AS(bytes_of(Elements(INT64_MAX / 2), DType::fp32), OverflowError);
    try {
        Bytes b = big;
        b += Bytes(5);
        FAIL("no overflow reported");
    } catch (const InputError& e) {
        CHECK(std::string(e.what()) ==
              "a byte count overflows int64: 9223372036854775806 + 5 is beyond 9223372036854775807 (allowed: sizes whose "
              "element and byte counts stay below 2^63; lower the batch, the sequence lengths or the model's dimensions)");
    }
    CHECK((big + Bytes(1)).count() == INT64_MAX);
    CHECK(bytes_of(Elements(1) * 1000, DType::bf16) == Bytes(2000));

    MemoryByCategory m;
    m[MemCategory::params] = INT64_MAX;
    m[MemCategory::grads] = 1;
    CHECK_THROWS_AS(m.device_total(), OverflowError);
    CHECK_THROWS_AS(m += m, OverflowError);
}

TEST_CASE("ceil_div is exact up to the int64 maximum") {
    CHECK(ceil_div(INT64_MAX, 2) == INT64_MAX / 2 + 1);
    CHECK(ceil_div(INT64_MAX, 1) == INT64_MAX);
    CHECK(ceil_div(0, 7) == 0);
    CHECK(ceil_div(14, 7) == 2);
    CHECK(ceil_div(15, 7) == 3);
}

TEST_CASE("a timeline whose collective bytes sum past int64 is an OverflowError, not a negative size") {
    timeline::RankTimeline tl;
    for (int i = 0; i < 3; ++i) {
        timeline::OpRecord op;
        op.op_id = i;
        op.kind = plan::OpKind::all_gather;
        op.stream = plan::OpStream::comm;
        op.collective = static_cast<int>(plan::CollectiveKind::all_gather);
        op.ranks = 8;
        op.bytes = std::int64_t{1} << 62;
        op.t_start = i;
        op.t_end = i + 1;
        tl.ops.push_back(op);
    }
    CHECK_THROWS_AS(tl.summarize(), OverflowError);
    tl.ops.pop_back();
    tl.ops.pop_back();
    CHECK(tl.summarize().comm_size_bytes.at(static_cast<int>(plan::CollectiveKind::all_gather)) == std::int64_t{1} << 62);
}
