//! File transfers: `upload_file`, `upload_directory` (worker → master) and `download_file`
//! (master → worker), as in spec §3.11: one chunk at a time, each waiting for the master's
//! answer (stop-and-wait), so a transfer holds at most one block in memory.
//!
//! Differences from 4.3.0, all on the side of not lying about data:
//! - `maxsize` is reached only when there *is* more data: a file of exactly `maxsize`
//!   bytes is sent whole and succeeds (4.3.0 reports it truncated);
//! - `upload_directory` streams the tar (compressed on the fly) instead of writing a temp
//!   file first, and when the archive exceeds `maxsize` it stops without sending
//!   `update_upload_directory_unpack`, so the master never extracts a truncated archive.

use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Instant;

use abo_proto::{
    Compression, DownloadFileArgs, UpdateEntry, UploadDirectoryArgs, UploadFileArgs, WorkerReply,
    WorkerRequest,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use super::{unix_now, Ctx, Lost};
use crate::output::{OutputBuffer, Stream};
use crate::paths;

/// The largest block sent or asked for, whatever `blocksize` says: it keeps every frame far
/// below the 16 MiB the master's decoder accepts by default.
const MAX_BLOCK: u64 = 4 << 20;

fn block(blocksize: u64) -> usize {
    blocksize.clamp(1, MAX_BLOCK) as usize
}

fn stderr(out: &mut OutputBuffer, text: &str) {
    out.text(&Stream::Stderr, text, unix_now());
}

async fn finish(
    mut ctx: Ctx,
    mut out: OutputBuffer,
    rc: i64,
    started: Option<Instant>,
    failure: Option<String>,
) {
    out.entry(UpdateEntry::Rc(rc));
    // No `elapsed` after an interrupt, as with shell commands.
    if let Some(started) = started {
        out.entry(UpdateEntry::Elapsed(started.elapsed().as_secs_f64()));
    }
    if ctx.flush(&mut out).await.is_ok() {
        ctx.complete(failure);
    }
}

/// Reads until `buf` is full or the file ends.
async fn read_full(file: &mut tokio::fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match file.read(&mut buf[n..]).await? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

fn exception(reply: WorkerReply) -> Option<String> {
    match reply {
        WorkerReply::Exception(text) => Some(text),
        WorkerReply::Ok(_) | WorkerReply::Data(_) => None,
    }
}

pub(crate) async fn upload_file(args: UploadFileArgs, mut ctx: Ctx) {
    let started = Instant::now();
    let mut out = ctx.output.buffer();
    let path = paths::resolve(&ctx.shared.basedir, &args.path);
    out.text(
        &Stream::Header,
        &format!("sending {}\n", path.display()),
        unix_now(),
    );
    let mut rc = 0;
    let mut failure = None;
    let mut interrupted = false;
    let mut remaining = args.maxsize;
    let mut stamp = None;
    match tokio::fs::File::open(&path).await {
        Err(_) => {
            stderr(
                &mut out,
                &format!("Cannot open file '{}' for upload\n", path.display()),
            );
            rc = 1;
        }
        Ok(mut file) => {
            if let Ok(m) = file.metadata().await {
                stamp = Some((
                    m.atime() as f64 + m.atime_nsec() as f64 * 1e-9,
                    m.mtime() as f64 + m.mtime_nsec() as f64 * 1e-9,
                ));
            }
            let mut buf = vec![0u8; block(args.blocksize)];
            loop {
                if ctx.interrupt.is_cancelled() {
                    stderr(&mut out, "upload interrupted\n");
                    (rc, interrupted) = (1, true);
                    break;
                }
                // With `maxsize` used up, one more byte tells whether the file is larger.
                let want = match remaining {
                    Some(0) => 1,
                    Some(r) => buf.len().min(usize::try_from(r).unwrap_or(usize::MAX)),
                    None => buf.len(),
                };
                let n = match read_full(&mut file, &mut buf[..want]).await {
                    Ok(n) => n,
                    Err(e) => {
                        stderr(
                            &mut out,
                            &format!("error reading '{}': {e}\n", path.display()),
                        );
                        rc = 1;
                        break;
                    }
                };
                if n == 0 {
                    break;
                }
                if remaining == Some(0) {
                    stderr(
                        &mut out,
                        &format!(
                            "Maximum filesize reached, truncating file '{}'\n",
                            path.display()
                        ),
                    );
                    rc = 1;
                    break;
                }
                let request = WorkerRequest::UploadFileWrite {
                    command_id: ctx.id.clone(),
                    data: buf[..n].to_vec(),
                };
                let Ok(reply) = ctx.call(request).await else {
                    return;
                };
                if let Some(text) = exception(reply) {
                    failure = Some(text);
                    break;
                }
                remaining = remaining.map(|r| r - n as u64);
            }
        }
    }
    // Close even after a failure, as the stock worker does, so the master drops its file.
    let close = WorkerRequest::UploadFileClose {
        command_id: ctx.id.clone(),
    };
    let Ok(reply) = ctx.call(close).await else {
        return;
    };
    failure = failure.or(exception(reply));
    if let (true, Some((access_time, modified_time)), 0, None) =
        (args.keepstamp == Some(true), stamp, rc, &failure)
    {
        let utime = WorkerRequest::UploadFileUtime {
            command_id: ctx.id.clone(),
            access_time,
            modified_time,
        };
        let Ok(reply) = ctx.call(utime).await else {
            return;
        };
        failure = exception(reply);
    }
    finish(ctx, out, rc, (!interrupted).then_some(started), failure).await;
}

/// A `Write` that cuts the tar stream into blocks and hands them to the async side; it
/// fails with `BrokenPipe` once the upload has stopped listening.
struct Blocks {
    tx: mpsc::Sender<Vec<u8>>,
    buf: Vec<u8>,
    size: usize,
}

impl Write for Blocks {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let take = data.len().min(self.size - self.buf.len());
        self.buf.extend_from_slice(&data[..take]);
        if self.buf.len() == self.size {
            self.send()?;
        }
        Ok(take)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Blocks {
    fn send(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(self.size));
        self.tx
            .blocking_send(chunk)
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::BrokenPipe))
    }
}

/// Appends `dir`'s contents with names relative to it (`a.txt`, `sub/`, `sub/b.txt`), as
/// Python's `tarfile.add(path, '')` does; symlinks are stored as links, not followed.
fn append_tree(tar: &mut tar::Builder<impl Write>, dir: &Path, rel: &Path) -> std::io::Result<()> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)?
        .map(|e| e.map(|e| e.path()))
        .collect::<std::io::Result<_>>()?;
    entries.sort();
    for full in entries {
        let Some(name) = full.file_name() else {
            continue;
        };
        let rel = rel.join(name);
        tar.append_path_with_name(&full, &rel)?;
        if std::fs::symlink_metadata(&full)?.is_dir() {
            append_tree(tar, &full, &rel)?;
        }
    }
    Ok(())
}

/// Writes the (compressed) tar of `dir` into `blocks`.
fn write_tar(dir: &Path, compress: Option<Compression>, blocks: Blocks) -> std::io::Result<()> {
    fn build<W: Write>(dir: &Path, w: W) -> std::io::Result<W> {
        let mut tar = tar::Builder::new(w);
        tar.follow_symlinks(false);
        append_tree(&mut tar, dir, Path::new(""))?;
        tar.into_inner()
    }
    let mut blocks = match compress {
        None => build(dir, blocks)?,
        Some(Compression::Gz) => build(
            dir,
            flate2::write::GzEncoder::new(blocks, flate2::Compression::default()),
        )?
        .finish()?,
        Some(Compression::Bz2) => build(
            dir,
            bzip2::write::BzEncoder::new(blocks, bzip2::Compression::default()),
        )?
        .finish()?,
    };
    blocks.send()
}

pub(crate) async fn upload_directory(args: UploadDirectoryArgs, mut ctx: Ctx) {
    let started = Instant::now();
    let mut out = ctx.output.buffer();
    let path = paths::resolve(&ctx.shared.basedir, &args.path);
    out.text(
        &Stream::Header,
        &format!("sending {}\n", path.display()),
        unix_now(),
    );
    if !std::fs::metadata(&path).is_ok_and(|m| m.is_dir()) {
        stderr(
            &mut out,
            &format!("Cannot read directory '{}' for upload\n", path.display()),
        );
        return finish(ctx, out, 1, Some(started), None).await;
    }
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(2);
    let size = block(args.blocksize);
    let dir = path.clone();
    let compress = args.compress;
    let producer = tokio::task::spawn_blocking(move || {
        write_tar(
            &dir,
            compress,
            Blocks {
                tx,
                buf: Vec::with_capacity(size),
                size,
            },
        )
    });
    let mut sent: u64 = 0;
    let mut rc = 0;
    let mut failure = None;
    let mut interrupted = false;
    let mut lost = false;
    while let Some(chunk) = rx.recv().await {
        if ctx.interrupt.is_cancelled() {
            stderr(&mut out, "upload interrupted\n");
            (rc, interrupted) = (1, true);
            break;
        }
        sent += chunk.len() as u64;
        if let Some(max) = args.maxsize.filter(|&max| sent > max) {
            stderr(
                &mut out,
                &format!(
                    "Maximum filesize reached: the archive of '{}' is larger than {max} bytes; \
                     upload stopped\n",
                    path.display()
                ),
            );
            rc = 1;
            break;
        }
        let request = WorkerRequest::UploadDirectoryWrite {
            command_id: ctx.id.clone(),
            data: chunk,
        };
        match ctx.call(request).await {
            Ok(reply) => {
                if let Some(text) = exception(reply) {
                    failure = Some(text);
                    break;
                }
            }
            Err(Lost) => {
                lost = true;
                break;
            }
        }
    }
    // Dropping the receiver stops the producer at its next block.
    drop(rx);
    let produced = producer.await;
    if lost {
        return;
    }
    if rc == 0 && failure.is_none() {
        match produced {
            Ok(Ok(())) => {
                let unpack = WorkerRequest::UploadDirectoryUnpack {
                    command_id: ctx.id.clone(),
                };
                let Ok(reply) = ctx.call(unpack).await else {
                    return;
                };
                failure = exception(reply);
            }
            Ok(Err(e)) => {
                stderr(
                    &mut out,
                    &format!(
                        "Cannot read directory '{}' for upload: {e}\n",
                        path.display()
                    ),
                );
                rc = 1;
            }
            Err(e) => {
                stderr(&mut out, &format!("archiving failed: {e}\n"));
                rc = 1;
            }
        }
    }
    finish(ctx, out, rc, (!interrupted).then_some(started), failure).await;
}

pub(crate) async fn download_file(args: DownloadFileArgs, mut ctx: Ctx) {
    let started = Instant::now();
    let mut out = ctx.output.buffer();
    let path = paths::resolve(&ctx.shared.basedir, &args.path);
    let mut rc = 0;
    let mut failure = None;
    let mut interrupted = false;
    let opened = async {
        if let Some(parent) = path.parent() {
            tokio::fs::create_dir_all(parent).await?;
        }
        let file = tokio::fs::File::create(&path).await?;
        if let Some(mode) = args.mode {
            file.set_permissions(std::fs::Permissions::from_mode(mode))
                .await?;
        }
        Ok::<_, std::io::Error>(file)
    }
    .await;
    match opened {
        Err(e) => {
            stderr(
                &mut out,
                &format!("Cannot open file '{}' for download: {e}\n", path.display()),
            );
            rc = 1;
        }
        Ok(mut file) => {
            let size = block(args.blocksize) as u64;
            let mut remaining = args.maxsize;
            loop {
                if ctx.interrupt.is_cancelled() {
                    stderr(&mut out, "download interrupted\n");
                    (rc, interrupted) = (1, true);
                    break;
                }
                // With `maxsize` used up, ask for one byte to learn whether there is more.
                let length = remaining.map_or(size, |r| r.clamp(1, size));
                let ask = WorkerRequest::ReadFile {
                    command_id: ctx.id.clone(),
                    length,
                };
                let data = match ctx.call(ask).await {
                    Err(Lost) => return,
                    Ok(WorkerReply::Data(d)) => d,
                    Ok(WorkerReply::Ok(_)) => Vec::new(),
                    Ok(WorkerReply::Exception(text)) => {
                        failure = Some(text);
                        break;
                    }
                };
                if data.is_empty() {
                    break;
                }
                if remaining == Some(0) {
                    stderr(
                        &mut out,
                        &format!(
                            "Maximum filesize reached, truncating file '{}'\n",
                            path.display()
                        ),
                    );
                    rc = 1;
                    break;
                }
                // Never more than asked for, whatever the master sends.
                let take = data
                    .len()
                    .min(usize::try_from(length).unwrap_or(usize::MAX));
                if let Err(e) = file.write_all(&data[..take]).await {
                    stderr(
                        &mut out,
                        &format!("error writing '{}': {e}\n", path.display()),
                    );
                    rc = 1;
                    break;
                }
                remaining = remaining.map(|r| r.saturating_sub(take as u64));
            }
            if let Err(e) = file.flush().await {
                stderr(
                    &mut out,
                    &format!("error writing '{}': {e}\n", path.display()),
                );
                rc = 1;
            }
        }
    }
    let close = WorkerRequest::ReadFileClose {
        command_id: ctx.id.clone(),
    };
    let Ok(reply) = ctx.call(close).await else {
        return;
    };
    failure = failure.or(exception(reply));
    finish(ctx, out, rc, (!interrupted).then_some(started), failure).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tar_names_are_relative_and_symlinks_kept() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("up");
        std::fs::create_dir_all(d.join("sub")).unwrap();
        std::fs::write(d.join("a.txt"), "a").unwrap();
        std::fs::write(d.join("sub/b.bin"), [0u8, 255, 10]).unwrap();
        std::os::unix::fs::symlink("a.txt", d.join("link")).unwrap();
        for compress in [None, Some(Compression::Gz), Some(Compression::Bz2)] {
            let (tx, mut rx) = mpsc::channel(1000);
            let blocks = Blocks {
                tx,
                buf: Vec::new(),
                size: 100,
            };
            write_tar(&d, compress, blocks).unwrap();
            let mut data = Vec::new();
            while let Ok(chunk) = rx.try_recv() {
                assert!(chunk.len() <= 100);
                data.extend(chunk);
            }
            let reader: Box<dyn std::io::Read> = match compress {
                None => Box::new(&data[..]),
                Some(Compression::Gz) => Box::new(flate2::read::GzDecoder::new(&data[..])),
                Some(Compression::Bz2) => Box::new(bzip2::read::BzDecoder::new(&data[..])),
            };
            let mut archive = tar::Archive::new(reader);
            let names: Vec<String> = archive
                .entries()
                .unwrap()
                .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
                .collect();
            assert_eq!(names, ["a.txt", "link", "sub", "sub/b.bin"], "{compress:?}");
        }
    }
}
