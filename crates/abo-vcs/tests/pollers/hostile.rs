//! The hostile corpus: URLs, branch names and commit data crafted to run a command. Each is
//! refused or handled as data, and a marker file proves that nothing ran.

use crate::common::{options, write, Fixture};
use crate::{bzr, git, hg};
use abo_plan::Vcs;
use abo_vcs::{PollerRuntime, PollerSet, PollerState, VcsError};
use std::path::Path;
use tokio_util::sync::CancellationToken;

/// Every way the corpus spells "create `marker`".
fn payloads(marker: &Path) -> Vec<String> {
    let m = marker.display();
    vec![
        format!("$(touch {m})"),
        format!("`touch {m}`"),
        format!("; touch {m}"),
        format!("| touch {m}"),
        format!("\ntouch {m}\n"),
    ]
}

/// A script that creates `marker`: a payload without blanks, so that only the checks for
/// options and transports stand in its way.
pub fn evil_script(fx: &Fixture, marker: &Path) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = fx.path("evil.sh");
    std::fs::write(&path, format!("#!/bin/sh\ntouch '{}'\n", marker.display())).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

fn hostile_urls(marker: &Path, evil: &Path) -> Vec<String> {
    let m = marker.display();
    let e = evil.display();
    vec![
        format!("--upload-pack={e}"),
        format!("ext::{e}"),
        format!("ssh://-oProxyCommand={e}/x"),
        format!("ssh://git@-oProxyCommand={e}/x"),
        format!("-oProxyCommand={e}:repo"),
        format!("git@-oProxyCommand={e}:repo"),
        format!("bzr+ssh://-oProxyCommand={e}/x"),
        format!("{e}::x"),
        format!("--upload-pack=touch {m}"),
        format!("--upload-pack=touch%20{m}"),
        format!("ext::sh -c touch% {m}"),
        format!("ext::sh%20-c%20touch%25%20{m}"),
        "fd::17".to_string(),
        format!("ssh://-oProxyCommand=touch {m}/x"),
        format!("ssh://-oProxyCommand=touch%20{m}/x"),
        format!("ssh://%2DoProxyCommand=touch%20{m}/x"),
        format!("ssh://-user@host/{m}"),
        format!("-oProxyCommand=touch%20{m}:repo"),
        "-x".to_string(),
        format!("/srv/repo\n--upload-pack=touch {m}"),
        format!("/srv/repo$(touch {m})"),
        format!("https://host/`touch {m}`"),
        format!("lp:$(touch {m})"),
        "relative/path".to_string(),
    ]
}

#[tokio::test]
async fn hostile_urls_are_refused_and_never_run() {
    let fx = Fixture::new().await;
    let marker = fx.path("pwned");
    let evil = evil_script(&fx, &marker);
    let mut refused = Vec::new();
    for vcs in [Vcs::Git, Vcs::Hg, Vcs::Bzr] {
        for url in hostile_urls(&marker, &evil) {
            let plan = fx.plan(vcs, &url, if vcs == Vcs::Bzr { &[] } else { &["master"] });
            match PollerRuntime::new(&fx.master(), &plan, fx.store.clone(), &options()) {
                Err(VcsError::UnsafeUrl { .. }) => {}
                Err(other) => panic!("{url:?}: {other}"),
                Ok(runtime) => {
                    // Only a plain local path may pass: polling it must fail as a missing
                    // repository, never run anything.
                    assert!(
                        url.starts_with('/') || url.starts_with("https://"),
                        "{vcs:?} {url:?} accepted"
                    );
                    assert!(runtime.poll_once().await.is_err());
                }
            }
            refused.push(plan);
        }
    }
    // The same through a poller set: refused pollers show why and never start.
    let cancel = CancellationToken::new();
    let set = PollerSet::start(
        &fx.master(),
        &refused,
        fx.store.clone(),
        options(),
        None,
        &cancel,
    );
    for status in set.statuses() {
        if status.state == PollerState::Refused {
            let error = status.last_error.unwrap();
            assert!(error.starts_with("refused"), "{error}");
            assert!(!error.contains('\n'), "{error}");
        }
    }
    set.shutdown().await;
    assert!(!marker.exists(), "a hostile URL ran a command");
}

#[tokio::test]
async fn hostile_branch_names_are_refused() {
    let fx = Fixture::new().await;
    let marker = fx.path("pwned");
    let evil = evil_script(&fx, &marker);
    let up = git::Up::new(&fx, "up");
    let m = marker.display();
    for branch in [
        format!("--exec={}", evil.display()),
        format!("--upload-pack={}", evil.display()),
        format!("--exec=touch {m}"),
        format!("--upload-pack=touch%20{m}"),
        format!("$(touch {m})"),
        format!("`touch {m}`"),
        "master\n--exec=x".to_string(),
        "a\rb".to_string(),
        "-x".to_string(),
        "a..b".to_string(),
        "refs/heads/x:refs/heads/y".to_string(),
        "*".to_string(),
    ] {
        let plan = fx.plan(Vcs::Git, &up.url(), &["master", &branch]);
        let err = PollerRuntime::new(&fx.master(), &plan, fx.store.clone(), &options())
            .expect_err(&branch);
        assert!(
            matches!(err, VcsError::UnsafeBranch { .. }),
            "{branch:?}: {err}"
        );
    }
    for branch in [
        format!("--config=hooks.pre-pull=touch {m}"),
        "a\nb".into(),
        "-r".into(),
    ] {
        let plan = fx.plan(Vcs::Hg, "/srv/hg", &[&branch]);
        let err = PollerRuntime::new(&fx.master(), &plan, fx.store.clone(), &options())
            .expect_err(&branch);
        assert!(
            matches!(err, VcsError::UnsafeBranch { .. }),
            "{branch:?}: {err}"
        );
    }
    assert!(!marker.exists());
}

#[tokio::test]
async fn git_commit_data_is_data() {
    let fx = Fixture::new().await;
    let marker = fx.path("pwned");
    let up = git::Up::new(&fx, "up");
    // Branch names that would be options, advertised by the server: listed, ignored.
    for name in ["--upload-pack=evil.sh", "-oProxyCommand=evil.sh"] {
        up.git(&["update-ref", &format!("refs/heads/{name}"), "HEAD"]);
    }
    let plan = fx.plan(Vcs::Git, &up.url(), &["master"]);
    let poller = fx.runtime(&plan);
    poller.poll_once().await.unwrap();

    let payloads = payloads(&marker);
    let message = format!("subject {}\n\nbody {}", payloads[0], payloads.join("\n"));
    let file = format!("--exec=touch {}", marker.display());
    write(&up.dir, &file, "x\n");
    write(&up.dir, &payloads[0], "x\n");
    write(&up.dir, "new\nline", "x\n");
    up.git(&["add", "--all"]);
    up.fx.tool_env(
        &up.dir,
        "git",
        &["commit", "-q", "-m", &message],
        &[(
            "GIT_AUTHOR_NAME",
            &format!("{} `touch {}`", payloads[0], marker.display()),
        )],
    );
    let report = poller.poll_once().await.unwrap();
    assert_eq!(report.changes.len(), 1);
    let change = &report.changes[0];
    assert_eq!(change.comments, message.trim_end());
    assert!(change.author.starts_with(&payloads[0]));
    let mut files = change.files.clone();
    files.sort();
    let mut expected = vec![file.clone(), payloads[0].clone(), "new\nline".to_string()];
    expected.sort();
    assert_eq!(files, expected);
    assert!(!marker.exists(), "commit data ran a command");
}

#[tokio::test]
async fn hg_branch_names_and_commit_data_are_data() {
    let fx = Fixture::new().await;
    let marker = fx.path("pwned");
    let up = hg::Up::new(&fx, "up");
    let weird = format!("$(touch {}) `x` ') or all() or ('", marker.display());
    up.branch(&weird, true);
    up.commit("w", "1\n", "on the weird branch");
    let plan = fx.plan(Vcs::Hg, &up.url(), &["default", &weird]);
    let poller = fx.runtime(&plan);
    poller.poll_once().await.unwrap();
    let payloads = payloads(&marker);
    let message = format!("subject\n\n{}", payloads.join("\n"));
    let rev = {
        write(&up.dir, &payloads[0], "x\n");
        up.hg(&["add", "-q", "--", &payloads[0]]);
        up.fx.tool_env(
            &up.dir,
            "hg",
            &["commit", "-q", "-m", &message],
            &[("HGUSER", &format!("{} <x@y>", payloads[1]))],
        );
        up.head()
    };
    let report = poller.poll_once().await.unwrap();
    assert_eq!(report.changes.len(), 1, "{report:?}");
    let change = &report.changes[0];
    assert_eq!(change.branch, weird);
    assert_eq!(change.revision, rev);
    assert_eq!(change.comments, message.trim_end());
    assert_eq!(change.files, [payloads[0].clone()]);
    assert_eq!(change.author, format!("{} <x@y>", payloads[1]));
    assert!(!marker.exists(), "hg data ran a command");
}

#[tokio::test]
async fn bzr_commit_data_is_data() {
    let fx = Fixture::new().await;
    let marker = fx.path("pwned");
    let up = bzr::Up::new(&fx, "trunk");
    let plan = fx.plan(Vcs::Bzr, &up.url(), &[]);
    let poller = fx.runtime(&plan);
    poller.poll_once().await.unwrap();
    let payloads = payloads(&marker);
    // A message that also mimics the log's own framing.
    let message = format!(
        "subject\n------------------------------------------------------------\nrevno: 99\n\
         added:\n  /etc/passwd\n{}",
        payloads.join("\n")
    );
    write(&up.dir, &payloads[0], "x\n");
    up.bzr(&["add", "-q", "--", &payloads[0]]);
    up.fx.tool_env(
        &up.dir,
        bzr::program(),
        &["commit", "-q", "-m", &message],
        &[("BRZ_EMAIL", &format!("{} <x@y>", payloads[1]))],
    );
    let report = poller.poll_once().await.unwrap();
    assert_eq!(report.changes.len(), 1, "{report:?}");
    let change = &report.changes[0];
    assert_eq!(change.revision, "2");
    assert_eq!(change.comments, message.trim_end());
    // bzr lists the directories the path needs too (the marker's path has some).
    assert_eq!(change.files.last(), Some(&payloads[0]));
    assert_eq!(change.author, format!("{} <x@y>", payloads[1]));
    assert!(!marker.exists(), "bzr data ran a command");
}
