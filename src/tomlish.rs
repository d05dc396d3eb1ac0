//! A reader for the TOML subset sweep configs use: `key = value` lines, `#` comments, values
//! that are integers, floats, booleans, "strings" or one-line `[arrays]` of those. Tables,
//! multi-line arrays and dates are refused with the line number.

use crate::error::{Error, Result};

/// A value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// An integer (also usable as a float).
    Int(i64),
    /// A float.
    Float(f64),
    /// A string.
    Str(String),
    /// A boolean.
    Bool(bool),
    /// A one-line array.
    Array(Vec<Value>),
}

impl Value {
    /// The value's TOML type name.
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Int(_) => "integer",
            Value::Float(_) => "float",
            Value::Str(_) => "string",
            Value::Bool(_) => "boolean",
            Value::Array(_) => "array",
        }
    }
}

/// The `key = value` pairs of a document, in order; a repeated key is an error.
pub fn parse(text: &str, what: &str) -> Result<Vec<(String, Value)>> {
    let mut out: Vec<(String, Value)> = Vec::new();
    for (ln, raw) in text.lines().enumerate() {
        let line = strip_comment(raw).trim();
        if line.is_empty() {
            continue;
        }
        let at = || format!("{what}:{}", ln + 1);
        if line.starts_with('[') {
            return Err(Error::input(format!(
                "{}: tables ('{line}') are not supported; write every key at the top level",
                at()
            )));
        }
        let (k, v) = line
            .split_once('=')
            .ok_or_else(|| Error::input(format!("{}: expected 'key = value', got '{line}'", at())))?;
        let key = k.trim().trim_matches('"').to_string();
        if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
            return Err(Error::input(format!("{}: bad key '{}'", at(), k.trim())));
        }
        if out.iter().any(|(k, _)| *k == key) {
            return Err(Error::input(format!("{}: key '{key}' is given twice", at())));
        }
        let mut p = Parser {
            s: v.trim().as_bytes(),
            i: 0,
        };
        let val = p
            .value()
            .and_then(|v| {
                p.ws();
                if p.i == p.s.len() {
                    Ok(v)
                } else {
                    Err(format!(
                        "unexpected '{}' after the value",
                        String::from_utf8_lossy(&p.s[p.i..])
                    ))
                }
            })
            .map_err(|e| Error::input(format!("{}: key '{key}': {e}", at())))?;
        out.push((key, val));
    }
    Ok(out)
}

fn strip_comment(line: &str) -> &str {
    let mut in_str = false;
    for (i, c) in line.char_indices() {
        match c {
            '"' => in_str = !in_str,
            '#' if !in_str => return &line[..i],
            _ => {}
        }
    }
    line
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn ws(&mut self) {
        while self.i < self.s.len() && (self.s[self.i] == b' ' || self.s[self.i] == b'\t') {
            self.i += 1;
        }
    }

    fn value(&mut self) -> std::result::Result<Value, String> {
        self.ws();
        match self.s.get(self.i) {
            None => Err("missing value".into()),
            Some(b'[') => {
                self.i += 1;
                let mut items = Vec::new();
                loop {
                    self.ws();
                    if self.s.get(self.i) == Some(&b']') {
                        self.i += 1;
                        return Ok(Value::Array(items));
                    }
                    items.push(self.value()?);
                    self.ws();
                    match self.s.get(self.i) {
                        Some(b',') => self.i += 1,
                        Some(b']') => {}
                        None => return Err("unterminated array (arrays must fit on one line)".into()),
                        Some(c) => return Err(format!("expected ',' or ']' in the array, got '{}'", *c as char)),
                    }
                }
            }
            Some(b'"') => {
                self.i += 1;
                let start = self.i;
                while self.i < self.s.len() && self.s[self.i] != b'"' {
                    if self.s[self.i] == b'\\' {
                        return Err("escapes in strings are not supported".into());
                    }
                    self.i += 1;
                }
                if self.i == self.s.len() {
                    return Err("unterminated string".into());
                }
                let v = String::from_utf8_lossy(&self.s[start..self.i]).to_string();
                self.i += 1;
                Ok(Value::Str(v))
            }
            Some(_) => {
                let start = self.i;
                while self.i < self.s.len() && !matches!(self.s[self.i], b',' | b']' | b' ' | b'\t') {
                    self.i += 1;
                }
                let tok = String::from_utf8_lossy(&self.s[start..self.i]).to_string();
                match tok.as_str() {
                    "true" => return Ok(Value::Bool(true)),
                    "false" => return Ok(Value::Bool(false)),
                    _ => {}
                }
                let clean = tok.replace('_', "");
                if let Ok(v) = clean.parse::<i64>() {
                    return Ok(Value::Int(v));
                }
                match clean.parse::<f64>() {
                    Ok(v) if v.is_finite() => Ok(Value::Float(v)),
                    _ => Err(format!("'{tok}' is not a number, boolean, \"string\" or [array]")),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_subset() {
        let v = parse(
            "# grid\nn = [8, 16, 1_024] # sizes\nlr = [1e-2, 0.5]\ninit = [\"seed\", \"a#b\"]\nthreshold = 1e-6\nok = true\nsteps = 3000\n",
            "t",
        )
        .unwrap();
        assert_eq!(
            v[0],
            (
                "n".into(),
                Value::Array(vec![Value::Int(8), Value::Int(16), Value::Int(1024)])
            )
        );
        assert_eq!(v[1].1, Value::Array(vec![Value::Float(1e-2), Value::Float(0.5)]));
        assert_eq!(
            v[2].1,
            Value::Array(vec![Value::Str("seed".into()), Value::Str("a#b".into())])
        );
        assert_eq!(v[3].1, Value::Float(1e-6));
        assert_eq!(v[4].1, Value::Bool(true));
        assert_eq!(v[5].1, Value::Int(3000));
    }

    #[test]
    fn refuses_what_it_does_not_read() {
        for (doc, needle) in [
            ("[grid]\n", "tables"),
            ("n = [1, 2\n", "unterminated array"),
            ("n = 1\nn = 2\n", "twice"),
            ("n 1\n", "expected 'key = value'"),
            ("x = \"abc\n", "unterminated string"),
            ("x = nan\n", "not a number"),
            ("x = 1 2\n", "unexpected"),
        ] {
            let e = parse(doc, "cfg.toml").unwrap_err().to_string();
            assert!(e.contains(needle), "{doc:?}: {e}");
            assert!(e.contains("cfg.toml:"), "{e}");
        }
    }
}
