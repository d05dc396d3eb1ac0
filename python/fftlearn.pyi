"""fftlearn: learn the radix-2 real FFT by gradient methods (the Rust library, from Python).

Parameters are a dict ``{"M": (2, 2) complex128, "twiddles": (N-1,) complex128}``, the
arrays of the ``.npz`` files the CLI writes (``dict(np.load("p.npz"))`` is accepted).
Bad input raises ``ValueError`` (``TypeError`` for a wrong dtype) with the CLI's message;
failures at run time ``RuntimeError``; a diverged run ``DivergedError``; Ctrl-C during
``train`` writes a checkpoint, then raises ``KeyboardInterrupt``.
"""

from typing import Callable, Optional, Sequence, Union

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
    steps: int = 3000,
    batch: int = 16,
    lr: float = 1e-2,
    seed: int = 42,
    init: Union[None, str, Params] = None,
    print_every: int = 10,
    out: Optional[str] = None,
    overwrite: bool = False,
    device: str = "auto",
    precision: str = "f32",
    kernel: str = "auto",
    adapter: Optional[str] = None,
    optimizer: str = "adam",
    momentum: float = 0.0,
    beta2: float = 0.999,
    schedule: str = "constant",
    data: str = "minibatch",
    max_loss_ratio: float = 1e8,
    checkpoint_every: Optional[int] = None,
    log: Optional[Callable[[str], object]] = None,
) -> Run:
    """A training run with the CLI's defaults (the seed's run) and ``device="auto"``
    semantics (a hardware GPU if any, else the exact CPU f64 path). ``out=None`` runs in a new
    temporary directory; an existing run directory needs ``overwrite=True``. ``log`` receives
    the log lines."""

def gradcheck(
    params: Optional[Params] = None,
    init: str = "random",
    n: int = 512,
    batch: int = 4096,
    seed: int = 0,
    precision: str = "f32",
    kernel: str = "auto",
    adapter: Optional[str] = None,
) -> dict:
    """GPU loss and gradients against the f64 CPU path on identical inputs (any adapter,
    software ones included); ``passed`` applies the CLI's tolerances."""

def snr(
    params: Optional[Params] = None,
    init: str = "seed",
    n: int = 512,
    seed: int = 0,
    batches: Sequence[int] = (16, 256, 4096),
    k: int = 64,
    device: str = "auto",
) -> dict[str, np.ndarray]:
    """Gradient statistics per group and batch size (the CLI's snr.csv columns)."""

def hessian(
    params: Optional[Params] = None, init: str = "exact", n: int = 64, seed: int = 0
) -> dict[str, np.ndarray]:
    """The exact Hessian and Gauss-Newton matrix of the population loss (N <= 2048) and their
    eigenvalues, ascending."""

def devices() -> list[str]:
    """Every GPU adapter wgpu finds, one line each."""
