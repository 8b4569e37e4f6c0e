//! The synchronous half of a log writer: masking, stdio line records, the cap, and cutting
//! the stored stream into chunks with their line and byte positions. No I/O; the async
//! [`LogWriter`](super::LogWriter) persists what this seals.

use super::mask::Masker;
use super::{CHUNK_BYTES, MAX_LINE_BYTES};
use crate::types::{LogKind, Stream};

/// A chunk ready to be compressed and stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SealedChunk {
    pub seq: u64,
    pub first_byte: u64,
    /// Number of the first line starting in the chunk (see `log_chunks.first_line`).
    pub first_line: u64,
    /// The first byte continues a line begun in an earlier chunk.
    pub cont: bool,
    pub raw: Vec<u8>,
}

/// Counters of what has been sealed, as stored in the `logs` row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Totals {
    pub byte_len: u64,
    pub line_count: u64,
    pub chunk_count: u64,
    pub truncated: bool,
    pub dropped: u64,
}

pub(crate) struct Encoder {
    kind: LogKind,
    /// One per stream for stdio logs (each stream is its own byte sequence); one for text
    /// logs, whose streams are one sequence.
    maskers: Vec<Masker>,
    /// Stdio: each stream's unterminated line, at most [`MAX_LINE_BYTES`].
    partial: [Vec<u8>; 3],
    /// Stored bytes not sealed yet, at most [`CHUNK_BYTES`].
    buf: Vec<u8>,
    cap: u64,
    /// Stored bytes counted against the cap (sealed or in `buf`, without the marker).
    accepted: u64,
    last_byte: Option<u8>,
    truncated: bool,
    dropped: u64,
    /// Newlines in `buf` of a stdio log, counted as records are appended (every record
    /// ends with exactly one), so sealing a chunk need not scan it again.
    buf_newlines: u64,
    sealed_bytes: u64,
    sealed_newlines: u64,
    sealed_ends_line: bool,
    next_seq: u64,
    sealed: Vec<SealedChunk>,
    masked: Vec<u8>,
    record: Vec<u8>,
}

impl Encoder {
    pub(crate) fn new(kind: LogKind, cap: u64, masker: Masker) -> Encoder {
        let maskers = match kind {
            LogKind::Stdio => vec![masker.clone(), masker.clone(), masker],
            LogKind::Text => vec![masker],
        };
        Encoder {
            kind,
            maskers,
            partial: Default::default(),
            buf: Vec::new(),
            cap,
            accepted: 0,
            last_byte: None,
            truncated: false,
            dropped: 0,
            buf_newlines: 0,
            sealed_bytes: 0,
            sealed_newlines: 0,
            sealed_ends_line: true,
            next_seq: 0,
            sealed: Vec::new(),
            masked: Vec::new(),
            record: Vec::new(),
        }
    }

    /// Bytes held in memory: the chunk being filled, partial lines, masking hold-back and
    /// sealed chunks not yet taken. Bounded by a few chunks whatever is written.
    pub(crate) fn buffered(&self) -> usize {
        self.buf.len()
            + self.partial.iter().map(Vec::len).sum::<usize>()
            + self.maskers.iter().map(Masker::held_len).sum::<usize>()
            + self.sealed.iter().map(|c| c.raw.len()).sum::<usize>()
    }

    pub(crate) fn totals(&self) -> Totals {
        Totals {
            byte_len: self.sealed_bytes,
            line_count: self.sealed_newlines + u64::from(!self.sealed_ends_line),
            chunk_count: self.next_seq,
            truncated: self.truncated,
            dropped: self.dropped,
        }
    }

    pub(crate) fn take_sealed(&mut self) -> Vec<SealedChunk> {
        std::mem::take(&mut self.sealed)
    }

    /// Takes output. Callers pass at most [`CHUNK_BYTES`] at a time (the writer slices), so
    /// at most two chunks are sealed per call.
    pub(crate) fn write(&mut self, stream: Stream, data: &[u8]) {
        if self.truncated {
            // Past the cap nothing is stored: count, and skip even the masking.
            self.dropped += data.len() as u64;
            return;
        }
        let m = match self.kind {
            LogKind::Stdio => stream.index(),
            LogKind::Text => 0,
        };
        let mut masked = std::mem::take(&mut self.masked);
        masked.clear();
        // Output without a secret in it is routed as it is, without a copy.
        let settled = self.maskers[m].push_settled(data, &mut masked);
        self.route(stream, settled);
        self.masked = masked;
    }

    /// Seals what is complete so readers see it: the whole buffer of a text log, the whole
    /// lines of a stdio log (an unterminated line waits for its end, or for
    /// [`MAX_LINE_BYTES`]).
    pub(crate) fn flush(&mut self) {
        self.seal_all();
    }

    /// Ends the log: releases the masking hold-back, ends unterminated stdio lines, and
    /// seals everything.
    pub(crate) fn finish(&mut self) {
        for stream in Stream::ALL {
            let m = match self.kind {
                LogKind::Stdio => stream.index(),
                LogKind::Text if stream == Stream::Stdout => 0,
                LogKind::Text => continue,
            };
            let mut masked = std::mem::take(&mut self.masked);
            masked.clear();
            self.maskers[m].finish(&mut masked);
            if self.truncated {
                self.dropped += masked.len() as u64;
            } else {
                self.route(stream, &masked);
            }
            self.masked = masked;
        }
        if self.kind == LogKind::Stdio {
            for stream in Stream::ALL {
                if !self.partial[stream.index()].is_empty() {
                    self.emit_record(stream, &[]);
                }
            }
        }
        self.seal_all();
    }

    fn route(&mut self, stream: Stream, mut bytes: &[u8]) {
        if self.kind == LogKind::Text {
            self.accept(bytes);
            return;
        }
        if self.partial[stream.index()].is_empty() {
            bytes = self.whole_lines(stream, bytes);
        }
        while !bytes.is_empty() {
            let room = MAX_LINE_BYTES - self.partial[stream.index()].len();
            // Look one byte past the room: a line of exactly MAX_LINE_BYTES followed by
            // its newline is one record, not a record and an empty one.
            let window = &bytes[..bytes.len().min(room + 1)];
            if let Some(i) = memchr::memchr(b'\n', window) {
                self.emit_record(stream, &bytes[..i]);
                bytes = &bytes[i + 1..];
            } else if bytes.len() > room {
                self.emit_record(stream, &bytes[..room]);
                bytes = &bytes[room..];
            } else {
                self.partial[stream.index()].extend_from_slice(bytes);
                break;
            }
        }
    }

    /// The bulk of a stdio write, with no partial line pending: every whole line that is
    /// short enough to be one record and fits under the cap goes straight into the chunk
    /// buffer, found by one pass over the write instead of a search per line. Returns what
    /// is left for [`Encoder::route`]'s general path (an unterminated end, a line too long,
    /// the cap). The records are those `route` would make, byte for byte.
    fn whole_lines<'b>(&mut self, stream: Stream, bytes: &'b [u8]) -> &'b [u8] {
        if self.truncated {
            return bytes;
        }
        let prefix = stream.prefix();
        let before = self.cap.saturating_sub(self.accepted);
        let mut room = before;
        let mut start = 0;
        let mut records = 0u64;
        for end in memchr::memchr_iter(b'\n', bytes) {
            let line = &bytes[start..end];
            let len = line.len() + 2;
            if line.len() > MAX_LINE_BYTES || len as u64 > room {
                break;
            }
            if !self.buf.is_empty() && self.buf.len() + len > CHUNK_BYTES {
                self.buf_newlines += records;
                records = 0;
                self.seal_full();
            }
            room -= len as u64;
            self.buf.push(prefix);
            self.buf.extend_from_slice(line);
            self.buf.push(b'\n');
            records += 1;
            start = end + 1;
        }
        if start > 0 {
            self.buf_newlines += records;
            self.accepted += before - room;
            self.last_byte = Some(b'\n');
        }
        &bytes[start..]
    }

    /// Stores one stdio line: the stream's letter, its pending partial line, `tail`, `\n`.
    fn emit_record(&mut self, stream: Stream, tail: &[u8]) {
        // The common case, a whole line well within the cap, goes straight into the chunk
        // buffer: no record copy. Anything else (a pending partial line, the cap) takes the
        // general path below.
        let len = tail.len() + 2;
        if self.partial[stream.index()].is_empty()
            && !self.truncated
            && (len as u64) <= self.cap.saturating_sub(self.accepted)
        {
            if !self.buf.is_empty() && self.buf.len() + len > CHUNK_BYTES {
                self.seal_full();
            }
            self.accepted += len as u64;
            self.buf.push(stream.prefix());
            self.buf.extend_from_slice(tail);
            self.buf.push(b'\n');
            self.buf_newlines += 1;
            self.last_byte = Some(b'\n');
            return;
        }
        let mut record = std::mem::take(&mut self.record);
        record.clear();
        record.push(stream.prefix());
        record.append(&mut self.partial[stream.index()]);
        record.extend_from_slice(tail);
        record.push(b'\n');
        self.accept(&record);
        self.record = record;
    }

    /// Applies the cap to stored bytes (a whole stdio record, or any run of text).
    fn accept(&mut self, bytes: &[u8]) {
        if self.truncated {
            self.dropped += bytes.len() as u64;
            return;
        }
        let room = self.cap.saturating_sub(self.accepted);
        if (bytes.len() as u64) <= room {
            self.accepted += bytes.len() as u64;
            self.append(bytes);
            return;
        }
        let keep = usize::try_from(room).unwrap_or(usize::MAX).min(bytes.len());
        self.truncated = true;
        self.dropped += (bytes.len() - keep) as u64;
        self.accepted += keep as u64;
        let marker = format!("[abo: log truncated after {} bytes]\n", self.cap);
        match self.kind {
            LogKind::Stdio => {
                // The cut line keeps its letter and gets its newline back; a cut that
                // leaves only the letter drops the line.
                if keep > 1 {
                    let mut cut = bytes[..keep].to_vec();
                    cut.push(b'\n');
                    self.append(&cut);
                }
                let mut line = vec![Stream::Header.prefix()];
                line.extend_from_slice(marker.as_bytes());
                self.append(&line);
            }
            LogKind::Text => {
                self.append(&bytes[..keep]);
                if self.last_byte.is_some_and(|b| b != b'\n') {
                    self.append(b"\n");
                }
                self.append(marker.as_bytes());
            }
        }
    }

    fn append(&mut self, bytes: &[u8]) {
        let Some(&last) = bytes.last() else { return };
        self.last_byte = Some(last);
        match self.kind {
            LogKind::Stdio => {
                // Records stay whole within a chunk, so stdio chunks start at line starts.
                if !self.buf.is_empty() && self.buf.len() + bytes.len() > CHUNK_BYTES {
                    self.seal_full();
                }
                self.buf.extend_from_slice(bytes);
                self.buf_newlines += memchr::memchr_iter(b'\n', bytes).count() as u64;
            }
            LogKind::Text => {
                let mut rest = bytes;
                while !rest.is_empty() {
                    let take = rest.len().min(CHUNK_BYTES - self.buf.len());
                    self.buf.extend_from_slice(&rest[..take]);
                    rest = &rest[take..];
                    if self.buf.len() >= CHUNK_BYTES {
                        self.seal_full_text();
                    }
                }
            }
        }
    }

    /// A full text buffer is cut after its last newline when that keeps the chunk at least
    /// half full (line pages then rarely straddle chunks), else sealed whole.
    fn seal_full_text(&mut self) {
        match self.buf.iter().rposition(|&b| b == b'\n') {
            Some(i) if i + 1 >= CHUNK_BYTES / 2 => {
                let tail = self.buf.split_off(i + 1);
                let head = std::mem::replace(&mut self.buf, tail);
                let newlines = count_newlines(&head);
                self.seal(head, newlines);
            }
            _ => self.seal_full(),
        }
    }

    /// Seals the buffer because the next bytes would overflow it: more output is coming,
    /// so the next chunk's room is taken at once instead of grown to.
    fn seal_full(&mut self) {
        self.seal_all();
        self.buf.reserve(CHUNK_BYTES);
    }

    /// Seals the buffer and leaves none in its place: a flushed log may stay quiet for
    /// long (sixteen running builds each kept an empty 64 KiB buffer per log after their
    /// first flush); what comes next grows a new one.
    fn seal_all(&mut self) {
        if !self.buf.is_empty() {
            let raw = std::mem::take(&mut self.buf);
            let newlines = match self.kind {
                LogKind::Stdio => std::mem::take(&mut self.buf_newlines),
                LogKind::Text => count_newlines(&raw),
            };
            self.seal(raw, newlines);
        }
    }

    /// Seals `raw`, which holds `newlines` newlines.
    fn seal(&mut self, raw: Vec<u8>, newlines: u64) {
        debug_assert_eq!(newlines, count_newlines(&raw));
        let cont = !self.sealed_ends_line;
        let chunk = SealedChunk {
            seq: self.next_seq,
            first_byte: self.sealed_bytes,
            first_line: self.sealed_newlines + u64::from(cont),
            cont,
            raw,
        };
        self.next_seq += 1;
        self.sealed_bytes += chunk.raw.len() as u64;
        self.sealed_newlines += newlines;
        self.sealed_ends_line = chunk.raw.last() == Some(&b'\n');
        self.sealed.push(chunk);
    }
}

fn count_newlines(bytes: &[u8]) -> u64 {
    bytes.iter().filter(|&&b| b == b'\n').count() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(enc: &mut Encoder) -> Vec<u8> {
        enc.take_sealed().into_iter().flat_map(|c| c.raw).collect()
    }

    #[test]
    fn stdio_interleaves_by_line_and_ends_partial_lines() {
        let mut e = Encoder::new(LogKind::Stdio, u64::MAX, Masker::none());
        e.write(Stream::Stdout, b"out1\nout");
        e.write(Stream::Stderr, b"err1\n");
        e.write(Stream::Stdout, b"2\n");
        e.write(Stream::Header, b"exit 0");
        e.finish();
        assert_eq!(stored(&mut e), b"oout1\neerr1\noout2\nhexit 0\n");
        assert_eq!(e.totals().line_count, 4);
    }

    #[test]
    fn a_flushed_log_keeps_no_buffer_and_a_full_one_its_next_chunk() {
        let mut e = Encoder::new(LogKind::Stdio, u64::MAX, Masker::none());
        e.write(Stream::Stdout, b"one line\n");
        e.flush();
        assert_eq!(stored(&mut e), b"oone line\n");
        assert_eq!(e.buf.capacity(), 0);
        // Output that fills chunks: the next one's room is taken as the last is sealed.
        let line = [b'x'; 1000];
        for _ in 0..(CHUNK_BYTES / 1000 + 1) {
            e.write(Stream::Stdout, &line);
            e.write(Stream::Stdout, b"\n");
        }
        assert_eq!(e.take_sealed().len(), 1);
        assert!(e.buf.capacity() >= CHUNK_BYTES);
        e.finish();
        assert_eq!(e.buf.capacity(), 0);
    }

    #[test]
    fn long_stdio_lines_are_split_without_loss() {
        let mut e = Encoder::new(LogKind::Stdio, u64::MAX, Masker::none());
        let line = vec![b'x'; MAX_LINE_BYTES * 2 + 5];
        e.write(Stream::Stdout, &line[..CHUNK_BYTES.min(line.len())]);
        e.write(Stream::Stdout, &line[CHUNK_BYTES.min(line.len())..]);
        e.write(Stream::Stdout, b"\n");
        e.finish();
        let out = stored(&mut e);
        let records: Vec<&[u8]> = out
            .split(|&b| b == b'\n')
            .filter(|r| !r.is_empty())
            .collect();
        assert_eq!(records.len(), 3);
        let joined: Vec<u8> = records.iter().flat_map(|r| r[1..].to_vec()).collect();
        assert_eq!(joined, line);
    }

    #[test]
    fn bulk_lines_store_what_byte_writes_store() {
        // Short lines, an empty one, lines longer than a record, and a cap that falls
        // inside a block: written in large blocks (the bulk path) and a byte at a time
        // (always through a partial line), the stored chunks and counters agree.
        let mut data = Vec::new();
        for i in 0..3000u32 {
            let len = match i % 7 {
                0 => 0,
                1 => MAX_LINE_BYTES + 3,
                2 => MAX_LINE_BYTES,
                _ => (i as usize * 37) % 300,
            };
            data.extend((0..len).map(|j| b'a' + (j % 26) as u8));
            data.push(b'\n');
        }
        data.extend_from_slice(b"no end");
        for cap in [u64::MAX, data.len() as u64 / 2] {
            let mut bulk = Encoder::new(LogKind::Stdio, cap, Masker::none());
            for piece in data.chunks(CHUNK_BYTES) {
                bulk.write(Stream::Stderr, piece);
            }
            bulk.finish();
            let mut bytes = Encoder::new(LogKind::Stdio, cap, Masker::none());
            for b in &data {
                bytes.write(Stream::Stderr, std::slice::from_ref(b));
            }
            bytes.finish();
            // `dropped` is left out: past the cap, the rest of a write is counted as the
            // records it would have made, later writes as raw bytes.
            let (b, w) = (bulk.totals(), bytes.totals());
            assert_eq!(
                (b.byte_len, b.line_count, b.chunk_count, b.truncated),
                (w.byte_len, w.line_count, w.chunk_count, w.truncated)
            );
            assert_eq!(bulk.take_sealed(), bytes.take_sealed());
        }
    }

    #[test]
    fn exact_max_line_is_one_record() {
        let mut e = Encoder::new(LogKind::Stdio, u64::MAX, Masker::none());
        let mut line = vec![b'y'; MAX_LINE_BYTES];
        line.push(b'\n');
        e.write(Stream::Stdout, &line);
        e.finish();
        assert_eq!(e.totals().line_count, 1);
    }

    #[test]
    fn text_cap_adds_one_marker_and_counts_the_rest() {
        let mut e = Encoder::new(LogKind::Text, 10, Masker::none());
        e.write(Stream::Stdout, b"0123456");
        e.write(Stream::Stdout, b"789abcdef");
        e.write(Stream::Stdout, b"more");
        e.finish();
        assert_eq!(
            stored(&mut e),
            b"0123456789\n[abo: log truncated after 10 bytes]\n"
        );
        assert!(e.totals().truncated);
        assert_eq!(e.totals().dropped, 6 + 4);
    }

    #[test]
    fn chunk_positions_track_lines() {
        let mut e = Encoder::new(LogKind::Text, u64::MAX, Masker::none());
        let mut data = vec![b'a'; CHUNK_BYTES - 10];
        data.push(b'\n');
        data.extend(vec![b'b'; 100]);
        e.write(Stream::Stdout, &data);
        e.write(Stream::Stdout, &vec![b'c'; CHUNK_BYTES]);
        e.finish();
        let chunks = e.take_sealed();
        assert_eq!(chunks[0].first_line, 0);
        assert!(!chunks[0].cont);
        assert_eq!(chunks[0].raw.len(), CHUNK_BYTES - 9);
        assert!(!chunks[1].cont);
        assert_eq!(chunks[1].first_line, 1);
        assert!(chunks[2].cont);
        assert_eq!(chunks[2].first_line, 2);
    }
}
