//! The async log writer: feeds the encoder, then compresses and stores each sealed chunk
//! (one transaction per chunk, with the build's lease checked in it).

use super::codec::compress;
use super::encoder::{Encoder, SealedChunk, Totals};
use super::mask::Masker;
use super::{get_log, LogInfo, CHUNK_BYTES};
use crate::builds::check_lease;
use crate::error::{Error, Result};
use crate::sqlite::i64_of;
use crate::types::{BuildId, Lease, LogId, LogKind, Stream};
use crate::{blocking, Store};
use rusqlite::params;

/// Most chunks one [`LogWriter::write_parts`] keeps before storing them (1 MiB).
const BATCH_CHUNKS: usize = 16;

/// Appends output to one log as it arrives. Between calls it holds at most about one chunk
/// ([`CHUNK_BYTES`]) plus each stream's unterminated line (during a
/// [`LogWriter::write_parts`], up to 16 more); everything else is in the
/// database, readable by [`LogReader`](super::LogReader) at once.
///
/// Call [`LogWriter::flush`] on a timer for live views (a chunk is otherwise stored when
/// full), and [`LogWriter::finish`] at the end: a writer dropped unfinished loses what it
/// buffered, and the log stays unfinished until the build is finished or the master's
/// restart marks it.
pub struct LogWriter {
    store: Store,
    id: LogId,
    build: BuildId,
    lease: Lease,
    encoder: Encoder,
    /// The counters last stored in the `logs` row, to skip a write that changes nothing.
    stored: Totals,
}

impl std::fmt::Debug for LogWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogWriter")
            .field("id", &self.id)
            .field("build", &self.build)
            .finish_non_exhaustive()
    }
}

impl LogWriter {
    pub(crate) fn new(
        store: Store,
        id: LogId,
        build: BuildId,
        lease: Lease,
        kind: LogKind,
        cap: u64,
        masker: Masker,
    ) -> LogWriter {
        LogWriter {
            store,
            id,
            build,
            lease,
            encoder: Encoder::new(kind, cap, masker),
            stored: Totals::default(),
        }
    }

    /// The log's id.
    pub fn id(&self) -> LogId {
        self.id
    }

    /// Bytes this writer holds in memory now (for tests and monitoring).
    pub fn buffered_bytes(&self) -> usize {
        self.encoder.buffered()
    }

    /// Appends output of `stream` (a text log has one sequence: the stream only matters in
    /// a stdio log). Large writes are taken a chunk at a time, so memory stays bounded.
    pub async fn write(&mut self, stream: Stream, data: &[u8]) -> Result<()> {
        self.write_parts(stream, &[data]).await
    }

    /// [`LogWriter::write`] of the parts one after the other, with the chunks they fill
    /// stored together: one transaction for up to 16 chunks instead of one
    /// each (a commit costs more than compressing a chunk of ordinary output). When it
    /// returns, every full chunk is stored, as after `write`.
    pub async fn write_parts(&mut self, stream: Stream, parts: &[&[u8]]) -> Result<()> {
        let mut sealed = Vec::new();
        for data in parts {
            for piece in data.chunks(CHUNK_BYTES) {
                self.encoder.write(stream, piece);
                sealed.append(&mut self.encoder.take_sealed());
                if sealed.len() >= BATCH_CHUNKS {
                    self.persist(std::mem::take(&mut sealed), false).await?;
                }
            }
        }
        if !sealed.is_empty() {
            self.persist(sealed, false).await?;
        }
        Ok(())
    }

    /// Stores what is complete now (see the crate documentation), so readers see it.
    pub async fn flush(&mut self) -> Result<()> {
        self.encoder.flush();
        let sealed = self.encoder.take_sealed();
        if !sealed.is_empty() || self.encoder.totals() != self.stored {
            self.persist(sealed, false).await?;
        }
        Ok(())
    }

    /// Stores the rest and marks the log finished.
    pub async fn finish(mut self) -> Result<LogInfo> {
        self.encoder.finish();
        let sealed = self.encoder.take_sealed();
        self.persist(sealed, true).await?;
        let id = self.id;
        self.store.read(move |tx| get_log(tx, id)).await
    }

    async fn persist(&mut self, chunks: Vec<SealedChunk>, finished: bool) -> Result<()> {
        let db = self.store.db.clone();
        let (id, build, lease) = (self.id, self.build, self.lease);
        let totals = self.encoder.totals();
        blocking(move || {
            // Compress before taking the write lock: other writers wait only for inserts.
            let compressed = chunks
                .iter()
                .map(|c| compress(&c.raw))
                .collect::<Result<Vec<_>>>()?;
            db.write(|tx| {
                check_lease(tx, build, lease)?;
                let mut insert = tx.prepare_cached(
                    "INSERT INTO log_chunks (log, seq, first_byte, first_line, cont, raw_len, data)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )?;
                for (c, data) in chunks.iter().zip(&compressed) {
                    insert.execute(params![
                        id,
                        i64_of(c.seq)?,
                        i64_of(c.first_byte)?,
                        i64_of(c.first_line)?,
                        c.cont,
                        i64_of(c.raw.len() as u64)?,
                        data
                    ])?;
                }
                let n = tx
                    .prepare_cached(
                        "UPDATE logs SET byte_len = ?2, line_count = ?3, chunk_count = ?4,
                             truncated = ?5, dropped_bytes = ?6, finished = ?7
                         WHERE id = ?1 AND finished = FALSE",
                    )?
                    .execute(params![
                        id,
                        i64_of(totals.byte_len)?,
                        i64_of(totals.line_count)?,
                        i64_of(totals.chunk_count)?,
                        totals.truncated,
                        i64_of(totals.dropped)?,
                        finished
                    ])?;
                if n == 0 {
                    // Finished already (by finish_build): this writer's dispatch is over.
                    return Err(Error::StaleLease { build, lease });
                }
                Ok(())
            })
        })
        .await?;
        self.stored = totals;
        Ok(())
    }
}
