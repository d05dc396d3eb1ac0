// common.wgsl: Philox4x32-10 and Box-Muller (the same generator as src/rng.rs), complex helpers.
// The host prepends: `alias R = f32;` (or f64) and the size constants N, H, K, LOG2, NP, C.

// The per-chunk job (mirrors `Job` in src/gpu/model.rs).
struct Job {
    seed_lo: u32,
    seed_hi: u32,
    step: u32,
    stream: u32,
    base: u32,       // index of this chunk's first sample in the batch
    count: u32,      // samples in this chunk
    from_host: u32,  // 1: x (and target) come from xin/tin
    host_target: u32,
    last_chunk: u32, // 1 on the step's last chunk
    pad0: u32,
    pad1: u32,
    pad2: u32,
}

const PHILOX_M0: u32 = 0xD2511F53u;
const PHILOX_M1: u32 = 0xCD9E8D57u;
const PHILOX_W0: u32 = 0x9E3779B9u;
const PHILOX_W1: u32 = 0xBB67AE85u;

// 32x32 -> 64-bit product as (hi, lo), from 16-bit halves (WGSL has no u64).
fn mulhilo(a: u32, b: u32) -> vec2<u32> {
    let al = a & 0xffffu;
    let ah = a >> 16u;
    let bl = b & 0xffffu;
    let bh = b >> 16u;
    let ll = al * bl;
    let hl = ah * bl;
    let lh = al * bh;
    let hh = ah * bh;
    let cross = (ll >> 16u) + (hl & 0xffffu) + lh;
    let hi = hh + (hl >> 16u) + (cross >> 16u);
    let lo = (cross << 16u) | (ll & 0xffffu);
    return vec2<u32>(hi, lo);
}

fn philox(ctr: vec4<u32>, key: vec2<u32>) -> vec4<u32> {
    var c = ctr;
    var k = key;
    for (var r = 0u; r < 10u; r = r + 1u) {
        if (r > 0u) {
            k = k + vec2<u32>(PHILOX_W0, PHILOX_W1);
        }
        let p0 = mulhilo(PHILOX_M0, c.x);
        let p1 = mulhilo(PHILOX_M1, c.z);
        c = vec4<u32>(p1.x ^ c.y ^ k.x, p1.y, p0.x ^ c.w ^ k.y, p0.y);
    }
    return c;
}

// Box-Muller in f32: u1 = (a + 0.5) / 2^32, angle = 2 pi b / 2^32.
fn box_muller(a: u32, b: u32) -> vec2<f32> {
    let u1 = (f32(a) + 0.5) * 2.3283064365386963e-10;
    let r = sqrt(-2.0 * log(u1));
    let t = 6.283185307179586 * (f32(b) * 2.3283064365386963e-10);
    return vec2<f32>(r * cos(t), r * sin(t));
}

fn cmul(a: vec2<R>, b: vec2<R>) -> vec2<R> {
    return vec2<R>(a.x * b.x - a.y * b.y, a.x * b.y + a.y * b.x);
}

// conj(a) * b
fn cmulc(a: vec2<R>, b: vec2<R>) -> vec2<R> {
    return vec2<R>(a.x * b.x + a.y * b.y, a.x * b.y - a.y * b.x);
}
