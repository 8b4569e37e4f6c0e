//! Reading logs by byte range, by page of lines, or as a stream of chunks. Each read finds
//! its first chunk through an index and decompresses only the chunks it returns, one at a
//! time; reads see every chunk committed so far, so a running log can be followed.

use super::codec::decompress;
use super::{get_log, LogInfo, MAX_READ_BYTES};
use crate::db::Tx;
use crate::error::Result;
use crate::types::{LogId, LogKind, Stream};
use crate::Store;
use serde::Serialize;

/// Reads one log.
#[derive(Debug, Clone)]
pub struct LogReader {
    store: Store,
    log: LogId,
}

/// One line of a page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LogLine {
    /// Its number, from 0.
    pub number: u64,
    /// Its stream, in a stdio log.
    pub stream: Option<Stream>,
    /// Its bytes, without the stream letter and the newline.
    pub text: Vec<u8>,
    /// Only the beginning of the line is here: it is longer than a page may hold.
    pub cut: bool,
    /// The line has no newline yet and the log is still being written: it may grow. Ask
    /// for it again (the page's `next` points at it).
    pub partial: bool,
}

impl LogLine {
    /// The text, with invalid UTF-8 replaced (logs are bytes; pages are shown as text).
    pub fn text_lossy(&self) -> std::borrow::Cow<'_, str> {
        String::from_utf8_lossy(&self.text)
    }
}

/// A page of lines.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LinesPage {
    /// The lines, in order.
    pub lines: Vec<LogLine>,
    /// The line to ask for next.
    pub next: u64,
    /// The log was finished when read: past the last line, nothing more will come.
    pub finished: bool,
}

/// A piece of a log's stored bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogPiece {
    /// Offset of `data` in the log.
    pub offset: u64,
    /// The bytes (at most a chunk).
    pub data: Vec<u8>,
}

struct ChunkRow {
    first_byte: u64,
    first_line: u64,
    cont: bool,
    raw: Vec<u8>,
}

/// The chunk holding byte `offset`, decompressed.
fn chunk_at(tx: &Tx<'_>, log: LogId, offset: u64) -> Result<Option<ChunkRow>> {
    let row = tx.query_opt(
        "SELECT first_byte, first_line, cont, raw_len, data FROM log_chunks
         WHERE log = ?1 AND first_byte <= ?2 ORDER BY first_byte DESC LIMIT 1",
        &[&log, &offset],
        |r| {
            Ok((
                r.get::<u64>(0)?,
                r.get::<u64>(1)?,
                r.get::<bool>(2)?,
                r.get::<u64>(3)?,
                r.get::<Vec<u8>>(4)?,
            ))
        },
    )?;
    let Some((first_byte, first_line, cont, raw_len, data)) = row else {
        return Ok(None);
    };
    if first_byte + raw_len <= offset {
        return Ok(None);
    }
    Ok(Some(ChunkRow {
        first_byte,
        first_line,
        cont,
        raw: decompress(&data, raw_len)?,
    }))
}

/// Visits the chunks from sequence number `seq` on, decompressing one at a time, until `f`
/// says stop.
fn for_chunks_from(
    tx: &Tx<'_>,
    log: LogId,
    seq: u64,
    mut f: impl FnMut(ChunkRow) -> bool,
) -> Result<()> {
    tx.query_each(
        "SELECT first_byte, first_line, cont, raw_len, data FROM log_chunks
         WHERE log = ?1 AND seq >= ?2 ORDER BY seq",
        &[&log, &seq],
        |r| {
            let raw_len: u64 = r.get(3)?;
            let raw = decompress(r.blob(4)?, raw_len)?;
            Ok(f(ChunkRow {
                first_byte: r.get(0)?,
                first_line: r.get(1)?,
                cont: r.get(2)?,
                raw,
            }))
        },
    )
}

fn read_range(tx: &Tx<'_>, log: LogId, offset: u64, len: usize) -> Result<Vec<u8>> {
    get_log(tx, log)?;
    let len = len.min(MAX_READ_BYTES);
    let end = offset.saturating_add(len as u64);
    let mut out = Vec::with_capacity(len.min(super::CHUNK_BYTES));
    let start: Option<u64> = tx.query_opt(
        "SELECT seq FROM log_chunks WHERE log = ?1 AND first_byte <= ?2
         ORDER BY first_byte DESC LIMIT 1",
        &[&log, &offset],
        |r| r.get(0),
    )?;
    let Some(start) = start else { return Ok(out) };
    for_chunks_from(tx, log, start, |c| {
        let raw_len = c.raw.len() as u64;
        if c.first_byte >= end {
            return false;
        }
        let from = offset.saturating_sub(c.first_byte).min(raw_len) as usize;
        let to = (end - c.first_byte).min(raw_len) as usize;
        out.extend_from_slice(&c.raw[from..to]);
        c.first_byte + raw_len < end
    })?;
    Ok(out)
}

fn read_lines(tx: &Tx<'_>, log: LogId, first: u64, max_lines: usize) -> Result<LinesPage> {
    let info: LogInfo = get_log(tx, log)?;
    let mut page = LinesPage {
        lines: Vec::new(),
        next: first,
        finished: info.finished,
    };
    if max_lines == 0 {
        return Ok(page);
    }
    // The chunk in which line `first` starts is the last one numbered at or before it.
    let start: Option<u64> = tx.query_opt(
        "SELECT seq FROM log_chunks WHERE log = ?1 AND first_line <= ?2
         ORDER BY first_line DESC, seq DESC LIMIT 1",
        &[&log, &first],
        |r| r.get(0),
    )?;
    let Some(start) = start else { return Ok(page) };
    let stdio = info.kind == LogKind::Stdio;
    let mut budget = MAX_READ_BYTES;
    let mut line_no: Option<u64> = None;
    // The line being gathered (it may span chunks), once at or past `first`.
    let mut current: Option<LogLine> = None;
    let mut done = false;
    for_chunks_from(tx, log, start, |c| {
        // The line of the chunk's first byte; a continuation belongs to the line before.
        let mut n = *line_no.get_or_insert(c.first_line.saturating_sub(u64::from(c.cont)));
        let mut rest: &[u8] = &c.raw;
        while !rest.is_empty() {
            let (seg, ends) = match rest.iter().position(|&b| b == b'\n') {
                Some(i) => (&rest[..i], true),
                None => (rest, false),
            };
            rest = &rest[seg.len() + usize::from(ends)..];
            if n >= first {
                let line = current.get_or_insert_with(|| LogLine {
                    number: n,
                    stream: None,
                    text: Vec::new(),
                    cut: false,
                    partial: false,
                });
                let take = seg.len().min(budget);
                line.text.extend_from_slice(&seg[..take]);
                budget -= take;
                if budget == 0 && (take < seg.len() || !ends) {
                    // The page is full inside this line: return its beginning, and do not
                    // read on to its end (it may be gigabytes away).
                    line.cut = true;
                    if let Some(mut line) = current.take() {
                        if stdio {
                            split_prefix(&mut line);
                        }
                        page.lines.push(line);
                    }
                    page.next = n + 1;
                    done = true;
                    break;
                }
            }
            if ends {
                if let Some(mut line) = current.take() {
                    if stdio {
                        split_prefix(&mut line);
                    }
                    page.lines.push(line);
                    page.next = n + 1;
                }
                n += 1;
                if page.lines.len() >= max_lines || budget == 0 {
                    done = true;
                    break;
                }
            }
        }
        line_no = Some(n);
        !done
    })?;
    if let Some(mut line) = current.take() {
        // The last stored line has no newline: final when the log is, else still growing.
        if stdio {
            split_prefix(&mut line);
        }
        if info.finished {
            page.next = line.number + 1;
        } else {
            line.partial = true;
        }
        page.lines.push(line);
    }
    Ok(page)
}

/// A page of a log as text: a stdio log without its stream letters (stdout, stderr and
/// header lines interleaved as stored), a text log as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextPage {
    /// The text bytes from the offset asked for.
    pub data: Vec<u8>,
    /// Length of the whole log as text so far (what offsets count in).
    pub size: u64,
    /// The log was finished when read.
    pub finished: bool,
}

/// The length of a log as text: a stdio log's stored bytes minus one stream letter per
/// stored record (every record, the last unterminated one included, starts with one).
pub fn text_len(info: &LogInfo) -> u64 {
    match info.kind {
        LogKind::Stdio => info.byte_len.saturating_sub(info.line_count),
        LogKind::Text => info.byte_len,
    }
}

fn read_text(tx: &Tx<'_>, log: LogId, offset: u64, len: usize) -> Result<TextPage> {
    let info = get_log(tx, log)?;
    let size = text_len(&info);
    let finished = info.finished;
    if info.kind == LogKind::Text {
        let data = read_range(tx, log, offset, len)?;
        return Ok(TextPage {
            data,
            size,
            finished,
        });
    }
    let len = len.min(MAX_READ_BYTES);
    let mut out = Vec::with_capacity(len.min(super::CHUNK_BYTES));
    if len == 0 || offset >= size {
        return Ok(TextPage {
            data: out,
            size,
            finished,
        });
    }
    // A chunk starts at text offset `first_byte - first_line`: every line begun before it
    // has had its one-byte stream letter removed. That offset grows with `seq`.
    let start: Option<u64> = tx.query_opt(
        "SELECT seq FROM log_chunks WHERE log = ?1 AND first_byte - first_line <= ?2
         ORDER BY seq DESC LIMIT 1",
        &[&log, &offset],
        |r| r.get(0),
    )?;
    let Some(start) = start else {
        return Ok(TextPage {
            data: out,
            size,
            finished,
        });
    };
    for_chunks_from(tx, log, start, |c| {
        let mut pos = c.first_byte.saturating_sub(c.first_line);
        let mut at_line_start = !c.cont;
        let mut rest: &[u8] = &c.raw;
        while !rest.is_empty() && out.len() < len {
            if at_line_start {
                rest = &rest[1..]; // the stream letter
                at_line_start = false;
                continue;
            }
            // Up to and including the end of this record.
            let seg_len = rest
                .iter()
                .position(|&b| b == b'\n')
                .map_or(rest.len(), |i| i + 1);
            let (seg, tail) = rest.split_at(seg_len);
            let seg_end = pos + seg_len as u64;
            if seg_end > offset {
                let from = offset.saturating_sub(pos) as usize;
                let take = (seg_len - from).min(len - out.len());
                out.extend_from_slice(&seg[from..from + take]);
            }
            pos = seg_end;
            at_line_start = seg.last() == Some(&b'\n');
            rest = tail;
        }
        out.len() < len
    })?;
    Ok(TextPage {
        data: out,
        size,
        finished,
    })
}

/// Moves a stdio line's stream letter into `stream`.
fn split_prefix(line: &mut LogLine) {
    if let Some(stream) = line.text.first().copied().and_then(Stream::from_prefix) {
        line.stream = Some(stream);
        line.text.remove(0);
    }
}

impl LogReader {
    pub(crate) fn new(store: Store, log: LogId) -> LogReader {
        LogReader { store, log }
    }

    /// The log.
    pub fn id(&self) -> LogId {
        self.log
    }

    /// The log's row as it is now.
    pub async fn info(&self) -> Result<LogInfo> {
        self.store.log_info(self.log).await
    }

    /// The stored bytes from `offset`, at most `len` (and at most [`MAX_READ_BYTES`]);
    /// fewer at the end of what is stored.
    pub async fn read_range(&self, offset: u64, len: usize) -> Result<Vec<u8>> {
        let log = self.log;
        self.store
            .read(move |tx| read_range(tx, log, offset, len))
            .await
    }

    /// The log as text (see [`TextPage`]) from text offset `offset`, at most `len` bytes
    /// (and at most [`MAX_READ_BYTES`]), with the text size and state read in the same
    /// snapshot.
    pub async fn read_text(&self, offset: u64, len: usize) -> Result<TextPage> {
        let log = self.log;
        self.store
            .read(move |tx| read_text(tx, log, offset, len))
            .await
    }

    /// Up to `max_lines` lines from line `first` (0-based), and at most [`MAX_READ_BYTES`]
    /// of text: a longer line is returned cut.
    pub async fn read_lines(&self, first: u64, max_lines: usize) -> Result<LinesPage> {
        let log = self.log;
        self.store
            .read(move |tx| read_lines(tx, log, first, max_lines))
            .await
    }

    /// The stored bytes from `offset` to the end of what is stored now, as a stream of
    /// pieces of at most a chunk, each read when polled. To follow a running log, start a
    /// new stream where the last one ended.
    pub fn stream(
        &self,
        offset: u64,
    ) -> impl futures_core::Stream<Item = Result<LogPiece>> + Send + 'static {
        let reader = self.clone();
        futures_util::stream::try_unfold((reader, offset), |(reader, offset)| async move {
            let log = reader.log;
            let chunk = reader
                .store
                .read(move |tx| chunk_at(tx, log, offset))
                .await?;
            Ok(chunk.map(|c| {
                let from = (offset - c.first_byte) as usize;
                let data = c.raw[from..].to_vec();
                let next = offset + data.len() as u64;
                (LogPiece { offset, data }, (reader, next))
            }))
        })
    }
}
