//! Reports as data: a [`Table`] of named columns, defined once by the measurement that makes
//! it and rendered by each front end: as CSV ([`Table::csv`]), as the console's aligned table
//! ([`Table::console`], the columns given a heading), and by the Python module as a dict of
//! numpy arrays or a list of dicts.

/// A column's values.
#[derive(Clone, Debug, PartialEq)]
pub enum Values {
    /// Names.
    Text(Vec<String>),
    /// Counts.
    Int(Vec<i64>),
    /// Measurements (CSV writes them with `{:e}`: shortest round-trip form).
    Float(Vec<f64>),
}

impl Values {
    fn len(&self) -> usize {
        match self {
            Values::Text(v) => v.len(),
            Values::Int(v) => v.len(),
            Values::Float(v) => v.len(),
        }
    }
}

/// How the console shows a column's values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shown {
    /// Left-aligned as they are.
    Left,
    /// Right-aligned as they are.
    Right,
    /// Scientific, with this many digits after the point.
    Sci(usize),
    /// Fixed, with this many digits after the point.
    Fixed(usize),
}

/// One named column.
#[derive(Clone, Debug, PartialEq)]
pub struct Column {
    /// Its name in CSV files and Python.
    pub name: String,
    /// Its values, one per row.
    pub values: Values,
    /// The console's heading, width and format (None: not on the console).
    pub console: Option<(String, usize, Shown)>,
}

/// Named columns of equal length.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Table {
    /// The columns, in order.
    pub columns: Vec<Column>,
}

impl Table {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    fn push(mut self, name: &str, values: Values) -> Self {
        if let Some(c) = self.columns.first() {
            assert_eq!(
                c.values.len(),
                values.len(),
                "column {name}: every column has one value per row"
            );
        }
        self.columns.push(Column {
            name: name.to_string(),
            values,
            console: None,
        });
        self
    }

    /// Add a column of names.
    pub fn text(self, name: &str, values: impl IntoIterator<Item = String>) -> Self {
        self.push(name, Values::Text(values.into_iter().collect()))
    }

    /// Add a column of counts.
    pub fn int(self, name: &str, values: impl IntoIterator<Item = i64>) -> Self {
        self.push(name, Values::Int(values.into_iter().collect()))
    }

    /// Add a column of measurements.
    pub fn float(self, name: &str, values: impl IntoIterator<Item = f64>) -> Self {
        self.push(name, Values::Float(values.into_iter().collect()))
    }

    /// Show the last column added on the console, under `head`, `width` characters wide.
    pub fn shown(mut self, head: &str, width: usize, how: Shown) -> Self {
        if let Some(c) = self.columns.last_mut() {
            c.console = Some((head.to_string(), width, how));
        }
        self
    }

    /// Rows.
    pub fn len(&self) -> usize {
        self.columns.first().map_or(0, |c| c.values.len())
    }

    /// Whether it has no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The column named `name`.
    pub fn column(&self, name: &str) -> Option<&Values> {
        self.columns.iter().find(|c| c.name == name).map(|c| &c.values)
    }

    /// The CSV text: a header of the names, then one line per row (ending in a newline).
    pub fn csv(&self) -> String {
        let mut s = self
            .columns
            .iter()
            .map(|c| c.name.as_str())
            .collect::<Vec<_>>()
            .join(",");
        s.push('\n');
        for i in 0..self.len() {
            let cells: Vec<String> = self
                .columns
                .iter()
                .map(|c| match &c.values {
                    Values::Text(v) => v[i].clone(),
                    Values::Int(v) => v[i].to_string(),
                    Values::Float(v) => format!("{:e}", v[i]),
                })
                .collect();
            s.push_str(&cells.join(","));
            s.push('\n');
        }
        s
    }

    /// The console's lines: the headings, then one line per row, of the columns with a
    /// heading, separated by one space.
    pub fn console(&self) -> Vec<String> {
        let shown: Vec<(&Column, &(String, usize, Shown))> = self
            .columns
            .iter()
            .filter_map(|c| c.console.as_ref().map(|s| (c, s)))
            .collect();
        let cell = |text: String, w: usize, how: Shown| match how {
            Shown::Left => format!("{text:<w$}"),
            _ => format!("{text:>w$}"),
        };
        let mut lines = vec![shown
            .iter()
            .map(|(_, (head, w, how))| cell(head.clone(), *w, *how))
            .collect::<Vec<_>>()
            .join(" ")];
        for i in 0..self.len() {
            lines.push(
                shown
                    .iter()
                    .map(|(c, (_, w, how))| {
                        let text = match (&c.values, how) {
                            (Values::Text(v), _) => v[i].clone(),
                            (Values::Int(v), _) => v[i].to_string(),
                            (Values::Float(v), Shown::Sci(p)) => format!("{:.p$e}", v[i]),
                            (Values::Float(v), Shown::Fixed(p)) => format!("{:.p$}", v[i]),
                            (Values::Float(v), _) => format!("{:e}", v[i]),
                        };
                        cell(text, *w, *how)
                    })
                    .collect::<Vec<_>>()
                    .join(" "),
            );
        }
        lines
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_table_renders_as_csv_and_as_the_console() {
        let t = Table::new()
            .text("group", ["M".to_string(), "stage1".to_string()])
            .shown("group", 7, Shown::Left)
            .int("batch", [16, 256])
            .float("std", [0.5, 1.25e-3])
            .shown("std", 10, Shown::Sci(2))
            .float("cos", [0.123456, f64::NAN])
            .shown("cos", 7, Shown::Fixed(3));
        assert_eq!(t.len(), 2);
        assert_eq!(
            t.csv(),
            "group,batch,std,cos\nM,16,5e-1,1.23456e-1\nstage1,256,1.25e-3,NaN\n"
        );
        assert_eq!(
            t.console(),
            [
                "group          std     cos",
                "M          5.00e-1   0.123",
                "stage1     1.25e-3     NaN"
            ]
        );
        assert_eq!(t.column("batch"), Some(&Values::Int(vec![16, 256])));
    }
}
