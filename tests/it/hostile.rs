//! The hostile-file corpus (tests/data/hostile, made by tools/make_hostile_corpus.py): every
//! file is answered by the binary with exit code 2 and one `error:` line naming what is wrong,
//! never a panic, an abort or an out-of-memory.

use std::path::{Path, PathBuf};
use std::process::Command;

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/hostile")
}

#[test]
fn every_hostile_file_gets_one_clear_error() {
    let dir = corpus();
    let manifest = std::fs::read_to_string(dir.join("EXPECT.tsv")).unwrap();
    let tmp = std::env::temp_dir().join(format!("fftlearn-hostile-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).unwrap();
    let params = tmp.join("P.npz");
    let input = tmp.join("X.npy");
    let bin = env!("CARGO_BIN_EXE_fftlearn");
    assert!(Command::new(bin)
        .args(["init", "--out", params.to_str().unwrap()])
        .output()
        .unwrap()
        .status
        .success());
    fftlearn::io::npy::write_npy(&input, fftlearn::io::npy::Out::F64(&[1, 512], &[0.5; 512])).unwrap();
    let mut count = 0;
    for line in manifest.lines() {
        let f: Vec<&str> = line.split('\t').collect();
        let (file, role, needle) = (f[0], f[1], f[2]);
        let path = dir.join(file);
        let out_y = tmp.join("Y.npy");
        let out = match role {
            "input" => Command::new(bin)
                .args(["forward", "--params"])
                .arg(&params)
                .arg("--input")
                .arg(&path)
                .arg("--out")
                .arg(&out_y)
                .output(),
            "params" => Command::new(bin)
                .args(["forward", "--params"])
                .arg(&path)
                .arg("--input")
                .arg(&input)
                .arg("--out")
                .arg(&out_y)
                .output(),
            "checkpoint" => {
                let run = tmp.join(file.trim_end_matches(".npz"));
                std::fs::create_dir_all(&run).unwrap();
                std::fs::copy(&path, run.join("checkpoint.npz")).unwrap();
                Command::new(bin).args(["train", "--resume"]).arg(&run).output()
            }
            r => panic!("unknown role {r} in EXPECT.tsv"),
        }
        .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{file}: stderr {err}");
        let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(lines.len(), 1, "{file}: want one error line, got {err}");
        assert!(lines[0].starts_with("error:"), "{file}: {err}");
        assert!(lines[0].contains(needle), "{file}: error lacks '{needle}': {err}");
        assert!(
            lines[0].contains(file) || role == "checkpoint" && lines[0].contains("checkpoint.npz"),
            "{file}: error does not name the file: {err}"
        );
        assert!(!out_y.exists(), "{file}: an output was written despite the error");
        count += 1;
    }
    assert!(count >= 35, "corpus has only {count} entries");
}
