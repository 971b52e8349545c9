//! Errors at the crate boundary.

use std::fmt;
use std::path::{Path, PathBuf};

/// Everything that can go wrong in this crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The manifests could not be loaded; every problem found is listed.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// The file or folder could not be watched for changes.
    #[error("cannot watch {}: {source}", path.display())]
    Watch {
        /// The path being watched.
        path: PathBuf,
        /// Why watching failed.
        #[source]
        source: notify::Error,
    },
}

/// Every problem found while loading a file or folder of manifests.
///
/// Loading does not stop at the first problem, so that all of them can be fixed in one go.
/// Displayed one problem per line.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct LoadError {
    problems: Vec<Problem>,
}

impl LoadError {
    pub(crate) fn new(problems: Vec<Problem>) -> Self {
        LoadError { problems }
    }

    /// The problems, in the order of the files and documents they are in.
    pub fn problems(&self) -> &[Problem] {
        &self.problems
    }

    /// The problems, by value.
    pub fn into_problems(self) -> Vec<Problem> {
        self.problems
    }
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, problem) in self.problems.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{problem}")?;
        }
        Ok(())
    }
}

/// One problem in one place, displayed as
/// `file:line:column (document N, Kind namespace/name): message`.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Problem {
    /// The file (or folder) the problem is in.
    pub file: PathBuf,
    /// 1-based line and column, when the parser gave them.
    pub position: Option<(u64, u64)>,
    /// 1-based index of the YAML document (or JSON value) in the file.
    pub document: Option<usize>,
    /// 1-based index of the element in a `kind: List`.
    pub item: Option<usize>,
    /// `Kind namespace/name` (or `Kind name`) of the object, when known.
    pub object: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl Problem {
    pub(crate) fn file(file: &Path, message: impl Into<String>) -> Self {
        Problem {
            file: file.to_owned(),
            position: None,
            document: None,
            item: None,
            object: None,
            message: message.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some((line, column)) = self.position {
            write!(f, ":{line}:{column}")?;
        }
        let mut context = Vec::with_capacity(3);
        if let Some(document) = self.document {
            context.push(format!("document {document}"));
        }
        if let Some(item) = self.item {
            context.push(format!("item {item}"));
        }
        if let Some(object) = &self.object {
            context.push(object.clone());
        }
        if !context.is_empty() {
            write!(f, " ({})", context.join(", "))?;
        }
        write!(f, ": {}", self.message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_one_problem_per_line() {
        let full = Problem {
            file: PathBuf::from("routes.yaml"),
            position: Some((42, 7)),
            document: Some(3),
            item: None,
            object: Some("HTTPRoute demo/web".to_owned()),
            message: "spec.rules[0].matches: invalid type".to_owned(),
        };
        let bare = Problem::file(Path::new("missing"), "cannot read: not found");
        let error = LoadError::new(vec![full, bare]);
        assert_eq!(
            error.to_string(),
            "routes.yaml:42:7 (document 3, HTTPRoute demo/web): spec.rules[0].matches: invalid type\n\
             missing: cannot read: not found"
        );
    }
}
