// lane.wgsl: the lane layout of chunked.wgsl: one invocation per sample, straight-line loops
// (the shape lavapipe favours). Layout of `act`: slot (layer * N + idx) * C + sample, so
// neighbouring invocations touch neighbouring words.

const STRIDE: u32 = 1u;

fn slot(layer: u32, idx: u32, s: u32) -> u32 {
    return (layer * N + idx) * C + s;
}

// one invocation per sample: nothing to wait for, nothing to sum
fn sync() {}

fn sample_sum(t: u32, v: vec2<R>) -> vec2<R> {
    return v;
}

@compute @workgroup_size(64)
fn train(@builtin(global_invocation_id) gid: vec3<u32>) {
    let s = gid.x;
    if (s >= job.count) {
        return;
    }
    train_sample(s, 0u);
}
