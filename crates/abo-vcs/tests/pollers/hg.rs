//! Mercurial pollers against a repository in a temporary directory.

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
        fx.tool(&dir, "hg", &["init"]);
        let up = Up { fx, dir };
        up.commit("README", "hello\n", "initial");
        up
    }

    pub fn url(&self) -> String {
        self.dir.to_str().unwrap().to_string()
    }

    pub fn hg(&self, args: &[&str]) -> String {
        self.fx.tool(&self.dir, "hg", args)
    }

    pub fn commit(&self, file: &str, content: &str, message: &str) -> String {
        write(&self.dir, file, content);
        self.hg(&["add", "-q", "--", file]);
        self.hg(&["commit", "-q", "-d", "1700000000 -3600", "-m", message]);
        self.head()
    }

    pub fn head(&self) -> String {
        self.hg(&["log", "-r", ".", "-T", "{node}"])
            .trim()
            .to_string()
    }

    /// Updates to `branch`, or starts it from the current changeset.
    pub fn branch(&self, branch: &str, create: bool) {
        if create {
            self.hg(&["branch", "-q", "--", branch]);
        } else {
            self.hg(&["update", "-q", "-r", branch]);
        }
    }
}

#[tokio::test]
async fn first_poll_then_one_change_per_commit() {
    let fx = Fixture::new().await;
    let up = Up::new(&fx, "up");
    let plan = fx.plan(Vcs::Hg, &up.url(), &["default"]);
    let poller = fx.runtime(&plan);

    let report = poller.poll_once().await.unwrap();
    assert!(report.first_poll);
    assert!(report.changes.is_empty());
    let state = fx.store.poller_state(poller.name()).await.unwrap();
    assert_eq!(state.get("default"), Some(&up.head()));
    assert!(fx.master().join(&plan.workdir).join(".hg").is_dir());

    let rev = up.commit("src/a b.py", "x\n", "Fix été\n\n$(id) `ls`\nline 3\n");
    let report = poller.poll_once().await.unwrap();
    assert_eq!(report.changes.len(), 1, "{report:?}");
    let change = &report.changes[0];
    assert_eq!(change.repository, up.url());
    assert_eq!(change.branch, "default");
    assert_eq!(change.revision, rev);
    assert_eq!(change.author, "Jöhn Dœ <j@example.org>");
    assert_eq!(change.committed_at, Some(Timestamp(1_700_000_000_000)));
    assert_eq!(change.comments, "Fix été\n\n$(id) `ls`\nline 3");
    assert_eq!(change.files, ["src/a b.py"]);
    assert_eq!(
        fx.store.get_change(change.id).await.unwrap().as_ref(),
        Some(change)
    );
    let filter = ChangeFilter::new(vec![WatchedBranch {
        vcs: Vcs::Hg,
        url: up.url(),
        branch: Some("default".into()),
    }]);
    assert!(filter.accepts(Some(&change.repository), Some(&change.branch)));

    // Commits on an unwatched named branch: nothing.
    up.branch("stable", true);
    let on_stable = up.commit("s", "1\n", "on stable");
    assert!(poller.poll_once().await.unwrap().changes.is_empty());

    // Two commits on default: two changes, oldest first.
    up.branch("default", false);
    let r1 = up.commit("one", "1\n", "one");
    let r2 = up.commit("two", "2\n", "two");
    let report = poller.poll_once().await.unwrap();
    let revs: Vec<&str> = report.changes.iter().map(|c| c.revision.as_str()).collect();
    assert_eq!(revs, [r1.as_str(), r2.as_str()]);

    // Merging stable into default: the merge is default's change; stable's commit is not.
    up.hg(&["merge", "-q", "stable"]);
    up.hg(&["commit", "-q", "-m", "merge stable"]);
    let merge = up.head();
    let report = poller.poll_once().await.unwrap();
    let revs: Vec<&str> = report.changes.iter().map(|c| c.revision.as_str()).collect();
    assert_eq!(revs, [merge.as_str()]);
    assert!(!revs.contains(&on_stable.as_str()));
}

#[tokio::test]
async fn restart_neither_repeats_nor_misses() {
    let fx = Fixture::new().await;
    let up = Up::new(&fx, "up");
    let plan = fx.plan(Vcs::Hg, &up.url(), &["default", "stable"]);
    {
        let poller = fx.runtime(&plan);
        let report = poller.poll_once().await.unwrap();
        assert_eq!(report.missing_branches, ["stable"]);
        up.commit("a", "1\n", "seen");
        assert_eq!(poller.poll_once().await.unwrap().changes.len(), 1);
    }
    let r1 = up.commit("b", "1\n", "while down 1");
    let r2 = up.commit("c", "1\n", "while down 2");
    up.branch("stable", true);
    let s = up.commit("s", "1\n", "stable appears");
    let poller = fx.runtime(&plan);
    let report = poller.poll_once().await.unwrap();
    let got: Vec<(&str, &str)> = report
        .changes
        .iter()
        .map(|c| (c.branch.as_str(), c.revision.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            ("default", r1.as_str()),
            ("default", r2.as_str()),
            ("stable", s.as_str())
        ]
    );
    assert!(poller.poll_once().await.unwrap().changes.is_empty());
}
