// lane.wgsl: one invocation per sample, straight-line loops (the shape lavapipe favours).
// Per sample: inputs (Philox or a host buffer), the exact-FFT target (or a host buffer), the
// forward pass with every layer stored, the seed's loss, and the reverse pass. The adjoint
// overwrites the activations in place. Per-sample gradients go to `pg` for the fixed-order
// reduction in reduce.wgsl. Layout of `act`: slot (layer * N + idx) * C + sample; layers
// 0..LOG2-1 are stage outputs, layer LOG2 holds x, layer LOG2+1 the target.


@group(0) @binding(0) var<uniform> job: Job;
@group(0) @binding(1) var<storage, read> params: array<vec2<R>>;   // M (4) then N-1 twiddles
@group(0) @binding(2) var<storage, read> exact: array<vec2<R>>;    // exact twiddles (N-1)
@group(0) @binding(3) var<storage, read_write> act: array<vec2<R>>;
@group(0) @binding(4) var<storage, read_write> pg: array<vec2<R>>; // (NP + 1) * C
@group(0) @binding(5) var<storage, read> xin: array<R>;            // count * N
@group(0) @binding(6) var<storage, read> tin: array<vec2<R>>;      // count * K
@group(0) @binding(7) var<storage, read> hyper: array<R>;          // HY_SCALE = loss scale 2 / (B K)

fn slot(layer: u32, idx: u32, s: u32) -> u32 {
    return (layer * N + idx) * C + s;
}

// Forward through all layers from x (layer LOG2), with the given parameters or the exact ones.
fn forward(s: u32, use_exact: bool) {
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
    for (var i = 0u; i < H; i = i + 1u) {
        let a = act[slot(LOG2, i, s)].x;
        let b = act[slot(LOG2, i + H, s)].x;
        act[slot(0u, i, s)] = m0 * a + m1 * b;
        act[slot(0u, H + i, s)] = m2 * a + m3 * b;
    }
    for (var st = 1u; st < LOG2; st = st + 1u) {
        let e = 1u << st;
        let q = N >> (st + 1u);
        let off = e - 2u;
        for (var i = 0u; i < e; i = i + 1u) {
            var w: vec2<R>;
            if (use_exact) {
                w = exact[off + i];
            } else {
                w = params[4u + off + i];
            }
            for (var j = 0u; j < q; j = j + 1u) {
                let t = act[slot(st - 1u, i * 2u * q + j, s)];
                let p = cmul(w, act[slot(st - 1u, i * 2u * q + q + j, s)]);
                act[slot(st, i * q + j, s)] = t + p;
                act[slot(st, (i + e) * q + j, s)] = t - p;
            }
        }
    }
}

@compute @workgroup_size(64)
fn train_lane(@builtin(global_invocation_id) gid: vec3<u32>) {
    let s = gid.x;
    if (s >= job.count) {
        return;
    }
    let sample = job.base + s;
    // inputs
    if (job.from_host == 1u) {
        for (var i = 0u; i < N; i = i + 1u) {
            act[slot(LOG2, i, s)] = vec2<R>(xin[s * N + i], 0.0);
        }
    } else {
        let key = vec2<u32>(job.seed_lo, job.seed_hi);
        for (var k = 0u; k < N / 4u; k = k + 1u) {
            let r = philox(vec4<u32>(k, sample, job.step, job.stream), key);
            let z0 = box_muller(r.x, r.y);
            let z1 = box_muller(r.z, r.w);
            act[slot(LOG2, 4u * k, s)] = vec2<R>(R(z0.x), 0.0);
            act[slot(LOG2, 4u * k + 1u, s)] = vec2<R>(R(z0.y), 0.0);
            act[slot(LOG2, 4u * k + 2u, s)] = vec2<R>(R(z1.x), 0.0);
            act[slot(LOG2, 4u * k + 3u, s)] = vec2<R>(R(z1.y), 0.0);
        }
    }
    // targets: the exact FFT through the same network, or the host's
    let last = LOG2 - 1u;
    if (job.host_target == 1u) {
        for (var k = 0u; k < K; k = k + 1u) {
            act[slot(LOG2 + 1u, k, s)] = tin[s * K + k];
        }
    } else {
        forward(s, true);
        for (var k = 0u; k < K; k = k + 1u) {
            act[slot(LOG2 + 1u, k, s)] = act[slot(last, k, s)];
        }
    }
    forward(s, false);
    // loss and the output adjoint g = 2 (y - t) / (B K), in place of the last layer
    let scale = hyper[HY_SCALE];
    var loss = R(0.0);
    for (var k = 0u; k < N; k = k + 1u) {
        var g = vec2<R>(0.0, 0.0);
        if (k < K) {
            let d = act[slot(last, k, s)] - act[slot(LOG2 + 1u, k, s)];
            loss = loss + dot(d, d);
            g = scale * d;
        }
        act[slot(last, k, s)] = g;
    }
    pg[NP * C + s] = vec2<R>(loss, 0.0);
    // reverse pass, stage by stage; the adjoint of layer st-1 overwrites its activations
    for (var st = LOG2 - 1u; st >= 1u; st = st - 1u) {
        let e = 1u << st;
        let q = N >> (st + 1u);
        let off = e - 2u;
        for (var i = 0u; i < e; i = i + 1u) {
            let w = params[4u + off + i];
            var gw = vec2<R>(0.0, 0.0);
            for (var j = 0u; j < q; j = j + 1u) {
                let it = slot(st - 1u, i * 2u * q + j, s);
                let ib = slot(st - 1u, i * 2u * q + q + j, s);
                let g1 = act[slot(st, i * q + j, s)];
                let g2 = act[slot(st, (i + e) * q + j, s)];
                let gp = g1 - g2;
                gw = gw + cmulc(act[ib], gp);
                act[it] = g1 + g2;
                act[ib] = cmulc(w, gp);
            }
            pg[(4u + off + i) * C + s] = gw;
        }
    }
    pg[(NP - 1u) * C + s] = vec2<R>(0.0, 0.0); // the unused twiddle
    // split: dM[r][c] = sum_i g0[r H + i] x[i + c H]
    for (var r = 0u; r < 2u; r = r + 1u) {
        for (var c = 0u; c < 2u; c = c + 1u) {
            var acc = vec2<R>(0.0, 0.0);
            for (var i = 0u; i < H; i = i + 1u) {
                acc = acc + act[slot(0u, r * H + i, s)] * act[slot(LOG2, i + c * H, s)].x;
            }
            pg[(2u * r + c) * C + s] = acc;
        }
    }
}
