//! Logs: written in compressed chunks as output arrives, readable while written, never
//! whole in memory. The format is described in the crate documentation.

mod codec;
pub(crate) use codec::release_idle_compressors;
mod encoder;
mod mask;
mod reader;
mod writer;

pub use mask::{Masker, MASK};
pub use reader::{text_len, LinesPage, LogLine, LogPiece, LogReader, TextPage};
pub use writer::LogWriter;

use crate::builds::{check_lease, step_id};
use crate::db::{Row, Tx};
use crate::error::{Error, Result};
use crate::types::{BuildId, Lease, LogId, LogKind, StepId};
use crate::Store;
use serde::Serialize;

/// Uncompressed size of a full chunk: what a writer buffers before storing, and what a
/// reader decompresses at a time.
pub const CHUNK_BYTES: usize = 64 * 1024;

/// Longest stdio line stored as one record; longer lines become several records of the
/// same stream, so one endless line is stored as it comes instead of growing a buffer.
pub const MAX_LINE_BYTES: usize = 32 * 1024;

/// Default per-log cap on stored bytes (100 MB), after which one marker line is stored and
/// further output is counted, not stored.
pub const DEFAULT_LOG_CAP_BYTES: u64 = 100_000_000;

/// Most bytes one read returns ([`LogReader::read_range`], the text of a
/// [`LogReader::read_lines`] page): large logs are read in pages.
pub const MAX_READ_BYTES: usize = 4 * 1024 * 1024;

/// How a log is written.
#[derive(Debug, Clone)]
pub struct LogOptions {
    /// Stored bytes after which the log is truncated (the step's result is not changed).
    pub cap_bytes: u64,
    /// Masks the secrets wherever they appear, also across writes. Built once and cloned
    /// for each log: building its automaton for every log was, after the argon2 check,
    /// the master's busiest function in a burst of builds.
    pub masker: Masker,
}

impl Default for LogOptions {
    fn default() -> Self {
        LogOptions {
            cap_bytes: DEFAULT_LOG_CAP_BYTES,
            masker: Masker::none(),
        }
    }
}

impl LogOptions {
    /// Sets the values to mask.
    pub fn with_secrets<I, S>(self, secrets: I) -> Result<LogOptions>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<[u8]>,
    {
        Ok(self.with_masker(Masker::new(secrets)?))
    }

    /// Sets the masker (a fresh one: nothing held back).
    pub fn with_masker(mut self, masker: Masker) -> LogOptions {
        self.masker = masker;
        self
    }

    /// Sets the cap.
    pub fn with_cap(mut self, cap_bytes: u64) -> LogOptions {
        self.cap_bytes = cap_bytes;
        self
    }
}

/// A log's row: what is stored so far.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LogInfo {
    /// Its id.
    pub id: LogId,
    /// Its step.
    pub step: StepId,
    /// Its name within the step (`stdio`, `test.log`).
    pub name: String,
    /// Its storage form.
    pub kind: LogKind,
    /// Bytes stored (committed chunks).
    pub byte_len: u64,
    /// Lines stored, counting an unterminated last line.
    pub line_count: u64,
    /// Chunks stored.
    pub chunk_count: u64,
    /// The cap was reached and the marker line stored.
    pub truncated: bool,
    /// Bytes of output not stored because of the cap.
    pub dropped_bytes: u64,
    /// No more output will come.
    pub finished: bool,
}

pub(crate) const LOG_COLS: &str =
    "id, step, name, kind, byte_len, line_count, chunk_count, truncated, dropped_bytes, finished";

pub(crate) fn log_from_row(r: &Row<'_>) -> Result<LogInfo> {
    Ok(LogInfo {
        id: r.get(0)?,
        step: r.get(1)?,
        name: r.get(2)?,
        kind: r.get(3)?,
        byte_len: r.get(4)?,
        line_count: r.get(5)?,
        chunk_count: r.get(6)?,
        truncated: r.get(7)?,
        dropped_bytes: r.get(8)?,
        finished: r.get(9)?,
    })
}

pub(crate) fn get_log(tx: &Tx<'_>, id: LogId) -> Result<LogInfo> {
    tx.query_opt(
        &format!("SELECT {LOG_COLS} FROM logs WHERE id = ?1"),
        &[&id],
        log_from_row,
    )?
    .ok_or(Error::LogNotFound(id))
}

impl Store {
    /// Creates log `name` of step `step` (its index) and returns its writer. Written with
    /// the build's lease, like every write about the build.
    pub async fn open_log(
        &self,
        build: BuildId,
        lease: Lease,
        step: u32,
        name: &str,
        kind: LogKind,
        options: LogOptions,
    ) -> Result<LogWriter> {
        let masker = options.masker;
        let name = name.to_owned();
        let id = self
            .write(move |tx| {
                check_lease(tx, build, lease)?;
                let step_row = step_id(tx, build, step)?;
                tx.query_opt(
                    "INSERT INTO logs (step, name, kind) VALUES (?1, ?2, ?3)
                     ON CONFLICT DO NOTHING RETURNING id",
                    &[&step_row, &name, &kind],
                    |r| r.get(0),
                )?
                .ok_or_else(|| Error::LogExists {
                    build,
                    index: step,
                    name: name.clone(),
                })
            })
            .await?;
        Ok(LogWriter::new(
            self.clone(),
            id,
            build,
            lease,
            kind,
            options.cap_bytes,
            masker,
        ))
    }

    /// A log's row.
    pub async fn log_info(&self, id: LogId) -> Result<LogInfo> {
        self.read(move |tx| get_log(tx, id)).await
    }

    /// The log `name` of step `step` (its index) of `build`, as the API addresses it.
    pub async fn find_log(&self, build: BuildId, step: u32, name: &str) -> Result<Option<LogInfo>> {
        let name = name.to_owned();
        self.read(move |tx| {
            tx.query_opt(
                "SELECT l.id, l.step, l.name, l.kind, l.byte_len, l.line_count, l.chunk_count,
                        l.truncated, l.dropped_bytes, l.finished
                 FROM logs l JOIN steps s ON s.id = l.step
                 WHERE s.build = ?1 AND s.number = ?2 AND l.name = ?3",
                &[&build, &step, &name],
                log_from_row,
            )
        })
        .await
    }

    /// A reader for the log (it need not be finished).
    pub async fn log_reader(&self, id: LogId) -> Result<LogReader> {
        let info = self.log_info(id).await?;
        Ok(LogReader::new(self.clone(), info.id))
    }
}
