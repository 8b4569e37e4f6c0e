//! `post-dl-steps`: steps between getting the buildout and running it (the seed's
//! `subfactories/postdownload.py`).
//!
//! `noop` (the default) adds nothing. `packaging` makes a release tarball from an `hgtag`
//! buildout cloned in `src/`: bootstrap and buildout there, `hg archive` plus the
//! extracted downloads into `dist/<prefix>-<tag>`, tar and md5 it, and move the extracted
//! tree to `build/` so that the rest of the build tests the package itself, through its
//! `release.cfg`. The `packaging` post-buildout steps upload the tarball.

use super::buildout::{bootstrap_step, BootstrapOptions, EGGS_CACHE, OPENERP_CACHE};
use super::{join_path, literal, master_argv, BuildoutSource, Scope, StepExt};
use crate::model::Step;

/// Names accepted in `post-dl-steps`.
pub const BUILTINS: [&str; 2] = ["noop", "packaging"];

/// The configuration the packaged buildout is run with.
const RELEASE_CONF: &str = "release.cfg";

/// `<prefix>-<tag>`: the archive's base name, a template.
pub(crate) fn archive_name(prefix: &str) -> String {
    format!("{}-%(buildout-tag)s", literal(prefix))
}

/// The `packaging` post-download steps; returns the configuration to use from now on.
pub(crate) fn packaging(
    scope: &mut Scope<'_>,
    source: Option<&BuildoutSource>,
    conf: &str,
    bootstrap: &BootstrapOptions,
) -> (String, Vec<Step>) {
    let what = "packaging post-download steps";
    let root = scope.require(
        "packaging.root-dir",
        "post-dl-steps",
        what,
        "add `packaging.root-dir = /ABSOLUTE/DIR` on the master, under which artifacts \
         are uploaded (often set once in [DEFAULT])",
    );
    let upload_dir = scope.require(
        "packaging.upload-dir",
        "post-dl-steps",
        what,
        "add `packaging.upload-dir = SUBDIR`, relative to packaging.root-dir",
    );
    let prefix = scope.require(
        "packaging.prefix",
        "post-dl-steps",
        what,
        "add `packaging.prefix = NAME`; the archive is NAME-<buildout-tag>.tar.bz2",
    );
    let parts = scope.require(
        "packaging.parts",
        "post-dl-steps",
        what,
        "add `packaging.parts = PART ...`, the buildout parts to extract into the archive",
    );
    // The seed runs `hg archive` in src/, which only an hgtag buildout creates.
    if source.is_some_and(|s| !matches!(s, BuildoutSource::HgTag { .. })) {
        scope.error(
            "post-dl-steps",
            "packaging post-download steps need an hgtag buildout (they archive the \
             Mercurial clone in src/)",
            "write `buildout = hgtag URL CONF` in this section",
        );
    }
    let (Some(root), Some(upload_dir), Some(prefix), Some(parts)) =
        (root, upload_dir, prefix, parts)
    else {
        return (RELEASE_CONF.to_string(), Vec::new());
    };
    let parts: Vec<String> = parts.split_whitespace().map(literal).collect();
    let archive = archive_name(&prefix);
    let conf_t = literal(conf);

    let mut steps = Vec::new();
    // The upload directory is made beforehand so that its permissions are the master's
    // choice; -p only avoids failing when it exists.
    steps.push(
        master_argv(
            "packaging_mkdir",
            [
                "mkdir".to_string(),
                "-p".to_string(),
                "-m".to_string(),
                "755".to_string(),
                literal(&join_path(&root, &upload_dir)),
            ],
        )
        .halt()
        .hide(),
    );
    steps.push(Step::argv("clean", ["rm", "-rf", "build", "dist"]).in_dir("."));
    steps.push(bootstrap_step(bootstrap, conf, Some("src")));
    steps.push(
        Step::argv(
            "archive",
            [
                "hg".to_string(),
                "archive".to_string(),
                format!("../dist/{archive}"),
            ],
        )
        .halt()
        .in_dir("src"),
    );
    let mut install = vec![
        "bin/buildout".to_string(),
        "-c".to_string(),
        conf_t.clone(),
        format!("buildout:eggs-directory={EGGS_CACHE}"),
        format!("buildout:openerp-downloads-directory={OPENERP_CACHE}"),
        "install".to_string(),
    ];
    install.extend(parts.iter().cloned());
    steps.push(Step::argv("buildout_install", install).halt().in_dir("src"));
    // Offline (-o): the recipe refuses to extract downloads otherwise.
    let mut extract = vec![
        "bin/buildout".to_string(),
        "-o".to_string(),
        "-c".to_string(),
        conf_t,
        format!("buildout:eggs-directory={EGGS_CACHE}"),
        format!("buildout:openerp-downloads-directory={OPENERP_CACHE}"),
    ];
    extract.extend(
        parts
            .iter()
            .map(|part| format!("{part}:extract-downloads-to=../dist/{archive}")),
    );
    steps.push(
        Step::argv("extract_downloads", extract)
            .halt()
            .in_dir("src"),
    );
    steps.push(
        Step::argv(
            "tar",
            [
                "tar".to_string(),
                "cjf".to_string(),
                format!("{archive}.tar.bz2"),
                archive.clone(),
            ],
        )
        .halt()
        .in_dir("dist"),
    );
    // The seed ran `md5sum X > X.md5` as a shell string built from the manifest; here the
    // script is constant and the archive name is a separate argument.
    let mut md5 = Step::argv(
        "md5",
        [
            "sh".to_string(),
            "-c".to_string(),
            "md5sum \"$1\" > \"$1.md5\"".to_string(),
            "md5".to_string(),
            format!("{archive}.tar.bz2"),
        ],
    )
    .in_dir("dist");
    md5.warn_on_failure = false;
    steps.push(md5);
    steps.push(
        Step::argv(
            "mv",
            [
                "mv".to_string(),
                format!("./dist/{archive}"),
                "build".to_string(),
            ],
        )
        .in_dir("."),
    );
    (RELEASE_CONF.to_string(), steps)
}
