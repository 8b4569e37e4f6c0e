//! Results of steps and builds, and how a step's result counts towards its build's: Buildbot's
//! `worst_status` and `computeResultAndTermination`, rule for rule.

use abo_plan::Step;
use std::fmt;
use std::str::FromStr;

/// The result of a step or of a build (Buildbot's result codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BuildResult {
    Success,
    Warnings,
    Failure,
    Skipped,
    Exception,
    Retry,
    Cancelled,
}

impl BuildResult {
    /// Every result, in Buildbot's numbering order (0..=6).
    pub const ALL: [BuildResult; 7] = [
        BuildResult::Success,
        BuildResult::Warnings,
        BuildResult::Failure,
        BuildResult::Skipped,
        BuildResult::Exception,
        BuildResult::Retry,
        BuildResult::Cancelled,
    ];

    /// The lower-case name Buildbot uses (`success`, `warnings`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            BuildResult::Success => "success",
            BuildResult::Warnings => "warnings",
            BuildResult::Failure => "failure",
            BuildResult::Skipped => "skipped",
            BuildResult::Exception => "exception",
            BuildResult::Retry => "retry",
            BuildResult::Cancelled => "cancelled",
        }
    }

    /// Buildbot's numeric code (the value stored in its database).
    pub fn code(self) -> u8 {
        match self {
            BuildResult::Success => 0,
            BuildResult::Warnings => 1,
            BuildResult::Failure => 2,
            BuildResult::Skipped => 3,
            BuildResult::Exception => 4,
            BuildResult::Retry => 5,
            BuildResult::Cancelled => 6,
        }
    }

    /// How bad a result is, for [`worst`]: Buildbot's `worst_status` order
    /// `SKIPPED < SUCCESS < WARNINGS < FAILURE < EXCEPTION < RETRY < CANCELLED`. Not the
    /// numeric code: skipped (3) counts as better than success, so that a skipped step
    /// never spoils a build.
    fn severity(self) -> u8 {
        match self {
            BuildResult::Skipped => 0,
            BuildResult::Success => 1,
            BuildResult::Warnings => 2,
            BuildResult::Failure => 3,
            BuildResult::Exception => 4,
            BuildResult::Retry => 5,
            BuildResult::Cancelled => 6,
        }
    }
}

impl fmt::Display for BuildResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is not one of Buildbot's results.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown result `{0}` (expected success, warnings, failure, skipped, exception, retry or cancelled)")]
pub struct UnknownResult(pub String);

impl FromStr for BuildResult {
    type Err = UnknownResult;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        BuildResult::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| UnknownResult(s.to_string()))
    }
}

/// Buildbot's `worst_status(a, b)`.
pub fn worst(a: BuildResult, b: BuildResult) -> BuildResult {
    if a.severity() >= b.severity() {
        a
    } else {
        b
    }
}

/// How one step's result counts towards its build: Buildbot's
/// `computeResultAndTermination(step, result, previous)`. Returns the build's result so far
/// and whether the build stops here (remaining steps skipped).
///
/// The plan has no `warn_on_warnings`/`flunk_on_warnings` flags: a step that ends with
/// warnings (the log analysis, typically) marks the build `warnings`, as a Buildbot step
/// with `warnOnWarnings` does, so that the warning shows on the build.
pub fn step_counts(step: &Step, result: BuildResult, previous: BuildResult) -> (BuildResult, bool) {
    let (possible, terminate) = match result {
        BuildResult::Failure => {
            // The order of these three assignments is Buildbot's: flunk wins over warn.
            let mut possible = BuildResult::Success;
            if step.warn_on_failure {
                possible = BuildResult::Warnings;
            }
            if step.flunk_on_failure {
                possible = BuildResult::Failure;
            }
            (possible, step.halt_on_failure)
        }
        BuildResult::Warnings => (BuildResult::Warnings, false),
        BuildResult::Success | BuildResult::Skipped => (result, false),
        BuildResult::Exception | BuildResult::Retry | BuildResult::Cancelled => (result, true),
    };
    (worst(previous, possible), terminate)
}

#[cfg(test)]
mod tests {
    use super::*;
    use abo_plan::StepKind;
    use BuildResult::*;

    #[test]
    fn worst_is_buildbots_order() {
        let order = [
            Skipped, Success, Warnings, Failure, Exception, Retry, Cancelled,
        ];
        for (i, a) in order.iter().enumerate() {
            for (j, b) in order.iter().enumerate() {
                let expected = if i >= j { *a } else { *b };
                assert_eq!(worst(*a, *b), expected, "{a} vs {b}");
            }
        }
    }

    #[test]
    fn names_round_trip() {
        for r in BuildResult::ALL {
            assert_eq!(r.as_str().parse::<BuildResult>(), Ok(r));
            assert_eq!(BuildResult::ALL[r.code() as usize], r);
        }
        assert!("nope".parse::<BuildResult>().is_err());
    }

    /// The halt/flunk/warn matrix: (halt, flunk, warn, step result) → (build, terminate).
    #[test]
    fn halt_flunk_warn_matrix() {
        type Case = (bool, bool, bool, BuildResult, BuildResult, bool);
        let cases: &[Case] = &[
            (false, false, false, Failure, Success, false),
            (false, false, true, Failure, Warnings, false),
            (false, true, false, Failure, Failure, false),
            (false, true, true, Failure, Failure, false),
            (true, false, false, Failure, Success, true),
            (true, false, true, Failure, Warnings, true),
            (true, true, false, Failure, Failure, true),
            (true, true, true, Failure, Failure, true),
            (true, true, true, Success, Success, false),
            (true, true, true, Warnings, Warnings, false),
            (false, false, false, Skipped, Success, false),
            (false, false, false, Exception, Exception, true),
            (false, false, false, Retry, Retry, true),
            (false, false, false, Cancelled, Cancelled, true),
        ];
        for &(halt, flunk, warn, result, build, terminate) in cases {
            let mut step = Step::new("s", StepKind::Shell);
            step.halt_on_failure = halt;
            step.flunk_on_failure = flunk;
            step.warn_on_failure = warn;
            assert_eq!(
                step_counts(&step, result, Success),
                (build, terminate),
                "halt={halt} flunk={flunk} warn={warn} {result}"
            );
        }
        // The build's result never improves.
        let step = Step::new("s", StepKind::Shell);
        assert_eq!(step_counts(&step, Success, Failure), (Failure, false));
    }
}
