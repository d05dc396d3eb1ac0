//! The `fftlearn` Python module (PyO3, built by maturin): the library's functions with numpy
//! arrays in and out, the CLI's defaults and messages, no second implementation.
//!
//! Parameters are a dict `{"M": (2, 2) complex128, "twiddles": (N-1,) complex128}`, the same
//! arrays as the `.npz` files (`dict(np.load("p.npz"))` is accepted). Errors: bad input raises
//! `ValueError` (or `TypeError` for a wrong dtype or type) with the CLI's message, a failure at
//! run time `RuntimeError`, a diverged run `fftlearn.DivergedError`, an interrupted one
//! `KeyboardInterrupt` (after its checkpoint). A Rust panic surfaces as pyo3's
//! `PanicException`, never an abort. Long work runs with the GIL released.

use fl::analysis::{curvature, snr, snr_report};
use fl::backend::cpu;
use fl::backend::gpu::{self, context, Kernel, Precision};
use fl::backend::{self as be, GpuChoice};
use fl::error::Kind;
use fl::given::{Given, Style};
use fl::io::table::{Table, Values};
use fl::model::data::Batch;
use fl::model::network::Network;
use fl::model::params::{Params, Point, Scheme};
use fl::train;
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
    if obj.is_instance_of::<pyo3::types::PyString>() || obj.hasattr("__fspath__")? {
        return Err(PyValueError::new_err(format!(
            "params: a dict of arrays 'M' and 'twiddles' is accepted, not the path {}; pass dict(numpy.load(path))",
            obj.str()?
        )));
    }
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

/// A report as a dict of columns: numpy arrays of numbers, lists of names.
fn table_columns<'py>(py: Python<'py>, t: &Table) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    for c in &t.columns {
        match &c.values {
            Values::Text(v) => d.set_item(&c.name, v.clone())?,
            Values::Int(v) => d.set_item(&c.name, PyArray1::from_vec(py, v.clone()))?,
            Values::Float(v) => d.set_item(&c.name, PyArray1::from_vec(py, v.clone()))?,
        }
    }
    Ok(d)
}

/// A report as a list of dicts, one per row.
fn table_records<'py>(py: Python<'py>, t: &Table) -> PyResult<Bound<'py, PyList>> {
    let rows = PyList::empty(py);
    for i in 0..t.len() {
        let d = PyDict::new(py);
        for c in &t.columns {
            match &c.values {
                Values::Text(v) => d.set_item(&c.name, &v[i])?,
                Values::Int(v) => d.set_item(&c.name, v[i])?,
                Values::Float(v) => d.set_item(&c.name, v[i])?,
            }
        }
        rows.append(d)?;
    }
    Ok(rows)
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
/// `n` None: the function's default N (`default_n`), or the parameters' own.
/// `init` None: `default_init`; given beside `params`, refused (the parameters are the point).
fn point(
    params: Option<&Bound<'_, PyAny>>,
    (init, default_init): (Option<&str>, &str),
    n: Option<Whole<usize>>,
    default_n: usize,
    seed: u64,
) -> PyResult<Params> {
    match params {
        Some(_) if init.is_some() => Err(PyValueError::new_err(format!(
            "init='{}' with params: the parameters are the point; drop init",
            init.unwrap_or_default()
        ))),
        Some(v) => {
            let p = params_of(v)?;
            match n {
                Some(Whole(n)) if n != p.net.n() => Err(PyValueError::new_err(format!(
                    "n={n} does not match params of N = {}: drop n, or pass parameters of N = {n}",
                    p.net.n()
                ))),
                _ => Ok(p),
            }
        }
        None => Point::Init {
            n: n.map_or(default_n, |n| n.0),
            scheme: parse::<Scheme>("init", init.unwrap_or(default_init))?,
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
    let y = py.detach(|| cpu::forward_finite(&p, &x)).map_err(py_err)?;
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
    let g = py
        .detach(|| {
            cpu::loss_grad_finite(
                &p,
                &Batch::Given {
                    x: &x,
                    target: t.as_deref(),
                },
            )
        })
        .map_err(py_err)?;
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

/// Lines of the run's log, handed to a Python callable (or dropped) a whole line at a time
/// (a formatted line may arrive in several writes).
struct PyLog {
    tx: mpsc::Sender<String>,
    partial: String,
}

impl PyLog {
    fn new(tx: mpsc::Sender<String>) -> Self {
        PyLog {
            tx,
            partial: String::new(),
        }
    }

    /// Hand over a last line that had no newline.
    fn finish(&mut self) {
        if !self.partial.is_empty() {
            let _ = self.tx.send(std::mem::take(&mut self.partial));
        }
    }
}

impl std::io::Write for PyLog {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.partial.push_str(&String::from_utf8_lossy(buf));
        while let Some(i) = self.partial.find('\n') {
            let line: String = self.partial.drain(..=i).collect();
            let _ = self.tx.send(line.trim_end_matches(['\n', '\r']).to_string());
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// `train(...) -> Run`: a training run with the CLI's defaults (the seed's: N = 512, Adam at
/// lr 1e-2, batch 16, all-ones init, 3000 steps, seed 42) and its `device="auto"` semantics.
/// Every keyword is a `train` flag; one left at None takes the flag's default and counts as
/// not given (as a flag left off: a resume keeps the checkpoint's value, and a setting that
/// would change nothing is refused only when given). `init` is a scheme name or a
/// parameters dict; `out=None` runs in a new temporary directory (its path is `Run.out`); an
/// existing run directory needs `overwrite=True`, and `resume=DIR` continues the run there.
/// `log(line)` receives the log lines as `train` prints them. Ctrl-C stops the run after the
/// current step with a checkpoint, then raises KeyboardInterrupt.
#[pyfunction(name = "train")]
#[pyo3(signature = (
    n = None, steps = None, batch = None, lr = None, seed = None, init = None, print_every = None,
    out = None, overwrite = false, device = None, precision = None, kernel = None,
    adapter = None, optimizer = None, momentum = None, beta2 = None, schedule = None,
    data = None, max_loss_ratio = None, checkpoint_every = None, resume = None, log = None
))]
// One keyword argument per `train` flag, each parsed with its own message; the run itself is
// the library's (`train::Job`).
#[allow(clippy::too_many_arguments)]
fn train_py(
    py: Python<'_>,
    n: Option<Whole<usize>>,
    steps: Option<Whole<u32>>,
    batch: Option<Whole<usize>>,
    lr: Option<f64>,
    seed: Option<u64>,
    init: Option<&Bound<'_, PyAny>>,
    print_every: Option<u32>,
    out: Option<PathBuf>,
    overwrite: bool,
    device: Option<&str>,
    precision: Option<&str>,
    kernel: Option<&str>,
    adapter: Option<String>,
    optimizer: Option<&str>,
    momentum: Option<f64>,
    beta2: Option<f64>,
    schedule: Option<&str>,
    data: Option<&str>,
    max_loss_ratio: Option<f64>,
    checkpoint_every: Option<u32>,
    resume: Option<PathBuf>,
    log: Option<Py<PyAny>>,
) -> PyResult<Run> {
    // the keywords given (not None), as the CLI's flag ids
    let given: Vec<&str> = [
        ("n", n.is_some()),
        ("steps", steps.is_some()),
        ("batch", batch.is_some()),
        ("lr", lr.is_some()),
        ("seed", seed.is_some()),
        ("init", init.is_some()),
        ("print_every", print_every.is_some()),
        ("out", out.is_some()),
        ("device", device.is_some()),
        ("precision", precision.is_some()),
        ("kernel", kernel.is_some()),
        ("adapter", adapter.is_some()),
        ("optimizer", optimizer.is_some()),
        ("momentum", momentum.is_some()),
        ("beta2", beta2.is_some()),
        ("schedule", schedule.is_some()),
        ("data", data.is_some()),
        ("max_loss_ratio", max_loss_ratio.is_some()),
        ("checkpoint_every", checkpoint_every.is_some()),
    ]
    .into_iter()
    .filter_map(|(id, g)| g.then_some(id))
    .collect();
    let mut req = train::Request::new(Given::new(given, Style::Python));
    let c = &mut req.config;
    if let Some(v) = n {
        c.n = v.0;
    }
    if let Some(v) = steps {
        c.steps = v.0;
    }
    if let Some(v) = batch {
        c.batch = v.0;
    }
    c.lr = lr.unwrap_or(c.lr);
    c.seed = seed.unwrap_or(c.seed);
    match init {
        None => {}
        Some(v) if v.is_instance_of::<pyo3::types::PyString>() => c.init = parse("init", &v.extract::<String>()?)?,
        Some(v) => req.params = Some(params_of(v)?),
    }
    c.print_every = print_every.unwrap_or(c.print_every);
    c.max_loss_ratio = max_loss_ratio.unwrap_or(c.max_loss_ratio);
    c.checkpoint_every = checkpoint_every.unwrap_or(c.checkpoint_every);
    c.momentum = momentum.unwrap_or(c.momentum);
    c.beta2 = beta2.unwrap_or(c.beta2);
    if let Some(v) = optimizer {
        c.optimizer = parse("optimizer", v)?;
    }
    if let Some(v) = schedule {
        c.schedule = parse("schedule", v)?;
    }
    if let Some(v) = data {
        c.data = parse("data", v)?;
    }
    c.out = match (out, &resume) {
        (Some(o), _) => o,
        (None, Some(r)) => r.clone(),
        (None, None) => tempdir()?,
    };
    let run_dir = resume.clone().unwrap_or_else(|| c.out.clone());
    if let Some(d) = device {
        req.device = parse("device", d)?;
    }
    req.gpu = gpu_choice(adapter, precision.unwrap_or("f32"), kernel.unwrap_or("auto"))?;
    req.resume = resume;
    req.overwrite = overwrite;
    let (summary, backend) = with_python_log(py, log.as_ref(), move |log| {
        train::Job::open(req, log).and_then(|job| {
            let describe = job.describe();
            job.run(log).map(|s| (s, describe))
        })
    })?;
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
        out: run_dir.display().to_string(),
    })
}

/// Run `work` on a thread of its own, its log lines handed whole to `log` (a Python callable
/// taking one str, or dropped) as they come, with the GIL released between them. Ctrl-C
/// becomes the library's interrupt request (a run stops after its step, with a checkpoint,
/// and KeyboardInterrupt is raised from its result); an exception in `log` stops the work
/// the same way and is raised after it.
fn with_python_log<T: Send>(
    py: Python<'_>,
    log: Option<&Py<PyAny>>,
    work: impl FnOnce(&mut PyLog) -> fl::Result<T> + Send,
) -> PyResult<T> {
    if let Some(f) = log {
        if !f.bind(py).is_callable() {
            return Err(PyTypeError::new_err(
                "log: expected a callable taking one str (e.g. log=print)",
            ));
        }
    }
    let (tx, rx) = mpsc::channel();
    fl::interrupt::clear();
    let mut interrupted = false;
    let mut log_error: Option<PyErr> = None;
    let result = std::thread::scope(|s| {
        let worker = s.spawn(move || {
            let mut log = PyLog::new(tx);
            let r = work(&mut log);
            log.finish();
            r
        });
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
                Ok(line) => {
                    if let (Some(f), None) = (log, &log_error) {
                        if let Err(e) = f.call1(py, (line,)) {
                            log_error = Some(e);
                            fl::interrupt::request();
                        }
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                // the worker has ended, every line handed over
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        }
        worker
            .join()
            .map_err(|_| PyRuntimeError::new_err("the worker thread panicked"))
    });
    fl::interrupt::clear();
    let result = result?;
    if let Some(e) = log_error {
        return Err(e);
    }
    result.map_err(py_err)
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

/// `gradcheck(params=None, init=None, n=512, batch=4096, seed=0, precision="f32",
/// kernel="auto", adapter=None) -> dict`: the GPU loss and gradients against the f64 CPU path
/// on identical inputs; `passed` applies the CLI's tolerances. Without params, the point is
/// init (default "random") at n.
#[pyfunction]
#[pyo3(signature = (params = None, init = None, n = None, batch = Whole(4096), seed = 0, precision = "f32", kernel = "auto", adapter = None))]
#[allow(clippy::too_many_arguments)]
fn gradcheck<'py>(
    py: Python<'py>,
    params: Option<&Bound<'py, PyAny>>,
    init: Option<&str>,
    n: Option<Whole<usize>>,
    batch: Whole<usize>,
    seed: u64,
    precision: &str,
    kernel: &str,
    adapter: Option<String>,
) -> PyResult<Bound<'py, PyDict>> {
    let batch = batch.0;
    gpu::gradcheck::check_batch(batch).map_err(py_err)?;
    let p = point(params, (init, "random"), n, 512, seed)?;
    let choice = gpu_choice(adapter, precision, kernel)?;
    let (r, name, prec) = py
        .detach(|| -> fl::Result<_> {
            let m = be::open_model(&choice, &p, true)?;
            let r = gpu::gradcheck::run(&m, &p, batch, seed)?;
            Ok((r, m.gpu().name(), m.precision()))
        })
        .map_err(py_err)?;
    let d = PyDict::new(py);
    d.set_item("adapter", name)?;
    d.set_item("precision", prec.wgsl())?;
    d.set_item("loss_cpu", r.loss_cpu)?;
    d.set_item("loss_gpu", r.loss_gpu)?;
    d.set_item("loss_rel", r.loss_rel)?;
    d.set_item("loss_scaled", r.loss_scaled)?;
    d.set_item("groups", table_records(py, &r.table())?)?;
    d.set_item("worst_scaled", r.worst_scaled())?;
    d.set_item("passed", r.passed(prec))?;
    Ok(d)
}

/// `snr(params=None, init=None, n=512, seed=0, batches=(16, 256, 4096), k=64,
/// device="auto") -> dict of columns`: gradient statistics per group and batch size (the
/// CLI's snr.csv columns), with the closed-form moments for N <= 1024. Without params, the
/// point is init (default "seed") at n.
#[pyfunction(name = "snr")]
#[pyo3(signature = (params = None, init = None, n = None, seed = 0, batches = vec![16, 256, 4096], k = 64, device = "auto"))]
#[allow(clippy::too_many_arguments)]
fn snr_py<'py>(
    py: Python<'py>,
    params: Option<&Bound<'py, PyAny>>,
    init: Option<&str>,
    n: Option<Whole<usize>>,
    seed: u64,
    batches: Vec<usize>,
    k: usize,
    device: &str,
) -> PyResult<Bound<'py, PyDict>> {
    let run = snr_report::SnrRun {
        params: point(params, (init, "seed"), n, 512, seed)?,
        about: if params.is_some() {
            "params".into()
        } else {
            format!("init {}", init.unwrap_or("seed"))
        },
        seed,
        batches,
        k,
        exact: snr::ExactMode::Auto,
        device: parse("device", device)?,
        gpu: GpuChoice::default(),
        adapters: Vec::new(),
        out: None,
        given: Given::new(["device"], Style::Python),
    };
    let rows = py
        .detach(|| snr_report::run(&run, &mut std::io::sink()))
        .map_err(py_err)?;
    let d = table_columns(py, &snr::table(&rows))?;
    Ok(d)
}

/// `hessian(params=None, init=None, n=64, seed=0, zero_tol=1e-9) -> dict`: the CLI's dense
/// `hessian` measurement: the exact Hessian and Gauss-Newton matrix of the population loss
/// (2 (N + 3) real parameters, N <= 2048), their eigenvalues (ascending), zero modes,
/// negative count and condition number, and the per-group blocks (blocks.csv's columns).
/// Without params, the point is init (default "exact") at n.
#[pyfunction(name = "hessian")]
#[pyo3(signature = (params = None, init = None, n = None, seed = 0, zero_tol = curvature::ZERO_TOL))]
fn hessian_py<'py>(
    py: Python<'py>,
    params: Option<&Bound<'py, PyAny>>,
    init: Option<&str>,
    n: Option<Whole<usize>>,
    seed: u64,
    zero_tol: f64,
) -> PyResult<Bound<'py, PyDict>> {
    let p = point(params, (init, "exact"), n, 64, seed)?;
    fl::backend::cpu::measurable_error(&p, "measure").map_err(py_err)?;
    let given = Given::new(["zero_tol"], Style::Python);
    let dense = py
        .detach(|| curvature::Dense::measure(&p, zero_tol, &given))
        .map_err(py_err)?;
    let nr = dense.nr;
    let d = PyDict::new(py);
    d.set_item(
        "hessian",
        PyArray1::from_vec(py, dense.hessian.clone()).reshape([nr, nr])?,
    )?;
    d.set_item(
        "gauss_newton",
        PyArray1::from_vec(py, dense.gauss_newton.clone()).reshape([nr, nr])?,
    )?;
    d.set_item("hessian_eigenvalues", PyArray1::from_vec(py, dense.spec_h.eig.clone()))?;
    d.set_item(
        "gauss_newton_eigenvalues",
        PyArray1::from_vec(py, dense.spec_gn.eig.clone()),
    )?;
    d.set_item("loss", dense.loss)?;
    d.set_item("blocks", table_columns(py, &dense.blocks())?)?;
    for (key, s) in [("hessian", &dense.spec_h), ("gauss_newton", &dense.spec_gn)] {
        d.set_item(format!("{key}_zero_modes"), s.zero_modes.len())?;
        d.set_item(format!("{key}_negative"), s.negative)?;
        d.set_item(format!("{key}_condition"), s.kappa)?;
    }
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
    m.add_function(wrap_pyfunction!(train_py, m)?)?;
    m.add_function(wrap_pyfunction!(gradcheck, m)?)?;
    m.add_function(wrap_pyfunction!(snr_py, m)?)?;
    m.add_function(wrap_pyfunction!(hessian_py, m)?)?;
    m.add_function(wrap_pyfunction!(devices, m)?)?;
    m.add_class::<Run>()?;
    m.add("DivergedError", m.py().get_type::<DivergedError>())?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
