#pragma once
// Summaries of repeated measurements, shared by everything that times something.
#include <vector>

namespace shardsim {

// The median of `v`: the middle value, or the mean of the middle two; NaN when `v` is empty.
double median(std::vector<double> v);

// A spread that one outlier does not decide: the root mean square of `deviations` (each already
// relative to its own centre, so ~0 on average), every one first clipped to +-`clip` times their
// normal-consistent scale (1.4826 x the median of their absolute values): a winsorised standard
// deviation. With no deviation beyond the clip it is the plain root mean square; a single
// disturbance many times the others' size counts as `clip` scales, not as itself. 0 for fewer
// than two deviations.
double winsorised_rms(const std::vector<double>& deviations, double clip);

}  // namespace shardsim
