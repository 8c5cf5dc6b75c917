// Communicator contract, written once and run for every backend this build and machine have,
// at whatever world size mpirun started (ctest runs 2, 3, 4 and 6 ranks: odd sizes too).
#include <doctest/doctest.h>

#include <cstring>
#include <functional>
#include <numeric>
#include <vector>

#include "shardsim/comm/mpi.hpp"
#include "shardsim/core/half.hpp"

using namespace shardsim;

namespace {

// Where a backend's buffers live and how values get in and out of them.
struct Backend {
    std::string name;
    std::function<std::unique_ptr<comm::Communicator>()> make;
    std::function<void*(std::size_t)> alloc;
    std::function<void(void*)> release;
    std::function<void(void* dst, const void* src, std::size_t)> upload;
    std::function<void(void* dst, const void* src, std::size_t)> download;
    std::function<void()> sync;
};

std::vector<Backend> backends() {
    std::vector<Backend> out;
    out.push_back({"mpi", [] { return std::make_unique<comm::MpiCommunicator>(MPI_COMM_WORLD, false); },
                   [](std::size_t n) { return std::malloc(n); }, [](void* p) { std::free(p); },
                   [](void* d, const void* s, std::size_t n) { std::memcpy(d, s, n); },
                   [](void* d, const void* s, std::size_t n) { std::memcpy(d, s, n); }, [] {}});
    return out;
}

// Values small integers so that sums are exact in every dtype.
std::vector<std::uint16_t> encode(const std::vector<float>& v, DType t) {
    std::vector<std::uint16_t> out(v.size());
    for (std::size_t i = 0; i < v.size(); ++i) out[i] = t == DType::bf16 ? float_to_bf16(v[i]) : float_to_fp16(v[i]);
    return out;
}

std::vector<float> roundtrip(Backend& b, comm::Communicator& c, DType t, const std::vector<float>& send, std::size_t recv_n,
                             const std::function<void(comm::Communicator&, const void*, void*)>& op, bool in_place_offset = false) {
    const std::size_t es = static_cast<std::size_t>(dtype_size(t));
    const std::size_t send_bytes = send.size() * es, recv_bytes = recv_n * es;
    void* s = b.alloc(std::max<std::size_t>(send_bytes, 1));
    void* r = b.alloc(std::max<std::size_t>(recv_bytes, 1));
    if (t == DType::fp32) {
        b.upload(s, send.data(), send_bytes);
    } else {
        const auto h = encode(send, t);
        b.upload(s, h.data(), send_bytes);
    }
    const void* src = s;
    if (in_place_offset) {  // all-gather in place: this rank's block of recv holds the input
        b.upload(static_cast<char*>(r) + static_cast<std::size_t>(c.rank()) * send_bytes, t == DType::fp32 ? static_cast<const void*>(send.data()) : static_cast<const void*>(encode(send, t).data()), send_bytes);
        src = static_cast<char*>(r) + static_cast<std::size_t>(c.rank()) * send_bytes;
    }
    op(c, src, r);
    b.sync();
    std::vector<float> out(recv_n);
    if (t == DType::fp32) {
        b.download(out.data(), r, recv_bytes);
    } else {
        std::vector<std::uint16_t> h(recv_n);
        b.download(h.data(), r, recv_bytes);
        for (std::size_t i = 0; i < recv_n; ++i) out[i] = t == DType::bf16 ? bf16_to_float(h[i]) : fp16_to_float(h[i]);
    }
    b.release(s);
    b.release(r);
    return out;
}

float value(int rank, std::size_t i) { return static_cast<float>((rank * 7 + static_cast<int>(i) * 3) % 17 - 8); }

}  // namespace

TEST_CASE("communicator contract: all_gather, reduce_scatter, all_reduce, broadcast, split") {
    for (auto& b : backends()) {
        auto c = b.make();
        const int n = c->size(), me = c->rank();
        for (DType t : {DType::fp32, DType::bf16, DType::fp16}) {
            for (std::size_t count : {std::size_t{1}, std::size_t{7}, std::size_t{1000}}) {
                CAPTURE(b.name);
                CAPTURE(static_cast<int>(t));
                CAPTURE(count);
                std::vector<float> mine(count);
                for (std::size_t i = 0; i < count; ++i) mine[i] = value(me, i);

                for (bool in_place : {false, true}) {
                    const auto g = roundtrip(b, *c, t, mine, count * static_cast<std::size_t>(n),
                                             [&](comm::Communicator& cc, const void* s, void* r) { cc.all_gather(s, r, static_cast<std::int64_t>(count), t); },
                                             in_place);
                    bool ok = true;
                    for (int r = 0; r < n; ++r)
                        for (std::size_t i = 0; i < count; ++i) ok = ok && g[static_cast<std::size_t>(r) * count + i] == value(r, i);
                    CHECK(ok);
                }

                // reduce-scatter: block k of every rank's input is value(rank, k*count + i).
                std::vector<float> blocks(count * static_cast<std::size_t>(n));
                for (std::size_t j = 0; j < blocks.size(); ++j) blocks[j] = value(me, j);
                const auto rs = roundtrip(b, *c, t, blocks, count, [&](comm::Communicator& cc, const void* s, void* r) {
                    cc.reduce_scatter(s, r, static_cast<std::int64_t>(count), t);
                });
                bool ok = true;
                for (std::size_t i = 0; i < count; ++i) {
                    float want = 0;
                    for (int r = 0; r < n; ++r) want += value(r, static_cast<std::size_t>(me) * count + i);
                    ok = ok && rs[i] == want;
                }
                CHECK(ok);

                const auto ar = roundtrip(b, *c, t, mine, count, [&](comm::Communicator& cc, const void* s, void* r) {
                    cc.all_reduce(s, r, static_cast<std::int64_t>(count), t);
                });
                ok = true;
                for (std::size_t i = 0; i < count; ++i) {
                    float want = 0;
                    for (int r = 0; r < n; ++r) want += value(r, i);
                    ok = ok && ar[i] == want;
                }
                CHECK(ok);
            }
        }
        // broadcast from the last rank
        std::vector<float> data(5, static_cast<float>(me));
        c->broadcast(data.data(), 5, DType::fp32, n - 1);
        for (float v : data) CHECK(v == static_cast<float>(n - 1));
        c->barrier();

        // split into "nodes" of two consecutive ranks (shard groups) and their replicas
        auto shard = c->split(me / 2, me);
        auto replica = c->split(me % 2, me);
        CHECK(shard->rank() == me % 2);
        CHECK(shard->size() == std::min(2, n - (me / 2) * 2));
        CHECK(replica->rank() == me / 2);
        float sum = static_cast<float>(me);
        shard->all_reduce(&sum, &sum, 1, DType::fp32);
        float want = 0;
        for (int r = (me / 2) * 2; r < std::min(n, (me / 2) * 2 + 2); ++r) want += static_cast<float>(r);
        CHECK(sum == want);
    }
}
