#!/usr/bin/env python3
"""Write the hostile-file corpus in tests/data/hostile/ and its manifest EXPECT.tsv.

Pure standard library (no numpy), so it runs anywhere. Each line of EXPECT.tsv is
    file <TAB> role <TAB> substring the error must contain
role: `input` (forward --input), `params` (forward --params) or `checkpoint` (train --resume on a
directory holding the file as checkpoint.npz). tests/hostile.rs runs the binary on every entry and
asserts exit code 2, one `error:` line, and the substring.
"""
import io
import os
import struct
import zipfile

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data", "hostile")
N = 512


def npy(descr, shape, data, fortran=False, version=1, header=None):
    if header is None:
        header = "{'descr': '%s', 'fortran_order': %s, 'shape': %s, }" % (
            descr, "True" if fortran else "False", shape)
    pre = 10 if version == 1 else 12
    while (pre + len(header) + 1) % 64:
        header += " "
    header += "\n"
    h = header.encode("latin1")
    out = b"\x93NUMPY" + bytes([version, 0])
    out += struct.pack("<H", len(h)) if version == 1 else struct.pack("<I", len(h))
    return out + h + data


def f8(vals):
    return b"".join(struct.pack("<d", v) for v in vals)


def c16(vals):
    return b"".join(struct.pack("<dd", v.real, v.imag) for v in vals)


def npz(entries, method=zipfile.ZIP_STORED):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", method) as z:
        for name, data in entries:
            z.writestr(name + ".npy", data)
    return buf.getvalue()


GOOD_M = npy("<c16", "(2, 2)", c16([1, 1, 1, -1]))
GOOD_TW = npy("<c16", "(%d,)" % (N - 1), c16([1] * (N - 1)))


def config(**over):
    keys = dict(n="512", steps="100", batch="16", lr="1e-2", seed="42", init="seed", print_every="10",
                max_loss_ratio="1e8", checkpoint_every="10", backend="cpu-f64", optimizer="adam", out="runs/x")
    keys.update(over)
    text = "format = 1\n" + "".join("%s = %s\n" % (k, v) for k, v in keys.items() if v is not None)
    return text.encode()


def checkpoint(cfg=None, step=10.0, version=1.0, m=None, drop=()):
    np_ = N - 1 + 4
    entries = [
        ("format_version", npy("<f8", "()", f8([version]))),
        ("config", npy("|u1", "(%d,)" % len(cfg or config()), cfg or config())),
        ("step", npy("<f8", "()", f8([step]))),
        ("first_loss", npy("<f8", "()", f8([1.0]))),
        ("M", m or GOOD_M),
        ("twiddles", GOOD_TW),
        ("opt_step", npy("<f8", "()", f8([step]))),
        ("metrics", npy("<f8", "(1, 4)", f8([10, 1, 1, 1]))),
        ("opt_m", npy("<c16", "(%d,)" % np_, c16([0] * np_))),
        ("opt_v", npy("<c16", "(%d,)" % np_, c16([0] * np_))),
    ]
    return npz([(k, v) for k, v in entries if k not in drop], zipfile.ZIP_DEFLATED)


CASES = [
    # .npy inputs: forward --input
    ("empty.npy", "input", b"", "not a .npy file"),
    ("bad_magic.npy", "input", b"\x89PNG\r\n\x1a\n" + b"\0" * 64, "not a .npy file"),
    ("truncated_header.npy", "input", npy("<f8", "(1, 512)", f8([0] * N))[:40], "truncated"),
    ("truncated_data.npy", "input", npy("<f8", "(2, 512)", f8([0] * N)), "truncated"),
    ("version9.npy", "input", b"\x93NUMPY\x09\x00" + b"\0" * 64, "format version 9"),
    ("absurd_header.npy", "input", b"\x93NUMPY\x02\x00" + struct.pack("<I", 2**31) + b"{", "header length 2147483648"),
    ("huge_length.npy", "input", npy("<f8", "(1099511627776, 512)", f8([0] * 4)), "needs 4503599627370496 data bytes"),
    ("overflow_shape.npy", "input", npy("<f8", "(4611686018427387904, 4611686018427387904)", b""), "overflows"),
    ("negative_shape.npy", "input", npy("<f8", "(-1, 512)", b""), "corrupt .npy header"),
    ("header_not_dict.npy", "input", npy("", "", b"", header="this is not a dict"), "corrupt .npy header"),
    ("float32.npy", "input", npy("<f4", "(1, 512)", b"\0" * 4 * N), "dtype '<f4'"),
    ("int64.npy", "input", npy("<i8", "(1, 512)", b"\0" * 8 * N), "dtype '<i8'"),
    ("big_endian.npy", "input", npy(">f8", "(1, 512)", b"\0" * 8 * N), "dtype '>f8'"),
    ("object.npy", "input", npy("|O", "(1, 512)", b"\0" * 8 * N), "'|O'"),
    ("complex_input.npy", "input", npy("<c16", "(1, 512)", c16([0] * N)), "expected float64"),
    ("one_dim.npy", "input", npy("<f8", "(512,)", f8([0] * N)), "shape (512,)"),
    ("wrong_columns.npy", "input", npy("<f8", "(2, 100)", f8([0] * 200)), "shape (2, 100)"),
    ("zero_rows.npy", "input", npy("<f8", "(0, 512)", b""), "batch of 0 rows"),
    ("fortran.npy", "input", npy("<f8", "(2, 512)", f8([0] * 2 * N), fortran=True), "Fortran"),
    ("nan.npy", "input", npy("<f8", "(1, 512)", f8([float("nan")] * N)), "NaN"),
    ("inf.npy", "input", npy("<f8", "(1, 512)", f8([float("inf")] * N)), "infinity"),
    # .npz parameter files: forward --params
    ("not_zip.npz", "params", b"PK\x03\x04" + b"\xff" * 200, "not a valid .npz"),
    ("truncated.npz", "params", npz([("M", GOOD_M), ("twiddles", GOOD_TW)])[:3000], "not a valid .npz"),
    ("missing_twiddles.npz", "params", npz([("M", GOOD_M)]), "missing array 'twiddles'"),
    ("missing_M.npz", "params", npz([("twiddles", GOOD_TW)]), "missing array 'M'"),
    ("twiddle_count.npz", "params", npz([("M", GOOD_M), ("twiddles", npy("<c16", "(510,)", c16([1] * 510)))]), "twiddles has 510 entries"),
    ("twiddles_float64.npz", "params", npz([("M", GOOD_M), ("twiddles", npy("<f8", "(511,)", f8([1] * 511)))]), "expected complex128"),
    ("M_shape.npz", "params", npz([("M", npy("<c16", "(3, 3)", c16([1] * 9))), ("twiddles", GOOD_TW)]), "shape (3, 3)"),
    ("nan_params.npz", "params", npz([("M", GOOD_M), ("twiddles", npy("<c16", "(511,)", c16([complex(float("nan"), 0)] * 511)))]), "NaN"),
    ("entry_truncated.npz", "params", npz([("M", GOOD_M), ("twiddles", GOOD_TW[:-100])]), "truncated"),
    # 256 MiB of zeros deflated to ~250 KiB, declared as the twiddles: read is bounded by the shape
    ("zip_bomb.npz", "params", npz([("M", GOOD_M), ("twiddles", npy("<c16", "(511,)", b"\0" * (256 << 20)))], zipfile.ZIP_DEFLATED), "larger than"),
    # checkpoints: train --resume DIR
    ("ck_unknown_key.npz", "checkpoint", checkpoint(cfg=config(colour="blue")), "config key 'colour' is unknown"),
    ("ck_missing_key.npz", "checkpoint", checkpoint(cfg=config(seed=None)), "config key 'seed' is missing"),
    ("ck_bad_number.npz", "checkpoint", checkpoint(cfg=config(lr="fast")), "lr = 'fast'"),
    ("ck_bad_backend.npz", "checkpoint", checkpoint(cfg=config(backend="tpu")), "backend 'tpu'"),
    ("ck_version.npz", "checkpoint", checkpoint(version=99.0), "format_version 99"),
    ("ck_step_fraction.npz", "checkpoint", checkpoint(step=2.5), "step = 2.5"),
    ("ck_missing_moments.npz", "checkpoint", checkpoint(drop=("opt_v",)), "no Adam slot 'v'"),
    ("ck_n_mismatch.npz", "checkpoint", checkpoint(cfg=config(n="64")), "config says n = 64"),
]


def main():
    os.makedirs(HERE, exist_ok=True)
    for f in os.listdir(HERE):
        os.remove(os.path.join(HERE, f))
    lines = []
    for name, role, data, needle in CASES:
        assert "\t" not in needle
        with open(os.path.join(HERE, name), "wb") as f:
            f.write(data)
        lines.append("%s\t%s\t%s\n" % (name, role, needle))
    with open(os.path.join(HERE, "EXPECT.tsv"), "w") as f:
        f.write("".join(lines))
    print("wrote %d files to %s" % (len(CASES), os.path.normpath(HERE)))


if __name__ == "__main__":
    main()
