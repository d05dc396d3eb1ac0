//! The fused plan's tests: its gather table covers every parameter once, and its rewiring is
//! the seed's network.

use super::*;

fn fit() -> Fit {
    Fit {
        wg_storage: 49_152,
        invocations: 1024,
    }
}

#[test]
fn every_slot_reaches_exactly_one_parameter_and_every_used_parameter_is_reached() {
    for shape in [HARDWARE_SHAPE, CPU_SHAPE, (4, 32), (2, 64)] {
        for log2 in 2..=12u32 {
            let net = Network::new(1 << log2).unwrap();
            let Ok(plan) = Plan::new(&net, Precision::F32, fit(), false, shape.0, shape.1) else {
                continue;
            };
            let np = net.n_params();
            let mut reached = vec![0usize; np + 1];
            for r in &plan.rounds {
                let mut seen = std::collections::HashSet::new();
                for (j, list) in &r.entries {
                    reached[*j as usize] += list.len();
                    for &p in list {
                        assert!(p < plan.wgm, "{shape:?} N = {}: position {p} >= {}", net.n(), plan.wgm);
                        assert!(
                            seen.insert(p),
                            "{shape:?} N = {}: position {p} twice in a round",
                            net.n()
                        );
                    }
                }
                // every slot of every invocation written in the round is read exactly once
                if let Some((_, q0, q1)) = r.slots {
                    assert_eq!(seen.len(), (q1 - q0) * plan.wg as usize);
                }
            }
            for (j, &c) in reached.iter().enumerate() {
                let unused = j == M_ENTRIES + net.unused_twiddle();
                assert_eq!(
                    c == 0,
                    unused,
                    "{shape:?} N = {}: parameter {j} reached {c} times",
                    net.n()
                );
            }
            // twiddle i of stage s has N / 2^(s+1) butterflies per sample; the terms of one
            // sample are spread over its team's invocations, so across a workgroup each
            // twiddle has teams x (butterflies per slot) ... at least one term per team
            for st in net.stages() {
                for i in 0..st.e {
                    assert!(reached[st.param(i)] >= plan.teams as usize);
                }
            }
            assert_eq!(reached[np], plan.wg as usize, "the loss: one term per invocation");
        }
    }
}

#[test]
fn the_rewiring_matches_the_seed_network() {
    // the in-place index rule (stage s pairs p and p + 2^(L-1-s), twiddle bitrev_s(p >> (L-s)),
    // bin r at bitrev_L(r)) run on the host against the seed's out-of-place layers
    use num_complex::Complex64 as C;
    for log2 in 2..=9u32 {
        let n = 1usize << log2;
        let net = Network::new(n).unwrap();
        let p = crate::model::params::Params::init(&net, &crate::model::params::Scheme::Random, 9);
        let x: Vec<f64> = (0..n).map(|i| ((i * 7919) % 31) as f64 - 15.0).collect();
        let mut v: Vec<C> = vec![C::default(); n];
        let h = n / 2;
        for i in 0..h {
            v[i] = p.m[0] * x[i] + p.m[1] * x[i + h];
            v[i + h] = p.m[2] * x[i] + p.m[3] * x[i + h];
        }
        for s in 1..log2 {
            let bit = 1usize << (log2 - 1 - s);
            for a in 0..n {
                if a & bit == 0 {
                    let i = rev((a >> (log2 - s)) as u32, s) as usize;
                    let w = p.tw[stage_offset(s) + i];
                    let (t, b) = (v[a], w * v[a + bit]);
                    v[a] = t + b;
                    v[a + bit] = t - b;
                }
            }
        }
        let y = crate::backend::cpu::forward(&p, &x);
        for (r, yr) in y.iter().enumerate() {
            let a = rev(r as u32, log2) as usize;
            assert!((v[a] - yr).norm() <= 1e-9 * (1.0 + yr.norm()), "N = {n} bin {r}");
        }
    }
}
