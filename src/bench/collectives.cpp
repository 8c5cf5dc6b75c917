#include "shardsim/bench/collectives.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>

#include "shardsim/comm/backends.hpp"
#include "shardsim/comm/collective_call.hpp"
#include "shardsim/comm/mpi.hpp"
#include "shardsim/comm/raw.hpp"
#include "shardsim/core/half.hpp"

namespace shardsim::bench {

using device::Device;
using device::Buffer;
using device::DeviceStream;

using plan::CollectiveKind;

namespace {

// The collectives: rows of plan/collective.hpp's table, calls from comm/collective_call.hpp.
using Collective = plan::CollectiveInfo;

const Collective& collective(CollectiveKind k) {
    if (k == CollectiveKind::broadcast) throw Error("bench measures all_gather, reduce_scatter and all_reduce, not broadcast");
    return plan::collective_info(k);
}

// ---- [Note: bench data] ------------------------------------------------------------------------
// Rank q's input at index k of the nccl-tests size is 1 + (k + 5q) mod M: small positive
// integers, so every value is a normal float (denormals would make sums many times slower),
// exact in every dtype, and different from block to block and rank to rank, so a misplaced
// block shows. M is chosen so that a sum over all ranks stays within the integers the dtype
// holds exactly (256 in bf16, 2048 in fp16, 2^24 in fp32): then every result is exact whatever
// order the library adds in, and the check is equality. Beyond that (over 256 ranks in bf16) a
// relative tolerance of a few units in the last place applies.
class Data {
public:
    Data(DType t, std::int64_t ranks) : dtype_(t) {
        const std::int64_t limit = t == DType::fp32 ? (1LL << 24) : (t == DType::fp16 ? 2048 : 256);
        m_ = std::clamp<std::int64_t>(limit / ranks, 1, 64);
        exact_ = ranks * m_ <= limit;
        const double ulp = t == DType::fp32 ? 0x1p-23 : (t == DType::fp16 ? 0x1p-10 : 0x1p-7);
        tolerance_ = exact_ ? 0.0 : ulp * std::ceil(std::log2(static_cast<double>(ranks)) + 1);
        sums_.assign(static_cast<std::size_t>(m_), 0.0);
        for (std::int64_t k = 0; k < m_; ++k)
            for (std::int64_t q = 0; q < ranks; ++q) sums_[static_cast<std::size_t>(k)] += input(q, k);
    }
    double input(std::int64_t rank, std::int64_t k) const { return static_cast<double>(1 + (k + 5 * rank) % m_); }
    double sum(std::int64_t k) const { return sums_[static_cast<std::size_t>(k % m_)]; }
    bool matches(double got, double want) const {
        return exact_ ? got == want : std::abs(got - want) <= tolerance_ * std::abs(want);
    }
    DType dtype() const { return dtype_; }

private:
    DType dtype_;
    std::int64_t m_ = 1;
    bool exact_ = true;
    double tolerance_ = 0;
    std::vector<double> sums_;
};

void store(void* host, DType t, std::int64_t i, double v) {
    const float f = static_cast<float>(v);
    if (t == DType::fp32)
        static_cast<float*>(host)[i] = f;
    else
        static_cast<std::uint16_t*>(host)[i] = t == DType::bf16 ? float_to_bf16(f) : float_to_fp16(f);
}

double load(const void* host, DType t, std::int64_t i) {
    if (t == DType::fp32) return static_cast<const float*>(host)[i];
    const std::uint16_t h = static_cast<const std::uint16_t*>(host)[i];
    return t == DType::bf16 ? bf16_to_float(h) : fp16_to_float(h);
}

// Host staging for fills and checks, a slice at a time (a 1 GiB buffer needs no 1 GiB copy).
constexpr std::int64_t kSliceElements = 1 << 22;

char* at(void* base, std::int64_t elements, DType t) { return static_cast<char*>(base) + elements * dtype_size(t); }

void fill_input(Device& d, const Data& data, void* dev, std::int64_t n, std::int64_t rank, std::int64_t base) {
    const DType t = data.dtype();
    std::vector<char> host(static_cast<std::size_t>(std::min(n, kSliceElements) * dtype_size(t)));
    for (std::int64_t off = 0; off < n; off += kSliceElements) {
        const std::int64_t len = std::min(kSliceElements, n - off);
        for (std::int64_t i = 0; i < len; ++i) store(host.data(), t, i, data.input(rank, base + off + i));
        d.copy_from_host(at(dev, off, t), host.data(), len * dtype_size(t));
        d.synchronize();  // the staging slice is reused next
    }
}

std::int64_t count_wrong(Device& d, const Data& data, const Collective& c, const void* dev, std::int64_t n,
                         std::int64_t count, std::int64_t base) {
    const DType t = data.dtype();
    std::vector<char> host(static_cast<std::size_t>(std::min(n, kSliceElements) * dtype_size(t)));
    std::int64_t wrong = 0;
    for (std::int64_t off = 0; off < n; off += kSliceElements) {
        const std::int64_t len = std::min(kSliceElements, n - off);
        d.copy_to_host(host.data(), at(const_cast<void*>(dev), off, t), len * dtype_size(t));
        d.synchronize();
        for (std::int64_t i = 0; i < len; ++i) {
            const std::int64_t k = base + off + i;
            const double want = c.reduces ? data.sum(k) : data.input(k / count, k);
            if (!data.matches(load(host.data(), t, i), want)) ++wrong;
        }
    }
    return wrong;
}

// ---- groups --------------------------------------------------------------------------------------

// This rank's instance of one group: its MPI communicator, the wrapper and the raw library on it.
struct GroupComms {
    MPI_Comm mpi = MPI_COMM_NULL;
    std::unique_ptr<comm::Communicator> ours;
    std::unique_ptr<comm::RawCollectives> raw;

    GroupComms() = default;
    GroupComms(const GroupComms&) = delete;
    GroupComms& operator=(const GroupComms&) = delete;
    ~GroupComms() {
        raw.reset();
        ours.reset();
        int finalized = 0;
        MPI_Finalized(&finalized);
        if (mpi != MPI_COMM_NULL && !finalized) MPI_Comm_free(&mpi);
    }
};

std::unique_ptr<GroupComms> open_group(const BenchGroup& g, const BenchOptions& o, MPI_Comm world, void* stream) {
    int rank = 0;
    SHARDSIM_MPI_CHECK(MPI_Comm_rank(world, &rank));
    auto gc = std::make_unique<GroupComms>();
    SHARDSIM_MPI_CHECK(MPI_Comm_split(world, static_cast<int>(g.ranks.instance(rank)), rank, &gc->mpi));
    if (o.backend == device::Backend::nccl) {
        gc->ours = comm::make_nccl_communicator(gc->mpi, stream);
        gc->raw = comm::make_raw_nccl(gc->mpi, stream);
    } else {
        gc->ours = std::make_unique<comm::MpiCommunicator>(gc->mpi, false);
        gc->raw = comm::make_raw_mpi(gc->mpi);
    }
    SHARDSIM_ASSERT(gc->ours->size() == g.span.ranks, "group " + g.name + " has the wrong size");
    return gc;
}

// ---- one row -------------------------------------------------------------------------------------

struct Buffers {
    Buffer a;  // out of place: send
    Buffer b;  // out of place: recv; in place: the one buffer
};

struct Measured {
    double time_s = 0;
    double raw_time_s = std::numeric_limits<double>::quiet_NaN();
    std::int64_t wrong = 0;
};

template <class F>
double timed(Device& d, MPI_Comm c, int iters, F&& f) {
    if (iters <= 0) return 0;
    SHARDSIM_MPI_CHECK(MPI_Barrier(c));
    const double t0 = MPI_Wtime();
    for (int i = 0; i < iters; ++i) f();
    d.synchronize();
    return MPI_Wtime() - t0;
}

Measured measure(const BenchRow& row, const BenchOptions& o, Device& d, GroupComms& g, Buffers& buf, const Data& data) {
    const Collective& c = collective(row.kind);
    const DType t = o.dtype;
    const std::int64_t n = g.ours->size(), rank = g.ours->rank(), count = row.count;
    void* send = row.in_place ? at(buf.b.data(), c.send_base(count, rank), t) : buf.a.data();
    void* recv = row.in_place ? at(buf.b.data(), c.recv_base(count, rank), t) : buf.b.data();
    const std::int64_t send_n = c.send_elements(count, n), recv_n = c.recv_elements(count, n);
    auto ours = [&] { comm::call(*g.ours, row.kind, send, recv, count, t); };
    auto raw = [&] { comm::call(*g.raw, row.kind, send, recv, count, t); };
    const bool has_raw = !c.reduces || g.raw->has_sum(t);

    fill_input(d, data, send, send_n, rank, c.send_base(count, rank));
    d.synchronize();
    timed(d, g.mpi, o.warmup, ours);
    if (has_raw) timed(d, g.mpi, o.warmup, raw);
    const int first = (o.iters + 1) / 2, second = o.iters / 2;
    Measured m;
    double t_ours = timed(d, g.mpi, first, ours), t_raw = 0;
    if (has_raw) t_raw = timed(d, g.mpi, first, raw) + timed(d, g.mpi, second, raw);
    t_ours += timed(d, g.mpi, second, ours);
    m.time_s = t_ours / o.iters;
    if (has_raw) m.raw_time_s = t_raw / o.iters;

    // The check: a fresh input, a result buffer cleared first (the timed calls already left a
    // result there), one call, every element compared.
    d.fill_zero(recv, recv_n * dtype_size(t));
    fill_input(d, data, send, send_n, rank, c.send_base(count, rank));
    d.synchronize();
    SHARDSIM_MPI_CHECK(MPI_Barrier(g.mpi));
    ours();
    d.synchronize();
    m.wrong = count_wrong(d, data, c, recv, recv_n, count, c.recv_base(count, rank));
    return m;
}

std::vector<BenchRow> plan_rows(const BenchOptions& o, const std::vector<BenchGroup>& groups) {
    std::vector<BenchRow> rows;
    const std::int64_t es = dtype_size(o.dtype);
    for (std::size_t g = 0; g < groups.size(); ++g)
        for (CollectiveKind k : o.ops) {
            const Collective& c = collective(k);
            const std::int64_t n = groups[g].span.ranks;
            for (std::int64_t size : bench_sizes(o.min_bytes, o.max_bytes, o.factor)) {
                const std::int64_t count = c.count_for(size / es, n);
                if (count == 0) continue;  // smaller than one element per rank
                for (bool in_place : {false, true}) {
                    BenchRow r;
                    r.group = static_cast<int>(g);
                    r.kind = k;
                    r.count = count;
                    r.size_bytes = c.size_elements(count, n) * es;
                    r.in_place = in_place;
                    rows.push_back(r);
                }
            }
        }
    return rows;
}

std::vector<std::string> gather_hosts(MPI_Comm world, int size) {
    constexpr int kWidth = 64;
    char mine[kWidth] = {};
    const std::string h = comm::host_name();
    std::memcpy(mine, h.data(), std::min<std::size_t>(h.size(), kWidth - 1));
    std::vector<char> all(static_cast<std::size_t>(size) * kWidth);
    SHARDSIM_MPI_CHECK(MPI_Allgather(mine, kWidth, MPI_CHAR, all.data(), kWidth, MPI_CHAR, world));
    std::vector<std::string> hosts;
    for (int r = 0; r < size; ++r) hosts.emplace_back(all.data() + static_cast<std::ptrdiff_t>(r) * kWidth);
    return hosts;
}

}  // namespace

std::int64_t BenchRun::wrong_total() const {
    std::int64_t w = 0;
    for (const auto& r : rows) w += r.wrong;
    return w;
}

std::vector<std::int64_t> bench_sizes(std::int64_t min_bytes, std::int64_t max_bytes, std::int64_t factor) {
    SHARDSIM_ASSERT(min_bytes > 0 && factor >= 2, "bench sizes need min > 0 and factor >= 2");
    std::vector<std::int64_t> sizes;
    for (std::int64_t s = min_bytes; s <= max_bytes; s *= factor) {
        sizes.push_back(s);
        if (s > max_bytes / factor) break;
    }
    return sizes;
}

std::vector<BenchGroup> bench_groups(std::int64_t world, std::int64_t ranks_per_node) {
    const std::int64_t per_node = std::min(world, ranks_per_node);
    const std::int64_t nodes = ceil_div(world, per_node);
    std::vector<BenchGroup> groups;
    auto add = [&](const std::string& name, std::int64_t size, std::int64_t stride) {
        const plan::RankGroup g{name, size, stride};
        groups.push_back({name, g, g.span(per_node), world / size});
    };
    if (world > 1) add("world", world, 1);
    if (nodes > 1 && per_node > 1) add("node", per_node, 1);
    if (nodes > 1 && per_node > 1) add("replicate", nodes, per_node);
    return groups;
}

BenchRun run_bench(const BenchOptions& o, Device& device, MPI_Comm world) {
    int rank = 0, size = 1;
    SHARDSIM_MPI_CHECK(MPI_Comm_rank(world, &rank));
    SHARDSIM_MPI_CHECK(MPI_Comm_size(world, &size));
    SHARDSIM_ASSERT(size % std::min<std::int64_t>(size, o.ranks_per_node) == 0, "nodes must hold equal rank counts");
    BenchRun run;
    run.backend = device::backend_name(o.backend);
    run.dtype = o.dtype;
    run.world_size = size;
    run.ranks_per_node = std::min<std::int64_t>(size, o.ranks_per_node);
    run.nodes = size / run.ranks_per_node;
    run.iters = o.iters;
    run.warmup = o.warmup;
    run.hosts = gather_hosts(world, size);
    run.groups = bench_groups(size, o.ranks_per_node);
    run.rows = plan_rows(o, run.groups);

    // Collectives issue on the device's communication stream (NCCL); on the CPU it is the caller.
    device.set_stream(DeviceStream::comm);
    void* stream = device.native_stream();
    std::vector<std::unique_ptr<GroupComms>> comms;
    for (const auto& g : run.groups) comms.push_back(open_group(g, o, world, stream));
    run.raw_library = comms.empty() ? "" : comms.front()->raw->library();

    std::int64_t a_elems = 1, b_elems = 1;
    for (const auto& r : run.rows) {
        const Collective& c = collective(r.kind);
        const std::int64_t n = run.groups[static_cast<std::size_t>(r.group)].span.ranks;
        a_elems = std::max(a_elems, c.send_elements(r.count, n));
        b_elems = std::max({b_elems, c.send_elements(r.count, n), c.recv_elements(r.count, n)});
    }
    Buffers buf{Buffer(device.allocator(), a_elems * dtype_size(o.dtype), MemCategory::comm_buffers, "bench send"),
                Buffer(device.allocator(), b_elems * dtype_size(o.dtype), MemCategory::comm_buffers, "bench recv")};

    const std::size_t rows = run.rows.size();
    std::vector<double> time(rows), raw(rows);
    std::vector<std::int64_t> wrong(rows);
    std::vector<std::unique_ptr<Data>> data;
    for (const auto& g : run.groups) data.push_back(std::make_unique<Data>(o.dtype, g.span.ranks));
    for (std::size_t i = 0; i < rows; ++i) {
        const auto g = static_cast<std::size_t>(run.rows[i].group);
        const Measured m = measure(run.rows[i], o, device, *comms[g], buf, *data[g]);
        time[i] = m.time_s;
        raw[i] = m.raw_time_s;
        wrong[i] = m.wrong;
    }
    device.set_stream(DeviceStream::compute);

    // Every rank gets every rank's figures; a row's time is the mean over ranks, #wrong the sum.
    const int n = static_cast<int>(rows);
    run.rank_time_s.resize(rows * static_cast<std::size_t>(size));
    run.rank_raw_time_s.resize(rows * static_cast<std::size_t>(size));
    run.rank_wrong.resize(rows * static_cast<std::size_t>(size));
    SHARDSIM_MPI_CHECK(MPI_Allgather(time.data(), n, MPI_DOUBLE, run.rank_time_s.data(), n, MPI_DOUBLE, world));
    SHARDSIM_MPI_CHECK(MPI_Allgather(raw.data(), n, MPI_DOUBLE, run.rank_raw_time_s.data(), n, MPI_DOUBLE, world));
    SHARDSIM_MPI_CHECK(MPI_Allgather(wrong.data(), n, MPI_INT64_T, run.rank_wrong.data(), n, MPI_INT64_T, world));
    for (std::size_t i = 0; i < rows; ++i) {
        double t = 0, rt = 0;
        std::int64_t w = 0;
        for (int r = 0; r < size; ++r) {
            const std::size_t at_r = static_cast<std::size_t>(r) * rows + i;
            t += run.rank_time_s[at_r];
            rt += run.rank_raw_time_s[at_r];  // NaN stays NaN: no raw call on any rank
            w += run.rank_wrong[at_r];
        }
        run.rows[i].time_s = t / size;
        run.rows[i].raw_time_s = rt / size;
        run.rows[i].wrong = w;
    }
    return run;
}

}  // namespace shardsim::bench
