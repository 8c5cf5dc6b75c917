// The collective watchdog: see [Note: collective watchdog] in comm/watchdog.hpp.
#include "shardsim/comm/watchdog.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <list>
#include <mutex>
#include <optional>
#include <thread>

#include "shardsim/comm/counting.hpp"
#include "shardsim/comm/mpi.hpp"
#include "shardsim/core/format.hpp"

namespace shardsim::comm {

namespace {

constexpr int kQueryTag = 1;
constexpr int kAnswerTag = 2;
constexpr auto kPoll = std::chrono::milliseconds(20);

double now_s() {
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

struct Group {
    std::string name;
    std::vector<int> ranks;
    std::int64_t entered = 0;  // calls this rank has begun on the group
};

struct Flight {
    std::int64_t id;
    int group;
    std::int64_t call;  // 0-based index of the call on its group
    const char* what;
    int op;
    int step;
    double t0;
};

// What a member says when asked about a call: how many calls it has begun on that group, and
// what it is waiting in.
struct Answer {
    std::int64_t entered = -1;
    char doing[240] = {};
};

struct PendingSend {
    Answer answer;
    MPI_Request request = MPI_REQUEST_NULL;
};

struct State {
    std::mutex mu;
    std::vector<Group> groups;
    std::vector<Flight> flights;
    std::int64_t next_id = 0;
    std::atomic<int> step{-1};
    std::atomic<int> device_group{-1};
    std::vector<Communicator*> abortable;
    std::function<std::string(int)> describe;
    double timeout_s = 0;
    MPI_Comm comm = MPI_COMM_NULL;
    int me = 0;
    std::thread thread;
    std::atomic<bool> stopping{false};
    std::atomic<bool> on{false};
    std::list<PendingSend> sends;  // the watchdog thread's own
};

State& state() {
    static State s;
    return s;
}

// "ranks 0-5", "ranks 0, 2, 4": consecutive runs folded, at most 16 items.
std::string rank_text(const std::vector<int>& ranks) {
    std::string out;
    int items = 0;
    for (std::size_t i = 0; i < ranks.size(); ++items) {
        std::size_t j = i;
        while (j + 1 < ranks.size() && ranks[j + 1] == ranks[j] + 1) ++j;
        if (items == 16) {
            out += ", ...";
            break;
        }
        if (!out.empty()) out += ", ";
        out += std::to_string(ranks[i]);
        if (j > i) out += (j == i + 1 ? ", " : "-") + std::to_string(ranks[j]);
        i = j + 1;
    }
    return (ranks.size() == 1 ? "rank " : "ranks ") + out;
}

std::string call_text(const State& s, const Flight& f) {
    const Group& g = s.groups[static_cast<std::size_t>(f.group)];
    std::string t = std::string(f.what) + " (call " + std::to_string(f.call + 1) + ") on " + g.name + " (" + rank_text(g.ranks) + ")";
    if (f.op >= 0 && s.describe) t += " in " + s.describe(f.op);
    if (f.step >= 0) t += " of step " + std::to_string(f.step + 1);
    return t;
}

// What this rank waits in, for an answer (under s.mu).
std::string doing_text(const State& s) {
    if (s.flights.empty()) return "in no collective";
    const Flight& f = *std::min_element(s.flights.begin(), s.flights.end(), [](const Flight& a, const Flight& b) { return a.t0 < b.t0; });
    return "waits in " + call_text(s, f) + " since " + format_fixed(now_s() - f.t0, 1) + " s";
}

// Answers every query that has come in; forgets the answers that have gone.
void serve(State& s) {
    for (;;) {
        int flag = 0;
        MPI_Status status;
        if (MPI_Iprobe(MPI_ANY_SOURCE, kQueryTag, s.comm, &flag, &status) != MPI_SUCCESS || !flag) break;
        std::int64_t query[2] = {0, 0};
        if (MPI_Recv(query, 2, MPI_INT64_T, status.MPI_SOURCE, kQueryTag, s.comm, MPI_STATUS_IGNORE) != MPI_SUCCESS) break;
        PendingSend& p = s.sends.emplace_back();
        {
            std::lock_guard<std::mutex> lock(s.mu);
            if (query[0] >= 0 && static_cast<std::size_t>(query[0]) < s.groups.size())
                p.answer.entered = s.groups[static_cast<std::size_t>(query[0])].entered;
            std::snprintf(p.answer.doing, sizeof p.answer.doing, "%s", doing_text(s).c_str());
        }
        MPI_Isend(&p.answer, sizeof p.answer, MPI_BYTE, status.MPI_SOURCE, kAnswerTag, s.comm, &p.request);
    }
    for (auto it = s.sends.begin(); it != s.sends.end();) {
        int done = 0;
        MPI_Test(&it->request, &done, MPI_STATUS_IGNORE);
        it = done ? s.sends.erase(it) : std::next(it);
    }
}

// The call that has waited longest, if it has waited past the timeout.
std::optional<Flight> overdue(State& s) {
    std::lock_guard<std::mutex> lock(s.mu);
    const double t = now_s();
    std::optional<Flight> worst;
    for (const auto& f : s.flights)
        if (t - f.t0 > s.timeout_s && (!worst || f.t0 < worst->t0)) worst = f;
    return worst;
}

// Serves queries for `seconds` or until `done` says so.
void serve_for(State& s, double seconds, const std::function<bool()>& done) {
    const double end = now_s() + seconds;
    while (now_s() < end && !done()) {
        serve(s);
        std::this_thread::sleep_for(kPoll);
    }
}

[[noreturn]] void abort_all(State& s, const std::string& line) {
    std::cerr << std::flush;
    say_from_rank(s.me, line);
    for (Communicator* c : s.abortable) c->abort();
    MPI_Abort(MPI_COMM_WORLD, kExitCollectiveTimeout);
    std::_Exit(kExitCollectiveTimeout);
}

// Asks every other member of f's group what it is doing, names those that did not arrive, and
// ends the job (the lowest rank that arrived says it; the others only if it does not).
[[noreturn]] void diagnose(State& s, const Flight& f) {
    std::vector<int> members;
    std::string call;
    {
        std::lock_guard<std::mutex> lock(s.mu);
        members = s.groups[static_cast<std::size_t>(f.group)].ranks;
        call = call_text(s, f);
    }
    members.erase(std::remove(members.begin(), members.end(), s.me), members.end());
    const std::int64_t query[2] = {f.group, f.call};
    std::vector<Answer> answers(members.size());
    std::vector<MPI_Request> sent(members.size(), MPI_REQUEST_NULL), received(members.size(), MPI_REQUEST_NULL);
    std::vector<int> got(members.size(), 0);
    for (std::size_t i = 0; i < members.size(); ++i) {
        MPI_Irecv(&answers[i], sizeof(Answer), MPI_BYTE, members[i], kAnswerTag, s.comm, &received[i]);
        MPI_Isend(query, 2, MPI_INT64_T, members[i], kQueryTag, s.comm, &sent[i]);
    }
    const double wait_s = std::clamp(s.timeout_s / 2, 1.0, 5.0);
    serve_for(s, wait_s, [&] {
        bool all = true;
        for (std::size_t i = 0; i < members.size(); ++i) {
            if (!got[i]) MPI_Test(&received[i], &got[i], MPI_STATUS_IGNORE);
            all = all && got[i];
        }
        return all;
    });
    std::vector<std::string> missing;
    int reporter = s.me;
    for (std::size_t i = 0; i < members.size(); ++i) {
        answers[i].doing[sizeof answers[i].doing - 1] = '\0';
        if (!got[i])
            missing.push_back("rank " + std::to_string(members[i]) + " (no answer in " + format_fixed(wait_s, 1) +
                              " s: stopped, or dead)");
        else if (answers[i].entered <= f.call)
            missing.push_back("rank " + std::to_string(members[i]) + " (" + answers[i].doing + ")");
        else
            reporter = std::min(reporter, members[i]);
    }
    const std::string line = "shardsim run: collective watchdog: " + call + " has waited " +
                             format_fixed(now_s() - f.t0, 1) + " s (--collective-timeout " + format_fixed(s.timeout_s, 1) +
                             "); did not arrive: " + (missing.empty() ? std::string("none (every member is in it)") : join(missing, ", ")) +
                             "; aborting the job (exit " + std::to_string(kExitCollectiveTimeout) + ")";
    // The lowest rank that arrived speaks for all; the others give it time to.
    if (reporter != s.me) serve_for(s, wait_s + 5, [] { return false; });
    abort_all(s, line);
}

void watch(State& s) {
    while (!s.stopping) {
        serve(s);
        if (const auto f = overdue(s)) diagnose(s, *f);
        std::this_thread::sleep_for(kPoll);
    }
}

}  // namespace

namespace watchdog {

int add_group(std::string name, std::vector<int> world_ranks) {
    State& s = state();
    std::lock_guard<std::mutex> lock(s.mu);
    s.groups.push_back({std::move(name), std::move(world_ranks), 0});
    return static_cast<int>(s.groups.size()) - 1;
}

void start(MPI_Comm world, double timeout_s, std::function<std::string(int)> describe_op) {
    State& s = state();
    if (timeout_s <= 0 || s.on) return;
    int provided = 0;
    MPI_Query_thread(&provided);
    // The watchdog calls MPI beside the threads that are in collectives.
    if (provided < MPI_THREAD_MULTIPLE) throw Error("the collective watchdog needs MPI_THREAD_MULTIPLE, which this MPI does not provide (--collective-timeout 0 turns it off)");
    SHARDSIM_MPI_CHECK(MPI_Comm_dup(world, &s.comm));
    MPI_Comm_set_errhandler(s.comm, MPI_ERRORS_RETURN);
    SHARDSIM_MPI_CHECK(MPI_Comm_rank(world, &s.me));
    s.timeout_s = timeout_s;
    s.describe = std::move(describe_op);
    s.stopping = false;
    s.on = true;
    s.thread = std::thread([&s] { watch(s); });
}

void stop() noexcept {
    State& s = state();
    if (!s.on) return;
    s.stopping = true;
    if (s.thread.joinable()) s.thread.join();
    // An answer still going out goes on without us (waiting for it could wait on a dead rank);
    // its buffer stays, in the list, for the life of the process.
    for (auto& p : s.sends)
        if (p.request != MPI_REQUEST_NULL) MPI_Request_free(&p.request);
    MPI_Comm_free(&s.comm);
    s.on = false;
}

bool running() { return state().on; }

void set_step(int step) { state().step = step; }

void set_device_group(int group) { state().device_group = group; }
int device_group() { return state().device_group; }

void abort_on_timeout(Communicator* c) {
    State& s = state();
    std::lock_guard<std::mutex> lock(s.mu);
    s.abortable.push_back(c);
}

}  // namespace watchdog

InCollective::InCollective(int group, const char* what) : id_(-1) {
    State& s = state();
    std::lock_guard<std::mutex> lock(s.mu);
    if (group < 0 || static_cast<std::size_t>(group) >= s.groups.size()) return;
    id_ = s.next_id++;
    s.flights.push_back({id_, group, s.groups[static_cast<std::size_t>(group)].entered++, what, CallLog::current_op(), s.step.load(), now_s()});
}

InCollective::~InCollective() {
    if (id_ < 0) return;
    State& s = state();
    std::lock_guard<std::mutex> lock(s.mu);
    s.flights.erase(std::remove_if(s.flights.begin(), s.flights.end(), [&](const Flight& f) { return f.id == id_; }), s.flights.end());
}

void WatchedCommunicator::all_gather(const void* send, void* recv, std::int64_t count, DType dtype) {
    const InCollective watched(group_, "all-gather");
    inner_.all_gather(send, recv, count, dtype);
}

void WatchedCommunicator::reduce_scatter(const void* send, void* recv, std::int64_t count, DType dtype) {
    const InCollective watched(group_, "reduce-scatter");
    inner_.reduce_scatter(send, recv, count, dtype);
}

void WatchedCommunicator::all_reduce(const void* send, void* recv, std::int64_t count, DType dtype) {
    const InCollective watched(group_, "all-reduce");
    inner_.all_reduce(send, recv, count, dtype);
}

void WatchedCommunicator::broadcast(void* buf, std::int64_t count, DType dtype, int root) {
    const InCollective watched(group_, "broadcast");
    inner_.broadcast(buf, count, dtype, root);
}

void WatchedCommunicator::barrier() {
    const InCollective watched(group_, "barrier");
    inner_.barrier();
}

}  // namespace shardsim::comm
