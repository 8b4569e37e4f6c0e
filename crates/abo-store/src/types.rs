//! Identifiers, time and the closed enums the store persists. The numeric newtypes have the
//! same representation as abo-engine's (`u64`), so the master converts at its edge with a
//! field access; the store does not depend on the engine, whose types are still moving.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

macro_rules! numeric_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub u64);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = std::num::ParseIntError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                s.parse().map($name)
            }
        }
    };
}

numeric_id!(
    /// A build request (`build_requests.id`).
    RequestId
);
numeric_id!(
    /// A build (`builds.id`), unique across builders; the per-builder number is separate.
    BuildId
);
numeric_id!(
    /// A step row (`steps.id`). The API addresses steps by build and index instead.
    StepId
);
numeric_id!(
    /// A log (`logs.id`).
    LogId
);
numeric_id!(
    /// A change seen by a poller or a webhook (`changes.id`).
    ChangeId
);
numeric_id!(
    /// The right to write for one dispatch of a request: the request is claimed with it, the
    /// build carries it, and every write about the build (steps, logs, finish) must present
    /// it. A write with any other lease, or after the build finished, is refused with
    /// [`Error::StaleLease`](crate::Error::StaleLease).
    Lease
);

/// Milliseconds since the Unix epoch. The store never reads the clock for what it records:
/// the caller passes the time, so tests and the engine agree on it.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Timestamp(pub u64);

impl Timestamp {
    /// The current time from the system clock, for callers at the edge (the CLI, the master
    /// runtime). 0 if the clock is before 1970.
    pub fn now() -> Timestamp {
        let ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0);
        Timestamp(u64::try_from(ms).unwrap_or(u64::MAX))
    }
}

/// Declares a closed enum stored as a lower-case word, with `as_str` and `FromStr`.
macro_rules! word_enum {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident = $word:literal,)+ }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "lowercase")]
        pub enum $name {
            $($(#[$vdoc])* $variant,)+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            /// The word stored in the database and shown by the API.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $word,)+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = UnknownWord;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($word => Ok($name::$variant),)+
                    _ => Err(UnknownWord { kind: stringify!($name), word: s.to_owned() }),
                }
            }
        }
    };
}

/// A stored word that is not one of its enum's values (a database written by a newer abo,
/// or edited by hand).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} {word:?}")]
pub struct UnknownWord {
    /// The enum's name.
    pub kind: &'static str,
    /// The word found.
    pub word: String,
}

word_enum!(
    /// The result of a step, a build or a build request: Buildbot's result codes, by name.
    BuildResult {
        /// Everything passed.
        Success = "success",
        /// Passed, with warnings.
        Warnings = "warnings",
        /// A step failed.
        Failure = "failure",
        /// Skipped (a `doStepIf` said no).
        Skipped = "skipped",
        /// abo or the worker failed, not the code under test.
        Exception = "exception",
        /// Interrupted; the request is queued again.
        Retry = "retry",
        /// Stopped by a user.
        Cancelled = "cancelled",
    }
);

word_enum!(
    /// Where a build request is in its life.
    RequestState {
        /// Waiting for a worker.
        Queued = "queued",
        /// Taken by a dispatch (see [`Lease`]); its build may be running.
        Claimed = "claimed",
        /// Done, with a result.
        Complete = "complete",
    }
);

word_enum!(
    /// The two forms a log takes in storage (see the crate documentation, "Log format").
    LogKind {
        /// A command's output: stdout, stderr and header lines interleaved, each stored
        /// line prefixed with its stream's letter (`o`, `e`, `h`), as Buildbot's `s` logs.
        Stdio = "stdio",
        /// Plain text stored byte for byte, as Buildbot's `t` logs.
        Text = "text",
    }
);

/// Which stream of a command some output came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    /// The command's standard output.
    Stdout,
    /// The command's standard error.
    Stderr,
    /// Lines abo writes about the command (the command line, its environment, its exit).
    Header,
}

impl Stream {
    /// All three, in the order of [`Stream::index`].
    pub const ALL: [Stream; 3] = [Stream::Stdout, Stream::Stderr, Stream::Header];

    /// The letter that starts each of this stream's lines in a [`LogKind::Stdio`] log.
    pub fn prefix(self) -> u8 {
        match self {
            Stream::Stdout => b'o',
            Stream::Stderr => b'e',
            Stream::Header => b'h',
        }
    }

    /// The stream a stored line prefix stands for.
    pub fn from_prefix(b: u8) -> Option<Stream> {
        match b {
            b'o' => Some(Stream::Stdout),
            b'e' => Some(Stream::Stderr),
            b'h' => Some(Stream::Header),
            _ => None,
        }
    }

    pub(crate) fn index(self) -> usize {
        match self {
            Stream::Stdout => 0,
            Stream::Stderr => 1,
            Stream::Header => 2,
        }
    }
}
