//! The flags as the library's requests: each subcommand's parsed flags ([`super::args`])
//! turned into the typed request its library procedure takes (train's `Request`, snr's
//! `SnrRun`, hessian's `HessianRequest`, inspect's `InspectRequest`, bench's `BenchRequest`),
//! with the flags the user gave ([`given_set`]) for the procedure's refusals.

use crate::cli::args::*;
use fftlearn::analysis::anatomy::EscapeRun;
use fftlearn::analysis::curvature::{HessianRequest, Method};
use fftlearn::analysis::inspect::{InspectRequest, Start};
use fftlearn::analysis::snr_report::SnrRun;
use fftlearn::backend::gpu::Precision;
use fftlearn::backend::{Device, GpuChoice};
use fftlearn::experiments::bench::{BenchConfig, BenchRequest};
use fftlearn::model::params::{Point, Scheme};
use fftlearn::train::{Request, TrainConfig};

/// The parameter point of `gradcheck`, `snr`, `hessian`, `rsweep` and `inspect`: a `--params`
/// file (then `--n` and `--init`, which it replaces, must not be given) or an init scheme at N.
pub fn point_of(params: Option<&std::path::Path>, n: usize, init: &Scheme, seed: u64) -> fftlearn::Result<Point> {
    match params {
        Some(f) => {
            let both = given_of(&["n", "init"]);
            if !both.is_empty() {
                return Err(fftlearn::Error::input(format!(
                    "{} conflicts with --params {}: the file fixes the point (and N)",
                    both.join(", "),
                    f.display()
                )));
            }
            Ok(Point::File(f.to_path_buf()))
        }
        None => Ok(Point::Init {
            n,
            scheme: init.clone(),
            seed,
        }),
    }
}

impl PointArgs {
    /// The point these flags name ([`point_of`]).
    pub fn point(&self) -> fftlearn::Result<Point> {
        point_of(self.params.as_deref(), self.n, &self.init, self.seed)
    }
}

impl From<DeviceArg> for Device {
    fn from(d: DeviceArg) -> Device {
        match d {
            DeviceArg::Auto => Device::Auto,
            DeviceArg::Cpu => Device::Cpu,
            DeviceArg::Gpu => Device::Gpu,
        }
    }
}

impl From<PrecisionArg> for Precision {
    fn from(p: PrecisionArg) -> Precision {
        match p {
            PrecisionArg::F32 => Precision::F32,
            PrecisionArg::F64 => Precision::F64,
        }
    }
}

impl GpuArgs {
    /// The library's GPU choice.
    pub fn choice(&self) -> GpuChoice {
        GpuChoice {
            adapter: self.adapter.clone(),
            precision: self.precision.into(),
            kernel: self.kernel.0,
            chunk: self.chunk,
            dispatch_cap: self.dispatch_cap,
        }
    }
}

impl HessianArgs {
    /// The library's request: the point, the method's settings, and which flags were given.
    pub fn request(&self) -> fftlearn::Result<HessianRequest> {
        Ok(HessianRequest {
            point: self.point.point()?,
            method: match self.method {
                HessianMethod::Dense => Method::Dense,
                HessianMethod::Lanczos => Method::Lanczos,
            },
            zero_tol: self.zero_tol,
            save_matrices: self.save_matrices,
            iters: self.iters,
            out: self.out.clone(),
            given: given_set(),
        })
    }
}

impl BenchArgs {
    /// The library's request: the configuration, the shapes as named, and which flags were given.
    pub fn request(&self) -> BenchRequest {
        BenchRequest {
            config: BenchConfig {
                n: self.n,
                batches: self.batches.clone(),
                min_steps: self.min_steps,
                min_time: self.min_time,
                cpu: self.device != BenchDevice::Gpu,
                kernels: Vec::new(),
                precisions: self.precision.iter().map(|&p| p.into()).collect(),
                adapter: self.adapter.clone(),
                chunk: self.chunk,
                dispatch_cap: self.dispatch_cap,
                cells: self.cells.clone(),
                parts: self.parts,
            },
            kernel_names: self.kernel.clone(),
            gpu: self.device != BenchDevice::Cpu,
            out: self.out.clone(),
            given: given_set(),
        }
    }
}

impl SnrArgs {
    /// The library's request: the point, the measurement, the device, and which flags were given.
    pub fn request(&self) -> fftlearn::Result<SnrRun> {
        Ok(SnrRun {
            params: point_of(self.params.as_deref(), self.n, &self.init, self.seed)?.params()?,
            about: self
                .params
                .as_ref()
                .map_or(format!("init {}", self.init), |f| f.display().to_string()),
            seed: self.seed,
            batches: self.batches.clone(),
            k: self.k,
            exact: self.exact.into(),
            device: self.device.into(),
            gpu: self.gpu.choice(),
            adapters: self.gpu.adapters.clone(),
            out: Some(self.out.clone()),
            given: given_set(),
        })
    }
}

impl InspectArgs {
    /// The library's request: the point (a checkpoint, a parameters file or an init), the
    /// settings, and which were given.
    pub fn request(&self) -> fftlearn::Result<InspectRequest> {
        Ok(InspectRequest {
            start: match &self.checkpoint {
                Some(f) => Start::Checkpoint(f.clone()),
                None => Start::Point(self.point.point()?),
            },
            out: self.out.clone(),
            lanczos: self.lanczos,
            escape: self.escape.clone(),
            run: EscapeRun {
                start_step: 0,
                steps: self.escape_steps,
                batch: self.batch,
                lr: self.lr,
                seed: self.data_seed,
                every: self.eval_every,
                threshold: self.threshold,
            },
            given: given_set(),
        })
    }
}

impl TrainArgs {
    /// The library's request for this run: every flag's value, and which were given.
    pub fn request(&self) -> Request {
        let mut r = Request::new(given_set());
        r.config = TrainConfig {
            n: self.n,
            steps: self.steps,
            batch: self.batch,
            lr: self.lr,
            seed: self.seed,
            init: self.init.clone(),
            print_every: self.print_every,
            out: self.out.clone(),
            max_loss_ratio: self.max_loss_ratio,
            checkpoint_every: self.checkpoint_every.unwrap_or(r.config.checkpoint_every),
            optimizer: self.optimizer,
            momentum: self.momentum,
            schedule: self.schedule,
            data: self.data,
            beta2: self.beta2,
            ..r.config
        };
        r.device = self.device.into();
        r.gpu = self.gpu.choice();
        r.adapters = self.gpu.adapters.clone();
        r.resume = self.resume.clone();
        r.overwrite = self.overwrite;
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    /// `train`'s flag defaults are the library's ([`TrainConfig::default`]), so the CLI and
    /// Python start from the same run.
    #[test]
    fn train_flag_defaults_are_the_library_defaults() {
        let Cmd::Train(a) = Cli::parse_from(["fftlearn", "train"]).cmd else {
            panic!("not train")
        };
        let mut want = TrainConfig::default();
        let got = a.request().config;
        want.out = got.out.clone();
        assert_eq!(got, want);
        assert_eq!(a.request().gpu, GpuChoice::default());
    }
}
