//! git pollers against a repository in a temporary directory.

use crate::common::{write, Fixture};
use abo_plan::watch::ChangeFilter;
use abo_plan::{Vcs, WatchedBranch};
use abo_store::Timestamp;

pub struct Up<'a> {
    pub fx: &'a Fixture,
    pub dir: std::path::PathBuf,
}

impl<'a> Up<'a> {
    pub fn new(fx: &'a Fixture, name: &str) -> Up<'a> {
        let dir = fx.path(name);
        std::fs::create_dir_all(&dir).unwrap();
        fx.tool(&dir, "git", &["init", "-q", "-b", "master"]);
        let up = Up { fx, dir };
        up.commit("README", "hello\n", "initial");
        up
    }

    pub fn url(&self) -> String {
        self.dir.to_str().unwrap().to_string()
    }

    pub fn git(&self, args: &[&str]) -> String {
        self.fx.tool(&self.dir, "git", args)
    }

    /// Commits `file` with `content` on the current branch; returns the new revision.
    pub fn commit(&self, file: &str, content: &str, message: &str) -> String {
        write(&self.dir, file, content);
        self.git(&["add", "--", file]);
        self.git(&["commit", "-q", "-m", message]);
        self.head()
    }

    pub fn head(&self) -> String {
        self.git(&["rev-parse", "HEAD"]).trim().to_string()
    }

    pub fn checkout(&self, branch: &str, create: bool) {
        if create {
            self.git(&["checkout", "-q", "-b", branch]);
        } else {
            self.git(&["checkout", "-q", branch]);
        }
    }
}

#[tokio::test]
async fn first_poll_then_one_change_per_commit() {
    let fx = Fixture::new().await;
    let up = Up::new(&fx, "up");
    up.checkout("dev", true);
    up.commit("dev.txt", "d\n", "on dev");
    up.checkout("master", false);
    let plan = fx.plan(Vcs::Git, &up.url(), &["master"]);
    let poller = fx.runtime(&plan);

    // First poll: heads recorded, nothing reported.
    let report = poller.poll_once().await.unwrap();
    assert!(report.first_poll);
    assert!(report.changes.is_empty());
    assert!(report.missing_branches.is_empty());
    let state = fx.store.poller_state(poller.name()).await.unwrap();
    assert_eq!(state.get("master"), Some(&up.head()));
    assert!(fx.master().join(&plan.workdir).join("HEAD").is_file());
    assert!(poller.poll_once().await.unwrap().changes.is_empty());

    // One commit on the watched branch: exactly one change, every field right.
    let rev = up.commit(
        "src/a b.py",
        "x\n",
        "Fix the thing\n\nLonger explanation,\nover lines: `ls` $(id)\n",
    );
    let report = poller.poll_once().await.unwrap();
    assert!(!report.first_poll);
    assert_eq!(report.changes.len(), 1, "{report:?}");
    let change = &report.changes[0];
    assert_eq!(change.repository, up.url());
    assert_eq!(change.branch, "master");
    assert_eq!(change.revision, rev);
    assert_eq!(change.author, "Jöhn Dœ <j@example.org>");
    assert_eq!(change.committed_at, Some(Timestamp(1_700_000_000_000)));
    assert_eq!(
        change.comments,
        "Fix the thing\n\nLonger explanation,\nover lines: `ls` $(id)"
    );
    assert_eq!(change.files, ["src/a b.py"]);
    assert_eq!(change.source, plan.workdir);
    // Stored, as the API lists it.
    let stored = fx.store.get_change(change.id).await.unwrap().unwrap();
    assert_eq!(&stored, change);
    assert_eq!(fx.store.list_changes(None, 10).await.unwrap(), [stored]);
    // The seed's change filter (AC-C*) accepts it.
    let filter = ChangeFilter::new(vec![WatchedBranch {
        vcs: Vcs::Git,
        url: up.url(),
        branch: Some("master".into()),
    }]);
    assert!(filter.accepts(Some(&change.repository), Some(&change.branch)));

    // A commit on a branch nobody watches: nothing.
    up.checkout("dev", false);
    up.commit("dev.txt", "d2\n", "more dev");
    up.checkout("master", false);
    assert!(poller.poll_once().await.unwrap().changes.is_empty());

    // Two commits: two changes, oldest first.
    let r1 = up.commit("one", "1\n", "one");
    let r2 = up.commit("two", "2\n", "two");
    let report = poller.poll_once().await.unwrap();
    let revs: Vec<&str> = report.changes.iter().map(|c| c.revision.as_str()).collect();
    assert_eq!(revs, [r1.as_str(), r2.as_str()]);
    assert_eq!(report.changes[1].files, ["two"]);

    // A merge of dev: the dev commits and the merge, the merge's files against master.
    up.git(&["merge", "-q", "--no-ff", "-m", "merge dev", "dev"]);
    let merge = up.head();
    let report = poller.poll_once().await.unwrap();
    let last = report.changes.last().unwrap();
    assert_eq!(last.revision, merge);
    assert_eq!(last.comments, "merge dev");
    assert_eq!(last.files, ["dev.txt"]);
    assert_eq!(report.changes.len(), 3, "two dev commits and the merge");

    // An empty commit has no files.
    up.git(&["commit", "-q", "--allow-empty", "-m", "empty"]);
    let report = poller.poll_once().await.unwrap();
    assert_eq!(report.changes.len(), 1);
    assert!(report.changes[0].files.is_empty());
}

#[tokio::test]
async fn restart_neither_repeats_nor_misses() {
    let fx = Fixture::new().await;
    let up = Up::new(&fx, "up");
    let plan = fx.plan(Vcs::Git, &up.url(), &["master"]);
    {
        let poller = fx.runtime(&plan);
        poller.poll_once().await.unwrap();
        up.commit("a", "1\n", "seen before the restart");
        assert_eq!(poller.poll_once().await.unwrap().changes.len(), 1);
    }
    // The master is down while two commits are pushed.
    let r1 = up.commit("b", "1\n", "pushed while down 1");
    let r2 = up.commit("c", "1\n", "pushed while down 2");
    let poller = fx.runtime(&plan);
    let report = poller.poll_once().await.unwrap();
    assert!(!report.first_poll);
    let revs: Vec<&str> = report.changes.iter().map(|c| c.revision.as_str()).collect();
    assert_eq!(revs, [r1.as_str(), r2.as_str()]);
    assert!(poller.poll_once().await.unwrap().changes.is_empty());
    assert_eq!(fx.store.list_changes(None, 100).await.unwrap().len(), 3);
}

#[tokio::test]
async fn branches_appearing_and_vanishing() {
    let fx = Fixture::new().await;
    let up = Up::new(&fx, "up");
    let plan = fx.plan(Vcs::Git, &up.url(), &["master", "release/1.0"]);
    let poller = fx.runtime(&plan);
    let report = poller.poll_once().await.unwrap();
    assert_eq!(report.missing_branches, ["release/1.0"]);

    // A watched branch created later, with history: its head alone is reported.
    up.checkout("release/1.0", true);
    up.commit("r1", "1\n", "r1");
    let head = up.commit("r2", "1\n", "r2");
    let report = poller.poll_once().await.unwrap();
    assert!(report.missing_branches.is_empty());
    assert_eq!(report.changes.len(), 1);
    assert_eq!(report.changes[0].revision, head);
    assert_eq!(report.changes[0].branch, "release/1.0");

    // Deleted upstream: reported missing, the other branch still polled.
    up.checkout("master", false);
    up.git(&["branch", "-q", "-D", "release/1.0"]);
    let rev = up.commit("m", "1\n", "m");
    let report = poller.poll_once().await.unwrap();
    assert_eq!(report.missing_branches, ["release/1.0"]);
    assert_eq!(report.changes.len(), 1);
    assert_eq!(report.changes[0].revision, rev);
}

#[tokio::test]
async fn rewritten_history_reports_the_new_commits() {
    let fx = Fixture::new().await;
    let up = Up::new(&fx, "up");
    let plan = fx.plan(Vcs::Git, &up.url(), &["master"]);
    let poller = fx.runtime(&plan);
    up.commit("a", "1\n", "a");
    poller.poll_once().await.unwrap();
    // Force-push: a replaces by b.
    up.git(&["reset", "-q", "--hard", "HEAD~1"]);
    let b = up.commit("b", "1\n", "b");
    let report = poller.poll_once().await.unwrap();
    assert_eq!(report.changes.len(), 1);
    assert_eq!(report.changes[0].revision, b);
}

#[tokio::test]
async fn a_big_push_is_capped() {
    let fx = Fixture::new().await;
    let up = Up::new(&fx, "up");
    let plan = fx.plan(Vcs::Git, &up.url(), &["master"]);
    let options = abo_vcs::PollerOptions {
        max_changes_per_branch: 3,
        ..crate::common::options()
    };
    let poller =
        abo_vcs::PollerRuntime::new(&fx.master(), &plan, fx.store.clone(), &options).unwrap();
    poller.poll_once().await.unwrap();
    let revs: Vec<String> = (0..5)
        .map(|i| up.commit("f", &format!("{i}\n"), &format!("c{i}")))
        .collect();
    let report = poller.poll_once().await.unwrap();
    let got: Vec<&str> = report.changes.iter().map(|c| c.revision.as_str()).collect();
    assert_eq!(got, [&revs[2], &revs[3], &revs[4]]);
}
