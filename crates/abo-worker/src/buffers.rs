//! [`Buffers`]: the large byte buffers of the output path, handed back after use and reused.
//!
//! Each update's gathered text and its encoded frame are about `buffer_size` bytes, made and
//! dropped once per update. Allocating them afresh costs more than filling them: the
//! allocator gives freed memory back to the system (anything over 128 KiB comes from `mmap`,
//! and the top of the heap is trimmed), so every new buffer page-faults once per 4 KiB page.
//! A few buffers kept here make the steady state allocation-free.

use std::sync::{Arc, Mutex};

use tokio_tungstenite::tungstenite::Bytes;

/// Buffers kept: a command's gathering text, the frame being encoded and a few in the
/// writer's queue.
const KEEP: usize = 8;
/// Larger buffers are let go (a `buffer_size` of several MiB is unusual; memory stays
/// bounded by `KEEP` × this).
const MAX_CAPACITY: usize = 4 << 20;

/// A small pool of byte buffers, shared by a connection's tasks.
#[derive(Debug, Default)]
pub(crate) struct Buffers {
    free: Mutex<Vec<Vec<u8>>>,
}

impl Buffers {
    /// A new pool, to share.
    pub(crate) fn shared() -> Arc<Buffers> {
        Arc::new(Buffers::default())
    }

    fn free(&self) -> std::sync::MutexGuard<'_, Vec<Vec<u8>>> {
        // A panic while holding the lock leaves a valid Vec: go on with it.
        self.free.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// An empty buffer with room for at least `capacity` bytes.
    pub(crate) fn take(&self, capacity: usize) -> Vec<u8> {
        match self.free().pop() {
            Some(mut buf) => {
                buf.reserve(capacity);
                buf
            }
            None => Vec::with_capacity(capacity),
        }
    }

    /// Keeps `buf` for a later [`Buffers::take`], if there is room.
    pub(crate) fn give(&self, mut buf: Vec<u8>) {
        if buf.capacity() == 0 || buf.capacity() > MAX_CAPACITY {
            return;
        }
        buf.clear();
        let mut free = self.free();
        if free.len() < KEEP {
            free.push(buf);
        }
    }

    /// Keeps the buffer behind `bytes` if nothing else refers to it any more.
    pub(crate) fn give_bytes(&self, bytes: Bytes) {
        if let Ok(mut buf) = bytes.try_into_mut() {
            // Emptied first, so that turning it back into a Vec moves no byte.
            buf.clear();
            self.give(buf.into());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_come_back_empty_and_keep_their_capacity() {
        let pool = Buffers::default();
        let mut buf = pool.take(1000);
        buf.extend_from_slice(b"hello");
        let ptr = buf.as_ptr();
        pool.give(buf);
        let again = pool.take(10);
        assert!(again.is_empty() && again.capacity() >= 1000);
        assert_eq!(again.as_ptr(), ptr);

        // Through Bytes: only once nobody else holds it.
        let bytes = Bytes::from(again);
        let other = bytes.clone();
        pool.give_bytes(bytes);
        assert!(pool.free().is_empty());
        pool.give_bytes(other);
        let last = pool.take(0);
        assert_eq!(last.as_ptr(), ptr);
    }

    #[test]
    fn the_pool_stays_small() {
        let pool = Buffers::default();
        for _ in 0..KEEP + 5 {
            pool.give(Vec::with_capacity(100));
        }
        pool.give(Vec::with_capacity(MAX_CAPACITY + 1));
        assert_eq!(pool.free().len(), KEEP);
    }
}
