//! Changes drive builds: every new change (from a poller, a webhook or `POST
//! /api/v1/changes`) is stored first, then published on the [`ChangeFeed`]; the scheduler
//! task reads the feed and turns changes into build requests.

use abo_store::Change;
use tokio::sync::mpsc;

/// Where stored changes are published for the schedulers. Cheap to clone.
#[derive(Clone, Debug)]
pub(crate) struct ChangeFeed {
    tx: mpsc::UnboundedSender<Change>,
}

impl ChangeFeed {
    /// A feed and the receiving end the scheduler task reads.
    pub(crate) fn new() -> (ChangeFeed, mpsc::UnboundedReceiver<Change>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (ChangeFeed { tx }, rx)
    }

    /// Publishes a change already stored. Unbounded: changes are few and already on disk,
    /// and a publisher must never wait on the schedulers.
    pub(crate) fn publish(&self, change: Change) {
        let _ = self.tx.send(change);
    }
}
