//! `post-buildout-steps`: what runs once the buildout is built and the testing database
//! made (the seed's `subfactories/postbuildout.py`, AC-F1..F3, AC-F7).
//!
//! Each line of the option names one builtin here, or a user step set from master.toml;
//! several lines are applied in order. The default is `standard` (= `test-openerp`):
//! `bin/test_openerp -i ADDONS` and an analysis of its log.

use super::buildout::{EGGS_CACHE, LONG_TIMEOUT};
use super::postdownload::archive_name;
use super::{dollar_template, join_path, literal, master_argv, py_repr, Scope, StepExt};
use crate::model::{Step, StepKind};

/// Builtin names accepted in `post-buildout-steps`.
pub const BUILTINS: [&str; 10] = [
    "autocommit",
    "doc",
    "functional",
    "nose",
    "openerpcommand-initialize-tests",
    "packaging",
    "standard",
    "static-analysis",
    "test-openerp",
    "update-openerp",
];

/// The steps of builtin `name`, or `None` if there is no such builtin. `conf` is the
/// buildout configuration's path from the build directory.
pub(crate) fn builtin(scope: &mut Scope<'_>, name: &str, conf: &str) -> Option<Vec<Step>> {
    Some(match name {
        "standard" | "test-openerp" => test_openerp(scope),
        "openerpcommand-initialize-tests" => openerp_command_initialize_tests(scope),
        "update-openerp" => update_openerp(scope),
        "nose" => nose(scope),
        "functional" => functional(scope, conf),
        "static-analysis" => static_analysis(scope, conf),
        "doc" => doc(scope),
        "packaging" => packaging(scope),
        "autocommit" => autocommit(scope, conf),
        _ => return None,
    })
}

/// The seed's `comma_list_sanitize`: blanks around commas removed.
fn comma_list(value: &str) -> String {
    value
        .split(',')
        .map(str::trim)
        .collect::<Vec<_>>()
        .join(",")
}

/// Deliberate difference 4: the seed ran `python analyze_oerp_tests.py LOG` on the worker;
/// abo analyses the log collected by `step` on the master, under the seed's step name.
fn analyze(name: &str, step: &str, log: &str) -> Step {
    Step::new(
        name,
        StepKind::AnalyzeLog {
            step: step.to_string(),
            log: log.to_string(),
        },
    )
}

fn test_openerp(scope: &mut Scope<'_>) -> Vec<Step> {
    let addons = literal(&comma_list(scope.get_or("openerp-addons", "all")));
    vec![
        Step::argv("clean_log", ["rm", "-f", "test.log"]),
        Step::argv(
            "testing",
            [
                "bin/test_openerp".to_string(),
                "-i".to_string(),
                addons,
                // OpenERP's --logfile does not work with relative paths.
                "--logfile=%(workdir)s/build/test.log".to_string(),
            ],
        )
        .halt()
        .logfile("test", "test.log")
        .with_env(scope.env()),
        analyze("analyze", "testing", "test"),
    ]
}

fn openerp_command_initialize_tests(scope: &mut Scope<'_>) -> Vec<Step> {
    let mut argv: Vec<String> = [
        "bin/openerp_command",
        "initialize",
        "--no-create",
        "--tests",
        "--database",
        "%(testing_db)s",
    ]
    .map(String::from)
    .to_vec();
    let modules = scope.get_or("openerp-addons", "all");
    if modules == "all" {
        argv.extend(
            [
                "--all-modules",
                "--exclude",
                "auth_ldap",
                "--exclude",
                "document_ftp",
            ]
            .map(String::from),
        );
    } else {
        for module in modules.split(',').map(str::trim).filter(|m| !m.is_empty()) {
            argv.push("--module".to_string());
            argv.push(literal(module));
        }
    }
    vec![Step::argv("testing", argv).halt().with_env(scope.env())]
}

fn update_openerp(scope: &mut Scope<'_>) -> Vec<Step> {
    let script = literal(scope.get_or("upgrade.script", "bin/upgrade_openerp"));
    let option = literal(scope.get_or("update.log_file_option", "--log-file"));
    vec![
        Step::argv("clean_log", ["rm", "-f", "update.log"]),
        Step::argv(
            "updating",
            [
                script,
                option,
                // Absolute, for uniformity with OpenERP's --logfile.
                "%(workdir)s/build/update.log".to_string(),
            ],
        )
        .halt()
        .logfile("update", "update.log")
        .with_env(scope.env()),
        analyze("analyze", "updating", "update"),
    ]
}

const NOSE_OUTPUT: &str = "nose_output";

fn nose(scope: &mut Scope<'_>) -> Vec<Step> {
    let env = scope.env();
    let addons = comma_list(scope.get_or("openerp-addons", ""));
    let mut steps = vec![Step::argv("Log cleanup", ["rm", "-f", "install.log"])];

    let install: Vec<String> = if scope.flag("install-as-upgrade") {
        vec![
            literal(scope.get_or("upgrade.script", "bin/upgrade_openerp")),
            "--init-load-demo-data".to_string(),
            "--log-file".to_string(),
            "install.log".to_string(),
        ]
    } else {
        vec![
            "bin/start_openerp".to_string(),
            "--stop-after-init".to_string(),
            "-i".to_string(),
            literal(if addons.is_empty() { "all" } else { &addons }),
            "--logfile=%(workdir)s/build/install.log".to_string(),
        ]
    };
    steps.push(
        Step::argv("install", install)
            .halt()
            .logfile("log", "install.log")
            .with_env(env.clone()),
    );
    steps.push(analyze("check", "install", "log"));

    let mut argv = vec!["bin/nosetests".to_string(), "-v".to_string()];
    argv.extend(
        scope
            .get_or("nose.tests", "")
            .split_whitespace()
            .map(literal),
    );
    // The option that turns the upload on, to blame if the upload path is missing.
    let mut upload = None;
    if scope.flag("nose.coverage") {
        upload = Some("nose.coverage");
        argv.push("--with-coverage".to_string());
        argv.push("--cover-html".to_string());
        argv.push(format!("--cover-html-dir={NOSE_OUTPUT}/coverage"));
        argv.extend(
            scope
                .get_or("nose.cover-options", "--cover-erase --cover-branches")
                .split_whitespace()
                .map(literal),
        );
        for addon in addons.split(',').filter(|a| !a.is_empty()) {
            argv.push("--cover-package".to_string());
            argv.push(literal(addon));
        }
    }
    if scope.flag("nose.profile") {
        upload = upload.or(Some("nose.profile"));
        argv.push("--with-profile".to_string());
        argv.push("--profile-stats-file".to_string());
        argv.push(format!("{NOSE_OUTPUT}/profile.stats"));
        let restrict = scope.get_or("nose.profile-restrict", "");
        if !restrict.is_empty() {
            argv.push("--profile-restrict".to_string());
            argv.push(literal(restrict));
        }
    }
    if scope.flag("nose.cprofile") {
        upload = upload.or(Some("nose.cprofile"));
        argv.push("--with-cprofile".to_string());
        argv.push("--cprofile-stats-erase".to_string());
        argv.push("--cprofile-stats-file".to_string());
        argv.push(format!("{NOSE_OUTPUT}/cprofile.stats"));
    }
    if upload.is_some() {
        steps.push(
            Step::argv("mkdir", ["mkdir", "-p", NOSE_OUTPUT])
                .halt()
                .with_env(env.clone()),
        );
    }
    steps.push(
        Step::argv("tests", argv)
            .halt()
            .with_env(env)
            .timeout(LONG_TIMEOUT),
    );
    if let Some(wanted_by) = upload {
        // The seed uploaded to '' (the master's directory) when the path was missing.
        let path = scope.require(
            "nose.upload-path",
            wanted_by,
            "nose coverage and profiling",
            "add `nose.upload-path = DIR` on the master; build properties may be \
             written `$(name)s`",
        );
        if let Some(path) = path {
            steps.extend(upload_with_permissions(
                "nose",
                NOSE_OUTPUT,
                &dollar_template(&path),
            ));
        }
    }
    steps
}

/// A directory upload to the master, then the master makes it readable by all (the seed
/// did so rather than relying on every worker's umask).
fn upload_with_permissions(what: &str, src: &str, dest: &str) -> Vec<Step> {
    vec![
        Step::new(
            format!("{what}_upload"),
            StepKind::UploadDirectory {
                src: src.to_string(),
                dest: dest.to_string(),
            },
        )
        .halt(),
        master_argv(
            &format!("{what}_read_permissions"),
            ["chmod", "-R", "a+r", dest],
        ),
        master_argv(
            &format!("{what}_dirx_permissions"),
            [
                "find", dest, "-type", "d", "-exec", "chmod", "755", "{}", ";",
            ],
        ),
    ]
}

/// Port reservation range and stride of the seed's `port_reserve.py`.
const PORT_MIN: u16 = 9069;
const PORT_MAX: u16 = 11069;
const PORT_STEP: u16 = 5;

fn functional(scope: &mut Scope<'_>, conf: &str) -> Vec<Step> {
    let env = scope.env();
    let mut steps = Vec::new();
    let parts: Vec<String> = scope
        .get_or("functional.parts", "")
        .split_whitespace()
        .map(literal)
        .collect();
    if !parts.is_empty() {
        let mut argv = vec![
            "bin/buildout".to_string(),
            "-c".to_string(),
            literal(conf),
            format!("buildout:eggs-directory={EGGS_CACHE}"),
            "install".to_string(),
        ];
        argv.extend(parts);
        steps.push(
            Step::argv("functional tools", argv)
                .halt()
                .with_env(env.clone()),
        );
    }
    // Deliberate difference 4: the seed sent port_reserve.py and stored its output.
    steps.push(
        Step::new(
            "port_reserve",
            StepKind::ReservePort {
                property: "openerp_port".to_string(),
                min: PORT_MIN,
                max: PORT_MAX,
                step: PORT_STEP,
            },
        )
        .lock("port-reserve"),
    );
    steps.push(
        Step::argv("cleanup", ["rm", "-f", "%(workdir)s/openerp.pid"])
            .halt()
            .with_env(env.clone()),
    );
    steps.push(Step::argv(
        "Log cleanup",
        ["rm", "-f", "server-functional.log"],
    ));
    steps.push(
        Step::argv(
            "start",
            [
                "/sbin/start-stop-daemon",
                "--pidfile",
                "%(workdir)s/openerp.pid",
                "--exec",
                "%(workdir)s/build/bin/start_openerp",
                "--background",
                "--make-pidfile",
                "-v",
                "--start",
                "--",
                "--xmlrpc-port",
                "%(openerp_port)s",
                "--logfile=%(workdir)s/build/server-functional.log",
            ],
        )
        .halt()
        .with_env(env.clone()),
    );
    steps.push(Step::argv(
        "wait",
        [
            "sleep".to_string(),
            literal(scope.get_or("functional.wait", "30")),
        ],
    ));
    let commands = scope.require(
        "functional.commands",
        "post-buildout-steps",
        "functional post-buildout steps",
        "add `functional.commands = SCRIPT ...`; each script is run with the server's \
         port and the database name as arguments",
    );
    for cmd in commands.as_deref().unwrap_or("").split_whitespace() {
        let name = cmd.rsplit('/').next().unwrap_or(cmd);
        steps.push(
            Step::argv(
                name,
                [
                    literal(cmd),
                    "%(openerp_port)s".to_string(),
                    "%(testing_db)s".to_string(),
                ],
            )
            .logfile("server", "server-functional.log")
            .with_env(env.clone()),
        );
    }
    // The seed named this step `start` too; the build shows it as `start_1`.
    steps.push(
        Step::argv(
            "start",
            [
                "/sbin/start-stop-daemon",
                "--pidfile",
                "%(workdir)s/openerp.pid",
                "--stop",
                "--oknodo",
                "--retry",
                "5",
            ],
        )
        .halt()
        .with_env(env),
    );
    steps
}

fn static_analysis(scope: &mut Scope<'_>, conf: &str) -> Vec<Step> {
    let env = scope.env();
    let install = Step::argv(
        "analysis tools",
        [
            "bin/buildout".to_string(),
            "-c".to_string(),
            literal(conf),
            format!("buildout:eggs-directory={EGGS_CACHE}"),
            "install".to_string(),
            literal(scope.get_or("static-analysis.part", "static-analysis")),
        ],
    )
    .halt()
    .with_env(env.clone());
    let key = "static-analysis.flake-directories";
    let Some(dirs) = scope.get(key) else {
        let message = format!(
            "You must provide {key} option for static analysis. Currently provided \
             options: {}",
            options_repr(scope)
        );
        scope.error(
            "post-buildout-steps",
            message,
            format!("add `{key} = DIR ...`, the directories to run flake8 on"),
        );
        return Vec::new();
    };
    let mut argv = vec![
        "bin/flake8".to_string(),
        "--max-line-length".to_string(),
        literal(scope.get_or("static-analysis.max-line-length", "100")),
        "--show-source".to_string(),
    ];
    argv.extend(dirs.split_whitespace().map(literal));
    vec![install, Step::argv("flake8", argv).with_env(env)]
}

/// The section's options as the seed's message showed them (a Python dict, sorted here).
fn options_repr(scope: &Scope<'_>) -> String {
    let items: Vec<String> = scope
        .section
        .options
        .iter()
        .map(|(k, v)| format!("{}: {}", py_repr(k), py_repr(&v.value)))
        .collect();
    format!("{{{}}}", items.join(", "))
}

fn doc(scope: &mut Scope<'_>) -> Vec<Step> {
    let env = scope.env();
    let mut steps = Vec::new();
    let html_dir = match scope.get("doc.sphinx-sourcedir").map(str::trim) {
        // collective.recipe.sphinxbuilder's script knows its source and build
        // directories. Run through `sh` as the seed did (it may lack the exec bit).
        None => {
            steps.push(Step::argv("sphinx", ["sh", "bin/sphinx"]).with_env(env));
            "doc/_build/html".to_string()
        }
        Some(source) => {
            let source = source.to_string();
            let build = scope
                .get("doc.sphinx-builddir")
                .map(|b| b.trim().to_string())
                .unwrap_or_else(|| join_path(&source, "_build"));
            let bin = scope.get_or("doc.sphinx-bin", "bin/sphinx-build");
            // What Buildbot's Sphinx step ran: `-E` rebuilds without the saved
            // environment.
            let mut argv = vec![literal(bin)];
            match scope.get_or("doc.sphinx-mode", "incremental") {
                "incremental" => {}
                "full" => argv.push("-E".to_string()),
                other => {
                    let message = format!(
                        "Sphinx argument mode has unsupported value {}",
                        py_repr(other)
                    );
                    scope.error(
                        "doc.sphinx-mode",
                        message,
                        "write `doc.sphinx-mode = incremental` (the default) or `full`",
                    );
                }
            }
            argv.push(literal(&source));
            argv.push(literal(&build));
            steps.push(Step::argv("sphinx", argv).with_env(env));
            build
        }
    };

    let upload_dir = scope.get_or("doc.upload-dir", "");
    if !upload_dir.is_empty() {
        let version = dollar_template(scope.get_or("doc.version", "$(buildout-tag:-current)s"));
        let sub_path = format!("{}/{}", literal(upload_dir.trim_end_matches('/')), version);
        // The seed joined an absent root as '' + '/' + sub_path, i.e. a path at the
        // filesystem's root; abo keeps it relative (to the master's artifacts).
        let dest = match scope.get_or("doc.upload-root", "") {
            "" => sub_path,
            root => format!("{}/{}", literal(root), sub_path),
        };
        steps.extend(upload_with_permissions("doc", &literal(&html_dir), &dest));
    }
    steps
}

fn packaging(scope: &mut Scope<'_>) -> Vec<Step> {
    let what = "packaging post-buildout steps";
    let prefix = scope.require(
        "packaging.prefix",
        "post-buildout-steps",
        what,
        "add `packaging.prefix = NAME`; the archive is NAME-<buildout-tag>.tar.bz2",
    );
    let upload_dir = scope.require(
        "packaging.upload-dir",
        "post-buildout-steps",
        what,
        "add `packaging.upload-dir = SUBDIR`, relative to packaging.root-dir",
    );
    // 0.9 uploaded under a hard-coded /var/www/livraison here while the post-download
    // steps made the directory under packaging.root-dir; abo uses root-dir for both.
    let root = scope.require(
        "packaging.root-dir",
        "post-buildout-steps",
        what,
        "add `packaging.root-dir = /ABSOLUTE/DIR` on the master (often set once in \
         [DEFAULT])",
    );
    let (Some(prefix), Some(upload_dir), Some(root)) = (prefix, upload_dir, root) else {
        return Vec::new();
    };
    let archive = archive_name(&prefix);
    let master_dir = literal(&join_path(&root, &upload_dir));
    let tarball = format!("{archive}.tar.bz2");
    let upload = |name: &str, file: &str| {
        Step::new(
            name,
            StepKind::UploadFile {
                src: format!("../dist/{file}"),
                dest: join_path(&master_dir, file),
            },
        )
    };
    vec![
        upload("upload_tarball", &tarball),
        upload("upload_md5", &format!("{tarball}.md5")),
    ]
}

fn autocommit(scope: &mut Scope<'_>, conf: &str) -> Vec<Step> {
    vec![Step::argv(
        "autocommit",
        [
            literal(scope.get_or("autocommit.script", "bin/autocommit_openerp")),
            "-c".to_string(),
            literal(conf),
            "--push".to_string(),
            "-m".to_string(),
            literal(scope.get_or("autocommit.message", "Commit by buildbot")),
        ],
    )
    .with_env(scope.env())]
}
