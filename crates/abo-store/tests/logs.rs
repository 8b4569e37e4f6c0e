//! Logs: writing in chunks, reading by range, by line and as a stream (also while the log is
//! written), the cap and its marker, endless lines, and secret masking across writes and
//! chunk boundaries.

mod common;

use abo_store::{
    BuildId, BuildResult, Error, Lease, LogId, LogKind, LogOptions, LogWriter, Masker, StepOutcome,
    Store, Stream, CHUNK_BYTES, MAX_LINE_BYTES, MAX_READ_BYTES,
};
use common::{running_build, store, store_on, t, Backend};
use futures_util::StreamExt;
use proptest::prelude::*;

const LEASE: Lease = Lease(1);

/// A running build with step 0 started.
async fn build_with_step(s: &Store) -> BuildId {
    let (_, build) = running_build(s, "b", LEASE.0).await;
    s.start_step(build, LEASE, 0, "test", t(4)).await.unwrap();
    build
}

async fn open(s: &Store, build: BuildId, name: &str, kind: LogKind, o: LogOptions) -> LogWriter {
    s.open_log(build, LEASE, 0, name, kind, o).await.unwrap()
}

async fn all_bytes(s: &Store, log: LogId) -> Vec<u8> {
    let r = s.log_reader(log).await.unwrap();
    let mut out = Vec::new();
    let mut pieces = Box::pin(r.stream(0));
    while let Some(p) = pieces.next().await {
        let p = p.unwrap();
        assert_eq!(p.offset, out.len() as u64);
        out.extend(p.data);
    }
    out
}

fn numbered_lines(n: usize) -> Vec<u8> {
    (0..n)
        .flat_map(|i| format!("line {i:06} {}\n", "z".repeat(i % 90)).into_bytes())
        .collect()
}

async fn a_text_log_reads_back_by_range_line_and_stream(backend: Backend) {
    let (_db, s) = store_on(backend).await;
    let build = build_with_step(&s).await;
    let mut w = open(&s, build, "test.log", LogKind::Text, LogOptions::default()).await;
    let data = numbered_lines(6000);
    for piece in data.chunks(1000) {
        w.write(Stream::Stdout, piece).await.unwrap();
    }
    let info = w.finish().await.unwrap();
    assert_eq!(info.byte_len, data.len() as u64);
    assert_eq!(info.line_count, 6000);
    assert!(info.chunk_count >= 3, "{}", info.chunk_count);
    assert!(info.finished && !info.truncated);

    let r = s.log_reader(info.id).await.unwrap();
    let cb = CHUNK_BYTES as u64;
    for (off, len) in [
        (0, 10),
        (cb - 5, 10),
        (cb - 100, 3 * CHUNK_BYTES),
        (data.len() as u64 - 3, 100),
        (data.len() as u64 + 10, 5),
        (12345, 0),
    ] {
        let start = (off as usize).min(data.len());
        let end = (start + len).min(data.len());
        assert_eq!(
            r.read_range(off, len).await.unwrap(),
            &data[start..end],
            "{off}+{len}"
        );
    }
    let page = r.read_lines(0, 3).await.unwrap();
    assert_eq!(page.next, 3);
    assert!(page.finished);
    assert_eq!(page.lines[0].text_lossy(), "line 000000 ");
    assert_eq!(page.lines[2].text_lossy(), "line 000002 zz");
    assert_eq!(page.lines[2].number, 2);
    assert_eq!(page.lines[2].stream, None);
    // Every line, wherever it lies relative to chunk boundaries.
    let lines: Vec<&[u8]> = data.split(|&b| b == b'\n').collect();
    for n in [1, 700, 701, 1500, 2999, 3000, 5999] {
        let page = r.read_lines(n, 1).await.unwrap();
        assert_eq!(page.lines[0].text, lines[n as usize], "line {n}");
        assert_eq!(page.next, n + 1);
    }
    let page = r.read_lines(5998, 10).await.unwrap();
    assert_eq!(page.lines.len(), 2);
    assert!(r.read_lines(6000, 10).await.unwrap().lines.is_empty());
    let whole = r.read_lines(0, 100_000).await.unwrap();
    assert_eq!(whole.lines.len(), 6000);
    assert_eq!(all_bytes(&s, info.id).await, data);
    let mut from_mid = Box::pin(r.stream(cb + 7));
    let first = from_mid.next().await.unwrap().unwrap();
    assert_eq!(first.offset, cb + 7);
    assert_eq!(
        first.data[..],
        data[(cb + 7) as usize..(cb + 7) as usize + first.data.len()]
    );
}

async fn a_stdio_log_keeps_streams_apart_line_by_line(backend: Backend) {
    let (_db, s) = store_on(backend).await;
    let build = build_with_step(&s).await;
    let mut w = open(&s, build, "stdio", LogKind::Stdio, LogOptions::default()).await;
    w.write(Stream::Header, b"bin/buildout -c buildout.cfg\n")
        .await
        .unwrap();
    w.write(Stream::Stdout, b"Installing odoo.\nGetting distri")
        .await
        .unwrap();
    w.write(Stream::Stderr, b"warning: deprecated\n")
        .await
        .unwrap();
    w.write(Stream::Stdout, b"bution.\nno newline at the end")
        .await
        .unwrap();
    w.write(Stream::Header, b"program finished with exit code 0")
        .await
        .unwrap();
    let info = w.finish().await.unwrap();
    assert_eq!(
        all_bytes(&s, info.id).await,
        b"hbin/buildout -c buildout.cfg\n\
          oInstalling odoo.\n\
          ewarning: deprecated\n\
          oGetting distribution.\n\
          ono newline at the end\n\
          hprogram finished with exit code 0\n"
    );
    let page = s
        .log_reader(info.id)
        .await
        .unwrap()
        .read_lines(1, 10)
        .await
        .unwrap();
    let got: Vec<(Option<Stream>, String)> = page
        .lines
        .iter()
        .map(|l| (l.stream, l.text_lossy().into_owned()))
        .collect();
    assert_eq!(
        got,
        [
            (Some(Stream::Stdout), "Installing odoo.".to_owned()),
            (Some(Stream::Stderr), "warning: deprecated".to_owned()),
            (Some(Stream::Stdout), "Getting distribution.".to_owned()),
            (Some(Stream::Stdout), "no newline at the end".to_owned()),
            (
                Some(Stream::Header),
                "program finished with exit code 0".to_owned()
            ),
        ]
    );
    assert_eq!(info.line_count, 6);
    assert_eq!(
        s.find_log(build, 0, "stdio").await.unwrap().map(|l| l.id),
        Some(info.id)
    );
    assert_eq!(s.find_log(build, 0, "other").await.unwrap(), None);
    assert!(matches!(
        s.open_log(
            build,
            LEASE,
            0,
            "stdio",
            LogKind::Text,
            LogOptions::default()
        )
        .await,
        Err(Error::LogExists { .. })
    ));
    assert!(matches!(
        s.open_log(build, LEASE, 3, "x", LogKind::Text, LogOptions::default())
            .await,
        Err(Error::StepNotFound { index: 3, .. })
    ));
    assert!(matches!(
        s.log_reader(LogId(999)).await,
        Err(Error::LogNotFound(_))
    ));
}

async fn a_log_is_readable_while_it_is_written(backend: Backend) {
    let (_db, s) = store_on(backend).await;
    let build = build_with_step(&s).await;
    let mut w = open(&s, build, "test.log", LogKind::Text, LogOptions::default()).await;
    let r = s.log_reader(w.id()).await.unwrap();
    let data = numbered_lines(4000);
    let mut written = 0;
    for piece in data.chunks(4096) {
        w.write(Stream::Stdout, piece).await.unwrap();
        written += piece.len();
        // Whatever is stored so far reads back exactly, without a flush.
        let info = r.info().await.unwrap();
        assert!(info.byte_len as usize <= written);
        assert!(written - info.byte_len as usize <= CHUNK_BYTES);
        let n = info.byte_len.min(5000) as usize;
        let off = info.byte_len - n as u64;
        assert_eq!(
            r.read_range(off, n).await.unwrap(),
            &data[off as usize..off as usize + n]
        );
        assert!(!info.finished);
    }
    // A partial line is shown as such once flushed, and completed later.
    w.write(Stream::Stdout, b"half a li").await.unwrap();
    w.flush().await.unwrap();
    let info = r.info().await.unwrap();
    assert_eq!(info.byte_len as usize, data.len() + 9);
    let page = r.read_lines(4000, 5).await.unwrap();
    assert_eq!(page.lines.len(), 1);
    assert!(page.lines[0].partial);
    assert_eq!(page.next, 4000);
    assert!(!page.finished);
    w.write(Stream::Stdout, b"ne\nnext\n").await.unwrap();
    w.flush().await.unwrap();
    let page = r.read_lines(4000, 5).await.unwrap();
    assert_eq!(page.lines[0].text, b"half a line");
    assert!(!page.lines[0].partial);
    assert_eq!(page.lines[1].text, b"next");
    assert_eq!(page.next, 4002);
    w.finish().await.unwrap();
    assert!(r.read_lines(4002, 5).await.unwrap().finished);
}

async fn the_cap_truncates_once_with_a_visible_marker(backend: Backend) {
    let (_db, s) = store_on(backend).await;
    let build = build_with_step(&s).await;

    let mut w = open(
        &s,
        build,
        "text",
        LogKind::Text,
        LogOptions::default().with_cap(1000),
    )
    .await;
    let data = numbered_lines(200);
    for piece in data.chunks(333) {
        w.write(Stream::Stdout, piece).await.unwrap();
    }
    let info = w.finish().await.unwrap();
    assert!(info.truncated);
    assert_eq!(info.dropped_bytes, data.len() as u64 - 1000);
    let stored = all_bytes(&s, info.id).await;
    assert_eq!(&stored[..1000], &data[..1000]);
    let marker = b"[abo: log truncated after 1000 bytes]\n";
    assert!(stored.ends_with(marker));
    assert_eq!(
        stored.len(),
        1000 + usize::from(data[999] != b'\n') + marker.len()
    );

    let mut w = open(
        &s,
        build,
        "stdio",
        LogKind::Stdio,
        LogOptions::default().with_cap(100),
    )
    .await;
    for _ in 0..50 {
        w.write(Stream::Stdout, b"0123456789\n").await.unwrap();
    }
    let info = w.finish().await.unwrap();
    let page = s
        .log_reader(info.id)
        .await
        .unwrap()
        .read_lines(0, 100)
        .await
        .unwrap();
    let last = page.lines.last().unwrap();
    assert_eq!(last.stream, Some(Stream::Header));
    assert_eq!(last.text_lossy(), "[abo: log truncated after 100 bytes]");
    assert_eq!(
        page.lines
            .iter()
            .filter(|l| l.text_lossy().starts_with("[abo: log truncated"))
            .count(),
        1
    );
    // 100 stored bytes: 8 whole records of 12 bytes ("o0123456789\n") and 4 bytes of the
    // ninth, which gets its newline back; then the marker.
    assert_eq!(page.lines.len(), 10);
    assert_eq!(page.lines[8].text, b"012");
    // 8 bytes of the cut record, then 41 writes of 11 bytes.
    assert_eq!(info.dropped_bytes, 8 + 41 * 11);

    // The step's result is the step's: the cap does not change it.
    s.finish_step(
        build,
        LEASE,
        0,
        StepOutcome {
            result: BuildResult::Success,
            description: None,
            hidden: false,
        },
        t(9),
    )
    .await
    .unwrap();
    let d = s.get_build(build).await.unwrap().unwrap();
    assert_eq!(d.steps[0].step.result, Some(BuildResult::Success));
    assert!(d.steps[0].logs.iter().all(|l| l.truncated));
}

async fn an_endless_line_is_stored_as_it_comes(backend: Backend) {
    let (_db, s) = store_on(backend).await;
    let build = build_with_step(&s).await;
    let block = vec![b'x'; 4096];
    let total = 24 * 1024 * 1024;

    let mut w = open(&s, build, "stdio", LogKind::Stdio, LogOptions::default()).await;
    let mut peak = 0;
    for _ in 0..total / block.len() {
        w.write(Stream::Stdout, &block).await.unwrap();
        peak = peak.max(w.buffered_bytes());
    }
    assert!(peak <= CHUNK_BYTES + MAX_LINE_BYTES, "peak buffer {peak}");
    let info = w.finish().await.unwrap();
    assert_eq!(info.line_count as usize, total / MAX_LINE_BYTES);
    let page = s
        .log_reader(info.id)
        .await
        .unwrap()
        .read_lines(10, 2)
        .await
        .unwrap();
    assert_eq!(page.lines[0].text.len(), MAX_LINE_BYTES);
    assert_eq!(page.lines[1].number, 11);

    let mut w = open(&s, build, "text", LogKind::Text, LogOptions::default()).await;
    for _ in 0..total / block.len() {
        w.write(Stream::Stdout, &block).await.unwrap();
        peak = peak.max(w.buffered_bytes());
    }
    w.write(Stream::Stdout, b"\nshort\n").await.unwrap();
    assert!(peak <= CHUNK_BYTES + MAX_LINE_BYTES, "peak buffer {peak}");
    let info = w.finish().await.unwrap();
    assert_eq!(info.line_count, 2);
    let r = s.log_reader(info.id).await.unwrap();
    // A page holds the beginning of a line too long for it, and moves on.
    let page = r.read_lines(0, 5).await.unwrap();
    assert_eq!(page.lines.len(), 1);
    assert!(page.lines[0].cut);
    assert_eq!(page.lines[0].text.len(), MAX_READ_BYTES);
    assert_eq!(page.next, 1);
    let page = r.read_lines(1, 5).await.unwrap();
    assert_eq!(page.lines[0].text, b"short");
    assert_eq!(page.lines.len(), 1);
}

async fn a_secret_across_a_chunk_boundary_is_masked(backend: Backend) {
    let (_db, s) = store_on(backend).await;
    let build = build_with_step(&s).await;
    let secret = b"s3cr3t-p4ssw0rd";
    for kind in [LogKind::Text, LogKind::Stdio] {
        for shift in 0..secret.len() + 1 {
            let name = format!("{kind}-{shift}");
            let o = LogOptions::default().with_secrets([secret]).unwrap();
            let mut w = open(&s, build, &name, kind, o).await;
            // A text log is cut into chunks anywhere in a long line: one long line puts the
            // secret astride the first chunk boundary. A stdio log is cut between lines, so
            // there the secret is astride two writes (of 4 KiB) instead.
            let mut data = match kind {
                LogKind::Text => vec![b'.'; CHUNK_BYTES - 1 - shift],
                LogKind::Stdio => b"...............\n".repeat(CHUNK_BYTES / 16)
                    [..CHUNK_BYTES - 1 - shift]
                    .to_vec(),
            };
            data.extend_from_slice(secret);
            data.extend_from_slice(b" and more\n");
            for piece in data.chunks(4096) {
                w.write(Stream::Stdout, piece).await.unwrap();
            }
            let info = w.finish().await.unwrap();
            let stored = all_bytes(&s, info.id).await;
            assert!(!stored.windows(secret.len()).any(|w| w == secret), "{name}");
            assert!(stored.windows(12).any(|w| w == b"*** and more"), "{name}");
        }
    }
}

#[tokio::test]
async fn maskers_mask_values_for_properties_and_answers() {
    let m = Masker::new(["hunter2", ""]).unwrap();
    assert_eq!(m.mask_str("password=hunter2;"), "password=***;");
    assert_eq!(m.mask(b"hunter"), b"hunter");
    assert!(Masker::new(Vec::<&str>::new()).unwrap().is_empty());
}

// --- properties: no secret survives any split of the output -----------------------------

fn masked_reference(secrets: &[Vec<u8>], data: &[u8]) -> Vec<u8> {
    Masker::new(secrets).unwrap().mask(data)
}

fn split_at_points<'a>(data: &'a [u8], points: &[usize]) -> Vec<&'a [u8]> {
    let mut cuts: Vec<usize> = points.iter().map(|p| p % (data.len() + 1)).collect();
    cuts.push(0);
    cuts.push(data.len());
    cuts.sort();
    cuts.windows(2).map(|w| &data[w[0]..w[1]]).collect()
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fn secret_strategy() -> impl Strategy<Value = Vec<Vec<u8>>> {
    prop::collection::vec(
        prop::collection::vec(prop::sample::select(b"abc".to_vec()), 2..7),
        1..4,
    )
}

fn data_strategy() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(prop::sample::select(b"abcc\n".to_vec()), 0..2000)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// The masker alone: any split of the stream gives the output of masking it whole, and
    /// that output holds no secret.
    #[test]
    fn masking_does_not_depend_on_how_output_is_split(
        secrets in secret_strategy(),
        data in data_strategy(),
        points in prop::collection::vec(any::<usize>(), 0..40),
    ) {
        let whole = masked_reference(&secrets, &data);
        for s in &secrets {
            prop_assert!(!contains(&whole, s));
        }
        let mut m = Masker::new(&secrets).unwrap();
        let mut out = Vec::new();
        for piece in split_at_points(&data, &points) {
            m.push(piece, &mut out);
            prop_assert!(m.held_len() < secrets.iter().map(Vec::len).max().unwrap());
        }
        m.finish(&mut out);
        prop_assert_eq!(out, whole);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Through the store, across chunk boundaries: the stored text of a text log is the
    /// masked output, that of a stdio log its masked lines; no secret is stored.
    #[test]
    fn no_secret_is_ever_stored(
        secrets in secret_strategy(),
        data in data_strategy(),
        pad in 0usize..200,
        points in prop::collection::vec(any::<usize>(), 0..40),
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        rt.block_on(async {
            let (_dir, s) = store().await;
            let build = build_with_step(&s).await;
            // Filler lines (no secret letters) put the random part astride the first chunk
            // boundary.
            let mut input: Vec<u8> = b"xxxxxxxxx\n".repeat((CHUNK_BYTES - 1000) / 10);
            input.extend(vec![b'y'; 800 + pad]);
            input.extend_from_slice(&data);
            let masked = masked_reference(&secrets, &input);
            for kind in [LogKind::Text, LogKind::Stdio] {
                let o = LogOptions::default().with_secrets(&secrets).unwrap();
                let mut w = open(&s, build, kind.as_str(), kind, o).await;
                for piece in split_at_points(&input, &points) {
                    w.write(Stream::Stdout, piece).await.unwrap();
                }
                let info = w.finish().await.unwrap();
                let stored = all_bytes(&s, info.id).await;
                for secret in &secrets {
                    assert!(!contains(&stored, secret), "{kind}: {:?}", String::from_utf8_lossy(secret));
                }
                let expected = match kind {
                    LogKind::Text => masked.clone(),
                    LogKind::Stdio => {
                        let mut lines: Vec<&[u8]> = masked.split(|&b| b == b'\n').collect();
                        if lines.last().is_some_and(|l| l.is_empty()) {
                            lines.pop();
                        }
                        lines.iter().flat_map(|l| [&b"o"[..], l, b"\n"].concat()).collect()
                    }
                };
                assert_eq!(stored, expected, "{kind}");
            }
        });
    }
}

async fn a_follower_streams_a_log_while_another_task_writes_it(backend: Backend) {
    let (_db, s) = store_on(backend).await;
    let build = build_with_step(&s).await;
    let mut w = open(&s, build, "stdio", LogKind::Text, LogOptions::default()).await;
    let reader = s.log_reader(w.id()).await.unwrap();
    let data = numbered_lines(60_000);
    let expected = data.clone();

    // The web layer's way of following a running log: stream from where the last stream
    // ended, until the log is finished and nothing more comes.
    let follower = tokio::spawn(async move {
        let mut got = Vec::new();
        let mut rounds = 0;
        loop {
            let finished = reader.info().await.unwrap().finished;
            let mut pieces = Box::pin(reader.stream(got.len() as u64));
            while let Some(p) = pieces.next().await {
                let p = p.unwrap();
                assert_eq!(p.offset, got.len() as u64);
                got.extend(p.data);
            }
            rounds += 1;
            if finished {
                return (got, rounds);
            }
            tokio::task::yield_now().await;
        }
    });
    for (i, piece) in data.chunks(4096).enumerate() {
        w.write(Stream::Stdout, piece).await.unwrap();
        if i % 50 == 0 {
            w.flush().await.unwrap();
        }
    }
    w.finish().await.unwrap();
    let (got, rounds) = follower.await.unwrap();
    assert!(
        got == expected,
        "followed {} of {} bytes",
        got.len(),
        expected.len()
    );
    assert!(rounds > 1);
}

/// Pages of lines match a naive split of the text, whatever the line lengths (some longer
/// than a chunk), write sizes and flushes.
fn check_line_pages(
    backend: Backend,
    lengths: &[usize],
    write: usize,
    flush_every: usize,
    probes: &[(prop::sample::Index, usize)],
    trailing: bool,
) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async {
        let (_db, s) = store_on(backend).await;
        let build = build_with_step(&s).await;
        let mut text = Vec::new();
        for (i, len) in lengths.iter().enumerate() {
            text.extend((0..*len).map(|j| b'a' + ((i + j) % 26) as u8));
            text.push(b'\n');
        }
        if trailing {
            text.extend_from_slice(b"no newline");
        }
        let mut w = open(&s, build, "t", LogKind::Text, LogOptions::default()).await;
        for (i, piece) in text.chunks(write).enumerate() {
            w.write(Stream::Stdout, piece).await.unwrap();
            if i % flush_every == 0 {
                w.flush().await.unwrap();
            }
        }
        let info = w.finish().await.unwrap();
        let mut lines: Vec<&[u8]> = text.split(|&b| b == b'\n').collect();
        if !trailing {
            lines.pop();
        }
        assert_eq!(info.line_count as usize, lines.len());
        let r = s.log_reader(info.id).await.unwrap();
        for (index, count) in probes {
            let first = index.index(lines.len() + 1);
            let page = r.read_lines(first as u64, *count).await.unwrap();
            let want: Vec<&[u8]> = lines.iter().skip(first).take(*count).copied().collect();
            let got: Vec<&[u8]> = page.lines.iter().map(|l| l.text.as_slice()).collect();
            assert_eq!(got, want, "lines {first}+{count}");
            for (k, l) in page.lines.iter().enumerate() {
                assert_eq!(l.number as usize, first + k);
                assert!(!l.cut && !l.partial);
            }
            assert_eq!(page.next as usize, first + want.len());
        }
    });
}

fn line_lengths() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(
        prop_oneof![8 => 0usize..200, 1 => 20_000usize..150_000],
        1..60,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]

    #[test]
    fn line_pages_match_the_text(
        lengths in line_lengths(),
        write in 1usize..20_000,
        flush_every in 1usize..40,
        probes in prop::collection::vec((any::<prop::sample::Index>(), 1usize..5), 1..12),
        trailing in any::<bool>(),
    ) {
        check_line_pages(Backend::Sqlite, &lengths, write, flush_every, &probes, trailing);
    }
}

proptest! {
    // The same on PostgreSQL, fewer cases: what differs there is how chunks are found and
    // fetched (the queries and the cursor), not the line logic.
    #![proptest_config(ProptestConfig::with_cases(4))]

    #[test]
    fn line_pages_match_the_text_on_postgresql(
        lengths in line_lengths(),
        write in 1usize..20_000,
        flush_every in 1usize..40,
        probes in prop::collection::vec((any::<prop::sample::Index>(), 1usize..5), 1..12),
        trailing in any::<bool>(),
    ) {
        check_line_pages(Backend::Postgres, &lengths, write, flush_every, &probes, trailing);
    }
}

/// A stdio log read as text: stream letters gone, streams interleaved by line, and any
/// (offset, length) window equal to the same window of the whole text, across chunks and
/// long-line records.
async fn a_stdio_log_reads_as_text_at_any_offset(backend: Backend) {
    let (_db, s) = store_on(backend).await;
    let build = build_with_step(&s).await;
    let mut w = open(&s, build, "stdio", LogKind::Stdio, LogOptions::default()).await;
    let mut expected = Vec::new();
    for i in 0..4000 {
        let line = format!("line {i:05} {}\n", "y".repeat(i % 70));
        let stream = if i % 3 == 0 {
            Stream::Stderr
        } else {
            Stream::Stdout
        };
        w.write(stream, line.as_bytes()).await.unwrap();
        expected.extend_from_slice(line.as_bytes());
    }
    // One line longer than a record: stored as several records, read back whole (each
    // record ends with a newline).
    let long = vec![b'L'; MAX_LINE_BYTES * 2 + 10];
    w.write(Stream::Stdout, &long).await.unwrap();
    w.write(Stream::Stdout, b"\n").await.unwrap();
    let info = w.finish().await.unwrap();
    let r = s.log_reader(info.id).await.unwrap();
    let whole = r.read_text(0, MAX_READ_BYTES).await.unwrap();
    assert!(whole.finished);
    assert_eq!(whole.size, abo_store::text_len(&info));
    assert_eq!(whole.data.len() as u64, whole.size);
    assert!(
        whole.data.starts_with(&expected),
        "text starts with the lines"
    );
    let tail = &whole.data[expected.len()..];
    assert_eq!(tail.iter().filter(|&&b| b == b'L').count(), long.len());
    let cb = CHUNK_BYTES as u64;
    for (off, len) in [
        (0, 1),
        (1, 10),
        (cb - 7, 20),
        (cb * 2 + 3, CHUNK_BYTES + 11),
        (whole.size - 5, 100),
        (whole.size, 10),
        (whole.size + 3, 10),
    ] {
        let start = (off as usize).min(whole.data.len());
        let end = (start + len).min(whole.data.len());
        let page = r.read_text(off, len).await.unwrap();
        assert_eq!(page.data, &whole.data[start..end], "{off}+{len}");
    }
}

on_both!(tokio::test => a_text_log_reads_back_by_range_line_and_stream, a_stdio_log_keeps_streams_apart_line_by_line, a_log_is_readable_while_it_is_written, the_cap_truncates_once_with_a_visible_marker, an_endless_line_is_stored_as_it_comes, a_secret_across_a_chunk_boundary_is_masked, a_stdio_log_reads_as_text_at_any_offset);

on_both!(tokio::test(flavor = "multi_thread", worker_threads = 2) => a_follower_streams_a_log_while_another_task_writes_it);
