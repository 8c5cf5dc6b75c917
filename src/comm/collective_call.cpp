#include "shardsim/comm/collective_call.hpp"

#include "shardsim/core/error.hpp"

namespace shardsim::comm {

const CollectiveCall& collective_call(plan::CollectiveKind k) {
    static const CollectiveCall kCalls[] = {
        {&Communicator::all_gather, &RawCollectives::all_gather},
        {&Communicator::reduce_scatter, &RawCollectives::reduce_scatter},
        {&Communicator::all_reduce, &RawCollectives::all_reduce},
    };
    const auto i = static_cast<std::size_t>(k);
    if (i >= std::size(kCalls)) throw Error("no collective call for " + plan::collective_name(k) + " (its signature differs)");
    return kCalls[i];
}

}  // namespace shardsim::comm
