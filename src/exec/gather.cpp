#include "shardsim/exec/gather.hpp"

#include <climits>
#include <cstring>

#include "shardsim/comm/mpi.hpp"

namespace shardsim::exec {

namespace {

// A timeline as one flat array of doubles: [n_ops, n_samples, ops..., samples...], names apart.
constexpr int kOpFields = 12 + kMemCategoryCount;
constexpr int kSampleFields = 3 + kMemCategoryCount;

std::vector<double> flatten(const timeline::RankTimeline& t) {
    std::vector<double> v;
    v.push_back(static_cast<double>(t.ops.size()));
    v.push_back(static_cast<double>(t.memory.size()));
    for (const auto& o : t.ops) {
        const double f[12] = {static_cast<double>(o.op_id), static_cast<double>(o.kind), static_cast<double>(o.stream),
                                     static_cast<double>(o.unit), static_cast<double>(o.micro_batch), static_cast<double>(o.step),
                                     o.t_start, o.t_end, static_cast<double>(o.bytes), o.flops, static_cast<double>(o.collective),
                                     static_cast<double>(o.ranks)};
        v.insert(v.end(), f, f + 12);
        for (MemCategory c : kAllMemCategories) v.push_back(static_cast<double>(o.net[c]));
    }
    for (const auto& m : t.memory) {
        v.push_back(m.t);
        v.push_back(m.op_id);
        v.push_back(m.step);
        for (MemCategory c : kAllMemCategories) v.push_back(static_cast<double>(m.bytes[c]));
    }
    return v;
}

timeline::RankTimeline unflatten(const double* v) {
    timeline::RankTimeline t;
    const auto n_ops = static_cast<std::size_t>(v[0]), n_samples = static_cast<std::size_t>(v[1]);
    const double* p = v + 2;
    for (std::size_t i = 0; i < n_ops; ++i, p += kOpFields) {
        timeline::OpRecord o;
        o.op_id = static_cast<int>(p[0]);
        o.kind = static_cast<plan::OpKind>(static_cast<int>(p[1]));
        o.stream = static_cast<plan::OpStream>(static_cast<int>(p[2]));
        o.unit = static_cast<int>(p[3]);
        o.micro_batch = static_cast<int>(p[4]);
        o.step = static_cast<int>(p[5]);
        o.t_start = p[6];
        o.t_end = p[7];
        o.bytes = static_cast<std::int64_t>(p[8]);
        o.flops = p[9];
        o.collective = static_cast<int>(p[10]);
        o.ranks = static_cast<std::int64_t>(p[11]);
        for (MemCategory c : kAllMemCategories) o.net[c] = static_cast<std::int64_t>(p[12 + category_index(c)]);
        t.ops.push_back(o);
    }
    for (std::size_t i = 0; i < n_samples; ++i, p += kSampleFields) {
        timeline::MemorySample m;
        m.t = p[0];
        m.op_id = static_cast<int>(p[1]);
        m.step = static_cast<int>(p[2]);
        for (MemCategory c : kAllMemCategories) m.bytes[c] = static_cast<std::int64_t>(p[3 + category_index(c)]);
        t.memory.push_back(m);
    }
    return t;
}

std::vector<std::string> gather_strings(const std::string& mine, MPI_Comm comm, int root, int size) {
    int len = static_cast<int>(mine.size());
    std::vector<int> lens(static_cast<std::size_t>(size)), displs(static_cast<std::size_t>(size));
    SHARDSIM_MPI_CHECK(MPI_Gather(&len, 1, MPI_INT, lens.data(), 1, MPI_INT, root, comm));
    int total = 0;
    for (int r = 0; r < size; ++r) displs[static_cast<std::size_t>(r)] = total, total += lens[static_cast<std::size_t>(r)];
    std::vector<char> all(static_cast<std::size_t>(std::max(total, 1)));
    SHARDSIM_MPI_CHECK(MPI_Gatherv(mine.data(), len, MPI_CHAR, all.data(), lens.data(), displs.data(), MPI_CHAR, root, comm));
    std::vector<std::string> out;
    for (int r = 0; r < size; ++r)
        out.emplace_back(all.data() + displs[static_cast<std::size_t>(r)], static_cast<std::size_t>(lens[static_cast<std::size_t>(r)]));
    return out;
}

}  // namespace

std::vector<timeline::RankTimeline> gather_timelines(const timeline::RankTimeline& mine, MPI_Comm comm, int root) {
    int rank = 0, size = 1;
    SHARDSIM_MPI_CHECK(MPI_Comm_rank(comm, &rank));
    SHARDSIM_MPI_CHECK(MPI_Comm_size(comm, &size));
    const std::vector<double> flat = flatten(mine);
    if (flat.size() > static_cast<std::size_t>(INT32_MAX)) throw Error("timeline too large to gather");
    int n = static_cast<int>(flat.size());
    std::vector<int> counts(static_cast<std::size_t>(size)), displs(static_cast<std::size_t>(size));
    SHARDSIM_MPI_CHECK(MPI_Gather(&n, 1, MPI_INT, counts.data(), 1, MPI_INT, root, comm));
    long total = 0;
    for (int r = 0; r < size; ++r) displs[static_cast<std::size_t>(r)] = static_cast<int>(total), total += counts[static_cast<std::size_t>(r)];
    std::vector<double> all(rank == root ? static_cast<std::size_t>(total) : 1);
    SHARDSIM_MPI_CHECK(MPI_Gatherv(flat.data(), n, MPI_DOUBLE, all.data(), counts.data(), displs.data(), MPI_DOUBLE, root, comm));
    const auto devices = gather_strings(mine.device, comm, root, size);
    const auto hosts = gather_strings(mine.host, comm, root, size);
    std::vector<timeline::RankTimeline> out;
    if (rank != root) return out;
    for (int r = 0; r < size; ++r) {
        timeline::RankTimeline t = unflatten(all.data() + displs[static_cast<std::size_t>(r)]);
        t.rank = r;
        t.device = devices[static_cast<std::size_t>(r)];
        t.host = hosts[static_cast<std::size_t>(r)];
        out.push_back(std::move(t));
    }
    return out;
}

}  // namespace shardsim::exec
