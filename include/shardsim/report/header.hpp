#pragma once
// The boxed start-up table of every effective setting (as llm.c prints at start-up): model,
// topology, strategy and groups, precision, optimizer, batch, memory options, LoRA.
#include <string>

#include "shardsim/plan/plan.hpp"

namespace shardsim::report {

std::string scenario_header(const plan::ShardingPlan& plan, const std::string& title);

}  // namespace shardsim::report
