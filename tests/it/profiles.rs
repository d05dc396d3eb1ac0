//! Emulated adapter profiles (`FFTLEARN_ADAPTER_PROFILE`, src/backend/gpu/profile.rs) on the
//! adapter at hand: `devices` shows the platform's limits and features, f64 is refused where
//! the platform has none, a size whose fused kernel does not fit the platform's workgroup
//! memory falls back with a note, the limb Philox runs where there is no int64, and an
//! unknown profile is one error naming the accepted ones. CI also runs the GPU tests under
//! two profiles (.ci/run).

use crate::gpu::gpu;
use crate::util::{assert_error, bin};
use std::process::Output;

fn run(profile: &str, args: &[&str]) -> Output {
    bin()
        .env("FFTLEARN_ADAPTER_PROFILE", profile)
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn profiles_set_limits_features_plans_and_refusals() {
    if gpu(false).is_none() {
        return;
    }
    let o = run("webgpu", &["devices"]);
    let s = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{s}");
    assert!(s.contains("[profile] FFTLEARN_ADAPTER_PROFILE=webgpu"), "{s}");
    assert!(s.contains("f64 false | int64 false"), "{s}");
    assert!(
        s.contains("max invocations/workgroup 256 | workgroup storage 16 KiB"),
        "{s}"
    );
    assert!(s.contains("f64: no SHADER_F64"), "{s}");
    // f64 is refused, naming the profile
    let o = run(
        "apple-m",
        &["gradcheck", "--precision", "f64", "--n", "16", "--batch", "4"],
    );
    assert_error(
        &o,
        2,
        &["no SHADER_F64", "FFTLEARN_ADAPTER_PROFILE=apple-m", "--precision f32"],
    );
    // N = 4096 in f32 needs 32 KiB of workgroup memory: under WebGPU's 16 KiB the fused kernel
    // does not fit, the run says why and takes another shape (group: lane stops at 2048), and
    // still passes
    let o = run("webgpu", &["gradcheck", "--n", "4096", "--batch", "2"]);
    let (out, err) = (String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert!(o.status.success(), "{out}{err}");
    assert!(out.contains("PASS"), "{out}");
    assert!(out.contains("kernel group") && out.contains("16384"), "{out}");
    // no int64 under FXC: the 16-bit-limb Philox, the same result
    let o = run("dx12-fxc", &["gradcheck", "--n", "64", "--batch", "64"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success() && out.contains("PASS"), "{out}");
    // an unknown profile: one line, the accepted names
    let o = run("nvidia-h100", &["devices"]);
    assert_error(
        &o,
        2,
        &["FFTLEARN_ADAPTER_PROFILE=nvidia-h100", "webgpu, apple-m, dx12-dxc"],
    );
}

#[test]
fn lane_is_refused_above_2048_and_auto_falls_back_to_group_there() {
    if gpu(false).is_none() {
        return;
    }
    // lane's gradients disagree with the f64 path at N >= 4096 on lavapipe (a fault not yet
    // found): refused by name, and the fallback above the fused kernel's limit is group
    let o = bin()
        .args(["gradcheck", "--n", "4096", "--batch", "2", "--kernel", "lane"])
        .output()
        .unwrap();
    assert_error(
        &o,
        2,
        &["--kernel lane at N = 4096", "up to N = 2048", "group or fused"],
    );
    let o = bin()
        .args(["gradcheck", "--n", "8192", "--batch", "2"])
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success() && out.contains("PASS"), "{out}");
    assert!(out.contains("kernel group") || out.contains("kernel fused"), "{out}");
}
