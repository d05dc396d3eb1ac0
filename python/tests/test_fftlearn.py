"""The Python module against numpy, the CLI and (when installed) torch. The CLI binary is
target/release/fftlearn (FFTLEARN_BIN overrides it); `.ci/run` builds it first."""

import os
import signal
import subprocess
import threading
from pathlib import Path

import numpy as np
import pytest

import fftlearn

ROOT = Path(__file__).resolve().parents[2]
BIN = os.environ.get("FFTLEARN_BIN", str(ROOT / "target" / "release" / "fftlearn"))


def cli(*args, cwd=None):
    env = dict(os.environ, XDG_RUNTIME_DIR=os.environ.get("XDG_RUNTIME_DIR", "/tmp"))
    r = subprocess.run([BIN, *map(str, args)], capture_output=True, text=True, cwd=cwd, env=env)
    assert r.returncode == 0, r.stderr
    return r


def test_forward_at_the_exact_init_is_numpys_rfft():
    p = fftlearn.init("exact", n=512)
    assert p["M"].shape == (2, 2) and p["twiddles"].shape == (511,)
    assert p["M"].dtype == np.complex128
    x = np.random.default_rng(0).standard_normal((8, 512))
    y = fftlearn.forward(p, x)
    assert y.shape == (8, 257) and y.dtype == np.complex128
    # f64 through 9 stages: rounding of order 1e-15 relative, asserted at 1e-13 of the scale
    assert np.abs(y - np.fft.rfft(x)).max() <= 1e-13 * np.abs(np.fft.rfft(x)).max()


def test_grad_is_the_clis_bit_for_bit(tmp_path):
    p_file = tmp_path / "p.npz"
    cli("init", "--scheme", "random", "--n", "64", "--seed", "3", "--out", p_file)
    x = np.random.default_rng(1).standard_normal((5, 64))
    np.save(tmp_path / "x.npy", x)
    cli("grad", "--params", p_file, "--input", tmp_path / "x.npy", "--out", tmp_path / "g.npz")
    g_cli = np.load(tmp_path / "g.npz")
    params = dict(np.load(p_file))
    loss, g = fftlearn.grad(params, x)
    assert loss == float(g_cli["loss"])
    assert np.array_equal(g["M"], g_cli["M"]) and np.array_equal(g["twiddles"], g_cli["twiddles"])
    # and with an explicit target
    t = np.fft.rfft(x) * 0.5
    np.save(tmp_path / "t.npy", t)
    cli("grad", "--params", p_file, "--input", tmp_path / "x.npy", "--target", tmp_path / "t.npy",
        "--out", tmp_path / "g2.npz")
    loss2, g2 = fftlearn.grad(params, x, t)
    assert loss2 == float(np.load(tmp_path / "g2.npz")["loss"])
    assert np.array_equal(g2["twiddles"], np.load(tmp_path / "g2.npz")["twiddles"])


def read_metrics(path):
    rows = [line.split(",") for line in Path(path).read_text().splitlines()[1:]]
    return {k: np.array([float(r[i]) for r in rows]) for i, k in
            enumerate(["step", "loss", "eval_mse", "rel_op_err"])}


def test_train_with_the_seed_defaults_gives_the_clis_metrics(tmp_path):
    cli("train", "--device", "cpu", "--out", tmp_path / "cli")
    lines = []
    run = fftlearn.train(device="cpu", out=str(tmp_path / "py"), log=lines.append)
    want = read_metrics(tmp_path / "cli" / "metrics.csv")
    for k in ["loss", "eval_mse", "rel_op_err"]:
        assert np.array_equal(run.metrics[k], want[k]), k
    assert np.array_equal(run.metrics["step"], want["step"].astype(np.int64))
    assert run.rel_op_err < 1e-12  # the seed's run learns the FFT
    assert run.backend.startswith("cpu f64")
    assert any(line.startswith("step     1 |") for line in lines)
    # the final parameters are the CLI's bit for bit
    cli_p = np.load(tmp_path / "cli" / "params.npz")
    assert np.array_equal(run.params["twiddles"], cli_p["twiddles"])
    # a directory holding a run is refused, as on the CLI
    with pytest.raises(ValueError, match="holds a run"):
        fftlearn.train(device="cpu", n=16, steps=2, out=str(tmp_path / "py"))


def test_bad_inputs_raise_the_documented_exceptions():
    p = fftlearn.init("exact", n=16)
    with pytest.raises(TypeError, match="float64"):
        fftlearn.forward(p, np.zeros((2, 16), dtype=np.float32))
    with pytest.raises(ValueError, match=r"expected \(B, 16\)"):
        fftlearn.forward(p, np.zeros((2, 8)))
    with pytest.raises(ValueError, match="NaN"):
        fftlearn.forward(p, np.full((1, 16), np.nan))
    with pytest.raises(ValueError, match="power of two"):
        fftlearn.init("seed", n=12)
    with pytest.raises(ValueError, match="accepted: seed, exact, random"):
        fftlearn.init("zeros", n=16)
    with pytest.raises(ValueError, match="missing array 'twiddles'"):
        fftlearn.forward({"M": p["M"]}, np.zeros((1, 16)))
    with pytest.raises(TypeError, match="complex128"):
        fftlearn.forward({"M": p["M"].real, "twiddles": p["twiddles"]}, np.zeros((1, 16)))
    with pytest.raises(ValueError, match="optimizer 'newton'"):
        fftlearn.train(optimizer="newton", steps=1)
    with pytest.raises(fftlearn.DivergedError, match="diverged at step"):
        fftlearn.train(device="cpu", lr=1e3, steps=50)
    assert issubclass(fftlearn.DivergedError, RuntimeError)


def test_train_refuses_an_n_that_its_init_parameters_do_not_have(tmp_path):
    p = fftlearn.init("random", n=16)
    with pytest.raises(ValueError, match="n=32 does not match"):
        fftlearn.train(n=32, init=p, device="cpu", steps=2, out=str(tmp_path / "a"))
    for call in (lambda: fftlearn.init("seed", n=-1), lambda: fftlearn.train(n=-1, device="cpu"),
                 lambda: fftlearn.train(n=16, steps=-5, device="cpu"), lambda: fftlearn.hessian(n=-8)):
        with pytest.raises(ValueError, match="out of range"):
            call()
    with pytest.raises(ValueError, match="precision sets the GPU path, but this run is on the CPU f64 path .device=.cpu.."):
        fftlearn.train(n=16, device="cpu", precision="f64", steps=2, out=str(tmp_path / "c"))
    # without n, or with the parameters' own, the run is at their N
    r = fftlearn.train(n=16, init=p, device="cpu", steps=2, out=str(tmp_path / "b"))
    assert r.params["twiddles"].shape == (15,)


def test_train_resumes_and_refuses_as_the_cli_does(tmp_path):
    lines = []
    full = fftlearn.train(device="cpu", n=16, steps=40, out=str(tmp_path / "full"))
    fftlearn.train(device="cpu", n=16, steps=20, out=str(tmp_path / "half"), log=lines.append)
    # each log line arrives whole: no fragments, no newlines
    assert lines and all(line and "\n" not in line for line in lines), lines
    r = fftlearn.train(resume=str(tmp_path / "half"), steps=40)
    assert r.out == str(tmp_path / "half")
    assert np.array_equal(r.params["twiddles"], full.params["twiddles"])
    assert (tmp_path / "half" / "metrics.csv").read_bytes() == (tmp_path / "full" / "metrics.csv").read_bytes()
    # a resume keeps its config; a keyword left at None is not given
    with pytest.raises(ValueError, match="lr=5e-1 conflicts with the checkpoint.s lr = 1e-2"):
        fftlearn.train(resume=str(tmp_path / "half"), steps=60, lr=0.5)
    # a setting that changes nothing is refused when given, in Python's words
    with pytest.raises(ValueError, match="^lr has no effect on optimizer lm"):
        fftlearn.train(device="cpu", n=16, steps=2, optimizer="lm", data="population", lr=0.1, out=str(tmp_path / "lm"))
    with pytest.raises(ValueError, match="batch=8 has no effect with data='population'"):
        fftlearn.train(device="cpu", n=16, steps=2, data="population", batch=8, out=str(tmp_path / "pop"))
    assert fftlearn.train(device="cpu", n=16, steps=2, optimizer="lm", data="population", out=str(tmp_path / "lm2")).rel_op_err >= 0
    # parameters as init= do not combine with resume=, nor overwrite= with resume=
    with pytest.raises(ValueError, match="init given as parameters conflicts with resume="):
        fftlearn.train(resume=str(tmp_path / "half"), steps=60, init=fftlearn.init("exact", n=16))
    with pytest.raises(ValueError, match="resume and overwrite exclude each other"):
        fftlearn.train(resume=str(tmp_path / "half"), steps=60, overwrite=True)
    with pytest.raises(ValueError, match="out='': an empty path"):
        fftlearn.train(device="cpu", n=16, steps=2, out="")
    # log must be callable; an exception in it stops the run (with its checkpoint) and is raised
    with pytest.raises(TypeError, match="log: expected a callable"):
        fftlearn.train(device="cpu", n=16, steps=2, out=str(tmp_path / "l0"), log=5)

    seen = []

    def boom(line):
        seen.append(line)
        if line.startswith("step") and len(seen) > 5:
            raise RuntimeError("stop here")

    with pytest.raises(RuntimeError, match="stop here"):
        fftlearn.train(device="cpu", n=16, steps=200_000, out=str(tmp_path / "l1"), log=boom)
    assert 0 < int(np.load(tmp_path / "l1" / "checkpoint.npz")["step"]) < 200_000
    # n with parameters: their N, or an error naming both
    p8 = fftlearn.init("random", n=8)
    with pytest.raises(ValueError, match="n=16 does not match params of N = 8"):
        fftlearn.hessian(params=p8, n=16)
    assert fftlearn.hessian(params=p8)["hessian"].shape == (22, 22)


def test_keyboard_interrupt_during_train_leaves_a_checkpoint(tmp_path):
    out = tmp_path / "run"
    # Python ignores SIGINT when its parent started it in the background; a notebook's Ctrl-C
    # is Python's default handler, so install that one for the test
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    timer = threading.Timer(1.0, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    try:
        # bounded: if the interrupt were lost, the run would end and the test fail
        with pytest.raises(KeyboardInterrupt, match="interrupted at step"):
            fftlearn.train(device="cpu", batch=256, steps=20_000, out=str(out))
    finally:
        timer.cancel()
        signal.signal(signal.SIGINT, previous)
    ck = np.load(out / "checkpoint.npz")
    step = int(ck["step"])
    assert 0 < step < 20_000
    # the checkpoint resumes on the CLI
    r = cli("train", "--resume", out, "--steps", step + 5)
    assert f"resumed at step {step}" in r.stdout
    # and the next run is not interrupted by the old request
    assert fftlearn.train(device="cpu", n=16, steps=3).rel_op_err >= 0


def test_gpu_gradients_agree_with_the_f64_path():
    if not fftlearn.devices():
        pytest.skip("no GPU adapter (install Mesa lavapipe: apt-get install mesa-vulkan-drivers libvulkan1)")
    r = fftlearn.gradcheck(init="random", n=64, batch=256)
    assert r["passed"], r
    assert r["loss_scaled"] <= 1e-5 and r["worst_scaled"] <= 1e-4
    assert [g["name"] for g in r["groups"]][:2] == ["M", "stage1"]


def test_hessian_and_snr_match_their_closed_forms():
    h = fftlearn.hessian(init="exact", n=8)
    nr = 2 * (8 + 3)
    assert h["hessian"].shape == (nr, nr)
    assert np.allclose(h["hessian"], h["hessian"].T, atol=1e-12)
    # at the exact FFT (zero residual) the Hessian is the Gauss-Newton matrix
    assert np.allclose(h["hessian"], h["gauss_newton"], atol=1e-12)
    assert h["hessian_eigenvalues"][0] > -1e-12  # positive semi-definite at the optimum
    s = fftlearn.snr(init="seed", n=16, batches=[16, 64], k=8, device="cpu")
    assert len(s["group"]) == len(s["std"]) and set(s["batch"]) == {16, 64}
    finite = np.isfinite(s["std_exact"])
    assert finite.any()
    # the CLI's bounds, each named as Python spells it: K >= 2, at most 2^32 minibatches in all
    with pytest.raises(ValueError, match="^k=1: at least 2 minibatches"):
        fftlearn.snr(init="seed", n=8, batches=[4], k=1, device="cpu")
    with pytest.raises(ValueError, match="more than 2\\^32 minibatches"):
        fftlearn.snr(init="seed", n=8, batches=[1, 2, 3], k=2**31, device="cpu")
    with pytest.raises(ValueError, match="^batches: batch size 0 is out of range"):
        fftlearn.snr(init="seed", n=8, batches=[0], k=2, device="cpu")
    with pytest.raises(ValueError, match="batch size 4 given twice"):
        fftlearn.snr(init="seed", n=8, batches=[4, 8, 4], k=2, device="cpu")
    # the point: parameters or an init, not both; a path is not parameters; an overflowing
    # point is bad input, refused before any figure is NaN
    p = fftlearn.init("seed", n=8)
    with pytest.raises(ValueError, match="^init='exact' with params: the parameters are the point"):
        fftlearn.snr(params=p, init="exact", batches=[4], k=2, device="cpu")
    with pytest.raises(ValueError, match="not the path p.npz; pass dict.numpy.load.path.."):
        fftlearn.hessian(params="p.npz")
    big = fftlearn.init("modulus:1e200", n=8)
    for f in (fftlearn.hessian, lambda params: fftlearn.snr(params=params, batches=[4], k=2, device="cpu")):
        with pytest.raises(ValueError, match="overflow the network's f64 range"):
            f(params=big)


def csv_columns(path):
    lines = Path(path).read_text().splitlines()
    head = lines[0].split(",")
    return head, [[row.split(",")[i] for row in lines[1:]] for i in range(len(head))]


def test_reports_are_the_clis_files_column_for_column(tmp_path):
    # one table defines each report: Python's columns are the CLI's CSV, bit for bit
    cli("snr", "--device", "cpu", "--n", "16", "--batches", "16,64", "--k", "8", "--out", tmp_path / "snr")
    s = fftlearn.snr(init="seed", n=16, batches=[16, 64], k=8, device="cpu")
    head, cols = csv_columns(tmp_path / "snr" / "snr.csv")
    assert list(s.keys()) == head
    for k, col in zip(head, cols):
        got = list(s[k]) if k == "group" else [float(v) for v in s[k]]
        want = col if k == "group" else [float(v) for v in col]
        # NaN cells (no closed form for some groups) compare as strings
        assert [str(v) for v in got] == [str(v) for v in want], k
    cli("hessian", "--n", "8", "--init", "random", "--out", tmp_path / "h")
    h = fftlearn.hessian(init="random", n=8)
    head, cols = csv_columns(tmp_path / "h" / "blocks.csv")
    assert list(h["blocks"].keys()) == head
    for k, col in zip(head, cols):
        want = col if k == "group" else [float(v) for v in col]
        assert list(h["blocks"][k]) == want, k
    head, cols = csv_columns(tmp_path / "h" / "eigenvalues.csv")
    assert list(h["hessian_eigenvalues"]) == [float(v) for v in cols[1]]
    assert list(h["gauss_newton_eigenvalues"]) == [float(v) for v in cols[2]]


def test_grad_agrees_with_torch_autograd():
    # CI installs torch and sets FFTLEARN_REQUIRE_TORCH=1; elsewhere a missing torch skips
    if os.environ.get("FFTLEARN_REQUIRE_TORCH") == "1":
        import torch
    else:
        torch = pytest.importorskip("torch", reason="torch is not installed (pip install torch)")
    import torch_model

    for n, seed in [(512, 5), (8, 1), (64, 3)]:
        p = fftlearn.init("random", n=n, seed=seed)
        M = torch.from_numpy(p["M"]).requires_grad_()
        tw = torch.from_numpy(p["twiddles"]).requires_grad_()
        x = np.random.default_rng(2).standard_normal((4, n))
        target = np.fft.rfft(x) * (1 + 0.1j)
        loss = torch_model.loss(torch_model.forward(M, tw, torch.from_numpy(x)), torch.from_numpy(target))
        loss.backward()
        loss_f, g = fftlearn.grad(p, x, target)
        assert abs(loss.item() - loss_f) <= 1e-10 * abs(loss_f)
        # PyTorch's complex gradient is dL/dRe + i dL/dIm, fftlearn's convention
        for ours, theirs in [(g["M"], M.grad), (g["twiddles"], tw.grad)]:
            theirs = theirs.numpy()
            assert np.abs(ours - theirs).max() <= 1e-10 * np.abs(theirs).max()
        # the last twiddle is used by no stage: its gradient is exactly 0 on both sides
        assert tw.grad[-1].item() == 0 and g["twiddles"][-1] == 0
