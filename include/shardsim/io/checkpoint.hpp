#pragma once
// Sharded checkpoints (run --checkpoint DIR --checkpoint-every K, run --resume DIR).
//
// DIR/step-000012/ holds one checkpoint: meta.json (what trained it: job, model, strategy, world,
// precision, optimizer, seed, sequences per step, and the steps done) and one HDF5 file per
// rank, rank-00003.h5, with that rank's slices of the training state (exec::StateSlice): /data,
// every slice's bytes back to back, and /index, one row per slice (state, unit, tensor, first
// row, rows, row elements, total rows, dtype, offset and length in /data, and an FNV-1a 64
// checksum of its bytes). Slices are rows of whole tensors, so a checkpoint written under one
// sharding is read under another: a reader assembles any row range from the files that hold it.
//
// Nothing half-written is ever read: ranks write into DIR/.step-000012.partial/, rank 0 adds
// meta.json once every rank has closed its file, renames the folder to step-000012 and then
// replaces DIR/latest (the name of the newest checkpoint, written to a temporary and renamed).
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include "shardsim/exec/executor.hpp"
#include "shardsim/io/json.hpp"

namespace shardsim::io::checkpoint {

std::string step_name(std::int64_t steps_done);                                // "step-000012"
std::string partial_dir(const std::string& dir, std::int64_t steps_done);      // DIR/.step-000012.partial
std::string rank_file(const std::string& folder, int rank);                    // FOLDER/rank-00003.h5

// One rank's file, into `folder` (which exists).
void write_rank_file(const std::string& folder, int rank, const std::vector<exec::StateSlice>& slices);
// Rank 0, after every rank's write_rank_file returned: meta.json, the rename, DIR/latest.
// Returns the published folder.
std::string publish(const std::string& dir, std::int64_t steps_done, const Json& meta);

// A published checkpoint, read: `dir` is DIR (its latest) or one DIR/step-N folder.
class Reader {
public:
    explicit Reader(const std::string& dir);
    ~Reader();
    const std::string& folder() const { return folder_; }
    const Json& meta() const { return meta_; }
    std::int64_t steps_done() const;
    // Fills slice.bytes from whichever files hold its rows; an absent row, another dtype or a bad
    // checksum is an Error naming the checkpoint and the slice.
    void read(exec::StateSlice& slice);
    // Every slice the checkpoint holds, without its bytes.
    std::vector<exec::StateSlice> slices() const;

private:
    struct Entry;
    std::int64_t read_meta(const std::string& meta_path);
    void read_index(const std::string& path);
    void read_bytes(const Entry& entry, std::vector<unsigned char>& bytes, const std::string& what) const;
    std::string folder_;
    Json meta_;
    std::vector<std::string> files_;
    std::multimap<std::string, Entry> index_;  // by "state/unit/tensor"
    std::map<std::tuple<std::size_t, std::int64_t, std::int64_t>, std::vector<unsigned char>> verified_;  // (file, offset, length) -> bytes
};

}  // namespace shardsim::io::checkpoint
