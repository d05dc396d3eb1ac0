// common.wgsl: Philox4x32-10 and Box-Muller (the same generator as src/model/rng.rs), complex helpers.
// The host prepends (src/gpu/abi.rs): `alias R = f32;` (or f64), the size constants N, H, K,
// LOG2, NP, C, the `Job` struct generated from its Rust definition, and `mulhilo` (16-bit limbs,
// or native u64 products where the adapter has SHADER_INT64: the same bits, tested).

const PHILOX_M0: u32 = 0xD2511F53u;
const PHILOX_M1: u32 = 0xCD9E8D57u;
const PHILOX_W0: u32 = 0x9E3779B9u;
const PHILOX_W1: u32 = 0xBB67AE85u;

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
