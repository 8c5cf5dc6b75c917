#pragma once
// Summaries of repeated measurements, shared by everything that times something.
#include <vector>

namespace shardsim {

// The median of `v`: the middle value, or the mean of the middle two; NaN when `v` is empty.
double median(std::vector<double> v);

}  // namespace shardsim
