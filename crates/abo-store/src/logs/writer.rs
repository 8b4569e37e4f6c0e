//! The async log writer: feeds the encoder, then compresses and stores each sealed chunk
//! (one transaction per chunk, with the build's lease checked in it).

use super::codec::compress;
use super::encoder::{Encoder, SealedChunk, Totals};
use super::mask::Masker;
use super::{get_log, LogInfo, CHUNK_BYTES};
use crate::builds::check_lease;
use crate::error::{Error, Result};
use crate::types::{BuildId, Lease, LogId, LogKind, Stream};
use crate::{blocking, Store};

/// Most chunks one [`LogWriter::write_parts`] keeps before storing them (1 MiB).
const BATCH_CHUNKS: usize = 16;

/// Appends output to one log as it arrives. Between calls it holds at most about one chunk
/// ([`CHUNK_BYTES`]) plus each stream's unterminated line (during a
/// [`LogWriter::write_parts`], up to 16 more, and after a
/// [`LogWriter::write_parts_behind`], 16 being stored); everything else is in the
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
    /// The batch [`LogWriter::write_parts_behind`] left being stored, with its counters.
    in_flight: Option<(tokio::task::JoinHandle<Result<()>>, Totals)>,
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
            in_flight: None,
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
        self.write_parts_behind(stream, parts).await?;
        self.settle().await
    }

    /// [`LogWriter::write_parts`] that returns before its last batch is stored: that batch
    /// is compressed and committed on the blocking pool while the caller encodes the next
    /// output, so a fast-printing command's log costs the longer of the two rather than
    /// their sum. At most one batch (16 chunks) is in flight, batches are stored in order,
    /// and every other call ([`LogWriter::flush`] and [`LogWriter::finish`] included)
    /// waits for it first; its error (a stale lease) is returned by the next call.
    pub async fn write_parts_behind(&mut self, stream: Stream, parts: &[&[u8]]) -> Result<()> {
        let mut sealed = Vec::new();
        for data in parts {
            for piece in data.chunks(CHUNK_BYTES) {
                self.encoder.write(stream, piece);
                sealed.append(&mut self.encoder.take_sealed());
                if sealed.len() >= BATCH_CHUNKS {
                    self.persist_behind(std::mem::take(&mut sealed)).await?;
                }
            }
        }
        if !sealed.is_empty() {
            self.persist_behind(sealed).await?;
        }
        Ok(())
    }

    /// Stores what is complete now (see the crate documentation), so readers see it.
    pub async fn flush(&mut self) -> Result<()> {
        self.settle().await?;
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

    /// Waits for the batch stored in the background, if any, and takes its counters.
    async fn settle(&mut self) -> Result<()> {
        if let Some((task, totals)) = self.in_flight.take() {
            task.await.map_err(|e| Error::Task(e.to_string()))??;
            self.stored = totals;
        }
        Ok(())
    }

    /// Stores `chunks` in the background, after the batch before them.
    async fn persist_behind(&mut self, chunks: Vec<SealedChunk>) -> Result<()> {
        self.settle().await?;
        let totals = self.encoder.totals();
        let task = tokio::task::spawn_blocking(self.storing(chunks, false, totals));
        self.in_flight = Some((task, totals));
        Ok(())
    }

    async fn persist(&mut self, chunks: Vec<SealedChunk>, finished: bool) -> Result<()> {
        self.settle().await?;
        let totals = self.encoder.totals();
        blocking(self.storing(chunks, finished, totals)).await?;
        self.stored = totals;
        Ok(())
    }

    /// The work of storing `chunks` with the counters `totals`, for the blocking pool.
    fn storing(
        &self,
        chunks: Vec<SealedChunk>,
        finished: bool,
        totals: Totals,
    ) -> impl FnOnce() -> Result<()> + Send + 'static {
        let db = self.store.db.clone();
        let (id, build, lease) = (self.id, self.build, self.lease);
        move || {
            // Compress before taking the write lock: other writers wait only for inserts.
            let compressed = chunks
                .iter()
                .map(|c| compress(&c.raw))
                .collect::<Result<Vec<_>>>()?;
            db.write(|tx| {
                check_lease(tx, build, lease)?;
                for (c, data) in chunks.iter().zip(&compressed) {
                    tx.execute(
                        "INSERT INTO log_chunks (log, seq, first_byte, first_line, cont, raw_len, data)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                        &[
                            &id,
                            &c.seq,
                            &c.first_byte,
                            &c.first_line,
                            &c.cont,
                            &(c.raw.len() as u64),
                            data,
                        ],
                    )?;
                }
                let n = tx.execute(
                    "UPDATE logs SET byte_len = ?2, line_count = ?3, chunk_count = ?4,
                         truncated = ?5, dropped_bytes = ?6, finished = ?7
                     WHERE id = ?1 AND finished = FALSE",
                    &[
                        &id,
                        &totals.byte_len,
                        &totals.line_count,
                        &totals.chunk_count,
                        &totals.truncated,
                        &totals.dropped,
                        &finished,
                    ],
                )?;
                if n == 0 {
                    // Finished already (by finish_build): this writer's dispatch is over.
                    return Err(Error::StaleLease { build, lease });
                }
                Ok(())
            })
        }
    }
}
