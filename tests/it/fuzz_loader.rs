//! A mutation fuzzer for every `.npy`/`.npz` reader (parse_npy at each dtype, the npz archive,
//! parameter files, checkpoints): valid seed files are mutated (bit flips, interesting bytes,
//! truncation, splices, large numbers written into the header) and each result is loaded under
//! `catch_unwind`. Any panic fails the test and saves the input. Deterministic from its seed.
//!
//! Default 20,000 executions; `FFTLEARN_FUZZ_EXECS=1000000 cargo test --release --test
//! fuzz_loader -- --nocapture` runs longer (docs/reliability.md reports such a run).

use fftlearn::io::npy::{self, parse_npy, Dtype, Npz, Out};
use fftlearn::model::params::{Params, Scheme};
use fftlearn::optim::{AdamState, OptState};
use fftlearn::train::checkpoint::Checkpoint;
use fftlearn::train::{Metric, TrainConfig};
use num_complex::Complex64 as C64;
use std::path::{Path, PathBuf};

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        // splitmix64
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// A seed file's path and the function that writes it.
type Maker = (PathBuf, Box<dyn Fn(&Path)>);

fn seeds(dir: &Path) -> Vec<Vec<u8>> {
    let net = fftlearn::model::network::Network::new(8).unwrap();
    let p = Params::init(&net, &Scheme::Random, 3);
    let files: Vec<Maker> = vec![
        (
            dir.join("a.npy"),
            Box::new(|f: &Path| npy::write_npy(f, Out::F64(&[2, 8], &[0.25; 16])).unwrap()),
        ),
        (
            dir.join("b.npy"),
            Box::new(|f: &Path| npy::write_npy(f, Out::C128(&[3], &[C64::new(1.0, -2.0); 3])).unwrap()),
        ),
        (
            dir.join("c.npy"),
            Box::new(|f: &Path| npy::write_npy(f, Out::U8(b"n = 8\n")).unwrap()),
        ),
        (dir.join("p.npz"), {
            let p = p.clone();
            Box::new(move |f: &Path| p.save(f).unwrap())
        }),
        (dir.join("ck.npz"), {
            let p = p.clone();
            Box::new(move |f: &Path| {
                let cfg = TrainConfig {
                    n: 8,
                    steps: 10,
                    batch: 4,
                    lr: 1e-2,
                    seed: 1,
                    init: "random".parse().unwrap(),
                    print_every: 5,
                    out: "runs/x".into(),
                    max_loss_ratio: 1e8,
                    checkpoint_every: 5,
                    backend: "cpu-f64".parse().unwrap(),
                    optimizer: "adam".parse().unwrap(),
                    momentum: 0.0,
                    schedule: "constant".parse().unwrap(),
                    data: "minibatch".parse().unwrap(),
                    beta2: 0.999,
                    kernel: None,
                    chunk: None,
                };
                let st = AdamState::new(p.len());
                Checkpoint {
                    config: cfg,
                    step: 5,
                    params: p.clone(),
                    opt: OptState::from(&st),
                    first_loss: 1.5,
                    metrics: vec![Metric {
                        step: 5,
                        loss: 1.0,
                        eval: 1.0,
                        rel_op_err: 0.5,
                    }],
                    update: Some(fftlearn::train::UpdateSite::HostF64),
                }
                .save(f)
                .unwrap()
            })
        }),
    ];
    files
        .into_iter()
        .map(|(f, make)| {
            make(&f);
            std::fs::read(&f).unwrap()
        })
        .collect()
}

fn mutate(r: &mut Rng, v: &mut Vec<u8>) {
    const INTERESTING: [u8; 12] = [0, 0xff, 0x7f, 0x80, b'(', b')', b',', b'9', b'\'', b'<', b'{', b'\n'];
    for _ in 0..1 + r.below(4) {
        if v.is_empty() {
            v.push(r.next() as u8);
            continue;
        }
        // bias towards the first 128 bytes: the npy header and the zip local header
        let pos = if r.below(2) == 0 {
            r.below(v.len().min(128))
        } else {
            r.below(v.len())
        };
        match r.below(7) {
            0 => v[pos] ^= 1 << r.below(8),
            1 => v[pos] = INTERESTING[r.below(INTERESTING.len())],
            2 => v.truncate(pos),
            3 => {
                let len = r.below(64).min(v.len() - pos);
                let chunk = v[pos..pos + len].to_vec();
                let at = r.below(v.len());
                v.splice(at..at, chunk);
            }
            4 => {
                let len = r.below(64).min(v.len() - pos);
                v.drain(pos..pos + len);
            }
            5 => {
                let big = ["18446744073709551615", "4294967296", "-1", "9999999999999", "0", "()"];
                let s = big[r.below(big.len())].as_bytes();
                let end = (pos + s.len()).min(v.len());
                v.splice(pos..end, s.iter().copied());
            }
            _ => {
                let b = r.next().to_le_bytes();
                let end = (pos + 8).min(v.len());
                v.splice(pos..end, b);
            }
        }
    }
}

fn load_all(bytes: &[u8]) {
    for d in [Dtype::F64, Dtype::C128, Dtype::U8] {
        let _ = parse_npy(bytes, d, &[None, None]);
        let _ = parse_npy(bytes, d, &[None]);
    }
    if let Ok(mut z) = Npz::from_bytes(bytes.to_vec(), Path::new("fuzz.npz")) {
        let _ = z.names();
        let _ = Params::from_npz(&mut z);
        let _ = Checkpoint::from_npz(&mut z);
    }
}

#[test]
fn loaders_never_panic_on_mutated_files() {
    let execs: u64 = std::env::var("FFTLEARN_FUZZ_EXECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let dir = std::env::temp_dir().join(format!("fftlearn-fuzz-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let seeds = seeds(&dir);
    for s in &seeds {
        load_all(s); // the seeds themselves load
    }
    std::panic::set_hook(Box::new(|_| {}));
    let mut r = Rng(0x5eed);
    let mut crashes = 0u64;
    let t0 = std::time::Instant::now();
    for i in 0..execs {
        let mut v = seeds[r.below(seeds.len())].clone();
        mutate(&mut r, &mut v);
        if std::panic::catch_unwind(|| load_all(&v)).is_err() {
            crashes += 1;
            let f = dir.join(format!("crash-{i}.bin"));
            std::fs::write(&f, &v).unwrap();
            eprintln!("crash at execution {i}: input saved to {}", f.display());
        }
    }
    let _ = std::panic::take_hook();
    println!(
        "fuzz_loader: {execs} executions, {crashes} crashes, {:.1} s",
        t0.elapsed().as_secs_f64()
    );
    assert_eq!(crashes, 0, "loaders panicked; inputs saved in {}", dir.display());
}
