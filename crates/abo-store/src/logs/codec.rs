//! Chunk compression: zlib (deflate with an Adler-32 check, so a damaged chunk is reported,
//! not returned as wrong text) at the fastest level, since logs are written while the build
//! runs and text compresses well even so.

use crate::error::{Error, Result};
use flate2::read::ZlibDecoder;
use flate2::write::ZlibEncoder;
use flate2::Compression;
use std::io::{Read, Write};

pub(crate) fn compress(raw: &[u8]) -> Result<Vec<u8>> {
    let mut enc = ZlibEncoder::new(Vec::with_capacity(raw.len() / 4 + 64), Compression::fast());
    enc.write_all(raw).map_err(Error::Compression)?;
    enc.finish().map_err(Error::Compression)
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
