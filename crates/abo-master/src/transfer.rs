//! The master's ends of file transfers: [`UploadSink`] (a worker file or directory arriving,
//! streamed to a temporary file beside its destination) and [`DownloadSource`] (a master file
//! read block by block as the worker asks for it).
//!
//! Everything here is blocking file I/O, run on tokio's blocking pool by the connection task,
//! one operation at a time per transfer (the worker waits for each answer before sending the
//! next block). Nothing is held whole in memory.
//!
//! An upload lands only if the worker reports success: the temporary file is renamed into
//! place (`upload_file`) or the tar stream extracted (`upload_directory`) when `complete`
//! comes with `rc` 0. The stock worker truncates at `maxsize` and still asks for the
//! directory to be unpacked, so extracting on `unpack` would install a truncated tree.

use std::fs::File;
use std::io::{self, BufReader, Read, Write};
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, SystemTime};

use abo_proto::Compression;
use tempfile::NamedTempFile;

use crate::error::Error;

/// What a transfer did, master side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransferReport {
    /// The master-side file or directory.
    pub path: PathBuf,
    /// Bytes received (uploads) or sent (downloads).
    pub bytes: u64,
    /// Set when the master refused or failed its part (maxsize exceeded, unpack refused, disk
    /// error, ...), or did not install an upload because the worker reported a failure.
    pub error: Option<String>,
}

/// Joins `rel` under `root`, refusing absolute paths and `..` components, so that a path
/// built from user or worker data cannot leave `root`.
pub fn confine(root: &Path, rel: &str) -> Result<PathBuf, Error> {
    let escaping = || Error::EscapingPath {
        path: rel.to_owned(),
        root: root.to_owned(),
    };
    let mut out = root.to_path_buf();
    for part in Path::new(rel).components() {
        match part {
            Component::Normal(p) => out.push(p),
            Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => {
                return Err(escaping())
            }
        }
    }
    if out == root {
        return Err(escaping());
    }
    Ok(out)
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_owned(),
        source,
    }
}

/// Where upload bytes go.
#[derive(Debug)]
pub(crate) enum SinkKind {
    /// A file, renamed to the destination on success.
    File,
    /// A tar stream, extracted into the destination directory on success.
    Directory(Option<Compression>),
}

/// A worker file or directory on its way to the master.
#[derive(Debug)]
pub(crate) struct UploadSink {
    kind: SinkKind,
    /// Removed when dropped, so a lost connection leaves nothing behind.
    tmp: NamedTempFile,
    dest: PathBuf,
    maxsize: Option<u64>,
    bytes: u64,
    /// Set when the master refused the upload; later writes are refused too.
    error: Option<String>,
    times: Option<(SystemTime, SystemTime)>,
}

impl UploadSink {
    /// Prepares an upload to `dest`: a file, or a directory to extract into. The temporary
    /// file lives in `dest`'s parent so that the final rename stays on one filesystem.
    pub(crate) fn create(
        kind: SinkKind,
        dest: PathBuf,
        maxsize: Option<u64>,
    ) -> Result<UploadSink, Error> {
        let parent = match dest.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        std::fs::create_dir_all(&parent).map_err(io_error(&parent))?;
        let tmp = tempfile::Builder::new()
            .prefix(".abo-upload-")
            .tempfile_in(&parent)
            .map_err(io_error(&parent))?;
        Ok(UploadSink {
            kind,
            tmp,
            dest,
            maxsize,
            bytes: 0,
            error: None,
            times: None,
        })
    }

    /// Appends a block, refusing one that goes over `maxsize` (the worker truncates before
    /// that; this guards against one that does not).
    pub(crate) fn write(&mut self, data: &[u8]) -> Result<(), String> {
        if let Some(e) = &self.error {
            return Err(e.clone());
        }
        let total = self.bytes.saturating_add(data.len() as u64);
        if let Some(max) = self.maxsize {
            if total > max {
                let e = format!("upload exceeds its maxsize of {max} bytes");
                self.error = Some(e.clone());
                return Err(e);
            }
        }
        if let Err(e) = self.tmp.as_file_mut().write_all(data) {
            let e = format!("cannot write {}: {e}", self.tmp.path().display());
            self.error = Some(e.clone());
            return Err(e);
        }
        self.bytes = total;
        Ok(())
    }

    /// End of the data.
    pub(crate) fn close(&mut self) -> Result<(), String> {
        self.tmp
            .as_file_mut()
            .flush()
            .map_err(|e| format!("cannot write {}: {e}", self.tmp.path().display()))
    }

    /// Remembers the worker file's times, applied when the file is installed.
    pub(crate) fn set_times(&mut self, access: f64, modified: f64) {
        let at = |secs: f64| {
            Duration::try_from_secs_f64(secs)
                .ok()
                .and_then(|d| SystemTime::UNIX_EPOCH.checked_add(d))
        };
        self.times = at(access).zip(at(modified));
    }

    /// Installs the upload if `worker_ok` (the worker completed with rc 0), else discards it.
    pub(crate) fn finish(self, worker_ok: bool) -> TransferReport {
        let UploadSink {
            kind,
            tmp,
            dest,
            bytes,
            error,
            times,
            ..
        } = self;
        let mut report = TransferReport {
            path: dest.clone(),
            bytes,
            error,
        };
        if report.error.is_some() {
            return report;
        }
        if !worker_ok {
            report.error = Some("the worker reported a failure; nothing was installed".into());
            return report;
        }
        report.error = match kind {
            SinkKind::File => install_file(tmp, &dest, times).err(),
            SinkKind::Directory(compress) => extract(tmp.path(), &dest, compress).err(),
        };
        report
    }
}

fn install_file(
    tmp: NamedTempFile,
    dest: &Path,
    times: Option<(SystemTime, SystemTime)>,
) -> Result<(), String> {
    if let Some((accessed, modified)) = times {
        let t = std::fs::FileTimes::new()
            .set_accessed(accessed)
            .set_modified(modified);
        tmp.as_file()
            .set_times(t)
            .map_err(|e| format!("cannot set the times of {}: {e}", dest.display()))?;
    }
    tmp.persist(dest)
        .map(drop)
        .map_err(|e| format!("cannot install {}: {}", dest.display(), e.error))
}

/// Whether a link target, relative to the directory holding the link (`depth` levels below
/// the destination root), stays inside the root.
fn link_stays_inside(depth: usize, target: &Path) -> bool {
    let mut level = depth as isize;
    for part in target.components() {
        match part {
            Component::Normal(_) => level += 1,
            Component::CurDir => {}
            Component::ParentDir => {
                level -= 1;
                if level < 0 {
                    return false;
                }
            }
            Component::RootDir | Component::Prefix(_) => return false,
        }
    }
    true
}

/// Extracts a tar stream into `dest`, refusing members whose names or link targets would
/// leave it. Members are read and written one at a time.
fn extract(archive: &Path, dest: &Path, compress: Option<Compression>) -> Result<(), String> {
    let file = File::open(archive).map_err(|e| format!("cannot read the upload: {e}"))?;
    let reader: Box<dyn Read> = match compress {
        None => Box::new(BufReader::new(file)),
        Some(Compression::Gz) => Box::new(flate2::read::GzDecoder::new(BufReader::new(file))),
        Some(Compression::Bz2) => Box::new(bzip2::read::BzDecoder::new(BufReader::new(file))),
    };
    std::fs::create_dir_all(dest).map_err(|e| format!("cannot create {}: {e}", dest.display()))?;
    let mut tar = tar::Archive::new(reader);
    tar.set_preserve_permissions(true);
    tar.set_overwrite(true);
    let bad = |e: io::Error| format!("the uploaded archive is not a valid tar stream: {e}");
    for entry in tar.entries().map_err(bad)? {
        let mut entry = entry.map_err(bad)?;
        let name = entry.path().map_err(bad)?.into_owned();
        let mut depth = 0usize;
        for part in name.components() {
            match part {
                Component::Normal(_) => depth += 1,
                // Python's tarfile names the root member "/" when the stock worker adds the
                // directory as ""; like tar(1), leading slashes are dropped, which keeps the
                // member inside the destination.
                Component::CurDir | Component::RootDir => {}
                Component::ParentDir | Component::Prefix(_) => {
                    return Err(format!(
                        "refused: archive member {:?} escapes the destination",
                        name
                    ));
                }
            }
        }
        let kind = entry.header().entry_type();
        if kind.is_symlink() || kind.is_hard_link() {
            let target = entry.link_name().map_err(bad)?.unwrap_or_default();
            // A symlink is relative to its own directory, a hard link to the archive root.
            let base = if kind.is_symlink() {
                depth.saturating_sub(1)
            } else {
                0
            };
            if !link_stays_inside(base, &target) {
                return Err(format!(
                    "refused: archive member {:?} links to {:?}, outside the destination",
                    name, target
                ));
            }
        }
        if !entry
            .unpack_in(dest)
            .map_err(|e| format!("cannot extract {:?}: {e}", name))?
        {
            return Err(format!(
                "refused: archive member {:?} escapes the destination",
                name
            ));
        }
    }
    Ok(())
}

/// A master file on its way to the worker.
#[derive(Debug)]
pub(crate) struct DownloadSource {
    file: File,
    path: PathBuf,
    blocksize: u64,
    bytes: u64,
}

impl DownloadSource {
    /// Opens the file now, so that a missing source fails before anything is sent.
    pub(crate) fn open(path: PathBuf, blocksize: u64) -> Result<DownloadSource, Error> {
        let file = File::open(&path).map_err(io_error(&path))?;
        Ok(DownloadSource {
            file,
            path,
            blocksize: blocksize.max(1),
            bytes: 0,
        })
    }

    /// The next block: at most `length` bytes, and never more than the blocksize the worker
    /// was given (its request is not trusted to size our buffer). Empty at end of file.
    pub(crate) fn read(&mut self, length: u64) -> Result<Vec<u8>, String> {
        let want = length.min(self.blocksize);
        let mut buf = Vec::with_capacity(want as usize);
        (&mut self.file)
            .take(want)
            .read_to_end(&mut buf)
            .map_err(|e| format!("cannot read {}: {e}", self.path.display()))?;
        self.bytes += buf.len() as u64;
        Ok(buf)
    }

    pub(crate) fn report(&self, error: Option<String>) -> TransferReport {
        TransferReport {
            path: self.path.clone(),
            bytes: self.bytes,
            error,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn confine_refuses_escapes() {
        let root = Path::new("/srv/up");
        assert_eq!(confine(root, "a/b").unwrap(), Path::new("/srv/up/a/b"));
        assert_eq!(confine(root, "./a").unwrap(), Path::new("/srv/up/a"));
        for bad in ["../a", "a/../../b", "/etc/passwd", "", "."] {
            assert!(confine(root, bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn link_targets() {
        assert!(link_stays_inside(0, Path::new("a")));
        assert!(link_stays_inside(1, Path::new("../a")));
        assert!(!link_stays_inside(0, Path::new("../a")));
        assert!(!link_stays_inside(3, Path::new("/etc")));
        assert!(!link_stays_inside(1, Path::new("x/../../../y")));
    }

    fn tar_with(build: impl FnOnce(&mut tar::Builder<Vec<u8>>)) -> NamedTempFile {
        let mut b = tar::Builder::new(Vec::new());
        build(&mut b);
        let bytes = b.into_inner().unwrap();
        let mut f = NamedTempFile::new().unwrap();
        f.write_all(&bytes).unwrap();
        f
    }

    fn header(kind: tar::EntryType, size: u64) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_size(size);
        h.set_mode(0o644);
        h
    }

    #[test]
    fn extraction_refuses_escaping_members() {
        let dir = tempfile::tempdir().unwrap();
        let ok = tar_with(|b| {
            let mut h = header(tar::EntryType::Regular, 2);
            b.append_data(&mut h, "sub/f.txt", &b"hi"[..]).unwrap();
            let mut l = header(tar::EntryType::Symlink, 0);
            b.append_link(&mut l, "sub/link", "f.txt").unwrap();
        });
        extract(ok.path(), &dir.path().join("out"), None).unwrap();
        assert_eq!(
            std::fs::read(dir.path().join("out/sub/f.txt")).unwrap(),
            b"hi"
        );

        let evil_link = tar_with(|b| {
            let mut l = header(tar::EntryType::Symlink, 0);
            b.append_link(&mut l, "escape", "../../etc").unwrap();
        });
        let err = extract(evil_link.path(), &dir.path().join("out2"), None).unwrap_err();
        assert!(err.contains("outside the destination"), "{err}");

        // `append_data` refuses `..` itself, so write the name into the header directly.
        let evil_name = tar_with(|b| {
            let mut h = header(tar::EntryType::Regular, 1);
            h.as_gnu_mut().unwrap().name[..9].copy_from_slice(b"../x.txt\0");
            h.set_cksum();
            b.append(&h, &b"x"[..]).unwrap();
        });
        let err = extract(evil_name.path(), &dir.path().join("out3"), None).unwrap_err();
        assert!(err.contains("escapes"), "{err}");
        assert!(!dir.path().join("x.txt").exists());
    }

    #[test]
    fn sinks_respect_maxsize_and_install_only_on_success() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("a/b/out.bin");
        let mut s = UploadSink::create(SinkKind::File, dest.clone(), Some(4)).unwrap();
        s.write(b"abc").unwrap();
        assert!(s.write(b"de").is_err());
        let r = s.finish(true);
        assert!(r.error.unwrap().contains("maxsize"));
        assert!(!dest.exists());

        let mut s = UploadSink::create(SinkKind::File, dest.clone(), None).unwrap();
        s.write(b"abc").unwrap();
        s.close().unwrap();
        assert!(s.finish(false).error.is_some());
        assert!(!dest.exists());

        let mut s = UploadSink::create(SinkKind::File, dest.clone(), None).unwrap();
        s.write(b"abc").unwrap();
        s.close().unwrap();
        s.set_times(1_000_000.0, 2_000_000.0);
        assert_eq!(s.finish(true).error, None);
        assert_eq!(std::fs::read(&dest).unwrap(), b"abc");
        let mtime = std::fs::metadata(&dest).unwrap().modified().unwrap();
        assert_eq!(
            mtime,
            SystemTime::UNIX_EPOCH + Duration::from_secs(2_000_000)
        );
        // No temporary file is left behind.
        let left: Vec<_> = std::fs::read_dir(dir.path().join("a/b")).unwrap().collect();
        assert_eq!(left.len(), 1);
    }
}
