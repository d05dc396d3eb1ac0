"""The seed's Radix2RFFT in PyTorch, written from docs/model.md, for the cross-check of
fftlearn's gradients against torch.autograd (test_fftlearn.py).

Any N = 2^L: a 2x2 complex M maps (x[i], x[i + N/2]) to rows 0 and 1; stage s (e = 2^s
rows of 2q columns in, 2e rows of q columns out, q = N / 2^(s+1)) computes
out[i][j] = in[i][j] + w in[i][j+q] and out[i+e][j] = in[i][j] - w in[i][j+q] with
w = twiddles[2^s - 2 + i]; the output is rows 0..=N/2 of the last stage. The loss is the
mean squared error of the real parts plus that of the imaginary parts. Written with whole-
tensor operations (autograd sees the same arithmetic as the seed's element loops).
"""
import torch


def forward(M: torch.Tensor, twiddles: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """x: real (batch, N); M: complex (2, 2); twiddles: complex (N - 1,). Returns the
    complex (batch, N/2 + 1) output."""
    n = x.shape[-1]
    h = n // 2
    xc = x.to(torch.complex128)
    a, b = xc[:, :h], xc[:, h:]
    rows = torch.stack([M[0, 0] * a + M[0, 1] * b, M[1, 0] * a + M[1, 1] * b], dim=1)
    e, offset = 2, 0
    while e < n:
        q = n // (2 * e)
        w = twiddles[offset : offset + e].reshape(1, e, 1)
        top, product = rows[:, :, :q], w * rows[:, :, q:]
        rows = torch.cat([top + product, top - product], dim=1)
        offset += e
        e *= 2
    return rows[:, : h + 1, 0]


def loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """MSE on the real parts plus MSE on the imaginary parts."""
    return torch.mean((pred.real - target.real) ** 2) + torch.mean((pred.imag - target.imag) ** 2)
