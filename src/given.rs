//! Which settings a user gave, and how their front end spells them: the CLI's `--max-loss-ratio 5`
//! or Python's `max_loss_ratio=5`. Library procedures that refuse a setting (one that would
//! change nothing, or that conflicts with a checkpoint) name it through [`Given`], so one
//! refusal serves both front ends in their own words.

/// How a front end spells a setting.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Style {
    /// `--max-loss-ratio 5`.
    #[default]
    Cli,
    /// `max_loss_ratio=5`.
    Python,
}

/// The settings a user gave explicitly (ids in snake case, as the CLI's clap ids:
/// `print_every`), and their front end's style.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Given {
    ids: Vec<String>,
    style: Style,
}

/// The settings of the GPU path: given to a run on the CPU f64 path they would change nothing.
pub const GPU_SETTINGS: [&str; 6] = ["precision", "kernel", "chunk", "dispatch_cap", "adapter", "adapters"];

impl Given {
    /// These ids, given in `style`.
    pub fn new(ids: impl IntoIterator<Item = impl Into<String>>, style: Style) -> Self {
        Given {
            ids: ids.into_iter().map(Into::into).collect(),
            style,
        }
    }

    /// The front end's style.
    pub fn style(&self) -> Style {
        self.style
    }

    /// Whether `id` was given.
    pub fn has(&self, id: &str) -> bool {
        self.ids.iter().any(|i| i == id)
    }

    /// The setting `id` as the front end spells it: `--print-every` or `print_every`.
    pub fn name(&self, id: &str) -> String {
        match self.style {
            Style::Cli => format!("--{}", id.replace('_', "-")),
            Style::Python => id.to_string(),
        }
    }

    /// The setting with a value: `--device gpu`, or `device='gpu'` (numbers unquoted).
    pub fn with(&self, id: &str, value: impl std::fmt::Display) -> String {
        let v = value.to_string();
        match self.style {
            Style::Cli => format!("{} {v}", self.name(id)),
            Style::Python if v.parse::<f64>().is_ok() => format!("{id}={v}"),
            Style::Python => format!("{id}='{v}'"),
        }
    }

    /// The given settings among `ids`, each as [`Given::name`] spells it, in `ids`' order.
    pub fn names(&self, ids: &[&str]) -> Vec<String> {
        ids.iter().filter(|i| self.has(i)).map(|i| self.name(i)).collect()
    }

    /// Refuse the GPU path's settings on a run that takes the CPU f64 path: `why` says which
    /// choice put it there (e.g. `--device cpu`); `gpu_possible`: whether the GPU path is a
    /// way on (not for a CPU-only optimizer or a resumed CPU run).
    pub fn refuse_gpu_settings(&self, why: &str, gpu_possible: bool) -> crate::Result<()> {
        let set = self.names(&GPU_SETTINGS);
        if set.is_empty() {
            return Ok(());
        }
        Err(crate::Error::input(format!(
            "{} {} the GPU path, but {why}; drop {}{}",
            set.join(", "),
            agree(&set, "sets", "set"),
            agree(&set, "it", "them"),
            if gpu_possible {
                format!(" or use {}", self.with("device", "gpu"))
            } else {
                String::new()
            }
        )))
    }

    /// Refuse a list setting `id` that holds one value twice, naming it and both positions:
    /// "--batches: batch 64 given twice (at positions 1 and 3); each is measured once".
    pub fn refuse_repeats<T: PartialEq + std::fmt::Display>(
        &self,
        id: &str,
        v: &[T],
        what: &str,
        why: &str,
    ) -> crate::Result<()> {
        match first_repeat(v) {
            Some((j, i)) => Err(crate::Error::input(format!(
                "{}: {what} {} given twice (at positions {} and {}); {why}",
                self.name(id),
                v[i],
                j + 1,
                i + 1
            ))),
            None => Ok(()),
        }
    }
}

/// The first value of `v` that repeats an earlier one: (the earlier index, its index).
pub fn first_repeat<T: PartialEq>(v: &[T]) -> Option<(usize, usize)> {
    (0..v.len()).find_map(|i| v[..i].iter().position(|y| *y == v[i]).map(|j| (j, i)))
}

/// The word of a refusal that agrees with its list of settings: `one` for a single name,
/// `many` otherwise ("--lr sets", "--lr, --batch set").
pub fn agree<'a>(names: &[String], one: &'a str, many: &'a str) -> &'a str {
    if names.len() == 1 {
        one
    } else {
        many
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_are_named_as_each_front_end_spells_them() {
        let cli = Given::new(["print_every", "kernel"], Style::Cli);
        let py = Given::new(["print_every", "kernel"], Style::Python);
        assert_eq!(
            cli.names(&["kernel", "lr", "print_every"]),
            ["--kernel", "--print-every"]
        );
        assert_eq!(py.names(&["kernel", "lr", "print_every"]), ["kernel", "print_every"]);
        assert_eq!(cli.with("device", "gpu"), "--device gpu");
        assert_eq!(py.with("device", "gpu"), "device='gpu'");
        assert_eq!(py.with("batch", 64), "batch=64");
        let e = py
            .refuse_gpu_settings("device='cpu' runs the CPU f64 path", true)
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "kernel sets the GPU path, but device='cpu' runs the CPU f64 path; drop it or use device='gpu'"
        );
        assert!(Given::new(["lr"], Style::Cli).refuse_gpu_settings("x", true).is_ok());
    }

    #[test]
    fn a_repeat_is_named_by_both_positions() {
        assert_eq!(first_repeat::<u32>(&[]), None);
        assert_eq!(first_repeat(&[1, 2, 3]), None);
        // the first value to repeat an earlier one, not the first value that repeats later
        assert_eq!(first_repeat(&[5, 7, 9, 7, 5]), Some((1, 3)));
        assert_eq!(first_repeat(&[0.1, 0.2, 0.1]), Some((0, 2)));
        let e = Given::new(["batches"], Style::Cli)
            .refuse_repeats("batches", &[64, 8, 64], "batch", "each is measured once")
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "--batches: batch 64 given twice (at positions 1 and 3); each is measured once"
        );
    }
}
