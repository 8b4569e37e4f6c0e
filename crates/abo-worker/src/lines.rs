//! [`LineSplitter`]: turns a process's raw output bytes into complete lines, the way the
//! stock worker's `LineBoundaryFinder` does, without its character loss on long lines.
//!
//! What it does, per stream:
//! - applies the stock default `newline_re`
//!   (`\r\n | \r(?=.) | ESC[u | ESC[n;nH | ESC[n;nf | ESC[2J | \x08+` → `\n`) as a byte state
//!   machine, so a sequence split across two reads is still recognised (the stock worker
//!   re-scans its partial line for the same effect);
//! - holds the partial last line until its `\n` arrives, or until [`LineSplitter::finish`],
//!   which emits it as a line (the stock worker adds the `\n` too);
//! - splits a line longer than the limit into pieces of at most `limit` bytes, cutting only
//!   between UTF-8 characters and never dropping a byte (4.3.0 drops characters there,
//!   spec §3.9).
//!
//! It works on bytes: every byte it looks for is ASCII, and UTF-8 multi-byte sequences never
//! contain ASCII bytes, so translation cannot corrupt a character. Decoding (with U+FFFD for
//! invalid bytes, Python's `errors='replace'`) happens per complete line, in
//! [`crate::output`].
//!
//! Speed: nearly all output is plain lines, which need no translation. Between lines, one
//! SIMD search finds the next byte that would need it (`\r`, ESC, backspace); the whole lines
//! before it go to the sink as one block ([`LineSink::lines`]), without being copied here.
//! Only what is left (a partial line, a sequence, a line to cut) takes the byte-wise path.

/// The smallest line limit: a cut must leave room for one whole UTF-8 character (4 bytes).
const MIN_LIMIT: usize = 4;

/// Longest digit run accepted inside an escape sequence before it is taken literally; keeps
/// the held-back bytes bounded.
const MAX_ESC_DIGITS: usize = 16;

/// Where the newline translation stands between two bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    Normal,
    /// A `\r` was seen: a following `\n` or any other byte makes it a line end; the end of
    /// the output leaves it a literal `\r` (Python's `\r(?=.)` needs a next character).
    Cr,
    /// Inside a run of backspaces, which becomes one line end.
    Backspaces,
    /// Inside a possible escape sequence; the bytes so far are in `esc`.
    Esc(Esc),
}

/// How far an escape sequence has been matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Esc {
    /// `ESC`
    Start,
    /// `ESC [`
    Bracket,
    /// `ESC [ digits`
    FirstDigits,
    /// `ESC [ digits ;`
    Semicolon,
    /// `ESC [ digits ; digits`
    SecondDigits,
}

/// Splits one stream's bytes into lines. See the module documentation.
#[derive(Debug)]
pub struct LineSplitter {
    limit: usize,
    /// Where the fast path collects the `\n` positions of a block of lines (kept to reuse its
    /// allocation).
    ends: Vec<usize>,
    state: State,
    /// Bytes of an escape sequence being matched (literal if the match fails).
    esc: Vec<u8>,
    /// The current line's content so far: translated, without `\n`, at most `limit` bytes.
    partial: Vec<u8>,
    /// When the current line started (its first byte arrived), for `line_times`.
    started: Option<f64>,
}

/// Receives the lines a [`LineSplitter`] completes: content without the `\n`, and the time
/// the line started.
pub trait LineSink {
    /// One complete line.
    fn line(&mut self, content: &[u8], started: f64);

    /// Several complete lines at once, all started at `started`: `block` is their content,
    /// each line followed by its `\n` (already translated: `block` needs no more work), and
    /// `ends` the index in `block` of each of those `\n`, in order; the last byte of `block`
    /// is the last of them. No line is longer than the limit.
    ///
    /// Nearly all output arrives this way, so a sink can take the block as a whole; by
    /// default it gets the lines one by one.
    fn lines(&mut self, block: &[u8], ends: &[usize], started: f64) {
        let mut start = 0;
        for &end in ends {
            self.line(&block[start..end], started);
            start = end + 1;
        }
    }
}

impl LineSplitter {
    /// A splitter cutting lines longer than `limit` bytes (at least 4).
    pub fn new(limit: usize) -> LineSplitter {
        LineSplitter {
            limit: limit.max(MIN_LIMIT),
            ends: Vec::new(),
            state: State::Normal,
            esc: Vec::new(),
            partial: Vec::new(),
            started: None,
        }
    }

    /// Bytes held back (the partial line and any pending escape bytes).
    pub fn pending(&self) -> usize {
        self.partial.len() + self.esc.len()
    }

    /// Takes in `data`, which arrived at time `now`, and emits every line it completes.
    pub fn feed(&mut self, data: &[u8], now: f64, sink: &mut impl LineSink) {
        let mut i = 0;
        while i < data.len() {
            match self.state {
                State::Normal => {
                    if self.started.is_none() {
                        // Fastest path: whole lines in this read, handed over as one block.
                        let taken = self.block(&data[i..], now, sink);
                        if taken > 0 {
                            i += taken;
                            continue;
                        }
                    }
                    // Fast path: the run of ordinary bytes up to the next special one.
                    let run = special(&data[i..]).unwrap_or(data.len() - i);
                    if run > 0 {
                        self.content(&data[i..i + run], now, sink);
                        i += run;
                        continue;
                    }
                    let b = data[i];
                    i += 1;
                    match b {
                        b'\n' => self.end_line(now, sink),
                        b'\r' => self.state = State::Cr,
                        0x08 => self.state = State::Backspaces,
                        _ => {
                            self.esc.clear();
                            self.esc.push(b);
                            self.state = State::Esc(Esc::Start);
                        }
                    }
                }
                State::Cr => {
                    self.state = State::Normal;
                    // `\r\n` and `\r` + any other byte both end the line; the other byte is
                    // then read normally.
                    self.end_line(now, sink);
                    if data[i] == b'\n' {
                        i += 1;
                    }
                }
                State::Backspaces => {
                    if data[i] == 0x08 {
                        i += 1;
                    } else {
                        self.state = State::Normal;
                        self.end_line(now, sink);
                    }
                }
                State::Esc(step) => {
                    let b = data[i];
                    match esc_step(step, b, &self.esc) {
                        EscNext::More(next) => {
                            self.esc.push(b);
                            self.state = State::Esc(next);
                            i += 1;
                        }
                        EscNext::Matched => {
                            self.esc.clear();
                            self.state = State::Normal;
                            self.end_line(now, sink);
                            i += 1;
                        }
                        EscNext::Failed => {
                            // The bytes so far are text; `b` is read again from Normal (it may
                            // start a sequence of its own).
                            let literal = std::mem::take(&mut self.esc);
                            self.state = State::Normal;
                            self.content(&literal, now, sink);
                            self.esc = literal;
                            self.esc.clear();
                        }
                    }
                }
            }
        }
    }

    /// Emits the complete lines at the start of `data` that need no translation (no `\r`,
    /// ESC or backspace before their `\n`): runs of them as blocks, a line over the limit cut
    /// on its own. Returns how many bytes that took (0 when `data` does not start with such a
    /// line). Only called between lines; one pass over what it takes, whatever the lines.
    fn block(&mut self, data: &[u8], now: f64, sink: &mut impl LineSink) -> usize {
        // Up to the first byte that the translation rewrites, only `\n` is special.
        let plain = memchr::memchr3(b'\r', 0x1b, 0x08, data).unwrap_or(data.len());
        let Some(last) = memchr::memrchr(b'\n', &data[..plain]) else {
            return 0;
        };
        // `from`: where the block being collected starts; `start`: where the next line does.
        let (mut from, mut start) = (0, 0);
        self.ends.clear();
        for end in memchr::memchr_iter(b'\n', &data[..=last]) {
            if end - start > self.limit {
                // Too long: the lines before it go as a block, it is cut the usual way.
                if !self.ends.is_empty() {
                    sink.lines(&data[from..start], &self.ends, now);
                    self.ends.clear();
                }
                self.content(&data[start..end], now, sink);
                self.end_line(now, sink);
                from = end + 1;
            } else {
                self.ends.push(end - from);
            }
            start = end + 1;
        }
        if !self.ends.is_empty() {
            sink.lines(&data[from..=last], &self.ends, now);
        }
        last + 1
    }

    /// The stream ended: resolves what was held back and emits the partial line, if any.
    pub fn finish(&mut self, now: f64, sink: &mut impl LineSink) {
        match std::mem::replace(&mut self.state, State::Normal) {
            State::Normal => {}
            State::Cr => self.content(b"\r", now, sink),
            State::Backspaces => self.end_line(now, sink),
            State::Esc(_) => {
                let literal = std::mem::take(&mut self.esc);
                self.content(&literal, now, sink);
            }
        }
        if self.started.is_some() {
            self.end_line(now, sink);
        }
    }

    /// Appends line content, cutting the line into `limit`-byte pieces as needed.
    fn content(&mut self, mut seg: &[u8], now: f64, sink: &mut impl LineSink) {
        if seg.is_empty() {
            return;
        }
        self.started.get_or_insert(now);
        loop {
            let room = self.limit.saturating_sub(self.partial.len());
            if seg.len() <= room {
                self.partial.extend_from_slice(seg);
                return;
            }
            self.partial.extend_from_slice(&seg[..room]);
            seg = &seg[room..];
            let cut = char_cut(&self.partial);
            let started = self.started.unwrap_or(now);
            sink.line(&self.partial[..cut], started);
            self.partial.drain(..cut);
            // The continuation belongs to the same line of output: it keeps its start time.
        }
    }

    fn end_line(&mut self, now: f64, sink: &mut impl LineSink) {
        let started = self.started.take().unwrap_or(now);
        sink.line(&self.partial, started);
        self.partial.clear();
    }
}

/// Index of the first byte that the newline translation looks at (`\n`, `\r`, ESC,
/// backspace), found with SIMD searches since nearly every byte is ordinary.
fn special(data: &[u8]) -> Option<usize> {
    let common = memchr::memchr3(b'\n', b'\r', 0x1b, data);
    let within = &data[..common.unwrap_or(data.len())];
    memchr::memchr(0x08, within).or(common)
}

enum EscNext {
    More(Esc),
    Matched,
    Failed,
}

/// One step of matching `ESC[u`, `ESC[n;nH`, `ESC[n;nf` or `ESC[2J`.
fn esc_step(step: Esc, b: u8, so_far: &[u8]) -> EscNext {
    let digits_ok = so_far.len() < MAX_ESC_DIGITS + 4;
    match (step, b) {
        (Esc::Start, b'[') => EscNext::More(Esc::Bracket),
        (Esc::Bracket, b'u') => EscNext::Matched,
        (Esc::Bracket, b'0'..=b'9') => EscNext::More(Esc::FirstDigits),
        (Esc::FirstDigits, b'0'..=b'9') if digits_ok => EscNext::More(Esc::FirstDigits),
        (Esc::FirstDigits, b';') => EscNext::More(Esc::Semicolon),
        // Only `ESC[2J` (clear screen), not any `ESC[nJ`.
        (Esc::FirstDigits, b'J') if so_far == b"\x1b[2" => EscNext::Matched,
        (Esc::Semicolon, b'0'..=b'9') => EscNext::More(Esc::SecondDigits),
        (Esc::SecondDigits, b'0'..=b'9') if digits_ok => EscNext::More(Esc::SecondDigits),
        (Esc::SecondDigits, b'H' | b'f') => EscNext::Matched,
        _ => EscNext::Failed,
    }
}

/// Where to cut a full piece (`piece.len() == limit`) so that no UTF-8 character is split:
/// before the last character if its bytes do not all fit, else at the end. Invalid bytes are
/// cut anywhere (they become U+FFFD either way).
fn char_cut(piece: &[u8]) -> usize {
    let len = piece.len();
    // The last character starts at most 3 bytes from the end.
    let mut start = len;
    for back in 1..=4.min(len) {
        let b = piece[len - back];
        if b & 0xC0 != 0x80 {
            start = len - back;
            break;
        }
    }
    if start == len {
        return len; // only continuation bytes: invalid, cut anywhere
    }
    let need = match piece[start] {
        0x00..=0x7F => 1,
        0xC0..=0xDF => 2,
        0xE0..=0xEF => 3,
        0xF0..=0xF7 => 4,
        _ => 1,
    };
    if start + need <= len || start == 0 {
        len
    } else {
        start
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Lines(Vec<(Vec<u8>, f64)>);

    impl LineSink for Lines {
        fn line(&mut self, content: &[u8], started: f64) {
            self.0.push((content.to_vec(), started));
        }
    }

    /// Feeds `chunks` (one time unit each) and finishes; returns the lines.
    fn split_raw(limit: usize, chunks: &[&[u8]]) -> Vec<Vec<u8>> {
        let mut s = LineSplitter::new(limit);
        let mut out = Lines::default();
        for (t, c) in chunks.iter().enumerate() {
            s.feed(c, t as f64, &mut out);
        }
        s.finish(99.0, &mut out);
        out.0.into_iter().map(|(l, _)| l).collect()
    }

    /// [`split_raw`], the lines as strings.
    fn split(limit: usize, chunks: &[&[u8]]) -> Vec<String> {
        split_raw(limit, chunks)
            .into_iter()
            .map(|l| String::from_utf8_lossy(&l).into_owned())
            .collect()
    }

    #[test]
    fn newline_translation_matches_the_stock_default_re() {
        // Observed from the stock worker: `a\rb\r\nc\n` became `a\nb\nc\n`.
        assert_eq!(split(4096, &[b"a\rb\r\nc\n"]), ["a", "b", "c"]);
        // `\r\r`: the first `\r` is followed by a character, so it ends a line.
        assert_eq!(split(4096, &[b"x\r\ry\n"]), ["x", "", "y"]);
        // Cursor and clear-screen sequences, backspace runs.
        assert_eq!(
            split(
                4096,
                &[b"a\x1b[ub\x1b[12;3Hc\x1b[1;1fd\x1b[2Je\x08\x08\x08f\n"]
            ),
            ["a", "b", "c", "d", "e", "f"]
        );
        // Sequences that do not match stay text.
        assert_eq!(
            split(4096, &[b"a\x1b[3Jb\x1b[1;xc\x1bq\n"]),
            ["a\x1b[3Jb\x1b[1;xc\x1bq"]
        );
        // A failed prefix followed by a real sequence.
        assert_eq!(split(4096, &[b"a\x1b[12;\x1b[ub\n"]), ["a\x1b[12;", "b"]);
    }

    #[test]
    fn sequences_split_across_reads_are_still_recognised() {
        assert_eq!(split(4096, &[b"a\r", b"\nb\n"]), ["a", "b"]);
        assert_eq!(split(4096, &[b"a\r", b"b\n"]), ["a", "b"]);
        assert_eq!(split(4096, &[b"a\x1b[1", b"2;4", b"Hb\n"]), ["a", "b"]);
        // One backspace run, whatever the reads.
        assert_eq!(split(4096, &[b"a\x08", b"\x08b\n"]), ["a", "b"]);
    }

    #[test]
    fn the_end_of_output_flushes_what_is_held() {
        // A trailing `\r` has no next character: literal, as with Python's `\r(?=.)`.
        assert_eq!(split(4096, &[b"partial\r"]), ["partial\r"]);
        assert_eq!(split(4096, &[b"partial"]), ["partial"]);
        assert_eq!(split(4096, &[b"x\x1b[1"]), ["x\x1b[1"]);
        assert_eq!(split(4096, &[b"x\x08"]), ["x"]);
        assert!(split(4096, &[b""]).is_empty());
        assert_eq!(split(4096, &[b"a\n"]), ["a"]);
        assert_eq!(split(4096, &[b"\n\n"]), ["", ""]);
    }

    #[test]
    fn long_lines_are_cut_without_losing_a_byte() {
        // The stock worker's observed loss: 10,000 chars became 4,095 + 0 + 1,810.
        let line = "x".repeat(10_000);
        let pieces = split(4096, &[line.as_bytes()]);
        assert_eq!(
            pieces.iter().map(String::len).collect::<Vec<_>>(),
            [4096, 4096, 1808]
        );
        assert_eq!(pieces.concat(), line);
        // A line of exactly the limit is not cut.
        assert_eq!(split(8, &[b"12345678\n"]), ["12345678"]);
        assert_eq!(split(8, &[b"123456789\n"]), ["12345678", "9"]);
    }

    #[test]
    fn cuts_fall_between_characters() {
        // "é" is two bytes, "€" three, "𝄞" four: cuts never split them, whatever the reads.
        let text = "aé€𝄞".repeat(50);
        for limit in 4..12 {
            for chunk in [1, 2, 3, 7, 1000] {
                let chunks: Vec<&[u8]> = text.as_bytes().chunks(chunk).collect();
                let pieces = split(limit, &chunks);
                assert!(pieces.iter().all(|p| !p.contains('\u{fffd}')), "{limit}");
                assert!(pieces.iter().all(|p| p.len() <= limit));
                assert_eq!(pieces.concat(), text);
            }
        }
    }

    /// Output made of the bytes the splitter treats specially, multi-byte characters, invalid
    /// bytes and plain text, in runs of random length.
    fn noisy_output(rng: &mut fastrand::Rng, len: usize) -> Vec<u8> {
        let pieces: [&[u8]; 14] = [
            b"\n",
            b"\r\n",
            b"\r",
            b"\x08",
            b"\x08\x08",
            b"\x1b[u",
            b"\x1b[12;3H",
            b"\x1b[2J",
            b"\x1b[1;",
            b"\x1b",
            "é€𝄞".as_bytes(),
            b"\xff\xfe",
            b"plain text",
            b"0123456789abcdef",
        ];
        let mut out = Vec::new();
        while out.len() < len {
            let piece = pieces[rng.usize(..pieces.len())];
            for _ in 0..rng.usize(1..4) {
                out.extend_from_slice(piece);
            }
            if rng.u8(..) < 40 {
                // A long run with no special byte, to cross the limit.
                out.extend(std::iter::repeat_n(b'x', rng.usize(0..300)));
            }
        }
        out
    }

    #[test]
    fn how_output_is_read_never_changes_the_lines() {
        let mut rng = fastrand::Rng::with_seed(7);
        for round in 0..300 {
            let len = rng.usize(0..3000);
            let data = noisy_output(&mut rng, len);
            let limit = [4, 5, 7, 64, 100, 4096][round % 6];
            let whole = split_raw(limit, &[&data]);
            let bytes: Vec<&[u8]> = data.chunks(1).collect();
            assert_eq!(
                split_raw(limit, &bytes),
                whole,
                "byte by byte, round {round}"
            );
            let mut chunks: Vec<&[u8]> = Vec::new();
            let mut rest = &data[..];
            while !rest.is_empty() {
                let n = rng.usize(1..=rest.len().min(700));
                chunks.push(&rest[..n]);
                rest = &rest[n..];
            }
            assert_eq!(
                split_raw(limit, &chunks),
                whole,
                "random reads, round {round}"
            );
            assert!(whole.iter().all(|l| l.len() <= limit), "round {round}");
        }
    }

    #[test]
    fn blocks_hold_whole_untranslated_lines_within_the_limit() {
        #[derive(Default)]
        struct Blocks(Vec<(Vec<u8>, Vec<usize>)>, Vec<Vec<u8>>);
        impl LineSink for Blocks {
            fn line(&mut self, content: &[u8], _: f64) {
                self.1.push(content.to_vec());
            }
            fn lines(&mut self, block: &[u8], ends: &[usize], _: f64) {
                self.0.push((block.to_vec(), ends.to_vec()));
            }
        }
        let mut s = LineSplitter::new(8);
        let mut out = Blocks::default();
        s.feed(b"ab\ncd\n123456789\nef\ngh\r\nij\nkl", 0.0, &mut out);
        s.finish(1.0, &mut out);
        assert_eq!(
            out.0,
            [
                (b"ab\ncd\n".to_vec(), vec![2, 5]),
                (b"ef\n".to_vec(), vec![2]),
                (b"ij\n".to_vec(), vec![2]),
            ]
        );
        // The long line is cut, `\r\n` translated, the last line flushed: one by one.
        assert_eq!(
            out.1,
            [
                b"12345678".to_vec(),
                b"9".to_vec(),
                b"gh".to_vec(),
                b"kl".to_vec()
            ]
        );
    }

    #[test]
    fn a_line_keeps_the_time_its_first_byte_arrived() {
        let mut s = LineSplitter::new(4096);
        let mut out = Lines::default();
        s.feed(b"ab", 1.0, &mut out);
        s.feed(b"c\nd", 2.0, &mut out);
        s.finish(3.0, &mut out);
        assert_eq!(
            out.0,
            [(b"abc".to_vec(), 1.0), (b"d".to_vec(), 2.0)].to_vec()
        );
        assert_eq!(s.pending(), 0);
    }
}
