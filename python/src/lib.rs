//! The `fftlearn` Python module (PyO3, built by maturin): the library's functions with numpy
//! arrays in and out, the CLI's defaults and messages, no second implementation.
//!
//! Parameters are a dict `{"M": (2, 2) complex128, "twiddles": (N-1,) complex128}`, the same
//! arrays as the `.npz` files (`dict(np.load("p.npz"))` is accepted). Errors: bad input raises
//! `ValueError` (or `TypeError` for a wrong dtype or type) with the CLI's message, a failure at
//! run time `RuntimeError`, a diverged run `fftlearn.DivergedError`, an interrupted one
//! `KeyboardInterrupt` (after its checkpoint). A Rust panic surfaces as pyo3's
//! `PanicException`, never an abort. Long work runs with the GIL released.

use fl::analysis::snr;
use fl::backend::cpu;
use fl::backend::gpu::{self, context, Kernel, Precision};
use fl::backend::{self as be, Chosen, Device, GpuChoice};
use fl::error::Kind;
use fl::model::data::Batch;
use fl::model::network::Network;
use fl::model::params::{Init, Params, Point, Scheme};
use fl::objective::hessian;
use fl::optim::{Optimizer, Schedule};
use fl::train::{self, DataMode, Start, TrainConfig};
use num_complex::Complex64 as C64;
use numpy::{PyArray1, PyArrayDyn, PyArrayMethods, PyUntypedArrayMethods};
use pyo3::exceptions::{PyKeyboardInterrupt, PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::Duration;

pyo3::create_exception!(
    fftlearn,
    DivergedError,
    PyRuntimeError,
    "A training run diverged (a non-finite or exploding loss)."
);

/// The library's error as the Python exception its kind calls for.
fn py_err(e: fl::Error) -> PyErr {
    let msg = e.to_string();
    match e.kind() {
        Kind::Input => PyValueError::new_err(msg),
        Kind::Runtime => PyRuntimeError::new_err(msg),
        Kind::Diverged => DivergedError::new_err(msg),
        Kind::Interrupted => PyKeyboardInterrupt::new_err(msg),
    }
}

fn parse<T: std::str::FromStr<Err = fl::Error>>(what: &str, v: &str) -> PyResult<T> {
    v.parse()
        .map_err(|e: fl::Error| PyValueError::new_err(format!("{what}: {e}")))
}

/// A numpy array of `T` (any shape, C order after conversion) with its shape; a wrong type or
/// dtype is a `TypeError` naming `what` and the dtype expected.
fn array<'py, T: numpy::Element + Copy>(
    obj: &Bound<'py, PyAny>,
    what: &str,
    dtype: &str,
) -> PyResult<(Vec<usize>, Vec<T>)> {
    let arr = obj.cast::<PyArrayDyn<T>>().map_err(|_| {
        let got = obj
            .getattr("dtype")
            .map(|d| d.to_string())
            .unwrap_or_else(|_| obj.get_type().to_string());
        PyTypeError::new_err(format!("{what}: expected a numpy array of dtype {dtype}, got {got}"))
    })?;
    let ro = arr.readonly();
    let shape = ro.shape().to_vec();
    let data: Vec<T> = ro.as_array().iter().copied().collect();
    Ok((shape, data))
}

/// Parameters from a dict with "M" (2, 2) and "twiddles" (N-1,), complex128.
fn params_of(obj: &Bound<'_, PyAny>) -> PyResult<Params> {
    let get = |k: &str| {
        obj.get_item(k)
            .map_err(|_| PyValueError::new_err(format!("params: missing array '{k}' (a dict with 'M' and 'twiddles')")))
    };
    let (ms, m) = array::<C64>(&get("M")?, "params['M']", "complex128")?;
    if ms != [2, 2] {
        return Err(PyValueError::new_err(format!(
            "params['M']: shape {ms:?}, expected (2, 2)"
        )));
    }
    let (ts, tw) = array::<C64>(&get("twiddles")?, "params['twiddles']", "complex128")?;
    if ts.len() != 1 {
        return Err(PyValueError::new_err(format!(
            "params['twiddles']: shape {ts:?}, expected (N-1,)"
        )));
    }
    Params::from_parts([m[0], m[1], m[2], m[3]], tw).map_err(py_err)
}

fn params_dict<'py>(py: Python<'py>, p: &Params) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("M", PyArray1::from_slice(py, &p.m).reshape([2, 2])?)?;
    d.set_item("twiddles", PyArray1::from_slice(py, &p.tw))?;
    Ok(d)
}

/// A size from Python (`n`, `batch`, `steps`): a negative or too large int is a ValueError
/// naming it, as any other bad input is (pyo3's own conversion raises OverflowError).
struct Whole<T>(T);

impl<'a, 'py, T: TryFrom<i128>> FromPyObject<'a, 'py> for Whole<T> {
    type Error = PyErr;
    fn extract(obj: pyo3::Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        let v: i128 = obj.extract()?;
        T::try_from(v)
            .map(Whole)
            .map_err(|_| PyValueError::new_err(format!("{v}: out of range (a whole number >= 0 is accepted)")))
    }
}

/// The GPU choice from `train`/`gradcheck`'s keyword arguments.
fn gpu_choice(adapter: Option<String>, precision: &str, kernel: &str) -> PyResult<GpuChoice> {
    Ok(GpuChoice {
        adapter,
        precision: match precision {
            "f32" => Precision::F32,
            "f64" => Precision::F64,
            o => return Err(PyValueError::new_err(format!("precision '{o}': accepted: f32, f64"))),
        },
        kernel: match kernel {
            "auto" => None,
            k => Some(parse::<Kernel>("kernel", k)?),
        },
        chunk: None,
        dispatch_cap: None,
    })
}

/// The point of `gradcheck`, `snr` and `hessian`: a parameters dict, else scheme `init` at N.
fn point(params: Option<&Bound<'_, PyAny>>, init: &str, n: usize, seed: u64) -> PyResult<Params> {
    match params {
        Some(v) => params_of(v),
        None => Point::Init {
            n,
            scheme: parse::<Scheme>("init", init)?,
            seed,
        }
        .params()
        .map_err(py_err),
    }
}

/// Inputs (B, N) float64 for parameters of size N, finite, at least one row.
fn inputs(p: &Params, x: &Bound<'_, PyAny>) -> PyResult<Vec<f64>> {
    let n = p.net.n();
    let (shape, x) = array::<f64>(x, &format!("x (float64 of shape (B, {n}) for N = {n})"), "float64")?;
    if shape.len() != 2 || shape[1] != n {
        return Err(PyValueError::new_err(format!(
            "x: shape {shape:?}, expected (B, {n}) for N = {n}"
        )));
    }
    if shape[0] == 0 {
        return Err(PyValueError::new_err("x: batch of 0 rows; at least 1 is needed"));
    }
    if !x.iter().all(|v| v.is_finite()) {
        return Err(PyValueError::new_err("x: contains NaN or infinity"));
    }
    Ok(x)
}

/// `init(scheme="seed", n=512, seed=0)`: parameters from an init scheme (seed, exact, random,
/// modulus:R, odd-off:R[:r]).
#[pyfunction]
#[pyo3(signature = (scheme = "seed", n = Whole(512), seed = 0))]
fn init<'py>(py: Python<'py>, scheme: &str, n: Whole<usize>, seed: u64) -> PyResult<Bound<'py, PyDict>> {
    let net = Network::new(n.0).map_err(py_err)?;
    let scheme: Scheme = parse("scheme", scheme)?;
    params_dict(py, &Params::init(&net, &scheme, seed))
}

/// `forward(params, x)`: the model's outputs, complex128 (B, N/2+1), for inputs x float64 (B, N).
#[pyfunction]
fn forward<'py>(py: Python<'py>, params: &Bound<'py, PyAny>, x: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    let p = params_of(params)?;
    let x = inputs(&p, x)?;
    let b = x.len() / p.net.n();
    let y = py.detach(|| cpu::forward(&p, &x));
    if !y.iter().all(|z| z.is_finite()) {
        return Err(PyRuntimeError::new_err(
            "forward: the output holds NaN or infinity (the parameters overflow f64 on these inputs)",
        ));
    }
    Ok(PyArray1::from_vec(py, y).reshape([b, p.net.bins()])?.into_any())
}

/// `grad(params, x, target=None) -> (loss, grads)`: the seed's loss and its gradient in
/// PyTorch's convention (dL/dRe + i dL/dIm), grads a dict like params; target complex128
/// (B, N/2+1), default rfft(x).
#[pyfunction]
#[pyo3(signature = (params, x, target = None))]
fn grad<'py>(
    py: Python<'py>,
    params: &Bound<'py, PyAny>,
    x: &Bound<'py, PyAny>,
    target: Option<&Bound<'py, PyAny>>,
) -> PyResult<(f64, Bound<'py, PyDict>)> {
    let p = params_of(params)?;
    let x = inputs(&p, x)?;
    let (b, k) = (x.len() / p.net.n(), p.net.bins());
    let t = match target {
        Some(t) => {
            let (shape, t) = array::<C64>(t, "target", "complex128")?;
            if shape != [b, k] {
                return Err(PyValueError::new_err(format!(
                    "target: shape {shape:?}, expected ({b}, {k})"
                )));
            }
            if !t.iter().all(|z| z.is_finite()) {
                return Err(PyValueError::new_err("target: contains NaN or infinity"));
            }
            Some(t)
        }
        None => None,
    };
    let g = py.detach(|| {
        cpu::loss_grad(
            &p,
            &Batch::Given {
                x: &x,
                target: t.as_deref(),
            },
        )
    });
    if !(g.loss.is_finite() && g.m.iter().chain(&g.tw).all(|z| z.is_finite())) {
        return Err(PyRuntimeError::new_err(format!(
            "grad: the loss or gradient is NaN or infinite (loss {:e})",
            g.loss
        )));
    }
    let d = PyDict::new(py);
    d.set_item("M", PyArray1::from_slice(py, &g.m).reshape([2, 2])?)?;
    d.set_item("twiddles", PyArray1::from_slice(py, &g.tw))?;
    Ok((g.loss, d))
}

/// What `train` returns.
#[pyclass(module = "fftlearn", get_all)]
struct Run {
    /// Metric rows as columns: step, loss, eval_mse, rel_op_err (numpy arrays).
    metrics: Py<PyDict>,
    /// The final parameters.
    params: Py<PyDict>,
    /// Where it ran, as the log says it (e.g. "cpu f64 (2 threads)").
    backend: String,
    /// The final relative operator error.
    rel_op_err: f64,
    /// The final 10-example eval.
    final_eval: f64,
    /// Wall time of the steps, seconds.
    seconds: f64,
    /// The run directory (checkpoint.npz, metrics.csv, params.npz).
    out: String,
}

#[pymethods]
impl Run {
    fn __repr__(&self) -> String {
        format!(
            "Run(backend={:?}, rel_op_err={:e}, seconds={:.3}, out={:?})",
            self.backend, self.rel_op_err, self.seconds, self.out
        )
    }
}

/// Lines of the run's log, handed to a Python callable (or dropped).
struct PyLog {
    tx: mpsc::Sender<Msg>,
}

enum Msg {
    Line(String),
    Done(Box<fl::Result<(train::Summary, String)>>),
}

impl std::io::Write for PyLog {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let text = String::from_utf8_lossy(buf).to_string();
        for l in text.lines() {
            let _ = self.tx.send(Msg::Line(l.to_string()));
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// `train(...) -> Run`: a training run with the CLI's defaults (the seed's: N = 512, Adam at
/// lr 1e-2, batch 16, all-ones init, 3000 steps, seed 42) and its `device="auto"` semantics.
/// `init` is a scheme name or a parameters dict; `out=None` runs in a new temporary
/// directory (its path is `Run.out`); an existing run directory needs `overwrite=True`.
/// `log(line)` receives the log lines as `train` prints them. Ctrl-C stops the run after
/// the current step with a checkpoint, then raises KeyboardInterrupt.
#[pyfunction]
#[pyo3(signature = (
    n = None, steps = Whole(3000), batch = Whole(16), lr = 1e-2, seed = 42, init = None, print_every = 10,
    out = None, overwrite = false, device = "auto", precision = "f32", kernel = "auto",
    adapter = None, optimizer = "adam", momentum = 0.0, beta2 = 0.999, schedule = "constant",
    data = "minibatch", max_loss_ratio = 1e8, checkpoint_every = None, log = None
))]
// Long on purpose: one keyword argument per `train` flag, each parsed with its own message;
// the run itself is the library's (`run_training`).
#[allow(clippy::too_many_arguments)]
fn train_py(
    py: Python<'_>,
    n: Option<Whole<usize>>,
    steps: Whole<u32>,
    batch: Whole<usize>,
    lr: f64,
    seed: u64,
    init: Option<&Bound<'_, PyAny>>,
    print_every: u32,
    out: Option<PathBuf>,
    overwrite: bool,
    device: &str,
    precision: &str,
    kernel: &str,
    adapter: Option<String>,
    optimizer: &str,
    momentum: f64,
    beta2: f64,
    schedule: &str,
    data: &str,
    max_loss_ratio: f64,
    checkpoint_every: Option<u32>,
    log: Option<Py<PyAny>>,
) -> PyResult<Run> {
    let device: Device = parse("device", device)?;
    let (init_cfg, start_params) = match init {
        None => (Init::default(), None),
        Some(v) if v.is_instance_of::<pyo3::types::PyString>() => {
            (parse::<Init>("init", &v.extract::<String>()?)?, None)
        }
        Some(v) => (Init::Scheme(Scheme::Seed), Some(params_of(v)?)),
    };
    let out = match out {
        Some(o) => o,
        None => tempdir()?,
    };
    let cfg = TrainConfig {
        n: match (&start_params, n.map(|n| n.0)) {
            (Some(p), Some(n)) if n != p.net.n() => {
                return Err(PyValueError::new_err(format!(
                    "n={n} does not match init's parameters of N = {}: drop n, or pass parameters of N = {n}",
                    p.net.n()
                )))
            }
            (Some(p), _) => p.net.n(),
            (None, n) => n.unwrap_or(512),
        },
        steps: steps.0,
        batch: batch.0,
        lr,
        seed,
        init: init_cfg,
        print_every,
        out: out.clone(),
        max_loss_ratio,
        checkpoint_every: checkpoint_every.unwrap_or(TrainConfig::default_checkpoint_every(steps.0)),
        backend: if device == Device::Gpu {
            train::BackendKind::GpuF32
        } else {
            train::BackendKind::CpuF64
        },
        optimizer: parse::<Optimizer>("optimizer", optimizer)?,
        momentum,
        schedule: parse::<Schedule>("schedule", schedule)?,
        data: parse::<DataMode>("data", data)?,
        beta2,
        kernel: match kernel {
            "auto" => None,
            k => Some(parse::<Kernel>("kernel", k)?),
        },
        chunk: None,
    };
    if device == Device::Cpu {
        // GPU settings on the CPU path would change nothing: refused, as the CLI refuses them
        let set: Vec<String> = [
            (precision != "f32").then(|| format!("precision='{precision}'")),
            (kernel != "auto").then(|| format!("kernel='{kernel}'")),
            adapter.as_ref().map(|a| format!("adapter='{a}'")),
        ]
        .into_iter()
        .flatten()
        .collect();
        if !set.is_empty() {
            return Err(PyValueError::new_err(format!(
                "{} set the GPU path, and device='cpu' runs the CPU f64 path: drop them or use device='gpu'",
                set.join(", ")
            )));
        }
    }
    let gpu = gpu_choice(adapter, precision, kernel)?;
    let start = if overwrite { Start::Overwrite } else { Start::Fresh };
    let (tx, rx) = mpsc::channel();
    fl::interrupt::clear();
    let mut interrupted = false;
    let result = std::thread::scope(|s| {
        let tx2 = tx.clone();
        s.spawn(move || {
            let r = run_training(cfg, device, gpu, start, start_params, PyLog { tx: tx2.clone() });
            let _ = tx2.send(Msg::Done(Box::new(r)));
        });
        drop(tx);
        // a Receiver is not Sync; the lock lets the GIL-free wait borrow it
        let rx = std::sync::Mutex::new(rx);
        loop {
            // wait with the GIL released; then let Python see Ctrl-C and hand over log lines
            let msg = py.detach(|| {
                rx.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .recv_timeout(Duration::from_millis(50))
            });
            if py.check_signals().is_err() && !interrupted {
                interrupted = true;
                fl::interrupt::request();
            }
            match msg {
                Ok(Msg::Line(l)) => {
                    if let Some(f) = &log {
                        f.call1(py, (l,))?;
                    }
                }
                Ok(Msg::Done(r)) => return Ok::<_, PyErr>(*r),
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    return Err(PyRuntimeError::new_err("the training thread ended without a result"))
                }
            }
        }
    });
    fl::interrupt::clear();
    let (summary, backend) = result?.map_err(py_err)?;
    let m = &summary.metrics;
    let cols = PyDict::new(py);
    cols.set_item(
        "step",
        PyArray1::from_vec(py, m.iter().map(|r| r.step as i64).collect()),
    )?;
    cols.set_item("loss", PyArray1::from_vec(py, m.iter().map(|r| r.loss).collect()))?;
    cols.set_item("eval_mse", PyArray1::from_vec(py, m.iter().map(|r| r.eval).collect()))?;
    cols.set_item(
        "rel_op_err",
        PyArray1::from_vec(py, m.iter().map(|r| r.rel_op_err).collect()),
    )?;
    Ok(Run {
        metrics: cols.unbind(),
        params: params_dict(py, &summary.params)?.unbind(),
        backend,
        rel_op_err: summary.rel_op_err,
        final_eval: summary.final_eval,
        seconds: summary.seconds,
        out: out.display().to_string(),
    })
}

/// A new private directory under the system temp dir.
fn tempdir() -> PyResult<PathBuf> {
    let base = std::env::temp_dir();
    for i in 0..1000u32 {
        let d = base.join(format!("fftlearn-run-{}-{i}", std::process::id()));
        if std::fs::create_dir(&d).is_ok() {
            return Ok(d);
        }
    }
    Err(PyRuntimeError::new_err(format!(
        "cannot create a run directory under {}",
        base.display()
    )))
}

/// The CLI's `train` sequence: lock and check the directory, validate, choose the device,
/// step; returns the summary and where it ran.
fn run_training(
    cfg: TrainConfig,
    device: Device,
    gpu: GpuChoice,
    start: Start,
    start_params: Option<Params>,
    mut log: PyLog,
) -> fl::Result<(train::Summary, String)> {
    use std::io::Write;
    let lock = train::open_run_dir(&cfg.out, start)?;
    let mut cfg = cfg;
    let net = cfg.validate()?;
    let p = match start_params {
        Some(p) => p,
        None => cfg.init.params(&net, cfg.seed)?,
    };
    let device = if cfg.optimizer.on_gpu() { device } else { Device::Cpu };
    let chosen = be::choose(device, &gpu, &p)?;
    for l in chosen.lines().into_iter().filter(|l| !l.starts_with("[device] cpu")) {
        let _ = writeln!(log, "{l}");
    }
    let model = match chosen {
        Chosen::Gpu(m) => Some(*m),
        Chosen::Cpu(_) => None,
    };
    let mut backend = train::backend_for(&cfg, p, model)?;
    cfg.backend = backend.kind();
    let describe = backend.describe();
    let s = train::run(&cfg, backend.as_mut(), None, &lock, &mut log)?;
    Ok((s, describe))
}

/// `gradcheck(params=None, init="random", n=512, batch=4096, seed=0, precision="f32",
/// kernel="auto", adapter=None) -> dict`: the GPU loss and gradients against the f64 CPU path
/// on identical inputs; `passed` applies the CLI's tolerances.
#[pyfunction]
#[pyo3(signature = (params = None, init = "random", n = Whole(512), batch = Whole(4096), seed = 0, precision = "f32", kernel = "auto", adapter = None))]
#[allow(clippy::too_many_arguments)]
fn gradcheck<'py>(
    py: Python<'py>,
    params: Option<&Bound<'py, PyAny>>,
    init: &str,
    n: Whole<usize>,
    batch: Whole<usize>,
    seed: u64,
    precision: &str,
    kernel: &str,
    adapter: Option<String>,
) -> PyResult<Bound<'py, PyDict>> {
    let (n, batch) = (n.0, batch.0);
    if batch == 0 {
        return Err(PyValueError::new_err("batch 0: the batch must be at least 1"));
    }
    let p = point(params, init, n, seed)?;
    let choice = gpu_choice(adapter, precision, kernel)?;
    let (r, name, prec) = py
        .detach(|| -> fl::Result<_> {
            let m = be::open_model(&choice, &p, true)?;
            let r = gpu::gradcheck::run(&m, &p, batch, seed)?;
            Ok((r, m.gpu().name(), m.precision()))
        })
        .map_err(py_err)?;
    let (tol_loss, tol_grad) = match prec {
        Precision::F32 => (1e-5, 1e-4),
        Precision::F64 => (1e-12, 1e-12),
    };
    let d = PyDict::new(py);
    d.set_item("adapter", name)?;
    d.set_item("precision", prec.wgsl())?;
    d.set_item("loss_cpu", r.loss_cpu)?;
    d.set_item("loss_gpu", r.loss_gpu)?;
    d.set_item("loss_rel", r.loss_rel)?;
    d.set_item("loss_scaled", r.loss_scaled)?;
    let groups = PyList::empty(py);
    for g in &r.groups {
        let gd = PyDict::new(py);
        gd.set_item("name", &g.name)?;
        gd.set_item("norm", g.norm)?;
        gd.set_item("max_abs", g.max_abs)?;
        gd.set_item("max_rel", g.max_rel)?;
        gd.set_item("mean_rel", g.mean_rel)?;
        gd.set_item("norm_rel", g.norm_rel)?;
        gd.set_item("scaled", g.scaled)?;
        groups.append(gd)?;
    }
    d.set_item("groups", groups)?;
    d.set_item("worst_scaled", r.worst_scaled())?;
    d.set_item("passed", r.loss_scaled <= tol_loss && r.worst_scaled() <= tol_grad)?;
    Ok(d)
}

/// `snr(params=None, init="seed", n=512, seed=0, batches=(16, 256, 4096), k=64,
/// device="auto") -> dict of columns`: gradient statistics per group and batch size (the
/// CLI's snr.csv columns), with the closed-form moments for N <= 1024.
#[pyfunction]
#[pyo3(signature = (params = None, init = "seed", n = Whole(512), seed = 0, batches = vec![16, 256, 4096], k = 64, device = "auto"))]
#[allow(clippy::too_many_arguments)]
fn snr_py<'py>(
    py: Python<'py>,
    params: Option<&Bound<'py, PyAny>>,
    init: &str,
    n: Whole<usize>,
    seed: u64,
    batches: Vec<usize>,
    k: usize,
    device: &str,
) -> PyResult<Bound<'py, PyDict>> {
    let p = point(params, init, n.0, seed)?;
    // the CLI's checks and bounds (the closed form for N <= snr::EXACT_MAX_N)
    let req = snr::SnrRequest::new(p.net.n(), batches, k, snr::ExactMode::Auto).map_err(py_err)?;
    let device: Device = parse("device", device)?;
    let rows = py
        .detach(|| -> fl::Result<Vec<snr::Row>> {
            let chosen = be::choose(device, &GpuChoice::default(), &p)?;
            let model = match chosen {
                Chosen::Gpu(m) => Some(*m),
                Chosen::Cpu(_) => None,
            };
            let base = req.baseline(&p);
            let on = model.as_ref().map_or(snr::On::Cpu, snr::On::Gpu);
            req.rows(&p, on, seed, &base.pop, base.exact.as_ref(), |_, _, _| Ok(()))
        })
        .map_err(py_err)?;
    let d = PyDict::new(py);
    d.set_item("group", rows.iter().map(|r| r.group.clone()).collect::<Vec<_>>())?;
    let col = |f: &dyn Fn(&snr::Row) -> f64| -> Vec<f64> { rows.iter().map(f).collect() };
    d.set_item(
        "batch",
        PyArray1::from_vec(py, rows.iter().map(|r| r.batch as i64).collect()),
    )?;
    d.set_item("mean_abs_g", PyArray1::from_vec(py, col(&|r| r.mean_abs_g)))?;
    d.set_item("std", PyArray1::from_vec(py, col(&|r| r.std)))?;
    d.set_item("std_exact", PyArray1::from_vec(py, col(&|r| r.std_exact)))?;
    d.set_item("snr_median", PyArray1::from_vec(py, col(&|r| r.snr_median)))?;
    d.set_item("snr_exact_median", PyArray1::from_vec(py, col(&|r| r.snr_exact_median)))?;
    d.set_item("mean_gsnr", PyArray1::from_vec(py, col(&|r| r.mean_gsnr)))?;
    d.set_item("cos_mean", PyArray1::from_vec(py, col(&|r| r.cos_mean)))?;
    d.set_item("b_simple", PyArray1::from_vec(py, col(&|r| r.b_simple)))?;
    d.set_item("b_simple_exact", PyArray1::from_vec(py, col(&|r| r.b_simple_exact)))?;
    Ok(d)
}

/// `hessian(params=None, init="exact", n=64, seed=0) -> dict`: the exact Hessian and
/// Gauss-Newton matrix of the population loss (2 (N + 3) real parameters, N <= 2048) and
/// their eigenvalues, ascending.
#[pyfunction]
#[pyo3(signature = (params = None, init = "exact", n = Whole(64), seed = 0))]
fn hessian_py<'py>(
    py: Python<'py>,
    params: Option<&Bound<'py, PyAny>>,
    init: &str,
    n: Whole<usize>,
    seed: u64,
) -> PyResult<Bound<'py, PyDict>> {
    let p = point(params, init, n.0, seed)?;
    if p.net.n() > 2048 {
        return Err(PyValueError::new_err(format!(
            "N = {}: the dense matrices are offered up to N = 2048 (the CLI's `hessian --method lanczos` covers larger N)",
            p.net.n()
        )));
    }
    let nr = hessian::n_real(&p.net);
    let (h, g, eh, eg) = py
        .detach(|| -> fl::Result<_> {
            let (h, _) = hessian::hessian(&p);
            let (g, _) = hessian::gauss_newton(&p);
            let eh = hessian::eigenvalues(nr, &h)?;
            let eg = hessian::eigenvalues(nr, &g)?;
            Ok((h, g, eh, eg))
        })
        .map_err(py_err)?;
    let d = PyDict::new(py);
    d.set_item("hessian", PyArray1::from_vec(py, h).reshape([nr, nr])?)?;
    d.set_item("gauss_newton", PyArray1::from_vec(py, g).reshape([nr, nr])?)?;
    d.set_item("hessian_eigenvalues", PyArray1::from_vec(py, eh))?;
    d.set_item("gauss_newton_eigenvalues", PyArray1::from_vec(py, eg))?;
    Ok(d)
}

/// `devices() -> list[str]`: every GPU adapter wgpu finds (Vulkan, Metal, DX12), one line each.
#[pyfunction]
fn devices(py: Python<'_>) -> PyResult<Vec<String>> {
    py.detach(context::report).map_err(py_err)
}

/// The `fftlearn` module.
#[pymodule]
fn fftlearn(m: &Bound<'_, PyModule>) -> PyResult<()> {
    // at import, before this module starts threads: keeps Mesa's XDG_RUNTIME_DIR noise away
    context::quiet_vulkan_runtime_dir();
    m.add_function(wrap_pyfunction!(init, m)?)?;
    m.add_function(wrap_pyfunction!(forward, m)?)?;
    m.add_function(wrap_pyfunction!(grad, m)?)?;
    m.add("train", wrap_pyfunction!(train_py, m)?)?;
    m.add_function(wrap_pyfunction!(gradcheck, m)?)?;
    m.add("snr", wrap_pyfunction!(snr_py, m)?)?;
    m.add("hessian", wrap_pyfunction!(hessian_py, m)?)?;
    m.add_function(wrap_pyfunction!(devices, m)?)?;
    m.add_class::<Run>()?;
    m.add("DivergedError", m.py().get_type::<DivergedError>())?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
