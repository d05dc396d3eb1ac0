"""Make tests/data/torch_reference.npz: PyTorch autograd on the seed's own Radix2RFFT.

Run with a Python that has torch and numpy, and the folder of the PyTorch peer scripts
(seed_torch.py, the seed document's model; not part of this repository):
    python tools/make_torch_reference.py PEERS_DIR tests/data/torch_reference.npz

Cases (each stored with its inputs, parameters, outputs, loss and gradients):
  rand : M, twiddles complex Gaussian / sqrt(2) (numpy RandomState(7)), x (3, 512) Gaussian
  ones : the seed's all-ones init, x (2, 512) Gaussian
The gradients are PyTorch's for complex leaves: dL/dRe + i dL/dIm.
"""
import sys

import numpy as np
import torch

sys.path.insert(0, sys.argv[1])
from seed_torch import Radix2RFFT, loss_fn  # noqa: E402

out = {}
rs = np.random.RandomState(7)
cases = {
    "rand": ((rs.randn(2, 2) + 1j * rs.randn(2, 2)) / np.sqrt(2), (rs.randn(511) + 1j * rs.randn(511)) / np.sqrt(2), rs.randn(3, 512)),
    "ones": (np.ones((2, 2), complex), np.ones(511, complex), rs.randn(2, 512)),
}
for name, (M, tw, x) in cases.items():
    model = Radix2RFFT()
    with torch.no_grad():
        model.M.copy_(torch.from_numpy(M))
        model.twiddle_factors.copy_(torch.from_numpy(tw))
    preds = torch.stack([model(torch.from_numpy(x[b])) for b in range(x.shape[0])], 0)
    tgt = torch.from_numpy(np.fft.rfft(x, axis=1))
    loss = loss_fn(preds, tgt)
    loss.backward()
    out[f"{name}_M"] = M
    out[f"{name}_twiddles"] = tw
    out[f"{name}_x"] = x
    out[f"{name}_y"] = preds.detach().numpy()
    out[f"{name}_loss"] = np.array(loss.item())
    out[f"{name}_grad_M"] = model.M.grad.numpy()
    out[f"{name}_grad_twiddles"] = model.twiddle_factors.grad.numpy()
    print(name, "loss", loss.item(), "grad tw[510]", model.twiddle_factors.grad[510].item())
np.savez(sys.argv[2], **out)
print("wrote", sys.argv[2], "torch", torch.__version__)
