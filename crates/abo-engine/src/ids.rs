//! Identifiers and time: newtypes, so that a build id is never passed where a request id is
//! expected, and so that the engine never reads a clock (time is a [`Timestamp`] argument).

use std::fmt;
use std::sync::Arc;

/// Milliseconds since the Unix epoch, as given by the caller of
/// [`Engine::handle`](crate::Engine::handle). The engine never reads a clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(pub u64);

impl Timestamp {
    /// Milliseconds from `earlier` to `self`, 0 when `earlier` is later (a clock that went
    /// backwards must not make a duration negative or panic).
    pub fn since(self, earlier: Timestamp) -> u64 {
        self.0.saturating_sub(earlier.0)
    }
}

macro_rules! numeric_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(pub u64);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

numeric_id!(
    /// A build request, as numbered by the store (persisted before the engine hears of it).
    RequestId
);
numeric_id!(
    /// A build, as numbered by the store in answer to [`Action::CreateBuild`](crate::Action::CreateBuild).
    BuildId
);
numeric_id!(
    /// The right to write for one dispatch of a request to a worker. Handed out by the engine,
    /// monotonic for the life of one engine; every write about a build (step results, logs)
    /// must carry the lease of the dispatch it belongs to, so that a worker that comes back
    /// after its build was given to another (a SIGSTOP-ed worker resumed) is refused.
    Lease
);

macro_rules! name_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(Arc<str>);

        impl $name {
            /// The name as a string.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                $name(Arc::from(s))
            }
        }

        impl From<String> for $name {
            fn from(s: String) -> Self {
                $name(Arc::from(s))
            }
        }

        impl From<Arc<str>> for $name {
            fn from(s: Arc<str>) -> Self {
                $name(s)
            }
        }

        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }
    };
}

name_id!(
    /// A worker's name, as in workers.cfg.
    WorkerName
);
name_id!(
    /// A builder's name, as in the plan.
    BuilderName
);
