#!/usr/bin/env bash
# Installs what is missing (Debian packages), configures and builds shardsim into build/.
# Sourced by tools/demo.sh and tools/test.sh; safe to run again (it only does what is needed).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# Everything the build and the tests use (nlohmann-json3-dev and libyaml-cpp-dev: the readers of
# DeepSpeed and accelerate configs; slurm-wlm and munge: the private Slurm cluster of the
# slurm tests; chromium: the HTML report's rendering test; python3-h5py and python3-matplotlib:
# the h5py example of docs/hdf5.md, run by tests/e2e/hdf5_h5py.sh; clang, its sanitizer and
# libFuzzer runtimes and llvm-symbolizer: the sanitize and fuzz tests, tools/sanitize.sh). CUDA and
# NCCL are optional and not Debian packages: when /usr/local/cuda (or CUDAToolkit_ROOT / NCCL_ROOT)
# holds them, the GPU backends are built too.
SHARDSIM_PACKAGES=(
  cmake g++ make python3
  libopenmpi-dev openmpi-bin libpmix-dev
  libhdf5-openmpi-dev hdf5-tools
  libboost-program-options-dev doctest-dev libopenblas-dev
  nlohmann-json3-dev libyaml-cpp-dev
  slurm-wlm munge
  chromium
  clang libclang-rt-14-dev llvm-14
  python3-h5py python3-matplotlib
)

missing=()
for p in "${SHARDSIM_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  if [[ $(id -u) -eq 0 ]]; then
    echo "setup: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "setup: missing Debian packages; run this, then try again:" >&2
    echo "  sudo apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
fi

# Configure once (fresh, so a cache that found a serial HDF5 cannot stick), then build.
if [[ ! -f build/CMakeCache.txt ]]; then
  cmake --fresh -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo ${SHARDSIM_CMAKE_ARGS:-}
fi
cmake --build build -j "$(nproc)"
