//! File transfers both ways against real worker processes of each kind: binary files byte
//! for byte, directories as plain, gz and bz2 tar streams, maxsize on both sides, missing
//! sources, interrupted transfers.

mod common;

use std::time::Duration;

use abo_master::{DownloadFile, UploadDirectory, UploadFile};
use abo_proto::Compression;
use common::*;

peers!(
    upload_file_binary_and_keepstamp,
    upload_file_refusals,
    upload_directory_all_compressions,
    upload_directory_over_maxsize_is_refused,
    download_file_binary_mode_and_maxsize,
);

const MIB: usize = 1024 * 1024;

async fn upload_file_binary_and_keepstamp(peer: Peer) {
    let f = fixture(peer).await;
    let blob = binary_blob(3 * MIB + 17);
    std::fs::write(f.local("out.bin"), &blob).unwrap();
    let mtime = std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(1_500_000_000);
    std::fs::File::options()
        .write(true)
        .open(f.local("out.bin"))
        .unwrap()
        .set_modified(mtime)
        .unwrap();

    let dest = f.tmp.path().join("master/uploads/out.bin");
    let mut req = UploadFile::new(f.wpath("out.bin"), &dest);
    req.blocksize = 64 * 1024;
    req.keepstamp = true;
    let out = collect(f.conn.upload_file(req).await.unwrap()).await;
    assert!(out.result.is_success(), "{out:?}");
    let report = out.result.transfer.clone().unwrap();
    assert_eq!(report.bytes, blob.len() as u64);
    assert_eq!(std::fs::read(&dest).unwrap(), blob, "bytes differ");
    // The stock worker sends utime only with keepstamp; abo's worker may send it too.
    let got = std::fs::metadata(&dest).unwrap().modified().unwrap();
    assert_eq!(got, mtime, "keepstamp keeps the modification time");
    // Nothing but the file in the destination directory (no temporary left).
    assert_eq!(
        std::fs::read_dir(dest.parent().unwrap()).unwrap().count(),
        1
    );
    f.stop().await;
}

async fn upload_file_refusals(peer: Peer) {
    let f = fixture(peer).await;
    let dest = f.tmp.path().join("master/missing.bin");
    let out = collect(
        f.conn
            .upload_file(UploadFile::new(f.wpath("no-such-file"), &dest))
            .await
            .unwrap(),
    )
    .await;
    assert!(!out.result.is_success(), "{out:?}");
    assert!(!dest.exists());

    // Over maxsize: the worker truncates and fails; the master installs nothing.
    std::fs::write(f.local("big.bin"), binary_blob(100_000)).unwrap();
    let dest = f.tmp.path().join("master/big.bin");
    let mut req = UploadFile::new(f.wpath("big.bin"), &dest);
    req.maxsize = Some(10_000);
    req.blocksize = 4096;
    let out = collect(f.conn.upload_file(req).await.unwrap()).await;
    assert!(!out.result.is_success(), "{out:?}");
    assert!(!dest.exists(), "a truncated upload is not installed");
    assert!(
        out.result.transfer.as_ref().unwrap().bytes <= 10_000,
        "{out:?}"
    );

    // An interrupted upload is not installed either.
    std::fs::write(f.local("huge.bin"), binary_blob(20 * MIB)).unwrap();
    let dest = f.tmp.path().join("master/huge.bin");
    let mut req = UploadFile::new(f.wpath("huge.bin"), &dest);
    req.blocksize = 16 * 1024;
    let cmd = f.conn.upload_file(req).await.unwrap();
    cmd.interrupt("stop the upload").await.unwrap();
    let r = within(Duration::from_secs(60), cmd.result()).await;
    if !r.is_success() {
        assert!(!dest.exists());
    }
    f.stop().await;
}

fn make_tree(f: &Fixture) -> Vec<(&'static str, Vec<u8>)> {
    let files = vec![
        ("top.txt", b"top level\n".to_vec()),
        ("sub/deeper/data.bin", binary_blob(300_000)),
        ("sub/empty", Vec::new()),
    ];
    for (rel, bytes) in &files {
        let p = f.local(&format!("tree/{rel}"));
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, bytes).unwrap();
    }
    std::os::unix::fs::symlink("deeper/data.bin", f.local("tree/sub/link")).unwrap();
    files
}

async fn upload_directory_all_compressions(peer: Peer) {
    let f = fixture(peer).await;
    let files = make_tree(&f);
    for compress in [None, Some(Compression::Gz), Some(Compression::Bz2)] {
        let dest = f.tmp.path().join(format!("master/tree-{compress:?}"));
        let mut req = UploadDirectory::new(f.wpath("tree"), &dest);
        req.compress = compress;
        req.blocksize = 32 * 1024;
        let out = collect(f.conn.upload_directory(req).await.unwrap()).await;
        assert!(out.result.is_success(), "{compress:?}: {out:?}");
        for (rel, bytes) in &files {
            assert_eq!(
                &std::fs::read(dest.join(rel)).unwrap(),
                bytes,
                "{compress:?}: {rel}"
            );
        }
        assert_eq!(
            std::fs::read_link(dest.join("sub/link")).unwrap(),
            std::path::Path::new("deeper/data.bin")
        );
    }
    // A missing directory fails cleanly.
    let dest = f.tmp.path().join("master/nothing");
    let out = collect(
        f.conn
            .upload_directory(UploadDirectory::new(f.wpath("no-such-dir"), &dest))
            .await
            .unwrap(),
    )
    .await;
    assert!(!out.result.is_success(), "{out:?}");
    assert!(!dest.exists());
    f.stop().await;
}

async fn upload_directory_over_maxsize_is_refused(peer: Peer) {
    let f = fixture(peer).await;
    make_tree(&f);
    let dest = f.tmp.path().join("master/limited");
    let mut req = UploadDirectory::new(f.wpath("tree"), &dest);
    req.maxsize = Some(50_000);
    req.blocksize = 8192;
    let out = collect(f.conn.upload_directory(req).await.unwrap()).await;
    assert!(!out.result.is_success(), "{out:?}");
    assert!(
        !dest.join("sub/deeper/data.bin").exists(),
        "a truncated tree is not extracted"
    );
    let report = out.result.transfer.clone().unwrap();
    assert!(report.bytes <= 50_000, "{report:?}");
    assert!(report.error.is_some(), "{report:?}");
    f.stop().await;
}

async fn download_file_binary_mode_and_maxsize(peer: Peer) {
    let f = fixture(peer).await;
    let blob = binary_blob(5 * MIB + 3);
    let src = f.tmp.path().join("master-file.bin");
    std::fs::write(&src, &blob).unwrap();

    let mut req = DownloadFile::new(&src, f.wpath("downloads/file.bin"));
    req.mode = Some(0o640);
    req.blocksize = 100_000;
    let out = collect(f.conn.download_file(req).await.unwrap()).await;
    assert!(out.result.is_success(), "{out:?}");
    assert_eq!(
        out.result.transfer.as_ref().unwrap().bytes,
        blob.len() as u64
    );
    let got = std::fs::read(f.local("downloads/file.bin")).unwrap();
    assert!(
        got == blob,
        "downloaded bytes differ ({} vs {})",
        got.len(),
        blob.len()
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(f.local("downloads/file.bin"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o640);

    // An empty file arrives empty.
    let empty = f.tmp.path().join("empty");
    std::fs::write(&empty, b"").unwrap();
    let out = collect(
        f.conn
            .download_file(DownloadFile::new(&empty, f.wpath("downloads/empty")))
            .await
            .unwrap(),
    )
    .await;
    assert!(out.result.is_success(), "{out:?}");
    assert_eq!(std::fs::read(f.local("downloads/empty")).unwrap(), b"");

    // maxsize: the worker stops and fails.
    let mut req = DownloadFile::new(&src, f.wpath("downloads/cut.bin"));
    req.maxsize = Some(1000);
    let out = collect(f.conn.download_file(req).await.unwrap()).await;
    assert!(!out.result.is_success(), "{out:?}");

    // A missing master file fails before anything is sent.
    let err = f
        .conn
        .download_file(DownloadFile::new(
            f.tmp.path().join("nope"),
            f.wpath("downloads/nope"),
        ))
        .await
        .unwrap_err();
    assert!(matches!(err, abo_master::Error::Io { .. }), "{err}");
    f.stop().await;
}
