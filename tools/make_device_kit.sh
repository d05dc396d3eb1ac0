#!/usr/bin/env bash
# make_device_kit.sh: build what tools/device_check.sh needs on a GPU machine without cargo or
# network, into one folder (default .device/kit, ignored by git):
#   fftlearn        release build with a portable -C target-cpu (x86-64-v3: AVX2, no AVX-512;
#                   the repo's target-cpu=native could fault on another CPU), stripped
#   torch_vec.py, cpuguard.py, torch_map.py   the peers (PEERS=DIR: the folder holding them)
#   deb/*.deb       the Vulkan loader (libvulkan1), unpacked there only if it is missing
#   device_check.sh, device_sweeps.sh, device_packs.sh (each sources device_vulkan.sh) and
#   experiments/*.toml (what the last two run)
set -euo pipefail
cd "$(dirname "$0")/.."
KIT=${1:-.device/kit}
PEERS=${PEERS:?set PEERS to the folder holding torch_vec.py, cpuguard.py and torch_map.py}
mkdir -p "$KIT/deb"
RUSTFLAGS="-C target-cpu=x86-64-v3" cargo build --release --target-dir target/portable --bin fftlearn
cp target/portable/release/fftlearn "$KIT/fftlearn"
strip "$KIT/fftlearn"
cp "$PEERS/torch_vec.py" "$PEERS/cpuguard.py" "$PEERS/torch_map.py" "$KIT/"
cp tools/device_check.sh tools/device_sweeps.sh tools/device_packs.sh tools/device_vulkan.sh "$KIT/"
mkdir -p "$KIT/experiments"
cp experiments/*.toml "$KIT/experiments/"
if ! ls "$KIT"/deb/libvulkan1_*.deb >/dev/null 2>&1; then
    mkdir -p /tmp/amd64/partial
    o='-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64'
    # shellcheck disable=SC2086
    apt-get $o update -qq
    # shellcheck disable=SC2086
    (cd "$KIT/deb" && apt-get $o download libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2)
fi
du -sh "$KIT"
