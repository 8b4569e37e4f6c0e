//! Chunk compression: zlib (deflate with an Adler-32 check, so a damaged chunk is reported,
//! not returned as wrong text) at the fastest level, since logs are written while the build
//! runs and text compresses well even so.

use crate::error::{Error, Result};
use flate2::read::ZlibDecoder;
use flate2::{Compress, Compression, FlushCompress, Status};
use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

/// Compressors kept for reuse. A new one allocates and zeroes a few hundred KiB of
/// tables, which cost as much as compressing a chunk of repetitive output; a reset one
/// only clears its hash heads. Two cover the usual number of logs written at once, and
/// memory stays bounded however many there are.
static COMPRESSORS: Pool = Pool::new();
const KEEP_COMPRESSORS: usize = 2;

/// Frees the kept compressors if no chunk was compressed since the last call: an idle
/// master does not keep their 380 KB, a busy one keeps them between its periodic calls.
pub(crate) fn release_idle_compressors() {
    COMPRESSORS.release_if_idle();
}

struct Pool {
    kept: Mutex<Vec<Compress>>,
    /// Compressors taken so far, and their number at the last `release_if_idle`.
    taken: AtomicU64,
    taken_at_release: AtomicU64,
}

impl Pool {
    const fn new() -> Pool {
        Pool {
            kept: Mutex::new(Vec::new()),
            taken: AtomicU64::new(0),
            taken_at_release: AtomicU64::new(0),
        }
    }

    fn kept(&self) -> MutexGuard<'_, Vec<Compress>> {
        self.kept
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn take(&self) -> Compress {
        self.taken.fetch_add(1, Ordering::Relaxed);
        let kept = self.kept().pop();
        match kept {
            Some(mut c) => {
                c.reset();
                c
            }
            None => Compress::new(Compression::fast(), true),
        }
    }

    fn give_back(&self, c: Compress) {
        let mut kept = self.kept();
        if kept.len() < KEEP_COMPRESSORS {
            kept.push(c);
        }
    }

    fn release_if_idle(&self) {
        let taken = self.taken.load(Ordering::Relaxed);
        if self.taken_at_release.swap(taken, Ordering::Relaxed) == taken {
            *self.kept() = Vec::new();
        }
    }
}

pub(crate) fn compress(raw: &[u8]) -> Result<Vec<u8>> {
    let mut c = COMPRESSORS.take();
    let packed = compress_with(&mut c, raw);
    COMPRESSORS.give_back(c);
    packed
}

fn compress_with(c: &mut Compress, raw: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(raw.len() / 4 + 64);
    loop {
        let consumed = usize::try_from(c.total_in())
            .unwrap_or(raw.len())
            .min(raw.len());
        if out.len() == out.capacity() {
            out.reserve(raw.len() / 4 + 64);
        }
        let status = c
            .compress_vec(&raw[consumed..], &mut out, FlushCompress::Finish)
            .map_err(|e| Error::Compression(std::io::Error::other(e)))?;
        if status == Status::StreamEnd {
            break;
        }
    }
    Ok(out)
}

/// Decompresses a chunk that must hold exactly `raw_len` bytes; reads at most one byte
/// more, so a corrupt length cannot make it allocate without bound.
pub(crate) fn decompress(data: &[u8], raw_len: u64) -> Result<Vec<u8>> {
    let cap =
        usize::try_from(raw_len).map_err(|_| Error::Corrupt(format!("chunk length {raw_len}")))?;
    let mut out = Vec::with_capacity(cap.min(super::CHUNK_BYTES * 2));
    ZlibDecoder::new(data)
        .take(raw_len.saturating_add(1))
        .read_to_end(&mut out)
        .map_err(|e| Error::Corrupt(format!("log chunk does not decompress: {e}")))?;
    if out.len() as u64 != raw_len {
        return Err(Error::Corrupt(format!(
            "log chunk holds {} bytes, {raw_len} expected",
            out.len()
        )));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reused_compressors_round_trip() {
        let text: Vec<u8> = (0..50_000u32)
            .flat_map(|i| format!("line {i} {}\n", i * 7919 % 1000).into_bytes())
            .collect();
        // Incompressible bytes make the output outgrow its first allocation.
        let noise: Vec<u8> = (0..200_000u64)
            .map(|i| (i.wrapping_mul(6364136223846793005) >> 56) as u8)
            .collect();
        for raw in [&text[..], &noise[..], b"", b"x", &text[..1000]] {
            for _ in 0..3 {
                let packed = compress(raw).unwrap();
                assert_eq!(decompress(&packed, raw.len() as u64).unwrap(), raw);
            }
        }
    }

    #[test]
    fn kept_compressors_are_freed_only_after_an_idle_period() {
        let pool = Pool::new();
        let c = pool.take();
        pool.give_back(c);
        assert_eq!(pool.kept().len(), 1);
        // Used since the last release (there was none): kept.
        pool.release_if_idle();
        assert_eq!(pool.kept().len(), 1);
        // Unused since: freed.
        pool.release_if_idle();
        assert!(pool.kept().is_empty());
        // A new one compresses as well, and is kept again while in use.
        let mut c = pool.take();
        let packed = compress_with(&mut c, b"line\n").unwrap();
        assert_eq!(decompress(&packed, 5).unwrap(), b"line\n");
        pool.give_back(c);
        pool.release_if_idle();
        assert_eq!(pool.kept().len(), 1);
    }
}
