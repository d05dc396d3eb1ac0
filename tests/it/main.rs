//! fftlearn's tests, in one binary (one link of wgpu, faer and plotters). The chain of trust,
//! in order: `reference` (the CPU forward pass against a naive DFT and rustfft; the backward
//! pass against finite differences) and `torch_reference` (against PyTorch's own numbers);
//! `gpu` (every GPU kernel shape against the f64 CPU path); then the conformance loops over
//! every optimizer (`conformance`), determinism, resume, the measurements, the CLI, and the
//! hostile-file corpus and fuzzer.

mod anatomy;
mod cli;
mod conformance;
mod determinism;
mod dispatch;
mod fuzz_loader;
mod gpu;
mod guard;
mod hostile;
mod measure;
mod packs;
mod profiles;
mod reference;
mod resume;
mod safety;
mod seed_run;
mod shard;
mod snr;
mod solvers;
mod sweep;
mod torch_reference;
mod translate;
mod util;
