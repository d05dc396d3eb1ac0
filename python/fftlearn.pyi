"""fftlearn: learn the radix-2 real FFT by gradient methods (the Rust library, from Python).

Parameters are a dict ``{"M": (2, 2) complex128, "twiddles": (N-1,) complex128}``, the
arrays of the ``.npz`` files the CLI writes (``dict(np.load("p.npz"))`` is accepted).
Bad input raises ``ValueError`` (``TypeError`` for a wrong dtype) with the CLI's message;
failures at run time ``RuntimeError``; a diverged run ``DivergedError``; Ctrl-C during
``train`` writes a checkpoint, then raises ``KeyboardInterrupt``.
"""

from typing import Any, Callable, Optional, Sequence, Union

import numpy as np
import numpy.typing as npt

Params = dict[str, npt.NDArray[np.complex128]]

__version__: str

class DivergedError(RuntimeError):
    """A training run diverged (a non-finite or exploding loss)."""

class Run:
    """What ``train`` returns."""

    metrics: dict[str, np.ndarray]
    """Columns ``step``, ``loss``, ``eval_mse``, ``rel_op_err`` (the CLI's metrics.csv)."""
    params: Params
    """The final parameters."""
    backend: str
    """Where it ran, e.g. ``"cpu f64 (2 threads)"``."""
    rel_op_err: float
    """The final relative operator error ||W - F||_F / ||F||_F."""
    final_eval: float
    """The final 10-example eval (the seed's)."""
    seconds: float
    """Wall time of the steps."""
    out: str
    """The run directory (checkpoint.npz, metrics.csv, params.npz)."""

def init(scheme: str = "seed", n: int = 512, seed: int = 0) -> Params:
    """Parameters from an init scheme: ``seed`` (all ones), ``exact``, ``random``, ``modulus:R``, ``odd-off:R[:r]`` (the hand-built stall)."""

def forward(params: Params, x: npt.NDArray[np.float64]) -> npt.NDArray[np.complex128]:
    """The model's outputs (B, N/2+1) for inputs ``x`` float64 (B, N)."""

def grad(
    params: Params,
    x: npt.NDArray[np.float64],
    target: Optional[npt.NDArray[np.complex128]] = None,
) -> tuple[float, Params]:
    """The seed's loss and its gradient (dL/dRe + i dL/dIm, PyTorch's convention); ``target``
    (B, N/2+1) defaults to rfft(x)."""

def train(
    n: Optional[int] = None,
    steps: Optional[int] = None,
    batch: Optional[int] = None,
    lr: Optional[float] = None,
    seed: Optional[int] = None,
    init: Union[None, str, Params] = None,
    print_every: Optional[int] = None,
    out: Optional[str] = None,
    overwrite: bool = False,
    device: Optional[str] = None,
    precision: Optional[str] = None,
    kernel: Optional[str] = None,
    adapter: Optional[str] = None,
    optimizer: Optional[str] = None,
    momentum: Optional[float] = None,
    beta2: Optional[float] = None,
    schedule: Optional[str] = None,
    data: Optional[str] = None,
    max_loss_ratio: Optional[float] = None,
    checkpoint_every: Optional[int] = None,
    resume: Optional[str] = None,
    log: Optional[Callable[[str], object]] = None,
) -> Run:
    """A training run with the CLI's defaults (the seed's run: n=512, steps=3000, batch=16,
    lr=1e-2, seed=42, init="seed", print_every=10, device="auto", precision="f32",
    kernel="auto", optimizer="adam", momentum=0, beta2=0.999, schedule="constant",
    data="minibatch", max_loss_ratio=1e8) and ``device="auto"`` semantics (a hardware GPU if
    any, else the exact CPU f64 path). A keyword left at None takes that default and counts as
    not given, as a flag left off the command line does. ``out=None`` runs in a new temporary
    directory; an existing run directory needs ``overwrite=True``; ``resume=DIR`` continues the
    run there from its checkpoint (only steps, checkpoint_every, max_loss_ratio and adapter
    may change). ``log`` receives the log lines."""

def gradcheck(
    params: Optional[Params] = None,
    init: str = "random",
    n: Optional[int] = None,
    batch: int = 4096,
    seed: int = 0,
    precision: str = "f32",
    kernel: str = "auto",
    adapter: Optional[str] = None,
) -> dict:
    """GPU loss and gradients against the f64 CPU path on identical inputs (any adapter,
    software ones included); ``passed`` applies the CLI's tolerances. ``n=None``: 512, or the
    parameters' own N (a different ``n`` beside ``params`` is an error)."""

def snr(
    params: Optional[Params] = None,
    init: str = "seed",
    n: Optional[int] = None,
    seed: int = 0,
    batches: Sequence[int] = (16, 256, 4096),
    k: int = 64,
    device: str = "auto",
) -> dict[str, np.ndarray]:
    """Gradient statistics per group and batch size (the CLI's snr.csv columns). ``n=None``:
    512, or the parameters' own N."""

def hessian(
    params: Optional[Params] = None,
    init: str = "exact",
    n: Optional[int] = None,
    seed: int = 0,
    zero_tol: float = 1e-9,
) -> dict[str, Any]:
    """The CLI's dense ``hessian`` measurement: the exact Hessian and Gauss-Newton matrix of the
    population loss (N <= 2048), their eigenvalues (ascending), ``loss``, and per matrix
    ``*_zero_modes``, ``*_negative`` and ``*_condition``; ``blocks`` holds blocks.csv's
    columns. ``n=None``: 64, or the parameters' own N."""

def devices() -> list[str]:
    """Every GPU adapter wgpu finds, one line each."""
