// reduce.wgsl: fixed-order reductions and Adam. `reduce` adds one chunk's per-sample values
// (gradients, and the loss in slot NP) into the step accumulator in sample order, by blocked
// summation (blocks of 64 samples, then blocks of 64 chunks), so the f32 rounding error grows
// like 64 + B/(64 C) additions rather than B. (Kahan compensation is not used: shader
// compilers may fold it away.) Chunks are dispatched in order, so a step is deterministic
// on an adapter. `adam` is torch.optim.Adam per real and imaginary part, for each cell of the
// step's cell table (lane/group run one cell, at slot 0; fused runs packs).


@group(0) @binding(0) var<uniform> job: Job;
@group(0) @binding(1) var<storage, read> pg: array<vec2<R>>;
@group(0) @binding(2) var<storage, read_write> acc: array<vec2<R>>;   // 2 (NP + 1): total, open block of chunks
@group(0) @binding(3) var<storage, read_write> params: array<vec2<R>>;
@group(0) @binding(4) var<storage, read_write> moments: array<vec2<R>>; // 2 NP: m, v
@group(0) @binding(5) var<storage, read> hyper: array<R>; // HYL per cell row, indices HY_* (src/backend/gpu/abi.rs)
@group(0) @binding(6) var<storage, read> cells: array<vec4<u32>>; // the step's cell table (abi.rs, CellRow)

@compute @workgroup_size(64)
fn reduce(@builtin(global_invocation_id) gid: vec3<u32>) {
    let p = gid.x;
    if (p > NP) {
        return;
    }
    var chunk_sum = vec2<R>(0.0, 0.0);
    for (var b = 0u; b < job.count; b = b + 64u) {
        var blk = vec2<R>(0.0, 0.0);
        let end = min(b + 64u, job.count);
        for (var s = b; s < end; s = s + 1u) {
            blk = blk + pg[p * C + s];
        }
        chunk_sum = chunk_sum + blk;
    }
    var open = acc[2u * p + 1u] + chunk_sum;
    let chunk_index = job.base / C;
    if (job.last_chunk == 1u || chunk_index % 64u == 63u) {
        acc[2u * p] = acc[2u * p] + open;
        open = vec2<R>(0.0, 0.0);
    }
    acc[2u * p + 1u] = open;
}

fn adam1(hb: u32, p: R, g: R, m: R, v: R) -> vec3<R> {
    let m2 = m + (R(1.0) - hyper[hb + HY_BETA1]) * (g - m);
    let v2 = v * hyper[hb + HY_BETA2] + (R(1.0) - hyper[hb + HY_BETA2]) * (g * g);
    let denom = sqrt(v2) / hyper[hb + HY_SQRT_BC2] + hyper[hb + HY_EPS];
    return vec3<R>(p + (-hyper[hb + HY_LR_BC1] * m2) / denom, m2, v2);
}

// one invocation per parameter (x) of the cell in row y of the step's cell table
@compute @workgroup_size(64)
fn adam(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x;
    if (i >= NP) {
        return;
    }
    let y = gid.y;
    let slot = cells[y].x;
    let hb = y * HYL;
    let pi = slot * NP + i;
    let mi = slot * 2u * NP + 2u * i;
    let g = acc[slot * 2u * NP1 + 2u * i];
    let m = moments[mi];
    let v = moments[mi + 1u];
    let re = adam1(hb, params[pi].x, g.x, m.x, v.x);
    let im = adam1(hb, params[pi].y, g.y, m.y, v.y);
    params[pi] = vec2<R>(re.x, im.x);
    moments[mi] = vec2<R>(re.y, im.y);
    moments[mi + 1u] = vec2<R>(re.z, im.z);
}
