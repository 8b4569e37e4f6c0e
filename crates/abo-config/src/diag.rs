//! Diagnostics: every mistake found in a configuration file, with its place.
//!
//! Readers never stop at the first mistake: they collect [`Diagnostic`]s and keep
//! going, so that `abo check` can report all of them at once.

use std::fmt;

/// One mistake in one file: `file:line: what is wrong, what would be right`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file as the user named it (a path, or a label such as `master.toml`).
    pub file: String,
    /// 1-based line number; `None` only for mistakes that belong to no line
    /// (a file that is missing altogether).
    pub line: Option<u32>,
    /// What is wrong.
    pub message: String,
    /// What would be right, when there is something useful to say.
    pub help: Option<String>,
}

impl Diagnostic {
    pub fn new(file: impl Into<String>, line: u32, message: impl Into<String>) -> Self {
        Diagnostic {
            file: file.into(),
            line: Some(line),
            message: message.into(),
            help: None,
        }
    }

    /// A mistake that concerns a whole file rather than one of its lines.
    pub fn whole_file(file: impl Into<String>, message: impl Into<String>) -> Self {
        Diagnostic {
            file: file.into(),
            line: None,
            message: message.into(),
            help: None,
        }
    }

    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{}: {}", self.file, line, self.message)?,
            None => write!(f, "{}: {}", self.file, self.message)?,
        }
        if let Some(help) = &self.help {
            write!(f, ", {help}")?;
        }
        Ok(())
    }
}

/// Diagnostics gathered while reading; sorted by file and line when reported.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    pub fn push(&mut self, d: Diagnostic) {
        self.0.push(d);
    }
    pub fn extend(&mut self, other: impl IntoIterator<Item = Diagnostic>) {
        self.0.extend(other);
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    pub fn len(&self) -> usize {
        self.0.len()
    }
    /// Sorted by file, then line, keeping the order of discovery among equals.
    pub fn sorted(mut self) -> Vec<Diagnostic> {
        self.0
            .sort_by(|a, b| (&a.file, a.line).cmp(&(&b.file, b.line)));
        self.0
    }
}

impl IntoIterator for Diagnostics {
    type Item = Diagnostic;
    type IntoIter = std::vec::IntoIter<Diagnostic>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}
