#!/usr/bin/env bash
# Set up, build, and run the whole test suite (ctest). CI runs exactly this.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source tools/setup.sh
ctest --test-dir build --output-on-failure "$@"
