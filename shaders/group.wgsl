// group.wgsl: one workgroup of WG invocations per sample (the shape real GPUs favour): the
// butterflies of each stage are spread over the invocations, with a barrier between stages.
// Same bindings, inputs, targets, loss and per-sample gradient layout (`pg`) as lane.wgsl, so
// the same fixed-order reduction follows. Sums over a sample (the loss, twiddles with many
// butterflies, M) use a fixed-shape tree in workgroup memory, so a step is deterministic.
// Layout of `act`: sample-major, slot (s * (LOG2 + 2) + layer) * N + idx.

const WG: u32 = 64u;

@group(0) @binding(0) var<uniform> job: Job;
@group(0) @binding(1) var<storage, read> params: array<vec2<R>>;
@group(0) @binding(2) var<storage, read> exact: array<vec2<R>>;
@group(0) @binding(3) var<storage, read_write> act: array<vec2<R>>;
@group(0) @binding(4) var<storage, read_write> pg: array<vec2<R>>;
@group(0) @binding(5) var<storage, read> xin: array<R>;
@group(0) @binding(6) var<storage, read> tin: array<vec2<R>>;
@group(0) @binding(7) var<storage, read> hyper: array<R>;

var<workgroup> red: array<vec2<R>, 64>;

fn slot(layer: u32, idx: u32, s: u32) -> u32 {
    return (s * (LOG2 + 2u) + layer) * N + idx;
}

// Sum of every invocation's `v`, by a fixed tree; called in uniform control flow.
fn wg_sum(t: u32, v: vec2<R>) -> vec2<R> {
    red[t] = v;
    workgroupBarrier();
    for (var w = WG / 2u; w > 0u; w = w >> 1u) {
        if (t < w) {
            red[t] = red[t] + red[t + w];
        }
        workgroupBarrier();
    }
    let r = red[0];
    workgroupBarrier();
    return r;
}

fn forward_group(s: u32, t: u32, use_exact: bool) {
    var m0 = vec2<R>(1.0, 0.0);
    var m1 = vec2<R>(1.0, 0.0);
    var m2 = vec2<R>(1.0, 0.0);
    var m3 = vec2<R>(-1.0, 0.0);
    if (!use_exact) {
        m0 = params[0];
        m1 = params[1];
        m2 = params[2];
        m3 = params[3];
    }
    for (var i = t; i < H; i = i + WG) {
        let a = act[slot(LOG2, i, s)].x;
        let b = act[slot(LOG2, i + H, s)].x;
        act[slot(0u, i, s)] = m0 * a + m1 * b;
        act[slot(0u, H + i, s)] = m2 * a + m3 * b;
    }
    storageBarrier();
    for (var st = 1u; st < LOG2; st = st + 1u) {
        let e = 1u << st;
        let lq = LOG2 - st - 1u;
        let q = 1u << lq;
        let off = e - 2u;
        for (var bf = t; bf < H; bf = bf + WG) {
            let i = bf >> lq;
            let j = bf & (q - 1u);
            var w: vec2<R>;
            if (use_exact) {
                w = exact[off + i];
            } else {
                w = params[4u + off + i];
            }
            let top = act[slot(st - 1u, i * 2u * q + j, s)];
            let p = cmul(w, act[slot(st - 1u, i * 2u * q + q + j, s)]);
            act[slot(st, i * q + j, s)] = top + p;
            act[slot(st, (i + e) * q + j, s)] = top - p;
        }
        storageBarrier();
    }
}

// The adjoint of one butterfly of stage st (twiddle w): overwrites layer st-1 with its adjoint
// and returns the twiddle-gradient term.
fn backward_butterfly(st: u32, e: u32, q: u32, i: u32, j: u32, w: vec2<R>, s: u32) -> vec2<R> {
    let it = slot(st - 1u, i * 2u * q + j, s);
    let ib = slot(st - 1u, i * 2u * q + q + j, s);
    let g1 = act[slot(st, i * q + j, s)];
    let g2 = act[slot(st, (i + e) * q + j, s)];
    let gp = g1 - g2;
    let gw = cmulc(act[ib], gp);
    act[it] = g1 + g2;
    act[ib] = cmulc(w, gp);
    return gw;
}

@compute @workgroup_size(64)
fn train_group(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) t: u32) {
    let s = wid.x;
    if (s >= job.count) {
        return;
    }
    let sample = job.base + s;
    if (job.from_host == 1u) {
        for (var i = t; i < N; i = i + WG) {
            act[slot(LOG2, i, s)] = vec2<R>(xin[s * N + i], 0.0);
        }
    } else {
        let key = vec2<u32>(job.seed_lo, job.seed_hi);
        for (var k = t; k < N / 4u; k = k + WG) {
            let r = philox(vec4<u32>(k, sample, job.step, job.stream), key);
            let z0 = box_muller(r.x, r.y);
            let z1 = box_muller(r.z, r.w);
            act[slot(LOG2, 4u * k, s)] = vec2<R>(R(z0.x), 0.0);
            act[slot(LOG2, 4u * k + 1u, s)] = vec2<R>(R(z0.y), 0.0);
            act[slot(LOG2, 4u * k + 2u, s)] = vec2<R>(R(z1.x), 0.0);
            act[slot(LOG2, 4u * k + 3u, s)] = vec2<R>(R(z1.y), 0.0);
        }
    }
    storageBarrier();
    let last = LOG2 - 1u;
    if (job.host_target == 1u) {
        for (var k = t; k < K; k = k + WG) {
            act[slot(LOG2 + 1u, k, s)] = tin[s * K + k];
        }
    } else {
        forward_group(s, t, true);
        for (var k = t; k < K; k = k + WG) {
            act[slot(LOG2 + 1u, k, s)] = act[slot(last, k, s)];
        }
    }
    storageBarrier();
    forward_group(s, t, false);
    let scale = hyper[HY_SCALE];
    var loss = vec2<R>(0.0, 0.0);
    for (var k = t; k < N; k = k + WG) {
        var g = vec2<R>(0.0, 0.0);
        if (k < K) {
            let d = act[slot(last, k, s)] - act[slot(LOG2 + 1u, k, s)];
            loss.x = loss.x + dot(d, d);
            g = scale * d;
        }
        act[slot(last, k, s)] = g;
    }
    let total = wg_sum(t, loss);
    if (t == 0u) {
        pg[NP * C + s] = total;
        pg[(NP - 1u) * C + s] = vec2<R>(0.0, 0.0); // the unused twiddle
    }
    storageBarrier();
    for (var st = LOG2 - 1u; st >= 1u; st = st - 1u) {
        let e = 1u << st;
        let lq = LOG2 - st - 1u;
        let q = 1u << lq;
        let off = e - 2u;
        if (q >= WG) {
            // few twiddles with many butterflies each: all invocations share each twiddle
            for (var i = 0u; i < e; i = i + 1u) {
                let w = params[4u + off + i];
                var gw = vec2<R>(0.0, 0.0);
                for (var j = t; j < q; j = j + WG) {
                    gw = gw + backward_butterfly(st, e, q, i, j, w, s);
                }
                let sum = wg_sum(t, gw);
                if (t == 0u) {
                    pg[(4u + off + i) * C + s] = sum;
                }
            }
        } else {
            // many twiddles with few butterflies: one invocation per twiddle
            for (var i = t; i < e; i = i + WG) {
                let w = params[4u + off + i];
                var gw = vec2<R>(0.0, 0.0);
                for (var j = 0u; j < q; j = j + 1u) {
                    gw = gw + backward_butterfly(st, e, q, i, j, w, s);
                }
                pg[(4u + off + i) * C + s] = gw;
            }
        }
        storageBarrier();
    }
    // split: dM[r][c] = sum_i g0[r H + i] x[i + c H]
    for (var rc = 0u; rc < 4u; rc = rc + 1u) {
        let r = rc / 2u;
        let c = rc % 2u;
        var a = vec2<R>(0.0, 0.0);
        for (var i = t; i < H; i = i + WG) {
            a = a + act[slot(0u, r * H + i, s)] * act[slot(LOG2, i + c * H, s)].x;
        }
        let sum = wg_sum(t, a);
        if (t == 0u) {
            pg[rc * C + s] = sum;
        }
    }
}
