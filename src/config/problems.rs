//! What is wrong with a config, collected across the three steps so that a user sees every
//! problem at once.
//!
//! A problem is an error (the config is refused) or a warning (the config runs, and the problem
//! is shown). Every step reports into one `Problems`, through a `Reporter` that names what the
//! problem belongs to (`jobs[2] "app"`). This module words nothing itself besides the cut-off
//! line; it owns the order problems are shown in and how many.

use std::fmt;

/// The most problems listed; a config with more is not worth listing further.
const MAX_PROBLEMS: usize = 100;

/// Whether a problem refuses the config.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    /// The config is refused (exit status 2).
    Error,
    /// The config runs; the problem is shown.
    Warning,
}

/// One thing wrong with a config: how bad, where, what, and on which line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub severity: Severity,
    /// What the problem belongs to when that is not a top-level key: `jobs[2] "app"`,
    /// `watches[0] "db"`, `telemetry.metrics[1] "requests"`. Empty otherwise.
    pub path: String,
    /// The problem, starting with the key it is about: `health.ttl must be greater than zero`.
    pub message: String,
    /// The line of the offending value or key (of the enclosing object for a missing key);
    /// `None` for a problem of the environment.
    pub line: Option<u32>,
}

impl Problem {
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.is_error() {
            f.write_str("warning: ")?;
        }
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        f.write_str(&self.message)?;
        if let Some(line) = self.line {
            write!(f, " (line {line})")?;
        }
        Ok(())
    }
}

/// Every problem found so far, in the order found.
#[derive(Debug, Default)]
pub struct Problems {
    found: Vec<Problem>,
}

impl Problems {
    /// A reporter for the problems of `path` (`jobs[2] "app"`; empty for the top level).
    pub fn at(&mut self, path: impl Into<String>) -> Reporter<'_> {
        Reporter {
            problems: self,
            path: path.into(),
        }
    }

    /// An error of the environment, which has no line (`CONSUL_HTTP_TOKEN_FILE`).
    pub fn environment(&mut self, message: String) {
        self.push(Severity::Error, String::new(), message, None);
    }

    /// How many errors were found: steps compare counts to tell whether a part was sound.
    pub fn error_count(&self) -> usize {
        self.found.iter().filter(|p| p.is_error()).count()
    }

    /// Every problem as shown, in the order found: for the rules' unit tests.
    #[cfg(test)]
    pub fn messages(&self) -> Vec<String> {
        self.found.iter().map(ToString::to_string).collect()
    }

    fn push(&mut self, severity: Severity, path: String, message: String, line: Option<u32>) {
        self.found.push(Problem {
            severity,
            path,
            message,
            line,
        });
    }

    /// `value` with the warnings when there is no error, else every problem. Problems are in
    /// file order (those of the environment first, problems of one line in the order found);
    /// an error list has at most `MAX_PROBLEMS`, then a line that counts the rest.
    pub fn verdict<T>(self, value: Option<T>) -> Result<(T, Vec<Problem>), Vec<Problem>> {
        match value {
            Some(value) if self.error_count() == 0 => Ok((value, self.in_file_order())),
            _ => Err(self.refusal()),
        }
    }

    fn in_file_order(mut self) -> Vec<Problem> {
        self.found.sort_by_key(|p| p.line);
        self.found
    }

    fn refusal(mut self) -> Vec<Problem> {
        if self.error_count() == 0 {
            // Every step that gives up reports why; this only guards that promise.
            self.environment("the config is invalid".into());
        }
        let mut problems = self.in_file_order();
        if problems.len() > MAX_PROBLEMS {
            let more = problems.len() - MAX_PROBLEMS;
            problems.truncate(MAX_PROBLEMS);
            problems.push(Problem {
                severity: Severity::Error,
                path: String::new(),
                message: format!("and {more} more problems"),
                line: None,
            });
        }
        problems
    }
}

/// Reports the problems of one path (a job, a watch, a metric, or the top level).
pub struct Reporter<'a> {
    problems: &'a mut Problems,
    path: String,
}

impl Reporter<'_> {
    /// An error worded as it is.
    pub fn error(&mut self, message: impl Into<String>, line: u32) {
        let path = self.path.clone();
        self.problems
            .push(Severity::Error, path, message.into(), Some(line));
    }

    /// The error `<key> <message>`; the message is a predicate such as `must be positive`.
    pub fn key(&mut self, key: &str, message: impl fmt::Display, line: u32) {
        self.error(format!("{key} {message}"), line);
    }

    /// The warning `<key> <message>`: what ContainerPilot runs and pilot runs the same way, but
    /// doubts.
    pub fn warn_key(&mut self, key: &str, message: impl fmt::Display, line: u32) {
        let path = self.path.clone();
        let message = format!("{key} {message}");
        self.problems
            .push(Severity::Warning, path, message, Some(line));
    }

    /// How many errors were found so far, by every reporter.
    pub fn error_count(&self) -> usize {
        self.problems.error_count()
    }
}

/// A string for a message: quoted, and cut at 60 characters.
pub fn quote_short(s: &str) -> String {
    if s.chars().count() > 60 {
        let cut: String = s.chars().take(57).collect();
        format!("{:?}", format!("{cut}..."))
    } else {
        format!("{s:?}")
    }
}

/// The known word within two edits of `word`, ignoring case, if any: for "did you mean".
pub fn closest<'k>(word: &str, known: &[&'k str]) -> Option<&'k str> {
    let word = word.to_ascii_lowercase();
    known
        .iter()
        .map(|k| (edit_distance(&word, &k.to_ascii_lowercase()), *k))
        .filter(|&(d, _)| d <= 2)
        .min_by_key(|&(d, _)| d)
        .map(|(_, k)| k)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    if a.len() > 64 || b.len() > 64 {
        return usize::MAX;
    }
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut current = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != cb);
            current[j + 1] = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        previous = current;
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problem_display() {
        let mut problems = Problems::default();
        problems
            .at("jobs[2] \"app\"")
            .key("health.ttl", "must be greater than zero", 14);
        problems.environment("consul is required".into());
        let texts: Vec<String> = problems.found.iter().map(ToString::to_string).collect();
        assert_eq!(
            texts,
            [
                "jobs[2] \"app\": health.ttl must be greater than zero (line 14)",
                "consul is required",
            ]
        );
    }

    #[test]
    fn warnings_let_the_value_through_and_errors_do_not() {
        let mut problems = Problems::default();
        problems.at("").warn_key("when.source", "names nothing", 3);
        let (value, warnings) = problems.verdict(Some(7)).unwrap();
        assert_eq!(value, 7);
        assert_eq!(warnings.len(), 1);
        assert_eq!(warnings[0].severity, Severity::Warning);

        let mut problems = Problems::default();
        problems.at("").warn_key("a", "is odd", 1);
        problems.at("").key("b", "is wrong", 2);
        assert_eq!(problems.error_count(), 1);
        let all = problems.verdict(Some(7)).unwrap_err();
        assert_eq!(all.len(), 2, "the warnings are listed with the errors");
    }

    #[test]
    fn problems_are_sorted_by_line_and_bounded() {
        let mut problems = Problems::default();
        for line in (1..=150).rev() {
            problems.at("").key("k", "is wrong", line);
        }
        problems.environment("from the environment".into());
        let list = problems.verdict(None::<()>).unwrap_err();
        assert_eq!(list.len(), 101);
        assert_eq!(list[0].message, "from the environment");
        assert_eq!(list[1].line, Some(1));
        assert_eq!(list[100].message, "and 51 more problems");
    }

    #[test]
    fn giving_up_without_a_reason_is_still_an_error() {
        let list = Problems::default().verdict(None::<()>).unwrap_err();
        assert_eq!(list[0].message, "the config is invalid");
    }

    #[test]
    fn close_words() {
        assert_eq!(closest("intreval", &["interval", "ttl"]), Some("interval"));
        assert_eq!(closest("zzz", &["interval", "ttl"]), None);
        assert_eq!(closest("HEALTHY", &["healthy"]), Some("healthy"));
    }
}
