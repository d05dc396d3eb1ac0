// group.wgsl: the group layout of chunked.wgsl: one workgroup of STRIDE invocations per sample
// (the shape hardware GPUs favour): the butterflies of each stage spread over the invocations,
// a barrier between stages; sums over a sample use a fixed-shape tree in workgroup memory, so
// a step is deterministic. Layout of `act`: sample-major, slot (s * (LOG2 + 2) + layer) * N + idx.

const STRIDE: u32 = 64u;

var<workgroup> red: array<vec2<R>, STRIDE>;

fn slot(layer: u32, idx: u32, s: u32) -> u32 {
    return (s * (LOG2 + 2u) + layer) * N + idx;
}

fn sync() {
    storageBarrier();
}

// Sum of every invocation's `v`, by a fixed tree; called in uniform control flow.
fn sample_sum(t: u32, v: vec2<R>) -> vec2<R> {
    red[t] = v;
    workgroupBarrier();
    for (var w = STRIDE / 2u; w > 0u; w = w >> 1u) {
        if (t < w) {
            red[t] = red[t] + red[t + w];
        }
        workgroupBarrier();
    }
    let r = red[0];
    workgroupBarrier();
    return r;
}

@compute @workgroup_size(STRIDE)
fn train(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) t: u32) {
    // s is the same for the whole workgroup: the barriers below stay in uniform control flow
    let s = wid.x;
    if (s >= job.count) {
        return;
    }
    train_sample(s, t);
}
