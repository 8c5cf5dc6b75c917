#pragma once
// The call column of the collective table (plan/collective.hpp holds the rest of each row): which
// member of the Communicator wrapper and of the raw library runs a collective, so that callers
// never switch on the kind. Broadcast has no such call (its signature differs) and is refused.
#include <cstdint>

#include "shardsim/comm/communicator.hpp"
#include "shardsim/comm/raw.hpp"
#include "shardsim/plan/collective.hpp"

namespace shardsim::comm {

struct CollectiveCall {
    void (Communicator::*ours)(const void* send, void* recv, std::int64_t count, DType dtype);
    void (RawCollectives::*raw)(const void* send, void* recv, std::int64_t count, DType dtype);
};

// Error for broadcast.
const CollectiveCall& collective_call(plan::CollectiveKind k);

inline void call(Communicator& c, plan::CollectiveKind k, const void* send, void* recv, std::int64_t count, DType dtype) {
    (c.*collective_call(k).ours)(send, recv, count, dtype);
}
inline void call(RawCollectives& c, plan::CollectiveKind k, const void* send, void* recv, std::int64_t count, DType dtype) {
    (c.*collective_call(k).raw)(send, recv, count, dtype);
}

}  // namespace shardsim::comm
