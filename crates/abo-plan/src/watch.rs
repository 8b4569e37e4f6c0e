//! Watching repositories: the `watch` option of manifest sections, URL rewriting, the change
//! filters of schedulers and the pollers of the master.
//!
//! - Watch lines are `bzr URL`, `hg URL BRANCH` or `git URL BRANCH`. A section with a `watch`
//!   option (even empty) whose `buildout` is a bzr/hg/git repository also watches that
//!   repository, last, so that it wins over a line naming the same URL.
//! - [`UrlRewriter`] applies `(from prefix, to prefix)` rules in order, then resolves
//!   Launchpad's `lp:X` to [`LAUNCHPAD_BRANCH_PREFIX`]`X` (0.9 asked Launchpad over the
//!   network; abo resolves it the same way everywhere without it).
//! - [`watch_table`] gives a section's watched branches, keyed by rewritten URL;
//!   [`ChangeFilter`] decides from it whether a change interests the section.
//! - [`pollers`] gives one [`Poller`] per repository, whose working directory is named after
//!   the sha1 of the URL *before* rewriting, so that changing a rule keeps the poller's state.
//!
//! Deliberate differences with 0.9:
//! - git branches are checked like hg ones (0.9 accepted a change on any branch of a watched
//!   git repository; upstream fixed it later);
//! - one poller per repository with all its branches (0.9 made one hg poller per branch, all
//!   sharing one working directory);
//! - a per-section `poll-interval` option (seconds) overrides the default interval.

use crate::model::{Poller, Vcs, WatchedBranch};
use crate::version::py_repr;
use abo_config::{Diagnostic, ManifestSection};
use sha1::{Digest, Sha1};
use std::collections::{BTreeMap, BTreeSet};

/// Where `lp:X` points: Launchpad's read-only HTTP branch address.
pub const LAUNCHPAD_BRANCH_PREFIX: &str = "http://bazaar.launchpad.net/+branch/";

/// The manifest option listing watched branches.
const WATCH: &str = "watch";
/// The manifest option naming the buildout.
const BUILDOUT: &str = "buildout";
/// abo extension: seconds between polls of the repositories a section watches.
pub const POLL_INTERVAL: &str = "poll-interval";

/// `lp:X` → `http://bazaar.launchpad.net/+branch/X`; `None` for any other URL.
pub fn resolve_launchpad(url: &str) -> Option<String> {
    url.strip_prefix("lp:")
        .map(|rest| format!("{LAUNCHPAD_BRANCH_PREFIX}{rest}"))
}

/// The sha1 hex digest of a URL: the name of its poller's working directory.
pub fn url_hash(url: &str) -> String {
    hex::encode(Sha1::digest(url.as_bytes()))
}

/// The VCS a watch line or buildout line starts with (names are case-sensitive, as in 0.9).
fn parse_vcs(token: &str) -> Option<Vcs> {
    match token {
        "bzr" => Some(Vcs::Bzr),
        "hg" => Some(Vcs::Hg),
        "git" => Some(Vcs::Git),
        _ => None,
    }
}

/// URL rewriting: `(from prefix, to prefix)` rules applied in order, each to the result of
/// the previous ones, then `lp:` resolution.
///
/// [`UrlRewriter::rewrite`] is a pure function of the rules. [`UrlRewriter::remember`] also
/// records the URL, which is what [`UrlRewriter::original`] and
/// [`UrlRewriter::rewritten_table`] report on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UrlRewriter {
    rules: Vec<(String, String)>,
    /// Remembered URL → its final rewriting.
    rewritten: BTreeMap<String, String>,
    /// Every rewriting (intermediate or final) of a remembered URL → that URL.
    originals: BTreeMap<String, String>,
}

impl UrlRewriter {
    /// Rules as `(from prefix, to prefix)` pairs, applied in this order.
    pub fn new(rules: Vec<(String, String)>) -> Self {
        UrlRewriter {
            rules,
            ..UrlRewriter::default()
        }
    }

    pub fn rules(&self) -> &[(String, String)] {
        &self.rules
    }

    /// The successive URLs `url` becomes, one per rule that applies, then `lp:` resolution.
    fn steps(&self, url: &str) -> Vec<String> {
        let mut steps: Vec<String> = Vec::new();
        for (from, to) in &self.rules {
            let current = steps.last().map_or(url, String::as_str);
            if let Some(rest) = current.strip_prefix(from.as_str()) {
                steps.push(format!("{to}{rest}"));
            }
        }
        let current = steps.last().map_or(url, String::as_str);
        if let Some(resolved) = resolve_launchpad(current) {
            steps.push(resolved);
        }
        steps
    }

    /// The URL after every rule and `lp:` resolution.
    pub fn rewrite(&self, url: &str) -> String {
        self.steps(url).pop().unwrap_or_else(|| url.to_string())
    }

    /// [`UrlRewriter::rewrite`], recording the URL for [`UrlRewriter::original`] and
    /// [`UrlRewriter::rewritten_table`].
    pub fn remember(&mut self, url: &str) -> String {
        let mut current = url.to_string();
        for step in self.steps(url) {
            // As in 0.9: a URL that is itself the rewriting of a remembered URL traces back to
            // that one.
            let ancestor = self
                .originals
                .get(&current)
                .cloned()
                .unwrap_or_else(|| current.clone());
            self.originals.insert(step.clone(), ancestor);
            current = step;
        }
        self.rewritten.insert(url.to_string(), current.clone());
        current
    }

    /// The remembered URL that `rewritten` was rewritten from, if any rule (or `lp:`
    /// resolution) produced it.
    pub fn original(&self, rewritten: &str) -> Option<&str> {
        self.originals.get(rewritten).map(String::as_str)
    }

    /// Every remembered URL → its rewriting (unchanged URLs included).
    pub fn rewritten_table(&self) -> &BTreeMap<String, String> {
        &self.rewritten
    }
}

/// One parsed watch line (or the auto-watched buildout), before rewriting.
#[derive(Debug, Clone, PartialEq, Eq)]
struct WatchLine {
    vcs: Vcs,
    /// As written: poller directories are named after it.
    url: String,
    branch: Option<String>,
    /// The option it comes from, for diagnostics.
    option: &'static str,
}

/// `bzr URL` | `hg URL BRANCH` | `git URL BRANCH`, split on blanks; the error message is 0.9's
/// with the right form as help.
fn parse_branch_spec(tokens: &[&str]) -> Result<(Vcs, String, Option<String>), (String, String)> {
    let Some((&first, args)) = tokens.split_first() else {
        return Err((
            "empty branch specification".to_string(),
            "write `bzr URL`, `hg URL BRANCH` or `git URL BRANCH`".to_string(),
        ));
    };
    let Some(vcs) = parse_vcs(first) else {
        return Err((
            format!("Sorry, {} VCS not supported.", py_repr(first)),
            "supported are `bzr URL`, `hg URL BRANCH` and `git URL BRANCH`".to_string(),
        ));
    };
    let url = args.first().copied().unwrap_or("URL");
    match (vcs, args) {
        (Vcs::Bzr, [url]) => Ok((vcs, url.to_string(), None)),
        (Vcs::Hg | Vcs::Git, [url, branch]) => Ok((vcs, url.to_string(), Some(branch.to_string()))),
        _ => {
            let listed: Vec<String> = tokens.iter().map(|t| py_repr(t)).collect();
            let help = match vcs {
                Vcs::Bzr => format!("write `bzr {url}`: a bzr branch is its URL"),
                Vcs::Hg => format!("write `hg {url} BRANCH`, e.g. `hg {url} default`"),
                Vcs::Git => format!("write `git {url} BRANCH`, e.g. `git {url} master`"),
            };
            Err((
                format!(
                    "Wrong number of arguments for branch specification in [{}]",
                    listed.join(", ")
                ),
                help,
            ))
        }
    }
}

/// The lines a section watches, in order, the auto-watched buildout last; `None` without a
/// `watch` option. Bad lines become diagnostics and are left out.
fn read_watch_lines(section: &ManifestSection) -> Option<(Vec<WatchLine>, Vec<Diagnostic>)> {
    section.get(WATCH)?;
    let file = section.place_of(WATCH).0;
    let mut lines = Vec::new();
    let mut diags = Vec::new();
    for (line, at) in section.lines_at(WATCH) {
        let tokens: Vec<&str> = line.split_whitespace().collect();
        match parse_branch_spec(&tokens) {
            Ok((vcs, url, branch)) => lines.push(WatchLine {
                vcs,
                url,
                branch,
                option: WATCH,
            }),
            Err((message, help)) => {
                diags.push(Diagnostic::new(file, at, message).with_help(help));
            }
        }
    }
    if let Some(buildout) = section.get(BUILDOUT) {
        let tokens: Vec<&str> = buildout.split_whitespace().collect();
        if tokens.first().and_then(|t| parse_vcs(t)).is_some() {
            // `VCS URL [BRANCH] CONF [key=value ...]`: drop the options, then the conf file.
            let mut spec: Vec<&str> = tokens.into_iter().filter(|t| !t.contains('=')).collect();
            spec.pop();
            // A malformed VCS buildout is the buildout parser's to report (AC-E4, AC-E5);
            // reporting it here too would say the same thing twice.
            if let Ok((vcs, url, branch)) = parse_branch_spec(&spec) {
                lines.push(WatchLine {
                    vcs,
                    url,
                    branch,
                    option: BUILDOUT,
                });
            }
        }
    }
    Some((lines, diags))
}

/// A section's watch table: the branches it watches, URLs rewritten, in order of first
/// appearance; a later line for the same (rewritten) URL replaces the earlier one, so the
/// auto-watched buildout wins.
///
/// `Ok(None)` when the section has no `watch` option: it is not watched at all, even with a
/// VCS buildout. `Ok(Some(vec![]))` for an empty `watch` and no VCS buildout.
pub fn watch_table(
    section: &ManifestSection,
    rewriter: &UrlRewriter,
) -> Result<Option<Vec<WatchedBranch>>, Vec<Diagnostic>> {
    let Some((lines, diags)) = read_watch_lines(section) else {
        return Ok(None);
    };
    if !diags.is_empty() {
        return Err(diags);
    }
    let mut table: Vec<WatchedBranch> = Vec::new();
    for line in lines {
        let entry = WatchedBranch {
            vcs: line.vcs,
            url: rewriter.rewrite(&line.url),
            branch: line.branch,
        };
        match table.iter_mut().find(|e| e.url == entry.url) {
            Some(earlier) => *earlier = entry,
            None => table.push(entry),
        }
    }
    Ok(Some(table))
}

/// The change filter of a section: `None` when the section is not watched or watches nothing
/// (0.9 gave no filter then, hence no scheduler).
pub fn change_filter(
    section: &ManifestSection,
    rewriter: &UrlRewriter,
) -> Result<Option<ChangeFilter>, Vec<Diagnostic>> {
    Ok(watch_table(section, rewriter)?
        .filter(|t| !t.is_empty())
        .map(ChangeFilter::new))
}

/// Decides whether a change interests a section, from its watch table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeFilter {
    /// Unique by URL.
    entries: Vec<WatchedBranch>,
}

impl ChangeFilter {
    /// A filter from watched branches; for a URL listed twice, the later entry counts.
    pub fn new(table: Vec<WatchedBranch>) -> Self {
        let mut entries: Vec<WatchedBranch> = Vec::with_capacity(table.len());
        for entry in table {
            match entries.iter_mut().find(|e| e.url == entry.url) {
                Some(earlier) => *earlier = entry,
                None => entries.push(entry),
            }
        }
        ChangeFilter { entries }
    }

    pub fn entries(&self) -> &[WatchedBranch] {
        &self.entries
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether a change on `repository` / `branch` interests the section.
    ///
    /// The repository is looked up (bzr changes carry no repository: their branch is the
    /// URL); a bzr repository accepts every change; hg and git ones only changes on the
    /// watched branch. 0.9 did not check git branches.
    pub fn accepts(&self, repository: Option<&str>, branch: Option<&str>) -> bool {
        let Some(url) = repository.filter(|r| !r.is_empty()).or(branch) else {
            return false;
        };
        let Some(entry) = self.entries.iter().find(|e| e.url == url) else {
            return false;
        };
        match entry.vcs {
            Vcs::Bzr => true,
            Vcs::Hg | Vcs::Git => entry.branch.as_deref() == branch,
        }
    }
}

/// A poller being assembled from the sections watching its repository.
struct PollerParts {
    vcs: Vcs,
    original: String,
    branches: BTreeSet<String>,
    interval: Option<u64>,
}

/// A section's `poll-interval`: `Ok(None)` when absent; whole seconds, at least one.
fn poll_interval(section: &ManifestSection) -> Result<Option<u64>, Diagnostic> {
    let Some(value) = section.get(POLL_INTERVAL) else {
        return Ok(None);
    };
    let (file, line) = section.place_of(POLL_INTERVAL);
    match value.trim().parse::<u64>() {
        Ok(0) => Err(
            Diagnostic::new(file, line, "poll-interval must be at least 1 second")
                .with_help("write a number of seconds, e.g. `poll-interval = 300`"),
        ),
        Ok(seconds) => Ok(Some(seconds)),
        Err(_) => Err(Diagnostic::new(
            file,
            line,
            format!(
                "poll-interval must be a whole number of seconds, not {}",
                py_repr(value)
            ),
        )
        .with_help("write e.g. `poll-interval = 300`")),
    }
}

/// The pollers of every watched repository: one per repository (VCS and URL as written),
/// with the sorted union of the branches all sections watch on it (none for bzr), including
/// branches whose line a later one replaced in a watch table (AC-W8) and sections without a
/// buildout (AC-W11). `interval` is the smallest `poll-interval` of the sections watching
/// it, else `default_interval`. Sorted by VCS, URL and working directory.
///
/// Reports bad `poll-interval`s and a URL watched with two different VCSes. Bad watch lines
/// are left out without a word: [`watch_table`] reports them, and callers run it on every
/// section anyway (for schedulers), so reporting them here too would say everything twice.
pub fn pollers(
    sections: &[&ManifestSection],
    rewriter: &UrlRewriter,
    default_interval: u64,
) -> Result<Vec<Poller>, Vec<Diagnostic>> {
    let mut diags = Vec::new();
    // Keyed by the hash of the URL as written, the VCS first so that a URL watched with two
    // VCSes (reported below) still gets distinct working directories.
    let mut repos: BTreeMap<(Vcs, String), PollerParts> = BTreeMap::new();
    // URL as written → (VCS, section) of its first watch, to catch a URL given two VCSes.
    let mut first_vcs: BTreeMap<String, (Vcs, &str)> = BTreeMap::new();
    for section in sections {
        let interval = poll_interval(section).unwrap_or_else(|d| {
            diags.push(d);
            None
        });
        let Some((lines, _reported_by_watch_table)) = read_watch_lines(section) else {
            continue;
        };
        for line in lines {
            let (vcs0, where0) = *first_vcs
                .entry(line.url.clone())
                .or_insert((line.vcs, section.name.as_str()));
            if vcs0 != line.vcs {
                let (file, at) = section.place_of(line.option);
                diags.push(
                    Diagnostic::new(
                        file,
                        at,
                        format!(
                            "{} is watched with {} here but with {} in [{where0}]",
                            py_repr(&line.url),
                            line.vcs.as_str(),
                            vcs0.as_str()
                        ),
                    )
                    .with_help("a repository has one VCS: use the same one everywhere"),
                );
            }
            let parts = repos
                .entry((line.vcs, url_hash(&line.url)))
                .or_insert_with(|| PollerParts {
                    vcs: line.vcs,
                    original: line.url.clone(),
                    branches: BTreeSet::new(),
                    interval: None,
                });
            parts.branches.extend(line.branch);
            parts.interval = match (parts.interval, interval) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
    }
    if !diags.is_empty() {
        return Err(diags);
    }
    let mut pollers: Vec<Poller> = repos
        .into_iter()
        .map(|((vcs, hash), parts)| Poller {
            vcs,
            url: rewriter.rewrite(&parts.original),
            branches: parts.branches.into_iter().collect(),
            workdir: format!("{}poller/{hash}", parts.vcs.as_str()),
            interval: parts.interval.unwrap_or(default_interval),
        })
        .collect();
    pollers.sort_by(|a, b| (a.vcs, &a.url, &a.workdir).cmp(&(b.vcs, &b.url, &b.workdir)));
    Ok(pollers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn launchpad_resolution() {
        for (url, expected) in [
            (
                "lp:openobject-server/6.1",
                Some("http://bazaar.launchpad.net/+branch/openobject-server/6.1"),
            ),
            (
                "lp:~anybox/anybox.recipe.openerp/trunk",
                Some("http://bazaar.launchpad.net/+branch/~anybox/anybox.recipe.openerp/trunk"),
            ),
            ("http://lp:x", None),
            ("bzr+ssh://lp:x", None),
        ] {
            assert_eq!(resolve_launchpad(url).as_deref(), expected, "{url}");
        }
    }

    #[test]
    fn rewriting_resolves_launchpad_after_the_rules() {
        // A rule can turn some URL into an `lp:` one, which then resolves.
        let rw = UrlRewriter::new(vec![("mirror:".into(), "lp:".into())]);
        assert_eq!(
            rw.rewrite("mirror:proj/trunk"),
            "http://bazaar.launchpad.net/+branch/proj/trunk"
        );
        let mut rw = rw;
        rw.remember("lp:proj/trunk");
        assert_eq!(
            rw.original("http://bazaar.launchpad.net/+branch/proj/trunk"),
            Some("lp:proj/trunk")
        );
    }

    #[test]
    fn branch_specs() {
        let ok = |s: &str| parse_branch_spec(&s.split_whitespace().collect::<Vec<_>>());
        assert_eq!(
            ok("hg http://h/r default"),
            Ok((Vcs::Hg, "http://h/r".into(), Some("default".into())))
        );
        assert_eq!(ok("bzr lp:x"), Ok((Vcs::Bzr, "lp:x".into(), None)));
        for (spec, message, help) in [
            (
                "svn http://s",
                "Sorry, 'svn' VCS not supported.",
                "supported are `bzr URL`, `hg URL BRANCH` and `git URL BRANCH`",
            ),
            (
                "HG http://s x",
                "Sorry, 'HG' VCS not supported.",
                "supported are `bzr URL`, `hg URL BRANCH` and `git URL BRANCH`",
            ),
            (
                "hg URL",
                "Wrong number of arguments for branch specification in ['hg', 'URL']",
                "write `hg URL BRANCH`, e.g. `hg URL default`",
            ),
            (
                "git u a b",
                "Wrong number of arguments for branch specification in ['git', 'u', 'a', 'b']",
                "write `git u BRANCH`, e.g. `git u master`",
            ),
            (
                "bzr u trunk",
                "Wrong number of arguments for branch specification in ['bzr', 'u', 'trunk']",
                "write `bzr u`: a bzr branch is its URL",
            ),
            (
                "bzr",
                "Wrong number of arguments for branch specification in ['bzr']",
                "write `bzr URL`: a bzr branch is its URL",
            ),
        ] {
            assert_eq!(
                ok(spec),
                Err((message.to_string(), help.to_string())),
                "{spec}"
            );
        }
    }

    #[test]
    fn poll_interval_values() {
        for (value, expected) in [
            (Some("300"), Ok(Some(300))),
            (Some(" 60 "), Ok(Some(60))),
            (None, Ok(None)),
            (
                Some("ten"),
                Err("poll-interval must be a whole number of seconds, not 'ten'"),
            ),
            (
                Some("1.5"),
                Err("poll-interval must be a whole number of seconds, not '1.5'"),
            ),
            (
                Some("-3"),
                Err("poll-interval must be a whole number of seconds, not '-3'"),
            ),
            (Some("0"), Err("poll-interval must be at least 1 second")),
        ] {
            let pairs: Vec<(&str, &str)> = value.map(|v| (POLL_INTERVAL, v)).into_iter().collect();
            let section = ManifestSection::from_pairs("s", "/m", &pairs);
            let got = poll_interval(&section).map_err(|d| {
                assert_eq!((d.file.as_str(), d.line), ("/m/MANIFEST.cfg", Some(2)));
                d.message
            });
            assert_eq!(got, expected.map_err(str::to_string), "{value:?}");
        }
    }
}
