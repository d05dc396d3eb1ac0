# shellcheck shell=bash
# device_vulkan.sh: sourced by device_check.sh, device_sweeps.sh and device_packs.sh on a GPU machine. Finds a
# hardware Vulkan adapter for $FL (the kit's fftlearn): the system's loader, else the carried
# .debs in $KIT/deb (libvulkan1 and the glvnd libraries NVIDIA's ICD loads); the NVIDIA ICD file
# where the default search misses it. Needs KIT, FL, LOG and a `say` function; returns nonzero
# if no hardware adapter was found (the caller says what that means for its run).
unpack() {
    say "unpacking the carried loader libraries"
    for f in "$KIT"/deb/*.deb; do dpkg -x "$f" /; done
    ldconfig
}
hardware() { "$FL" devices 2>>"$LOG" | grep -q '(hardware)'; }
find_hardware_adapter() {
    ldconfig -p | grep -q 'libvulkan.so.1 ' || unpack
    if ! hardware; then
        for icd in /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json /usr/share/vulkan/icd.d/nvidia_icd.json /etc/vulkan/icd.d/nvidia_icd.json; do
            if [ -e "$icd" ]; then
                say "no hardware adapter with the default ICDs: VK_DRIVER_FILES=$icd"
                export VK_DRIVER_FILES=$icd
                break
            fi
        done
    fi
    hardware || { unpack; hardware; }
}
