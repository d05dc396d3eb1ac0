// chunked.wgsl: the per-sample work of the chunked kernel shapes (lane, group), written once.
// A layout file (lane.wgsl, group.wgsl) comes before it and defines only how samples map to
// invocations: STRIDE (invocations per sample), `slot` (where layer/index/sample lives in
// `act`), `sync` (a barrier between phases, or nothing), `sample_sum` (a fixed-order sum over
// the sample's invocations, or the value itself) and the entry point, which calls
// `train_sample(s, t)` for sample s of the chunk and invocation t of its team.
// Per sample: inputs (Philox or a host buffer), the exact-FFT target (or a host buffer), the
// forward pass with every layer stored, the seed's loss, and the reverse pass; the adjoint
// overwrites the activations in place. Per-sample gradients go to `pg` for the fixed-order
// reduction in reduce.wgsl. Layers 0..LOG2-1 of `act` are stage outputs, layer LOG2 holds x,
// layer LOG2+1 the target.

@group(0) @binding(0) var<uniform> job: Job;
@group(0) @binding(1) var<storage, read> params: array<vec2<R>>;   // M (4) then N-1 twiddles
@group(0) @binding(2) var<storage, read> exact: array<vec2<R>>;    // exact twiddles (N-1)
@group(0) @binding(3) var<storage, read_write> act: array<vec2<R>>;
@group(0) @binding(4) var<storage, read_write> pg: array<vec2<R>>; // (NP + 1) * C
@group(0) @binding(5) var<storage, read> xin: array<R>;            // count * N
@group(0) @binding(6) var<storage, read> tin: array<vec2<R>>;      // count * K
@group(0) @binding(7) var<storage, read> hyper: array<R>;          // HY_SCALE = loss scale 2 / (B K)

// Forward through all layers from x (layer LOG2), with the given parameters or the exact ones;
// invocation t of the sample's team takes every STRIDE-th butterfly.
fn forward(s: u32, t: u32, use_exact: bool) {
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
    for (var i = t; i < H; i = i + STRIDE) {
        let a = act[slot(LOG2, i, s)].x;
        let b = act[slot(LOG2, i + H, s)].x;
        act[slot(0u, i, s)] = m0 * a + m1 * b;
        act[slot(0u, H + i, s)] = m2 * a + m3 * b;
    }
    sync();
    for (var st = 1u; st < LOG2; st = st + 1u) {
        let e = 1u << st;
        let lq = LOG2 - st - 1u;
        let q = 1u << lq;
        for (var bf = t; bf < H; bf = bf + STRIDE) {
            let i = bf >> lq;
            let j = bf & (q - 1u);
            var w: vec2<R>;
            if (use_exact) {
                w = exact[tw_index(st, i)];
            } else {
                w = params[param_index(st, i)];
            }
            let io = bf_inputs(q, i, j);
            let oo = bf_outputs(e, q, i, j);
            let top = act[slot(st - 1u, io.x, s)];
            let p = cmul(w, act[slot(st - 1u, io.y, s)]);
            act[slot(st, oo.x, s)] = top + p;
            act[slot(st, oo.y, s)] = top - p;
        }
        sync();
    }
}

// The adjoint of one butterfly of stage st (twiddle w): overwrites layer st-1 with its adjoint
// and returns the twiddle-gradient term.
fn backward_butterfly(st: u32, e: u32, q: u32, i: u32, j: u32, w: vec2<R>, s: u32) -> vec2<R> {
    let io = bf_inputs(q, i, j);
    let oo = bf_outputs(e, q, i, j);
    let it = slot(st - 1u, io.x, s);
    let ib = slot(st - 1u, io.y, s);
    let g1 = act[slot(st, oo.x, s)];
    let g2 = act[slot(st, oo.y, s)];
    let gp = g1 - g2;
    let gw = cmulc(act[ib], gp);
    act[it] = g1 + g2;
    act[ib] = cmulc(w, gp);
    return gw;
}

// Everything one sample contributes: called by the layout's entry point for sample s of the
// chunk (s < job.count) and invocation t (0..STRIDE) of its team, in uniform control flow
// within the team.
fn train_sample(s: u32, t: u32) {
    let sample = job.sample0 + job.base + s;
    // inputs
    if (job.from_host == 1u) {
        for (var i = t; i < N; i = i + STRIDE) {
            act[slot(LOG2, i, s)] = vec2<R>(xin[s * N + i], 0.0);
        }
    } else {
        let key = vec2<u32>(job.seed_lo, job.seed_hi);
        for (var k = t; k < N / 4u; k = k + STRIDE) {
            let r = philox(vec4<u32>(k, sample, job.step, job.stream), key);
            let z0 = box_muller(r.x, r.y);
            let z1 = box_muller(r.z, r.w);
            act[slot(LOG2, 4u * k, s)] = vec2<R>(R(z0.x), 0.0);
            act[slot(LOG2, 4u * k + 1u, s)] = vec2<R>(R(z0.y), 0.0);
            act[slot(LOG2, 4u * k + 2u, s)] = vec2<R>(R(z1.x), 0.0);
            act[slot(LOG2, 4u * k + 3u, s)] = vec2<R>(R(z1.y), 0.0);
        }
    }
    sync();
    // targets: the exact FFT through the same network, or the host's
    let last = LOG2 - 1u;
    if (job.host_target == 1u) {
        for (var k = t; k < K; k = k + STRIDE) {
            act[slot(LOG2 + 1u, k, s)] = tin[s * K + k];
        }
    } else {
        forward(s, t, true);
        for (var k = t; k < K; k = k + STRIDE) {
            act[slot(LOG2 + 1u, k, s)] = act[slot(last, k, s)];
        }
    }
    sync();
    forward(s, t, false);
    // loss and the output adjoint g = 2 (y - t) / (B K), in place of the last layer
    let scale = hyper[HY_SCALE];
    var loss = vec2<R>(0.0, 0.0);
    for (var k = t; k < N; k = k + STRIDE) {
        var g = vec2<R>(0.0, 0.0);
        if (k < K) {
            let d = act[slot(last, k, s)] - act[slot(LOG2 + 1u, k, s)];
            loss.x = loss.x + dot(d, d);
            g = scale * d;
        }
        act[slot(last, k, s)] = g;
    }
    let total = sample_sum(t, loss);
    if (t == 0u) {
        pg[NP * C + s] = total;
        pg[(NP - 1u) * C + s] = vec2<R>(0.0, 0.0); // the unused twiddle
    }
    sync();
    // reverse pass, stage by stage; the adjoint of layer st-1 overwrites its activations
    for (var st = LOG2 - 1u; st >= 1u; st = st - 1u) {
        let e = 1u << st;
        let lq = LOG2 - st - 1u;
        let q = 1u << lq;
        if (q >= STRIDE) {
            // few twiddles with many butterflies each: the whole team shares each twiddle
            for (var i = 0u; i < e; i = i + 1u) {
                let w = params[param_index(st, i)];
                var gw = vec2<R>(0.0, 0.0);
                for (var j = t; j < q; j = j + STRIDE) {
                    gw = gw + backward_butterfly(st, e, q, i, j, w, s);
                }
                let sum = sample_sum(t, gw);
                if (t == 0u) {
                    pg[param_index(st, i) * C + s] = sum;
                }
            }
        } else {
            // many twiddles with few butterflies: one invocation per twiddle
            for (var i = t; i < e; i = i + STRIDE) {
                let w = params[param_index(st, i)];
                var gw = vec2<R>(0.0, 0.0);
                for (var j = 0u; j < q; j = j + 1u) {
                    gw = gw + backward_butterfly(st, e, q, i, j, w, s);
                }
                pg[param_index(st, i) * C + s] = gw;
            }
        }
        sync();
    }
    // split: dM[r][c] = sum_i g0[r H + i] x[i + c H]
    for (var rc = 0u; rc < M_ENTRIES; rc = rc + 1u) {
        let r = rc / 2u;
        let c = rc % 2u;
        var a = vec2<R>(0.0, 0.0);
        for (var i = t; i < H; i = i + STRIDE) {
            a = a + act[slot(0u, r * H + i, s)] * act[slot(LOG2, i + c * H, s)].x;
        }
        let sum = sample_sum(t, a);
        if (t == 0u) {
            pg[rc * C + s] = sum;
        }
    }
}
