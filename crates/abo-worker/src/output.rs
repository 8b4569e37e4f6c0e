//! [`OutputBuffer`]: a command's pending `update` entries, batched like the stock worker's
//! `BufferManager` (spec §3.9) and bounded.
//!
//! Lines go in per stream; consecutive lines of the same stream merge into one
//! [`LineInfo`]. The owner flushes when [`OutputBuffer::is_full`] (about `buffer_size` bytes,
//! counted like the stock worker: text plus 8 bytes per index and per timestamp, plus 20 per
//! entry) or when [`OutputBuffer::deadline`] passes (`buffer_timeout` after the first
//! buffered item), and always before results (`rc`, `elapsed`) go out. Memory therefore stays
//! near `buffer_size` per command, whatever the command prints.
//!
//! Bulk output arrives as blocks of whole lines ([`OutputBuffer::block`]): one copy and one
//! UTF-8 check per block, no per-line allocation, and character counting (for
//! `newline_idx`) only when the block is not ASCII. The text is gathered in a buffer taken
//! from the connection's pool and handed on without a copy.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Duration, Instant};

use abo_proto::{LineInfo, UpdateEntry};

use crate::buffers::Buffers;
use crate::lines::LineSink;

/// The streams that carry lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stream {
    /// `header`
    Header,
    /// `stdout`
    Stdout,
    /// `stderr`
    Stderr,
    /// `log` with this logfile name.
    Log(String),
}

/// Per-entry overhead in the size count (the stock worker's figure for non-log keys).
const ENTRY_COST: usize = 20;
/// Per-line overhead: one index and one timestamp, 8 bytes each.
const LINE_COST: usize = 16;

/// Lines of one stream being gathered: a [`LineInfo`] that can still grow.
#[derive(Debug)]
struct Gathering {
    stream: Stream,
    text: String,
    newline_idx: Vec<u64>,
    line_times: Vec<f64>,
}

#[derive(Debug)]
enum Item {
    Lines(Gathering),
    Other(UpdateEntry),
}

/// Buffered update entries of one command. See the module documentation.
#[derive(Debug)]
pub struct OutputBuffer {
    items: Vec<Item>,
    size: usize,
    limit: usize,
    timeout: Duration,
    first_at: Option<Instant>,
    /// Characters of the last `Lines` item, for the next `newline_idx` (Python counts
    /// characters, not bytes).
    chars: u64,
    /// Lines of stdout and stderr so far (for `max_lines`); never reset.
    output_lines: u64,
    /// Where gathered text takes its buffer from (the connection hands it back once sent).
    pool: Option<Arc<Buffers>>,
}

impl OutputBuffer {
    /// A buffer flushed at `limit` bytes or `timeout` after its first item.
    pub fn new(limit: usize, timeout: Duration) -> OutputBuffer {
        OutputBuffer {
            items: Vec::new(),
            size: 0,
            limit: limit.max(1),
            timeout,
            first_at: None,
            chars: 0,
            output_lines: 0,
            pool: None,
        }
    }

    /// The same buffer, gathering text into buffers taken from `pool`.
    pub(crate) fn recycling(mut self, pool: &Arc<Buffers>) -> OutputBuffer {
        self.pool = Some(Arc::clone(pool));
        self
    }

    /// How many stdout and stderr lines went through this buffer.
    pub fn lines(&self) -> u64 {
        self.output_lines
    }

    /// Whether the buffer holds enough to be sent now.
    pub fn is_full(&self) -> bool {
        self.size >= self.limit
    }

    /// Bytes that still fit before the buffer is full: callers read at most this much (but
    /// at least a small block) so an update stays near `buffer_size`.
    pub fn room(&self) -> usize {
        self.limit.saturating_sub(self.size)
    }

    /// Whether nothing is buffered.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// When the buffer must be flushed at the latest, if it holds anything.
    pub fn deadline(&self) -> Option<Instant> {
        self.first_at.map(|t| t + self.timeout)
    }

    fn touch(&mut self) {
        self.first_at.get_or_insert_with(Instant::now);
    }

    /// The `Lines` item that `stream`'s next lines go to (the last item if it is that
    /// stream's, else a new one with room for `capacity` bytes of text), and its character
    /// count so far.
    fn gathering(&mut self, stream: &Stream, capacity: usize) -> (&mut Gathering, &mut u64) {
        self.touch();
        let merge = matches!(self.items.last(), Some(Item::Lines(g)) if g.stream == *stream);
        if !merge {
            let text = match &self.pool {
                // An emptied buffer is valid UTF-8, so this never falls back to a new one.
                Some(pool) => String::from_utf8(pool.take(capacity)).unwrap_or_default(),
                None => String::with_capacity(capacity),
            };
            self.items.push(Item::Lines(Gathering {
                stream: stream.clone(),
                text,
                newline_idx: Vec::new(),
                line_times: Vec::new(),
            }));
            self.chars = 0;
            self.size += ENTRY_COST;
        }
        match self.items.last_mut() {
            Some(Item::Lines(g)) => (g, &mut self.chars),
            _ => unreachable!("a Lines item was just ensured"),
        }
    }

    /// Appends one line (content without `\n`) to `stream`.
    pub fn line(&mut self, stream: &Stream, content: &[u8], started: f64) {
        if matches!(stream, Stream::Stdout | Stream::Stderr) {
            self.output_lines += 1;
        }
        // The strict check has an ASCII fast path; the lossy one only runs on bad bytes.
        let text: Cow<'_, str> = match std::str::from_utf8(content) {
            Ok(s) => Cow::Borrowed(s),
            Err(_) => String::from_utf8_lossy(content),
        };
        let (g, chars) = self.gathering(stream, text.len() + 1);
        g.text.push_str(&text);
        g.text.push('\n');
        *chars += text.chars().count() as u64;
        g.newline_idx.push(*chars);
        g.line_times.push(started);
        *chars += 1;
        self.size += text.len() + 1 + LINE_COST;
    }

    /// Appends a block of complete lines to `stream` (see [`LineSink::lines`]): one copy
    /// and one UTF-8 check for the whole block, and no character counting when it is ASCII,
    /// which is what nearly all build output is.
    pub fn block(&mut self, stream: &Stream, block: &[u8], ends: &[usize], started: f64) {
        // Lines split at `\n`, an ASCII byte, so the block is UTF-8 exactly when every line
        // is.
        let Ok(text) = std::str::from_utf8(block) else {
            // Invalid bytes somewhere: line by line, each with its replacement characters.
            let mut start = 0;
            for &end in ends {
                self.line(stream, &block[start..end], started);
                start = end + 1;
            }
            return;
        };
        if matches!(stream, Stream::Stdout | Stream::Stderr) {
            self.output_lines += ends.len() as u64;
        }
        let ascii = text.is_ascii();
        // Gathered text stays near `limit`: reserving that much at once spares the copies of
        // growing by doubling.
        let capacity = block.len().max(self.limit.saturating_sub(self.size));
        let (g, chars) = self.gathering(stream, capacity);
        let base = *chars;
        let offset = g.text.len();
        g.text.push_str(text);
        g.newline_idx.reserve(ends.len());
        g.line_times.reserve(ends.len());
        if ascii {
            for &end in ends {
                g.newline_idx.push(base + end as u64);
            }
            *chars += block.len() as u64;
        } else {
            let mut start = 0;
            for &end in ends {
                *chars += g.text[offset + start..offset + end].chars().count() as u64;
                g.newline_idx.push(*chars);
                *chars += 1;
                start = end + 1;
            }
        }
        g.line_times
            .extend(std::iter::repeat_n(started, ends.len()));
        self.size += block.len() + LINE_COST * ends.len();
    }

    /// Appends whole lines of text (each ending in `\n`, or completed with one) to `stream`.
    pub fn text(&mut self, stream: &Stream, text: &str, now: f64) {
        for line in text.strip_suffix('\n').unwrap_or(text).split('\n') {
            self.line(stream, line.as_bytes(), now);
        }
    }

    /// Appends a non-line entry (`rc`, `elapsed`, `failure_reason`, `files`, `stat`).
    pub fn entry(&mut self, entry: UpdateEntry) {
        self.touch();
        self.size += ENTRY_COST;
        self.items.push(Item::Other(entry));
    }

    /// Takes everything buffered, as update entries in production order.
    pub fn take(&mut self) -> Vec<UpdateEntry> {
        self.size = 0;
        self.first_at = None;
        self.chars = 0;
        std::mem::take(&mut self.items)
            .into_iter()
            .map(|item| match item {
                Item::Lines(g) => {
                    let info = LineInfo {
                        // Shares the gathered text: no copy.
                        text: g.text.into(),
                        newline_idx: g.newline_idx,
                        line_times: g.line_times,
                    };
                    match g.stream {
                        Stream::Header => UpdateEntry::Header(info),
                        Stream::Stdout => UpdateEntry::Stdout(info),
                        Stream::Stderr => UpdateEntry::Stderr(info),
                        Stream::Log(name) => UpdateEntry::Log { name, lines: info },
                    }
                }
                Item::Other(e) => e,
            })
            .collect()
    }

    /// A [`LineSink`] writing into this buffer's `stream`.
    pub fn sink<'a>(&'a mut self, stream: &'a Stream) -> StreamSink<'a> {
        StreamSink {
            buffer: self,
            stream,
        }
    }
}

/// Writes a splitter's lines into one stream of an [`OutputBuffer`].
pub struct StreamSink<'a> {
    buffer: &'a mut OutputBuffer,
    stream: &'a Stream,
}

impl LineSink for StreamSink<'_> {
    fn line(&mut self, content: &[u8], started: f64) {
        self.buffer.line(self.stream, content, started);
    }

    fn lines(&mut self, block: &[u8], ends: &[usize], started: f64) {
        self.buffer.block(self.stream, block, ends, started);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consecutive_lines_of_a_stream_merge_and_order_is_kept() {
        let mut b = OutputBuffer::new(1 << 20, Duration::from_secs(5));
        assert!(b.deadline().is_none());
        b.line(&Stream::Stdout, b"hello", 1.0);
        b.line(&Stream::Stdout, b"world", 2.0);
        b.line(&Stream::Stderr, b"oops", 3.0);
        b.entry(UpdateEntry::Rc(3));
        b.line(&Stream::Log("mylog".into()), "é!".as_bytes(), 4.0);
        assert!(b.deadline().is_some());
        let entries = b.take();
        assert_eq!(
            entries,
            [
                UpdateEntry::Stdout(LineInfo {
                    text: "hello\nworld\n".into(),
                    newline_idx: vec![5, 11],
                    line_times: vec![1.0, 2.0],
                }),
                UpdateEntry::Stderr(LineInfo {
                    text: "oops\n".into(),
                    newline_idx: vec![4],
                    line_times: vec![3.0],
                }),
                UpdateEntry::Rc(3),
                UpdateEntry::Log {
                    name: "mylog".into(),
                    // Indexes count characters, as Python does.
                    lines: LineInfo {
                        text: "é!\n".into(),
                        newline_idx: vec![2],
                        line_times: vec![4.0],
                    }
                },
            ]
        );
        assert!(b.is_empty() && b.deadline().is_none());
    }

    #[test]
    fn a_block_gives_the_same_entries_as_its_lines() {
        let cases: [&[u8]; 5] = [
            b"abc\n\nde\n",
            "é€x\n𝄞\n\nplain\n".as_bytes(),
            b"ok\nbad \xff\xfe byte\nok\n",
            b"\n",
            "a\u{0}b\u{7f}\n".as_bytes(),
        ];
        for block in cases {
            let ends: Vec<usize> = memchr::memchr_iter(b'\n', block).collect();
            let mut whole = OutputBuffer::new(1 << 20, Duration::from_secs(5));
            let mut single = OutputBuffer::new(1 << 20, Duration::from_secs(5));
            for b in [&mut whole, &mut single] {
                b.line(&Stream::Stdout, "ü".as_bytes(), 1.0);
            }
            whole.block(&Stream::Stdout, block, &ends, 2.0);
            let mut start = 0;
            for &end in &ends {
                single.line(&Stream::Stdout, &block[start..end], 2.0);
                start = end + 1;
            }
            assert_eq!(whole.size, single.size);
            assert_eq!(whole.lines(), single.lines());
            assert_eq!(whole.take(), single.take(), "{block:?}");
        }
    }

    #[test]
    fn invalid_utf8_becomes_replacement_characters() {
        let mut b = OutputBuffer::new(1 << 20, Duration::from_secs(5));
        b.line(&Stream::Stdout, b"a\xffb", 0.0);
        let [UpdateEntry::Stdout(info)] = &b.take()[..] else {
            panic!()
        };
        assert_eq!(info.text, "a\u{fffd}b\n");
    }

    #[test]
    fn fullness_counts_text_and_per_line_overhead() {
        let mut b = OutputBuffer::new(100, Duration::from_secs(5));
        b.line(&Stream::Stdout, &[b'x'; 50], 0.0);
        assert!(!b.is_full()); // 20 + 51 + 16
        b.line(&Stream::Stdout, b"", 0.0);
        assert!(b.is_full()); // + 1 + 16
        b.text(&Stream::Header, "a\nb\n", 0.0);
        let entries = b.take();
        assert!(matches!(&entries[1], UpdateEntry::Header(i) if i.text == "a\nb\n"));
    }
}
