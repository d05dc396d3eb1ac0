//! The command line: one clap struct per subcommand (the doc comments are the help text),
//! the parse that records which flags were given, and usage errors on one line. The flags
//! become the library's requests in [`super::request`].

use clap::{Args, Parser, Subcommand, ValueEnum};
use fftlearn::backend::gpu::{DispatchCap, Kernel};
use fftlearn::given::{Given, Style};
use fftlearn::model::params::{Init, Scheme};
use fftlearn::optim::{Optimizer, Schedule};
use fftlearn::train::DataMode;
use std::io::Write;
use std::path::PathBuf;

/// Learn the radix-2 real FFT by gradient methods: exact f64 CPU path and a WGSL GPU path.
#[derive(Parser, Debug)]
#[command(name = "fftlearn", version, about, allow_negative_numbers = true)]
pub struct Cli {
    /// The subcommand.
    #[command(subcommand)]
    pub cmd: Cmd,
}

/// Subcommands.
#[derive(Subcommand, Debug)]
pub enum Cmd {
    /// Write initial parameters (M (2,2) and twiddles (N-1,), complex128) to an .npz file.
    Init(InitArgs),
    /// Run the model on the rows of X.npy (B,N float64); writes Y.npy (B,N/2+1 complex128).
    Forward(ForwardArgs),
    /// Loss and gradients (PyTorch convention dL/dRe + i dL/dIm) on X.npy; writes G.npz.
    Grad(GradArgs),
    /// Train with Adam on Gaussian minibatches; no flags = the seed document's run.
    Train(TrainArgs),
    /// List every GPU adapter: name, backend, type, the features used (f64, subgroups, timestamps), limits.
    Devices,
    /// GPU loss and gradients against the f64 CPU path on identical f32-representable inputs.
    Gradcheck(GradcheckArgs),
    /// Overlay the loss and relative-operator-error curves of runs (metrics.csv) in one PNG.
    Plot(PlotArgs),
    /// Exact Hessian and Gauss-Newton spectra of the population loss (f64): zero modes,
    /// condition number, per-stage blocks; CSV and PNG.
    Hessian(HessianArgs),
    /// Population gradient norm per stage with every twiddle at modulus r: fitted exponents
    /// against the seed's r^8, and the path structure; CSV and PNG.
    Rsweep(RsweepArgs),
    /// Per-stage gradient signal and noise over K minibatches per batch size: mean |g|,
    /// variance, SNR, MeanGSNR, cosine to the population gradient, B_simple, scaling fits,
    /// with the closed-form values beside them; CSV and PNG.
    Snr(SnrArgs),
    /// Run (or resume) a grid of training runs from a TOML config: success rate and steps to
    /// success per cell; CSV and heat-map PNGs.
    Sweep(SweepArgs),
    /// Training-step throughput (samples/s over whole Adam steps) per device, kernel shape,
    /// precision and batch; every row names the adapter and the machine; CSV with --out.
    Bench(BenchArgs),
    /// Measure every claim of the seed document afresh and print a Markdown table of verdicts;
    /// writes it to --out and into the README's claims section.
    Claims(ClaimsArgs),
    /// The anatomy of a point (a stalled run's params.npz, say): error per bin and per subtree,
    /// twiddle deviation per stage, population gradient, extreme Hessian eigenvalues (saddle or
    /// minimum), and whether Adam escapes from perturbations of given sizes; CSV and PNG.
    Inspect(InspectArgs),
}

/// `fftlearn inspect`.
#[derive(Args, Debug)]
pub struct InspectArgs {
    /// The point.
    #[command(flatten)]
    pub point: PointArgs,
    /// A training checkpoint (Adam, constant lr, minibatches) instead of --params: its
    /// parameters are the point, and the escape runs continue its data stream with its batch,
    /// lr and seed, once with its Adam state ("kept": the run itself, continued) and once with
    /// a fresh state ("fresh"); the --escape kicks keep its state.
    #[arg(long, conflicts_with_all = ["params", "init", "n", "seed", "batch", "lr", "data_seed"])]
    pub checkpoint: Option<PathBuf>,
    /// Output directory: bins.csv, twiddles.csv, stages.csv, escape.csv, anatomy.png.
    #[arg(long, default_value = "runs/inspect")]
    pub out: PathBuf,
    /// Most Lanczos steps on the exact Hessian (4 population gradients each); 0 skips the
    /// curvature (and the escape along its most negative direction).
    #[arg(long, default_value_t = 40)]
    pub lanczos: usize,
    /// Perturbation sizes (Euclidean, over the real parameters), comma-separated: Adam is run
    /// from the point moved by each along the most negative curvature direction and along a
    /// random one, and from the point itself.
    #[arg(long, value_delimiter = ',', allow_negative_numbers = true)]
    pub escape: Vec<f64>,
    /// Most Adam steps per escape run.
    #[arg(long, default_value_t = 3000)]
    pub escape_steps: u32,
    /// Batch of the escape runs.
    #[arg(long, default_value_t = 64)]
    pub batch: usize,
    /// Learning rate of the escape runs.
    #[arg(long, default_value_t = 1e-2)]
    pub lr: f64,
    /// Data seed of the escape runs (and of the random direction).
    #[arg(long, default_value_t = 0)]
    pub data_seed: u64,
    /// Steps between exact evaluations in the escape runs.
    #[arg(long, default_value_t = 250)]
    pub eval_every: u32,
    /// An escape run succeeds at this relative operator error.
    #[arg(long, default_value_t = 1e-6)]
    pub threshold: f64,
}

/// Which devices `bench` measures.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum BenchDevice {
    /// The GPU path (any adapter, lavapipe included).
    Gpu,
    /// The exact f64 CPU path.
    Cpu,
    /// Both, in one run (ratios between them are then from one machine and one run).
    Both,
}

/// `fftlearn bench`.
#[derive(Args, Debug)]
pub struct BenchArgs {
    /// gpu | cpu | both.
    #[arg(long, value_enum, default_value_t = BenchDevice::Gpu)]
    pub device: BenchDevice,
    /// Kernel shapes, comma-separated: lane, group, fused, auto, or all (= lane,group,fused).
    #[arg(long, value_delimiter = ',', default_value = "all")]
    pub kernel: Vec<String>,
    /// Batch sizes, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "65536,1048576")]
    pub batches: Vec<usize>,
    /// GPU precisions, comma-separated: f32, f64.
    #[arg(long, value_delimiter = ',', default_value = "f32")]
    pub precision: Vec<PrecisionArg>,
    /// Transform size N.
    #[arg(long, default_value_t = 512)]
    pub n: usize,
    /// Timed steps per row, at least (after one untimed warm-up step).
    #[arg(long, default_value_t = 3)]
    pub min_steps: usize,
    /// Timed seconds per row, at least.
    #[arg(long, default_value_t = 2.0, allow_negative_numbers = true)]
    pub min_time: f64,
    /// Use the adapter whose name contains this (see `fftlearn devices`).
    #[arg(long)]
    pub adapter: Option<String>,
    /// Samples per GPU dispatch (default: each shape's own).
    #[arg(long)]
    pub chunk: Option<usize>,
    /// Most samples one fused training dispatch runs, summed over a pack's cells: a step's
    /// grid is cut into dispatches this small so that no dispatch runs long enough for a
    /// display driver's watchdog (Windows TDR: 2 s). The bytes of a step do not depend on it.
    /// A count, or off (default: 2^22 on discrete GPUs, 2^20 on others, at N <= 512; fewer
    /// in proportion to N log2 N above).
    #[arg(long)]
    pub dispatch_cap: Option<DispatchCap>,
    /// CSV output (one row per configuration).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Cells per step, comma-separated: 1 is one lone model (what a cell-by-cell sweep runs);
    /// more is a pack (GPU: the fused kernel, one command buffer per step for every cell; CPU:
    /// one task per cell). Rows give cell-steps/s.
    #[arg(long, value_delimiter = ',', default_value = "1")]
    pub cells: Vec<usize>,
    /// With GPU timestamps, also time each lone fused row's kernel without the target's
    /// forward and without the backward (plans built for timing only), and print the parts
    /// this attributes: target, backward, and the rest (data, learned forward, loss,
    /// reduction). The parts interact (registers, memory), so they are estimates.
    #[arg(long)]
    pub parts: bool,
}

/// Where the parameter point comes from.
#[derive(Args, Debug, Clone)]
pub struct PointArgs {
    /// Parameters .npz: the point, and its N (then --init and --n must not be given).
    #[arg(long)]
    pub params: Option<PathBuf>,
    /// Init scheme when no --params: seed | exact | random | modulus:R | odd-off:R.
    #[arg(long, default_value = "exact")]
    pub init: Scheme,
    /// Transform size N (without --params).
    #[arg(long, default_value_t = 512)]
    pub n: usize,
    /// Seed of random inits.
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    pub seed: u64,
}

/// `fftlearn hessian`.
#[derive(Args, Debug)]
pub struct HessianArgs {
    /// The point.
    #[command(flatten)]
    pub point: PointArgs,
    /// Eigenvalues with |lambda| <= this times lambda_max count as zero modes (--method dense).
    #[arg(long, default_value_t = fftlearn::analysis::curvature::ZERO_TOL)]
    pub zero_tol: f64,
    /// Output directory: eigenvalues.csv, blocks.csv, spectrum.png (and matrices.npz with
    /// --save-matrices); ritz.csv with --method lanczos.
    #[arg(long, default_value = "runs/hessian")]
    pub out: PathBuf,
    /// Also write both matrices to OUT/matrices.npz (float64, 2(N+3) square; --method dense).
    #[arg(long)]
    pub save_matrices: bool,
    /// dense: both matrices in full and their eigendecompositions (N <= 2048); lanczos: the
    /// extreme eigenvalues and condition number of the Gauss-Newton matrix over the used
    /// parameters, matrix-free (any N; equal to the Hessian's at the exact FFT).
    #[arg(long, value_enum, default_value_t = HessianMethod::Dense)]
    pub method: HessianMethod,
    /// Most Lanczos steps (with --method lanczos).
    #[arg(long, default_value_t = 600)]
    pub iters: usize,
}

/// How `hessian` computes the spectrum.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum HessianMethod {
    /// Dense matrices and full eigendecompositions.
    Dense,
    /// Matrix-free Lanczos on the Gauss-Newton operator.
    Lanczos,
}

/// Twiddle phases in the r-sweep.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum PhasesArg {
    /// The exact FFT's phases.
    Exact,
    /// Uniform random phases (from --seed).
    Random,
}

/// `fftlearn rsweep`.
#[derive(Args, Debug)]
pub struct RsweepArgs {
    /// Transform size N.
    #[arg(long, default_value_t = 512)]
    pub n: usize,
    /// Smallest modulus.
    #[arg(long, default_value_t = 0.25)]
    pub r_min: f64,
    /// Largest modulus.
    #[arg(long, default_value_t = 2.0)]
    pub r_max: f64,
    /// Grid points (geometric).
    #[arg(long, default_value_t = 22)]
    pub points: usize,
    /// Twiddle phases.
    #[arg(long, value_enum, default_value_t = PhasesArg::Random)]
    pub phases: PhasesArg,
    /// Seed of the random phases.
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    pub seed: u64,
    /// Output directory: rsweep.csv, rsweep.png.
    #[arg(long, default_value = "runs/rsweep")]
    pub out: PathBuf,
}

/// `fftlearn claims`.
#[derive(Args, Debug)]
pub struct ClaimsArgs {
    /// Markdown file for the table.
    #[arg(long, default_value = "runs/claims.md")]
    pub out: PathBuf,
    /// README whose section between `<!-- claims:begin -->` and `<!-- claims:end -->` is replaced.
    #[arg(long, default_value = "README.md")]
    pub readme: PathBuf,
    /// Do not touch the README.
    #[arg(long)]
    pub no_readme: bool,
}

/// `fftlearn sweep`.
#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct SweepArgs {
    /// Merge the shards of a sharded sweep.
    #[command(subcommand)]
    pub action: Option<SweepAction>,
    /// The grid: a TOML file (keys: n, batch, lr, init, optimizer, precision, schedule,
    /// momentum, beta2, data, seeds, steps | budget, threshold, eval_every, out, save_params).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Output directory (overrides the config's `out`).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Run shard I of N (0 <= I < N) of the grid's cells, balanced by estimated cost, into
    /// OUT/shards/I-of-N.csv. Without it, a Slurm array task (SLURM_ARRAY_TASK_ID) or a
    /// Kubernetes Indexed Job (JOB_COMPLETION_INDEX, with --shards) runs its shard.
    #[arg(long)]
    pub shard: Option<fftlearn::experiments::shard::Shard>,
    /// The shard count for a Kubernetes Indexed Job (its `completions`).
    #[arg(long)]
    pub shards: Option<usize>,
    /// Keep cells' final parameters as OUT/params/CELL.npz: failed (failed or diverged cells),
    /// all, or none (overrides the config's `save_params`). Reopen one with `fftlearn inspect
    /// --params`, `hessian --init`, `snr --init` or `train --init`.
    #[arg(long, value_name = "none|failed|all")]
    pub save_params: Option<fftlearn::experiments::sweep::SaveParams>,
    /// on: train cells of one N together, many per step (GPU: one command buffer per step;
    /// CPU: one task per cell); off: one cell at a time. Every row and saved parameter file is
    /// the same either way (but wall_s).
    #[arg(long, value_name = "on|off", default_value = "on")]
    pub pack: fftlearn::experiments::packs::PackMode,
}

/// `fftlearn sweep merge`.
#[derive(Subcommand, Debug)]
pub enum SweepAction {
    /// Check that every shard in OUT/shards ran the config of OUT/sweep.toml and write
    /// OUT/sweep.csv and the heat maps as an unsharded run does.
    Merge {
        /// The sweep's output directory.
        out: PathBuf,
        /// Merge what is there and list the missing cells (else missing cells are an error).
        #[arg(long)]
        partial: bool,
    },
}

/// `fftlearn snr`.
#[derive(Args, Debug)]
pub struct SnrArgs {
    /// Parameters .npz: the point, and its N (then --init and --n must not be given).
    #[arg(long)]
    pub params: Option<PathBuf>,
    /// Init scheme when no --params: seed | exact | random | modulus:R | odd-off:R.
    #[arg(long, default_value = "seed")]
    pub init: Scheme,
    /// Transform size N (without --params).
    #[arg(long, default_value_t = 512)]
    pub n: usize,
    /// Seed of the minibatches (and of random inits).
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    pub seed: u64,
    /// Batch sizes, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "16,256,4096,65536,1048576")]
    pub batches: Vec<usize>,
    /// Independent minibatches per batch size.
    #[arg(long, default_value_t = 64)]
    pub k: usize,
    /// auto (a hardware GPU if any, else the CPU) | cpu | gpu (lavapipe allowed).
    #[arg(long, value_enum, default_value_t = DeviceArg::Auto)]
    pub device: DeviceArg,
    /// GPU choice.
    #[command(flatten)]
    pub gpu: GpuArgs,
    /// Closed-form moments: auto (N <= 1024), on, off.
    #[arg(long, value_enum, default_value_t = ExactArg::Auto)]
    pub exact: ExactArg,
    /// Output directory: snr.csv, snr.png.
    #[arg(long, default_value = "runs/snr")]
    pub out: PathBuf,
}

/// Whether to compute the closed-form moments.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExactArg {
    /// For N <= 1024.
    Auto,
    /// Always (an error above N = 1024).
    On,
    /// Never.
    Off,
}

impl From<ExactArg> for fftlearn::analysis::snr::ExactMode {
    fn from(e: ExactArg) -> Self {
        match e {
            ExactArg::Auto => Self::Auto,
            ExactArg::On => Self::On,
            ExactArg::Off => Self::Off,
        }
    }
}

/// `fftlearn plot`.
#[derive(Args, Debug)]
pub struct PlotArgs {
    /// A run directory or its metrics.csv; repeat to overlay runs.
    #[arg(long = "run", required = true)]
    pub runs: Vec<PathBuf>,
    /// Legend label per --run, in order (default: the directory name).
    #[arg(long = "label")]
    pub labels: Vec<String>,
    /// Output PNG.
    #[arg(long, default_value = "runs/curves.png")]
    pub out: PathBuf,
}

/// GPU kernel precision.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum PrecisionArg {
    /// f32 on every adapter.
    F32,
    /// f64, on adapters with SHADER_F64.
    F64,
}

/// Which GPU to use and how.
#[derive(Args, Debug, Clone)]
pub struct GpuArgs {
    /// Use the adapter whose name contains this (see `fftlearn devices`).
    #[arg(long)]
    pub adapter: Option<String>,
    /// Precision of the GPU kernels.
    #[arg(long, value_enum, default_value_t = PrecisionArg::F32)]
    pub precision: PrecisionArg,
    /// GPU kernel shape: lane (one invocation per sample), group (one workgroup per sample),
    /// fused (each sample on chip), auto (fused where a sample fits the adapter's workgroup
    /// memory, else group on hardware GPUs and lane on CPU-type adapters such as lavapipe).
    #[arg(long, default_value = "auto")]
    pub kernel: KernelArg,
    /// Samples per GPU dispatch (default: lane/group the most the adapter's binding limit
    /// allows, up to 2048; fused the whole batch, host data in uploads of up to 65,536).
    #[arg(long)]
    pub chunk: Option<usize>,
    /// Most samples one fused training dispatch runs, summed over a pack's cells: a step's
    /// grid is cut into dispatches this small so that no dispatch runs long enough for a
    /// display driver's watchdog (Windows TDR: 2 s). The bytes of a step do not depend on it.
    /// A count, or off (default: 2^22 on discrete GPUs, 2^20 on others, at N <= 512; fewer
    /// in proportion to N log2 N above).
    #[arg(long)]
    pub dispatch_cap: Option<DispatchCap>,
    /// Spread each minibatch (train, snr) or the rows (gradcheck) over several adapters: `all`,
    /// or names as for --adapter, comma-separated (a name twice opens that adapter twice).
    /// Parts are summed on the host in a fixed order: the result does not depend on how many
    /// adapters ran it.
    #[arg(long, value_delimiter = ',')]
    pub adapters: Vec<String>,
}

/// GPU kernel shape: `auto` (chosen per adapter) or a [`Kernel`] by name; parsed by the
/// library's `Kernel: FromStr`, so a new kernel shape needs nothing here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KernelArg(pub Option<Kernel>);

impl std::str::FromStr for KernelArg {
    type Err = fftlearn::Error;
    fn from_str(s: &str) -> fftlearn::Result<Self> {
        match s {
            "auto" => Ok(KernelArg(None)),
            k => k.parse().map(|k| KernelArg(Some(k))),
        }
    }
}

impl std::fmt::Display for KernelArg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            None => f.write_str("auto"),
            Some(k) => write!(f, "{}", k.name()),
        }
    }
}

/// `fftlearn gradcheck`.
#[derive(Args, Debug)]
pub struct GradcheckArgs {
    /// Parameters .npz: the point, and its N (then --init and --n must not be given).
    #[arg(long)]
    pub params: Option<PathBuf>,
    /// Init scheme when no --params: seed | exact | random | modulus:R | odd-off:R.
    #[arg(long, default_value = "random")]
    pub init: Scheme,
    /// Samples.
    #[arg(long, default_value_t = 4096)]
    pub batch: usize,
    /// Seed of the inputs (and of random inits).
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    pub seed: u64,
    /// Transform size N (ignored with --params).
    #[arg(long, default_value_t = 512)]
    pub n: usize,
    /// GPU choice.
    #[command(flatten)]
    pub gpu: GpuArgs,
}

/// `fftlearn init`.
#[derive(Args, Debug)]
pub struct InitArgs {
    /// seed (all ones) | exact | random | modulus:R
    #[arg(long, default_value = "seed")]
    pub scheme: Scheme,
    /// Seed for the random schemes.
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    pub seed: u64,
    /// Transform size N (a power of two, 4..=65536).
    #[arg(long, default_value_t = 512)]
    pub n: usize,
    /// Output .npz path.
    #[arg(long)]
    pub out: PathBuf,
}

/// `fftlearn forward`.
#[derive(Args, Debug)]
pub struct ForwardArgs {
    /// Parameters .npz (from `init` or `train`).
    #[arg(long)]
    pub params: PathBuf,
    /// Inputs: .npy, float64, shape (B, N).
    #[arg(long)]
    pub input: PathBuf,
    /// Output .npy: complex128, shape (B, N/2+1).
    #[arg(long)]
    pub out: PathBuf,
}

/// `fftlearn grad`.
#[derive(Args, Debug)]
pub struct GradArgs {
    /// Parameters .npz.
    #[arg(long)]
    pub params: PathBuf,
    /// Inputs: .npy, float64, shape (B, N).
    #[arg(long)]
    pub input: PathBuf,
    /// Targets: .npy, complex128, shape (B, N/2+1); default: rfft of the inputs.
    #[arg(long)]
    pub target: Option<PathBuf>,
    /// Output .npz with loss (), M (2,2), twiddles (N-1,).
    #[arg(long)]
    pub out: PathBuf,
}

/// Where to run.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceArg {
    /// A hardware GPU if there is one, else the CPU (the seed's `cuda if available else cpu`).
    Auto,
    /// The exact f64 CPU path.
    Cpu,
    /// The GPU path; an error if no adapter is usable.
    Gpu,
}

/// `fftlearn train`.
#[derive(Args, Debug)]
pub struct TrainArgs {
    /// auto | cpu | gpu.
    #[arg(long, value_enum, default_value_t = DeviceArg::Auto)]
    pub device: DeviceArg,
    /// Training steps.
    #[arg(long, default_value_t = 3000)]
    pub steps: u32,
    /// Samples per step.
    #[arg(long, default_value_t = 16)]
    pub batch: usize,
    /// Adam learning rate.
    #[arg(long, default_value_t = 1e-2, allow_negative_numbers = true)]
    pub lr: f64,
    /// Data seed (also seeds random inits).
    #[arg(long, default_value_t = 42, allow_negative_numbers = true)]
    pub seed: u64,
    /// Initial parameters: seed | exact | random | modulus:R | a .npz file.
    #[arg(long, default_value = "seed")]
    pub init: Init,
    /// Print, evaluate and log every this many steps (and at step 1 and the last step).
    #[arg(long, default_value_t = 10)]
    pub print_every: u32,
    /// Transform size N.
    #[arg(long, default_value_t = 512)]
    pub n: usize,
    /// Output directory for metrics.csv and params.npz.
    #[arg(long, default_value = "runs/train")]
    pub out: PathBuf,
    /// GPU choice (with --device gpu or auto).
    #[command(flatten)]
    pub gpu: GpuArgs,
    /// Stop as diverged when the loss exceeds this multiple of the step-1 loss (of 1e-8 N where
    /// the step-1 loss is below that, as at the exact FFT), or is not finite.
    #[arg(long, default_value_t = 1e8)]
    pub max_loss_ratio: f64,
    /// Write OUT/checkpoint.npz every this many steps (default: every 10% of the run) and at the end.
    #[arg(long)]
    pub checkpoint_every: Option<u32>,
    /// adam | sgd | phase (Adam on twiddle angles) | phase-sgd | dgn (diagonal Gauss-Newton) |
    /// lm (Levenberg-Marquardt, population, CPU) | als (exact per-stage least squares, CPU).
    #[arg(long, default_value = "adam")]
    pub optimizer: Optimizer,
    /// SGD momentum (sgd, phase-sgd), in [0, 1).
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    pub momentum: f64,
    /// Adam's beta2 (adam, phase), in [0, 1): the second moments remember about
    /// 1 / (1 - beta2) steps (torch's default 0.999: 1,000 steps).
    #[arg(long, default_value_t = fftlearn::optim::BETA2, allow_negative_numbers = true)]
    pub beta2: f64,
    /// Learning-rate schedule: constant | cosine | step:EVERY:GAMMA.
    #[arg(long, default_value = "constant")]
    pub schedule: Schedule,
    /// Data per step: minibatch (--batch Gaussian samples) | population (the exact expected
    /// loss from the N identity vectors; --batch is then unused).
    #[arg(long, default_value = "minibatch")]
    pub data: DataMode,
    /// Continue the run in this directory from its checkpoint.npz. The config comes from the
    /// checkpoint; only --steps, --checkpoint-every, --max-loss-ratio, --adapter and --dispatch-cap may change.
    #[arg(long, conflicts_with = "overwrite")]
    pub resume: Option<PathBuf>,
    /// Start a new run in --out even if it holds one (its checkpoint, metrics and parameters
    /// are removed first). Without it a directory holding a run is refused.
    #[arg(long)]
    pub overwrite: bool,
}

/// The flags given on the command line (clap ids) of the subcommand that runs.
static GIVEN: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();

/// The flags given on the command line, for the library's refusals.
pub fn given_set() -> Given {
    Given::new(GIVEN.get().into_iter().flatten(), Style::Cli)
}

/// The given flags among `ids`, as `--flag` names (for messages).
pub fn given_of(ids: &[&str]) -> Vec<String> {
    given_set().names(ids)
}

/// Parse the process arguments (a usage error is one `error:` line and exit 2), recording which
/// flags were given explicitly, so that `--resume` can tell overrides from defaults and a flag
/// that would have no effect can be refused.
pub fn parse() -> Cli {
    use clap::{CommandFactory, FromArgMatches};
    let matches = Cli::command().try_get_matches().unwrap_or_else(|e| usage_error(e));
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| usage_error(e));
    let explicit: Vec<String> = match matches.subcommand() {
        Some((_, m)) => m
            .ids()
            .filter(|id| m.value_source(id.as_str()) == Some(clap::parser::ValueSource::CommandLine))
            .map(|id| id.to_string())
            .collect(),
        None => Vec::new(),
    };
    let _ = GIVEN.set(explicit);
    cli
}

/// A usage error as one `error:` line on stderr and exit code 2, like every other bad input
/// (help and version requests print as clap renders them).
fn usage_error(e: clap::Error) -> ! {
    use clap::error::ErrorKind;
    if matches!(
        e.kind(),
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        e.exit();
    }
    let text = e.render().to_string();
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("For more information") && !l.starts_with("Usage:"))
        .collect();
    let msg = lines.join(" ");
    let _ = writeln!(
        std::io::stderr(),
        "{}",
        if msg.starts_with("error:") {
            msg
        } else {
            format!("error: {msg}")
        }
    );
    std::process::exit(2);
}
