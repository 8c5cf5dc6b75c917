#include "shardsim/report/chrome_trace.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "shardsim/core/units.hpp"
#include "shardsim/plan/collective.hpp"
#include "shardsim/report/summary.hpp"

namespace shardsim::report {

using timeline::RankTimeline;
using timeline::RunTimeline;

namespace {

// JSON has no NaN or infinity; a bad measurement must not make the whole trace unreadable.
std::string num(double v, const char* fmt = "%.6g") {
    if (!std::isfinite(v)) return "0";
    char buf[64];
    std::snprintf(buf, sizeof buf, fmt, v);
    return buf;
}
std::string us(double seconds) { return num(seconds * 1e6, "%.3f"); }
std::string str(const std::string& s) { return io::json_escape(s); }

struct Source {
    const LoadedRun* lr;
    std::int64_t pid_base;
    std::string label;  // "measured", "simulated", "simulated, other.h5"
    int index;
};

class TraceWriter {
public:
    explicit TraceWriter(std::ostream& os) : os_(os) {}
    void event(const std::string& body) {
        os_ << (first_ ? "\n" : ",\n") << "{" << body << "}";
        first_ = false;
    }
    void metadata(std::int64_t pid, int tid, const std::string& name, const std::string& args) {
        event("\"ph\":\"M\",\"pid\":" + std::to_string(pid) + ",\"tid\":" + std::to_string(tid) + ",\"name\":" + str(name) +
              ",\"args\":{" + args + "}");
    }

private:
    std::ostream& os_;
    bool first_ = true;
};

std::string op_args(const RunTimeline& run, const timeline::OpRecord& op) {
    std::string a = "\"op_id\":" + std::to_string(op.op_id) + ",\"kind\":" + str(plan::op_kind_name(op.kind)) +
                    ",\"step\":" + std::to_string(op.step) + ",\"micro_batch\":" + std::to_string(op.micro_batch);
    if (op.unit >= 0 && static_cast<std::size_t>(op.unit) < run.unit_names.size())
        a += ",\"unit\":" + str(run.unit_names[static_cast<std::size_t>(op.unit)]);
    a += ",\"bytes\":" + std::to_string(op.bytes) + ",\"flops\":" + num(op.flops);
    if (op.collective >= 0) {
        const auto kind = static_cast<plan::CollectiveKind>(op.collective);
        a += ",\"collective\":" + str(plan::collective_name(kind)) + ",\"ranks\":" + std::to_string(op.ranks) +
             ",\"algbw_GBps\":" + num(plan::algbw_GBps(op.bytes, op.duration())) +
             ",\"busbw_GBps\":" + num(plan::busbw_GBps(kind, op.bytes, op.ranks, op.duration()));
    }
    return a;
}

// One process: a timeline and the ranks that share it.
void write_process(TraceWriter& w, const Source& src, const RankTimeline& tl, const std::vector<std::int64_t>& ranks) {
    const RunTimeline& run = src.lr->full;
    const std::int64_t pid = src.pid_base + ranks.front();
    const std::string who = ranks.size() == 1 ? "rank " + std::to_string(ranks.front()) : "ranks " + rank_list(ranks);
    const std::string shared = ranks.size() > 1 ? ", one shared timeline" : "";
    w.metadata(pid, 0, "process_name", "\"name\":" + str(who + " (" + src.label + shared + ")"));
    w.metadata(pid, 0, "process_sort_index", "\"sort_index\":" + std::to_string(ranks.front() * 4 + src.index));
    if (!tl.device.empty()) w.metadata(pid, 0, "process_labels", "\"labels\":" + str(tl.device));

    bool used[plan::kOpStreamCount] = {};
    for (const auto& op : tl.ops) used[static_cast<int>(op.stream)] = true;
    for (int s = 0; s < plan::kOpStreamCount; ++s) {
        if (!used[s]) continue;
        w.metadata(pid, s + 1, "thread_name", "\"name\":" + str(plan::op_stream_name(static_cast<plan::OpStream>(s))));
        w.metadata(pid, s + 1, "thread_sort_index", "\"sort_index\":" + std::to_string(s + 1));
    }

    const auto steps = src.lr->steps;
    const auto offsets = step_offsets(tl, steps);
    auto offset = [&](int step) {
        const auto it = std::find(steps.begin(), steps.end(), step);
        return it == steps.end() ? 0.0 : offsets[static_cast<std::size_t>(it - steps.begin())];
    };
    const std::string where = ",\"pid\":" + std::to_string(pid);
    for (const auto& op : tl.ops) {
        const double t = op.t_start + offset(op.step);
        w.event("\"ph\":\"X\",\"name\":" + str(op_name(run, op)) + ",\"cat\":" + str(plan::op_stream_name(op.stream)) + where +
                ",\"tid\":" + std::to_string(static_cast<int>(op.stream) + 1) + ",\"ts\":" + us(t) +
                ",\"dur\":" + us(std::max(0.0, op.duration())) + ",\"args\":{" + op_args(run, op) + "}");
    }

    // Only categories that hold bytes at some point, so the tracks are the ones worth reading.
    MemoryByCategory seen;
    for (const auto& m : tl.memory)
        for (MemCategory c : kAllMemCategories) seen[c] = std::max(seen[c], m.bytes[c]);
    // A sample that changes nothing (a free-less op boundary) is left out: traces get big.
    std::string last_device, last_host;
    for (const auto& m : tl.memory) {
        std::string device, host;
        for (MemCategory c : kAllMemCategories) {
            if (seen[c] == 0) continue;
            std::string& dst = on_device(c) ? device : host;
            dst += (dst.empty() ? "" : ",") + str(std::string(category_name(c))) + ":" +
                   num(static_cast<double>(m.bytes[c]) / kMiB, "%.3f");
        }
        const std::string ts = ",\"tid\":0,\"ts\":" + us(m.t + offset(m.step));
        if (!device.empty() && device != last_device)
            w.event("\"ph\":\"C\",\"name\":\"memory MiB\"" + where + ts + ",\"args\":{" + device + "}");
        if (!host.empty() && host != last_host)
            w.event("\"ph\":\"C\",\"name\":\"host memory MiB\"" + where + ts + ",\"args\":{" + host + "}");
        last_device = std::move(device);
        last_host = std::move(host);
    }
}

void write_source(TraceWriter& w, const Source& src) {
    const RunTimeline& run = src.lr->full;
    std::vector<std::vector<std::int64_t>> ranks_of(run.timelines.size());
    for (std::int64_t r = 0; r < static_cast<std::int64_t>(run.class_of_rank.size()); ++r)
        ranks_of.at(static_cast<std::size_t>(run.class_of_rank[static_cast<std::size_t>(r)])).push_back(r);
    for (std::size_t c = 0; c < run.timelines.size(); ++c)
        if (!ranks_of[c].empty()) write_process(w, src, run.timelines[c], ranks_of[c]);
}

}  // namespace

void write_chrome_trace(std::ostream& os, const LoadedRun& run, const LoadedRun* compare) {
    std::vector<Source> sources;
    auto base = [](const LoadedRun& lr) { return lr.full.mode == "run" ? std::int64_t{0} : kTracePidSimulated; };
    sources.push_back({&run, base(run), source_label(run.full), 0});
    if (compare) {
        Source b{compare, base(*compare), source_label(compare->full), 1};
        if (b.pid_base == sources[0].pid_base) {
            b.pid_base += kTracePidSecondFile;
            b.label += ", " + std::filesystem::path(compare->path).filename().string();
        }
        sources.push_back(b);
    }
    os << "{\"displayTimeUnit\":\"ms\",\"otherData\":{";
    for (const auto& s : sources)
        os << (s.index ? "," : "") << str("file" + std::to_string(s.index)) << ":" << str(s.lr->path + " (" + s.label + ")");
    os << "},\"traceEvents\":[";
    TraceWriter w(os);
    for (const auto& s : sources) write_source(w, s);
    os << "\n]}\n";
}

}  // namespace shardsim::report
