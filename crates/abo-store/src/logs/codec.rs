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
static COMPRESSORS: Mutex<Vec<Compress>> = Mutex::new(Vec::new());
const KEEP_COMPRESSORS: usize = 2;

/// Chunks compressed so far, and their number at the last [`release_idle_compressors`].
static COMPRESSED: AtomicU64 = AtomicU64::new(0);
static COMPRESSED_AT_RELEASE: AtomicU64 = AtomicU64::new(0);

/// Frees the kept compressors if no chunk was compressed since the last call: an idle
/// master does not keep their 380 KB, a busy one keeps them between its periodic calls.
pub(crate) fn release_idle_compressors() {
    let now = COMPRESSED.load(Ordering::Relaxed);
    if COMPRESSED_AT_RELEASE.swap(now, Ordering::Relaxed) == now {
        *lock_pool() = Vec::new();
    }
}

fn lock_pool() -> MutexGuard<'static, Vec<Compress>> {
    COMPRESSORS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

pub(crate) fn compress(raw: &[u8]) -> Result<Vec<u8>> {
    COMPRESSED.fetch_add(1, Ordering::Relaxed);
    let pooled = lock_pool().pop();
    let mut c = match pooled {
        Some(mut c) => {
            c.reset();
            c
        }
        None => Compress::new(Compression::fast(), true),
    };
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
    let mut pool = lock_pool();
    if pool.len() < KEEP_COMPRESSORS {
        pool.push(c);
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
            // Released between chunks (when idle since the last release): the next one
            // is compressed by a new compressor, the same way.
            release_idle_compressors();
            release_idle_compressors();
            let packed = compress(raw).unwrap();
            assert_eq!(decompress(&packed, raw.len() as u64).unwrap(), raw);
        }
    }
}
