#include "shardsim/core/stats.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

namespace shardsim {

double median(std::vector<double> v) {
    if (v.empty()) return std::numeric_limits<double>::quiet_NaN();
    std::sort(v.begin(), v.end());
    const std::size_t m = v.size() / 2;
    return v.size() % 2 ? v[m] : 0.5 * (v[m - 1] + v[m]);
}

double winsorised_rms(const std::vector<double>& deviations, double clip) {
    if (deviations.size() < 2) return 0;
    std::vector<double> abs;
    abs.reserve(deviations.size());
    for (double d : deviations) abs.push_back(std::abs(d));
    const double scale = 1.4826 * median(abs);  // a normal's sigma from its median absolute deviation
    const double limit = scale > 0 ? clip * scale : std::numeric_limits<double>::infinity();
    double sq = 0;
    for (double d : abs) sq += std::pow(std::min(d, limit), 2);
    return std::sqrt(sq / static_cast<double>(deviations.size() - 1));
}

}  // namespace shardsim
