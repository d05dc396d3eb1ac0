//! NumPy `.npy`/`.npz` files in and out: hardened readers (every bad file is a clear error,
//! never a panic or an unbounded allocation) and atomic writers (temp file, fsync, rename).

use crate::error::{Context, Error, Result};
use npyz::WriterBuilder;
use num_complex::Complex64;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// Largest header text accepted (numpy's own headers are < 1 KiB).
const MAX_HEADER: usize = 1 << 16;

/// The element type of an array.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dtype {
    /// float64, `<f8`.
    F64,
    /// complex128, `<c16`.
    C128,
    /// uint8, `|u1` (text such as a checkpoint's config, as bytes).
    U8,
}

impl Dtype {
    fn descr(self) -> &'static str {
        match self {
            Dtype::F64 => "float64 ('<f8')",
            Dtype::C128 => "complex128 ('<c16')",
            Dtype::U8 => "uint8 ('|u1')",
        }
    }
}

/// An array read from disk: shape and data in C order.
#[derive(Clone, Debug, PartialEq)]
pub enum Array {
    /// float64 data.
    F64(Vec<usize>, Vec<f64>),
    /// complex128 data.
    C128(Vec<usize>, Vec<Complex64>),
    /// uint8 data.
    U8(Vec<usize>, Vec<u8>),
}

/// A foreign error message on one line, at most 160 characters.
fn one_line(e: &dyn std::fmt::Display) -> String {
    let s: String = e.to_string().split_whitespace().collect::<Vec<_>>().join(" ");
    if s.chars().count() > 160 {
        format!("{}...", s.chars().take(160).collect::<String>())
    } else {
        s
    }
}

fn shape_str(shape: &[usize]) -> String {
    let s: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    if s.len() == 1 {
        format!("({},)", s[0])
    } else {
        format!("({})", s.join(", "))
    }
}

/// Expected shape: each entry a fixed size or any size (None).
pub type ShapeSpec<'a> = &'a [Option<usize>];

fn spec_str(spec: ShapeSpec) -> String {
    let s: Vec<String> = spec
        .iter()
        .map(|d| d.map_or("any".to_string(), |v| v.to_string()))
        .collect();
    if s.len() == 1 {
        format!("({},)", s[0])
    } else {
        format!("({})", s.join(", "))
    }
}

/// Parse one `.npy` image held in memory, checking the magic, header size, order, dtype,
/// and that the declared shape matches the bytes present, before any allocation.
pub fn parse_npy(bytes: &[u8], want: Dtype, spec: ShapeSpec) -> Result<Array> {
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err(Error::input(
            "not a .npy file (missing the \\x93NUMPY magic, or truncated)",
        ));
    }
    let major = bytes[6];
    let (hlen, prefix) = match major {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 => {
            if bytes.len() < 12 {
                return Err(Error::input("truncated .npy header"));
            }
            (
                u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
                12,
            )
        }
        v => {
            return Err(Error::input(format!(
                "unsupported .npy format version {v} (accepted: 1, 2, 3)"
            )))
        }
    };
    if hlen > MAX_HEADER {
        return Err(Error::input(format!(
            "absurd .npy header length {hlen} bytes (at most {MAX_HEADER} accepted)"
        )));
    }
    if prefix + hlen > bytes.len() {
        return Err(Error::input(format!(
            "truncated .npy file: header says {hlen} header bytes but the file has {} bytes",
            bytes.len()
        )));
    }
    let file = npyz::NpyFile::new(bytes).map_err(|e| {
        let text = String::from_utf8_lossy(&bytes[prefix..prefix + hlen]);
        Error::input(format!(
            "corrupt .npy header {:?}: {} (accepted: a dict with 'descr' '<f8', '<c16' or '|u1', 'fortran_order' False, and a shape tuple)",
            one_line(&text),
            one_line(&e)
        ))
    })?;
    if file.order() != npyz::Order::C {
        return Err(Error::input(
            "Fortran-order array: only C order is accepted (use np.ascontiguousarray)",
        ));
    }
    let descr = file.dtype().descr();
    let got = match descr.trim_matches('\'') {
        "<f8" => Dtype::F64,
        "<c16" => Dtype::C128,
        "|u1" => Dtype::U8,
        _ => {
            return Err(Error::input(format!(
                "dtype {descr} is not accepted: expected {}",
                want.descr()
            )));
        }
    };
    if got != want {
        return Err(Error::input(format!(
            "dtype {} is not accepted: expected {}",
            got.descr(),
            want.descr()
        )));
    }
    let shape: Vec<u64> = file.shape().to_vec();
    // checked element count: a huge declared length must not overflow or allocate
    let mut count: u64 = 1;
    for &d in &shape {
        count = count
            .checked_mul(d)
            .ok_or_else(|| Error::input("declared shape overflows"))?;
    }
    let item = match got {
        Dtype::F64 => 8,
        Dtype::C128 => 16,
        Dtype::U8 => 1,
    };
    let data_len = (bytes.len() - prefix - hlen) as u64;
    let need = count
        .checked_mul(item)
        .ok_or_else(|| Error::input("declared shape overflows"))?;
    if need != data_len {
        return Err(Error::input(format!(
            "declared shape {:?} needs {need} data bytes but the file holds {data_len} (truncated or corrupt)",
            shape
        )));
    }
    let shape: Vec<usize> = shape.iter().map(|&d| d as usize).collect();
    let ok = shape.len() == spec.len() && shape.iter().zip(spec).all(|(&d, s)| s.is_none_or(|v| v == d));
    if !ok {
        return Err(Error::input(format!(
            "shape {} is not accepted: expected {}",
            shape_str(&shape),
            spec_str(spec)
        )));
    }
    let map = |e: std::io::Error| Error::input(format!("corrupt .npy data: {e}"));
    Ok(match got {
        Dtype::F64 => Array::F64(shape, file.into_vec::<f64>().map_err(map)?),
        Dtype::C128 => Array::C128(shape, file.into_vec::<Complex64>().map_err(map)?),
        Dtype::U8 => Array::U8(shape, file.into_vec::<u8>().map_err(map)?),
    })
}

fn read_file_bounded(path: &Path) -> Result<Vec<u8>> {
    let meta = std::fs::metadata(path).map_err(|e| Error::input(format!("cannot open {}: {e}", path.display())))?;
    if !meta.is_file() {
        return Err(Error::input(format!("{} is not a regular file", path.display())));
    }
    std::fs::read(path).map_err(|e| Error::input(format!("cannot read {}: {e}", path.display())))
}

/// Read a float64 `.npy` file with the given shape spec.
pub fn read_npy_f64(path: &Path, spec: ShapeSpec) -> Result<(Vec<usize>, Vec<f64>)> {
    let bytes = read_file_bounded(path)?;
    match parse_npy(&bytes, Dtype::F64, spec).with_context(|| path.display().to_string())? {
        Array::F64(s, d) => Ok((s, d)),
        _ => unreachable!("parse_npy checked the dtype"),
    }
}

/// Read a complex128 `.npy` file with the given shape spec.
pub fn read_npy_c128(path: &Path, spec: ShapeSpec) -> Result<(Vec<usize>, Vec<Complex64>)> {
    let bytes = read_file_bounded(path)?;
    match parse_npy(&bytes, Dtype::C128, spec).with_context(|| path.display().to_string())? {
        Array::C128(s, d) => Ok((s, d)),
        _ => unreachable!("parse_npy checked the dtype"),
    }
}

/// An open `.npz` archive with bounded entry reads.
pub struct Npz {
    path: PathBuf,
    zip: npyz::zip::ZipArchive<std::io::Cursor<Vec<u8>>>,
}

impl Npz {
    /// Open an archive.
    pub fn open(path: &Path) -> Result<Self> {
        Self::from_bytes(read_file_bounded(path)?, path)
    }

    /// An archive held in memory; `path` names it in errors.
    pub fn from_bytes(bytes: Vec<u8>, path: &Path) -> Result<Self> {
        let zip = npyz::zip::ZipArchive::new(std::io::Cursor::new(bytes)).map_err(|e| {
            Error::input(format!(
                "{}: not a valid .npz (zip) file: {}",
                path.display(),
                one_line(&e)
            ))
        })?;
        Ok(Npz {
            path: path.to_path_buf(),
            zip,
        })
    }

    /// Array names present.
    pub fn names(&self) -> Vec<String> {
        self.zip
            .file_names()
            .map(|n| n.trim_end_matches(".npy").to_string())
            .collect()
    }

    /// Whether an array is present.
    pub fn has(&self, name: &str) -> bool {
        self.zip.file_names().any(|n| n == format!("{name}.npy"))
    }

    /// Read array `name`, reading at most `max_bytes` of it.
    pub fn read(&mut self, name: &str, want: Dtype, spec: ShapeSpec, max_bytes: u64) -> Result<Array> {
        let names = self.names().join(", ");
        let ctx = format!("{}: array '{name}'", self.path.display());
        let mut entry = match self.zip.by_name(&format!("{name}.npy")) {
            Ok(e) => e,
            Err(npyz::zip::result::ZipError::FileNotFound) => {
                return Err(Error::input(format!(
                    "{}: missing array '{name}' (arrays present: [{names}])",
                    self.path.display()
                )))
            }
            Err(e) => return Err(Error::input(format!("{ctx}: corrupt archive entry: {e}"))),
        };
        let mut buf = Vec::new();
        (&mut entry)
            .take(max_bytes + 1)
            .read_to_end(&mut buf)
            .map_err(|e| Error::input(format!("{ctx}: corrupt archive entry: {e}")))?;
        if buf.len() as u64 > max_bytes {
            return Err(Error::input(format!(
                "{ctx}: entry larger than the {max_bytes} bytes its shape allows"
            )));
        }
        parse_npy(&buf, want, spec).context(ctx)
    }

    /// Read a complex128 array.
    pub fn read_c128(&mut self, name: &str, spec: ShapeSpec, max_elems: usize) -> Result<(Vec<usize>, Vec<Complex64>)> {
        match self.read(
            name,
            Dtype::C128,
            spec,
            (MAX_HEADER as u64) + 16 * (max_elems as u64) + 64,
        )? {
            Array::C128(s, d) => Ok((s, d)),
            _ => unreachable!("checked"),
        }
    }

    /// Read a uint8 array (text stored as bytes).
    pub fn read_u8(&mut self, name: &str, max_elems: usize) -> Result<Vec<u8>> {
        match self.read(name, Dtype::U8, &[None], (MAX_HEADER as u64) + (max_elems as u64) + 64)? {
            Array::U8(_, d) => Ok(d),
            _ => unreachable!("checked"),
        }
    }

    /// Read a float64 array.
    pub fn read_f64(&mut self, name: &str, spec: ShapeSpec, max_elems: usize) -> Result<(Vec<usize>, Vec<f64>)> {
        match self.read(
            name,
            Dtype::F64,
            spec,
            (MAX_HEADER as u64) + 8 * (max_elems as u64) + 64,
        )? {
            Array::F64(s, d) => Ok((s, d)),
            _ => unreachable!("checked"),
        }
    }
}

/// An array to write.
#[derive(Clone, Copy)]
pub enum Out<'a> {
    /// float64 with shape.
    F64(&'a [usize], &'a [f64]),
    /// complex128 with shape.
    C128(&'a [usize], &'a [Complex64]),
    /// A float64 scalar (shape ()).
    Scalar(f64),
    /// uint8 bytes, shape (len,): text such as a config (`bytes(z['config']).decode()`).
    U8(&'a [u8]),
}

fn write_npy_into<W: Write>(w: W, arr: &Out) -> std::io::Result<()> {
    match arr {
        Out::F64(shape, data) => write_nd(w, shape, data.iter().copied()),
        Out::C128(shape, data) => write_nd(w, shape, data.iter().copied()),
        Out::U8(data) => write_nd(w, &[data.len()], data.iter().copied()),
        Out::Scalar(v) => write_nd(w, &[], std::iter::once(*v)),
    }
}

/// One array of `shape` in numpy's default dtype for `T`.
fn write_nd<T: npyz::AutoSerialize, W: Write>(
    w: W,
    shape: &[usize],
    data: impl IntoIterator<Item = T>,
) -> std::io::Result<()> {
    let shape: Vec<u64> = shape.iter().map(|&d| d as u64).collect();
    let mut wr = npyz::WriteOptions::<T>::new()
        .default_dtype()
        .shape(&shape)
        .writer(w)
        .begin_nd()?;
    wr.extend(data)?;
    wr.finish()
}

/// The one output-path policy of every file fftlearn writes: a new name, or a regular file
/// (replaced atomically). Anything else at the path (a symbolic link, a directory, a FIFO, a
/// socket, a character or block device such as /dev/null) is refused naming what it is, so a
/// rename never replaces a device node or a link with a regular file (as root it could).
pub fn check_out_file(path: &Path) -> Result<()> {
    let Ok(m) = std::fs::symlink_metadata(path) else {
        return Ok(());
    };
    let t = m.file_type();
    if t.is_file() {
        return Ok(());
    }
    let what = if t.is_symlink() {
        "a symbolic link"
    } else if t.is_dir() {
        "a directory"
    } else {
        special_kind(&t)
    };
    Err(Error::input(format!(
        "{} is {what}: fftlearn writes regular files only (a new name, or an existing regular file it replaces)",
        path.display()
    )))
}

/// [`check_out_file`], and the directory `path` would be written into exists and takes a new
/// file: what a command that measures for a while checks before it starts, so a bad `--out`
/// is refused at once.
pub fn check_out_early(path: &Path) -> Result<()> {
    check_out_file(path)?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if !dir.is_dir() {
        return Err(Error::input(format!(
            "cannot write {}: the directory {} does not exist",
            path.display(),
            dir.display()
        )));
    }
    probe(dir).map_err(|e| {
        Error::input(format!(
            "cannot write {}: the directory {} takes no new file ({e})",
            path.display(),
            dir.display()
        ))
    })
}

/// Whether `dir` takes a new file (a read-only directory, or /proc, does not): found now, by
/// a probe that is removed at once, not when the first result is written.
fn probe(dir: &Path) -> std::io::Result<()> {
    let probe = dir.join(format!(".fftlearn-probe-{}", std::process::id()));
    std::fs::OpenOptions::new().write(true).create_new(true).open(&probe)?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

/// A command's output directory (`--out DIR`): made, with any missing parents, and probed for
/// a new file when the command starts, so a bad `--out` is refused before anything is
/// measured. The directories it made are removed again when it is dropped while they are
/// still empty, so a command refused or failed before its first file leaves nothing behind.
pub struct OutDir {
    path: PathBuf,
    /// The directories this made, deepest first.
    made: Vec<PathBuf>,
}

impl OutDir {
    /// Make (or take) the directory `path` and check that it takes a new file.
    pub fn create(path: &Path) -> Result<OutDir> {
        if let Ok(m) = std::fs::metadata(path) {
            if !m.is_dir() {
                let t = m.file_type();
                let what = if t.is_file() {
                    "a regular file"
                } else {
                    special_kind(&t)
                };
                return Err(Error::input(format!(
                    "output directory {} is {what}: give a directory, or a new name for one",
                    path.display()
                )));
            }
        }
        let mut made = Vec::new();
        let mut p = path;
        while std::fs::symlink_metadata(p).is_err() {
            made.push(p.to_path_buf());
            match p.parent() {
                Some(q) if !q.as_os_str().is_empty() => p = q,
                _ => break,
            }
        }
        std::fs::create_dir_all(path)
            .map_err(|e| Error::input(format!("cannot create output directory {}: {e}", path.display())))?;
        let d = OutDir {
            path: path.to_path_buf(),
            made,
        };
        probe(path).map_err(|e| {
            Error::input(format!(
                "cannot write into output directory {}: it takes no new file ({e})",
                path.display()
            ))
        })?;
        Ok(d)
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Remove the files `names` (a command's own outputs) that an earlier run left here, so
    /// the directory holds one run's results; says so in one line of `log`. Only regular
    /// files are touched.
    pub fn remove_stale(&self, names: &[&str], log: &mut dyn Write) -> Result<()> {
        let mut removed = Vec::new();
        for name in names {
            let f = self.path.join(name);
            if std::fs::symlink_metadata(&f).is_ok_and(|m| m.is_file()) {
                std::fs::remove_file(&f)
                    .map_err(|e| Error::runtime(format!("cannot remove {} (an earlier run's): {e}", f.display())))?;
                removed.push(*name);
            }
        }
        if !removed.is_empty() {
            writeln!(
                log,
                "removed an earlier run's {} from {}",
                removed.join(", "),
                self.path.display()
            )?;
        }
        Ok(())
    }
}

impl Drop for OutDir {
    fn drop(&mut self) {
        // remove_dir leaves a directory that holds anything
        for d in &self.made {
            let _ = std::fs::remove_dir(d);
        }
    }
}

#[cfg(unix)]
fn special_kind(t: &std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if t.is_fifo() {
        "a FIFO"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else {
        "not a regular file"
    }
}

#[cfg(not(unix))]
fn special_kind(_: &std::fs::FileType) -> &'static str {
    "not a regular file"
}

/// Write `path` atomically: the bytes go to a temporary file in the same directory, which is
/// fsynced and then renamed over `path`. A crash leaves either the old file or the new one.
/// `path` must pass [`check_out_file`].
pub fn write_atomic(path: &Path, fill: impl FnOnce(&mut std::fs::File) -> std::io::Result<()>) -> Result<()> {
    check_out_file(path)?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| Error::input(format!("{} is not a file path", path.display())))?;
    let tmp = dir.join(format!(".{}.tmp{}", name.to_string_lossy(), std::process::id()));
    // a path that cannot be created is the user's to fix (exit 2); a failure while writing
    // (a full disk) is the machine's (exit 1)
    let mut f = std::fs::File::create(&tmp).map_err(|e| {
        Error::input(format!(
            "cannot write {}: {e} (the directory {} must exist and be writable)",
            path.display(),
            dir.display()
        ))
    })?;
    let res = (|| -> std::io::Result<()> {
        fill(&mut f)?;
        f.flush()?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        if let Ok(d) = std::fs::File::open(&dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    res.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::runtime(format!("cannot write {}: {e}", path.display()))
    })
}

/// Write text (a CSV, say), atomically.
pub fn write_text(path: &Path, text: &str) -> Result<()> {
    write_atomic(path, |f| f.write_all(text.as_bytes()))
}

/// Write one array as `.npy`, atomically.
pub fn write_npy(path: &Path, arr: Out) -> Result<()> {
    write_atomic(path, |f| {
        let mut w = std::io::BufWriter::new(f);
        write_npy_into(&mut w, &arr)?;
        w.flush()
    })
}

/// Write named arrays as `.npz` (a zip of `.npy` files that `np.load` opens), atomically. The
/// archive is built in memory first, so a failing disk never meets a half-written zip.
pub fn write_npz(path: &Path, arrays: &[(&str, Out)]) -> Result<()> {
    let bytes = (|| -> std::io::Result<Vec<u8>> {
        let mut zip = npyz::zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        for (name, arr) in arrays {
            let opts = npyz::zip::write::FileOptions::default()
                .compression_method(npyz::zip::CompressionMethod::Stored)
                .large_file(true)
                // a fixed time stamp: the same arrays give the same bytes (reruns compare byte for byte)
                .last_modified_time(npyz::zip::DateTime::default());
            zip.start_file(format!("{name}.npy"), opts)?;
            write_npy_into(&mut zip, arr)?;
        }
        Ok(zip.finish()?.into_inner())
    })()
    .map_err(|e| Error::runtime(format!("cannot build {}: {e}", path.display())))?;
    write_atomic(path, |f| f.write_all(&bytes))
}
