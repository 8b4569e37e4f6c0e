//! The `buildout` option and the steps that put the buildout configuration on the worker
//! (the seed's `subfactories/download.py`, AC-F5).
//!
//! [`BuildoutSource`] is the parsed option: `standalone PATH`, `hg URL BRANCH CONF`,
//! `git URL BRANCH CONF`, `bzr URL CONF [subdir=DIR]`, `hgtag URL CONF`. A standalone
//! buildout is sent from the master; a VCS buildout becomes one [`StepKind::Checkout`]
//! where the seed sent `buildout_{hg,git,bzr}_dl.py` and ran it.

use super::{join_path, literal, py_list, py_repr};
use crate::model::{Step, StepKind, Vcs};

/// Where a section's buildout configuration comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BuildoutSource {
    /// `standalone PATH`: PATH relative to the manifest's directory (or absolute).
    Standalone { conf_path: String },
    /// `hg URL BRANCH CONF`: the head of BRANCH, CONF relative to the clone.
    Hg {
        url: String,
        branch: String,
        conf: String,
    },
    /// `git URL BRANCH CONF`.
    Git {
        url: String,
        branch: String,
        conf: String,
    },
    /// `bzr URL CONF [subdir=DIR]`: with `subdir`, the buildout is that subdirectory of
    /// the branch.
    Bzr {
        url: String,
        conf: String,
        subdir: Option<String>,
    },
    /// `hgtag URL CONF`: the tag named by the build property `buildout-tag`, cloned into
    /// `src/` beside `build/` (release builds test the package made from it).
    HgTag { url: String, conf: String },
}

/// Why a `buildout` option is wrong: the seed's message, and what would be right.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceError {
    pub message: String,
    pub help: String,
}

impl BuildoutSource {
    /// Parses the `buildout` option of section `section` (named in one of the seed's
    /// messages).
    pub fn parse(value: &str, section: &str) -> Result<Self, SourceError> {
        let tokens: Vec<&str> = value.split_whitespace().collect();
        let Some((kind, rest)) = tokens.split_first() else {
            return Err(SourceError {
                message: "the buildout option is empty".to_string(),
                help: "write `buildout = TYPE SPECIFICATION`, TYPE one of standalone, hg, \
                       git, bzr, hgtag"
                    .to_string(),
            });
        };
        let owned = |s: &str| s.to_string();
        match *kind {
            "standalone" => match rest {
                [path] if !path.ends_with('/') => Ok(BuildoutSource::Standalone {
                    conf_path: owned(path),
                }),
                _ => Err(SourceError {
                    message: format!("Wrong standalong buildout specification: {}", py_list(rest)),
                    help: "write `buildout = standalone PATH`, PATH the buildout file, \
                           relative to the manifest's directory"
                        .to_string(),
                }),
            },
            "hg" | "git" => match rest {
                [url, branch, conf] => {
                    let (url, branch, conf) = (owned(url), owned(branch), owned(conf));
                    Ok(if *kind == "hg" {
                        BuildoutSource::Hg { url, branch, conf }
                    } else {
                        BuildoutSource::Git { url, branch, conf }
                    })
                }
                _ => Err(SourceError {
                    message: format!("Wrong standalong buildout specification: {}", py_list(rest)),
                    help: format!(
                        "write `buildout = {kind} URL BRANCH CONF`, CONF the buildout file's \
                         path in the repository"
                    ),
                }),
            },
            "bzr" => parse_bzr(rest),
            "hgtag" => match rest {
                [url, conf] => Ok(BuildoutSource::HgTag {
                    url: owned(url),
                    conf: owned(conf),
                }),
                _ => Err(SourceError {
                    message: format!("Wrong hgtag buildout specification: {}", py_list(rest)),
                    help: "write `buildout = hgtag URL CONF`; the tag comes from the build \
                           property buildout-tag"
                        .to_string(),
                }),
            },
            other => Err(SourceError {
                message: format!(
                    "Buildout type {} in {} not supported",
                    py_repr(other),
                    py_repr(section)
                ),
                help: "the type is one of standalone, hg, git, bzr, hgtag".to_string(),
            }),
        }
    }

    /// The buildout configuration's path from the worker's build directory, as bootstrap
    /// and buildout are given it (`-c`).
    pub fn conf_name(&self) -> &str {
        match self {
            // The seed downloads the file into the build directory under its own name.
            BuildoutSource::Standalone { conf_path } => {
                conf_path.rsplit('/').next().unwrap_or(conf_path)
            }
            BuildoutSource::Hg { conf, .. }
            | BuildoutSource::Git { conf, .. }
            | BuildoutSource::Bzr { conf, .. }
            | BuildoutSource::HgTag { conf, .. } => conf,
        }
    }

    /// The VCS the buildout lives in, if any.
    pub fn vcs(&self) -> Option<Vcs> {
        match self {
            BuildoutSource::Standalone { .. } => None,
            BuildoutSource::Hg { .. } | BuildoutSource::HgTag { .. } => Some(Vcs::Hg),
            BuildoutSource::Git { .. } => Some(Vcs::Git),
            BuildoutSource::Bzr { .. } => Some(Vcs::Bzr),
        }
    }
}

fn parse_bzr(rest: &[&str]) -> Result<BuildoutSource, SourceError> {
    let error = || SourceError {
        message: format!(
            "Wrong standalong bzr buildout specification: {}",
            py_list(rest)
        ),
        help: "write `buildout = bzr URL CONF [subdir=DIR]`; subdir= is the only option"
            .to_string(),
    };
    let [url, conf, options @ ..] = rest else {
        return Err(error());
    };
    let mut subdir = None;
    for opt in options {
        match opt.split_once('=') {
            Some(("subdir", dir)) if !dir.is_empty() => subdir = Some(dir.to_string()),
            _ => return Err(error()),
        }
    }
    Ok(BuildoutSource::Bzr {
        url: url.to_string(),
        conf: conf.to_string(),
        subdir,
    })
}

/// `lp:X` (Launchpad, which 0.9 resolved over the network) as a plain URL, resolved the
/// same way as the pollers and change filters do.
pub fn resolve_lp(url: &str) -> String {
    crate::watch::resolve_launchpad(url).unwrap_or_else(|| url.to_string())
}

/// The steps that put the buildout on the worker. `manifest_dir` is the manifest's
/// directory on the master.
pub(crate) fn steps(source: &BuildoutSource, manifest_dir: &str) -> Vec<Step> {
    let checkout = |vcs,
                    repo: &str,
                    branch: Option<&str>,
                    revision: Option<&str>,
                    dest: &str,
                    subdir: Option<&str>| {
        // Deliberate difference 4: one typed checkout instead of downloading and running
        // buildout_{hg,git,bzr}_dl.py; dest and subdir keep the seed's layout.
        Step::new(
            "checkout_buildout",
            StepKind::Checkout {
                vcs,
                repo: literal(repo),
                branch: branch.map(literal),
                revision: revision.map(str::to_string),
                dest: dest.to_string(),
                subdir: subdir.map(literal),
            },
        )
        .halt()
    };
    match source {
        BuildoutSource::Standalone { conf_path } => vec![
            download(
                "download_bootstrap",
                &join_path(manifest_dir, "bootstrap.py"),
                "bootstrap.py",
            ),
            download(
                "download_buildout",
                &join_path(manifest_dir, conf_path),
                source.conf_name(),
            ),
        ],
        BuildoutSource::Hg { url, branch, .. } => {
            vec![checkout(Vcs::Hg, url, Some(branch), None, "build", None)]
        }
        BuildoutSource::Git { url, branch, .. } => {
            vec![checkout(Vcs::Git, url, Some(branch), None, "build", None)]
        }
        // With subdir= the seed branched aside and made build/ a link to the
        // subdirectory: the build directory is that subdirectory either way.
        BuildoutSource::Bzr { url, subdir, .. } => vec![checkout(
            Vcs::Bzr,
            &resolve_lp(url),
            None,
            None,
            "build",
            subdir.as_deref(),
        )],
        // Cloned into src/, outside build/, which must stay pristine to test the package
        // made from the tag (post-dl-steps = packaging).
        BuildoutSource::HgTag { url, .. } => vec![checkout(
            Vcs::Hg,
            url,
            None,
            Some("%(buildout-tag)s"),
            "src",
            None,
        )],
    }
}

fn download(name: &str, src: &str, dest: &str) -> Step {
    Step::new(
        name,
        StepKind::Download {
            src: literal(src),
            dest: literal(dest),
        },
    )
}
