//! Bazaar (Breezy) pollers against a branch in a temporary directory.

use crate::common::{write, Fixture};
use abo_plan::watch::ChangeFilter;
use abo_plan::{Vcs, WatchedBranch};

/// The program the tests commit with (the poller picks the same way).
pub fn program() -> &'static str {
    let found = std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join("brz").is_file()));
    if found {
        "brz"
    } else {
        "bzr"
    }
}

pub struct Up<'a> {
    pub fx: &'a Fixture,
    pub dir: std::path::PathBuf,
}

impl<'a> Up<'a> {
    pub fn new(fx: &'a Fixture, name: &str) -> Up<'a> {
        let dir = fx.path(name);
        fx.tool(fx.tmp.path(), program(), &["init", "-q", "--", name]);
        let up = Up { fx, dir };
        up.commit("README", "hello\n", "initial");
        up
    }

    pub fn url(&self) -> String {
        self.dir.to_str().unwrap().to_string()
    }

    pub fn bzr(&self, args: &[&str]) -> String {
        self.fx.tool(&self.dir, program(), args)
    }

    /// Commits; returns the new revno.
    pub fn commit(&self, file: &str, content: &str, message: &str) -> String {
        write(&self.dir, file, content);
        self.bzr(&["add", "-q", "--", file]);
        self.bzr(&["commit", "-q", "-m", message]);
        self.bzr(&["revno"]).trim().to_string()
    }
}

#[tokio::test]
async fn first_poll_then_one_change_per_commit() {
    let fx = Fixture::new().await;
    let up = Up::new(&fx, "trunk");
    let plan = fx.plan(Vcs::Bzr, &up.url(), &[]);
    let poller = fx.runtime(&plan);

    let report = poller.poll_once().await.unwrap();
    assert!(report.first_poll);
    assert!(report.changes.is_empty());
    let state = fx.store.poller_state(poller.name()).await.unwrap();
    assert_eq!(state.keys().collect::<Vec<_>>(), [""]);
    assert!(fx.master().join(&plan.workdir).join(".bzr").is_dir());
    assert!(poller.poll_once().await.unwrap().changes.is_empty());

    let revno = up.commit("src/a b.py", "x\n", "Fix été\n\n$(id) `ls`\nline 3");
    assert_eq!(revno, "2");
    let report = poller.poll_once().await.unwrap();
    assert_eq!(report.changes.len(), 1, "{report:?}");
    let change = &report.changes[0];
    // A bzr branch is its URL: repository and branch both, as 0.9's change filter expects.
    assert_eq!(change.repository, up.url());
    assert_eq!(change.branch, up.url());
    assert_eq!(change.revision, "2");
    assert_eq!(change.author, "Jöhn Dœ <j@example.org>");
    assert!(change.committed_at.is_some());
    assert_eq!(change.comments, "Fix été\n\n$(id) `ls`\nline 3");
    assert_eq!(change.files, ["src", "src/a b.py"]);
    for (repository, branch) in [
        (Some(change.repository.as_str()), None),
        (None, Some(change.branch.as_str())),
        (
            Some(change.repository.as_str()),
            Some(change.branch.as_str()),
        ),
    ] {
        let filter = ChangeFilter::new(vec![WatchedBranch {
            vcs: Vcs::Bzr,
            url: up.url(),
            branch: None,
        }]);
        assert!(filter.accepts(repository, branch));
    }

    let r1 = up.commit("one", "1\n", "one");
    let r2 = up.commit("two", "2\n", "two");
    let report = poller.poll_once().await.unwrap();
    let revs: Vec<&str> = report.changes.iter().map(|c| c.revision.as_str()).collect();
    assert_eq!(revs, [r1.as_str(), r2.as_str()]);
    assert_eq!(report.changes[1].files, ["two"]);
}

#[tokio::test]
async fn restart_and_merges() {
    let fx = Fixture::new().await;
    let up = Up::new(&fx, "trunk");
    let plan = fx.plan(Vcs::Bzr, &up.url(), &[]);
    {
        let poller = fx.runtime(&plan);
        poller.poll_once().await.unwrap();
        up.commit("a", "1\n", "seen");
        assert_eq!(poller.poll_once().await.unwrap().changes.len(), 1);
    }
    // While down: a commit, and a merge of a feature branch with two commits.
    let r1 = up.commit("b", "1\n", "while down");
    fx.tool(
        fx.tmp.path(),
        program(),
        &["branch", "-q", "--", "trunk", "feature"],
    );
    let feature = Up {
        fx: &fx,
        dir: fx.path("feature"),
    };
    feature.commit("f1", "1\n", "feature 1");
    feature.commit("f2", "1\n", "feature 2");
    up.bzr(&["merge", "-q", "../feature"]);
    up.bzr(&["commit", "-q", "-m", "merge feature"]);
    let poller = fx.runtime(&plan);
    let report = poller.poll_once().await.unwrap();
    // Mainline revisions only: the merge stands for the feature's commits.
    let got: Vec<(&str, &str)> = report
        .changes
        .iter()
        .map(|c| (c.revision.as_str(), c.comments.as_str()))
        .collect();
    assert_eq!(got, [(r1.as_str(), "while down"), ("4", "merge feature")]);
    assert_eq!(report.changes[1].files, ["f1", "f2"]);
    assert!(poller.poll_once().await.unwrap().changes.is_empty());
}

#[tokio::test]
async fn overwritten_history_reports_the_head() {
    let fx = Fixture::new().await;
    let up = Up::new(&fx, "trunk");
    let plan = fx.plan(Vcs::Bzr, &up.url(), &[]);
    let poller = fx.runtime(&plan);
    up.commit("a", "1\n", "a");
    poller.poll_once().await.unwrap();
    // `uncommit` then a new commit: revno 2 is another revision now.
    up.bzr(&["uncommit", "--force", "-q"]);
    up.bzr(&["revert", "-q"]);
    let revno = up.commit("b", "1\n", "b replaces a");
    let report = poller.poll_once().await.unwrap();
    assert_eq!(report.changes.len(), 1);
    assert_eq!(report.changes[0].revision, revno);
    assert_eq!(report.changes[0].comments, "b replaces a");
}
