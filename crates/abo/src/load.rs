//! Reading a master directory from disk: the I/O edge in front of the pure readers.

use abo_config::settings::{DEFAULT_WORKERS, SEED_WORKERS};
use abo_config::{
    ini, read_manifest, read_settings, read_workers, Diagnostic, ManifestSection, MasterSettings,
    Worker,
};
use abo_plan::planner::{plan, PlanInput};
use abo_plan::{Plan, StepKind};
use std::path::{Path, PathBuf};

/// Which files to read; `None` means "as master.toml or the defaults say".
#[derive(Debug, Default, Clone)]
pub struct Sources {
    pub dir: PathBuf,
    pub config: Option<PathBuf>,
    pub manifests: Vec<PathBuf>,
    pub workers: Option<PathBuf>,
}

/// Everything read from a master directory.
pub struct Loaded {
    pub settings: MasterSettings,
    pub sections: Vec<ManifestSection>,
    pub workers: Vec<Worker>,
    pub plan: Plan,
    /// Non-fatal remarks (duplicate options, ...).
    pub warnings: Vec<Diagnostic>,
}

/// A path as shown in diagnostics: relative to the current directory when possible.
fn label(path: &Path) -> String {
    let cwd = std::env::current_dir().ok();
    match cwd.as_deref().and_then(|c| path.strip_prefix(c).ok()) {
        Some(rel) => rel.display().to_string(),
        None => path.display().to_string(),
    }
}

fn read_text(path: &Path, diags: &mut Vec<Diagnostic>) -> Option<String> {
    match std::fs::read(path) {
        Ok(bytes) => match String::from_utf8(bytes) {
            Ok(s) => Some(s),
            Err(e) => {
                let line = e.as_bytes()[..e.utf8_error().valid_up_to()]
                    .iter()
                    .filter(|&&b| b == b'\n')
                    .count() as u32
                    + 1;
                diags.push(
                    Diagnostic::new(label(path), line, "the file is not valid UTF-8")
                        .with_help("save it as UTF-8"),
                );
                None
            }
        },
        Err(e) => {
            diags.push(Diagnostic::whole_file(
                label(path),
                format!("cannot read: {e}"),
            ));
            None
        }
    }
}

/// master.toml alone (what must be known before the rest is read: the configuration
/// repository to clone); `None` when it cannot be read, which [`load`] then reports.
pub fn settings_only(sources: &Sources) -> Option<MasterSettings> {
    let path = sources
        .config
        .clone()
        .unwrap_or_else(|| sources.dir.join("master.toml"));
    if !path.exists() {
        return sources.config.is_none().then(MasterSettings::default);
    }
    let text = std::fs::read_to_string(&path).ok()?;
    read_settings(&label(&path), &text).ok()
}

/// Prints every mistake, then `error: N mistakes found; {consequence}`.
pub fn print_mistakes(diags: &[Diagnostic], consequence: &str) {
    for d in diags {
        eprintln!("{d}");
    }
    let n = diags.len();
    eprintln!(
        "error: {n} mistake{} found; {consequence}",
        if n == 1 { "" } else { "s" }
    );
}

/// Reads and plans a master directory; on failure, every diagnostic found, sorted.
pub fn load(sources: &Sources) -> Result<Loaded, Vec<Diagnostic>> {
    let mut diags = Vec::new();
    let mut warnings = Vec::new();
    let dir = &sources.dir;

    let settings_path = sources
        .config
        .clone()
        .unwrap_or_else(|| dir.join("master.toml"));
    let settings_label = label(&settings_path);
    let settings = if settings_path.exists() || sources.config.is_some() {
        match read_text(&settings_path, &mut diags) {
            Some(text) => read_settings(&settings_label, &text).unwrap_or_else(|d| {
                diags.push(d);
                MasterSettings::default()
            }),
            None => MasterSettings::default(),
        }
    } else {
        MasterSettings::default()
    };

    if let Some(repo) = &settings.config_repository {
        let vcs = match repo.vcs {
            abo_config::settings::RepositoryVcs::Git => abo_plan::Vcs::Git,
            abo_config::settings::RepositoryVcs::Hg => abo_plan::Vcs::Hg,
            abo_config::settings::RepositoryVcs::Bzr => abo_plan::Vcs::Bzr,
        };
        let line = std::fs::read_to_string(&settings_path)
            .ok()
            .and_then(|t| {
                t.lines()
                    .position(|l| l.trim_start().starts_with("config-repository"))
            })
            .map_or(1, |i| i as u32 + 1);
        let checked = abo_vcs::validate_url(vcs, &repo.url).and_then(|()| match &repo.branch {
            Some(branch) => abo_vcs::validate_branch(vcs, branch),
            None => Ok(()),
        });
        if let Err(e) = checked {
            diags.push(
                Diagnostic::new(
                    settings_label.clone(),
                    line,
                    format!("config-repository: {e}"),
                )
                .with_help(
                    "give the URL and branch the master can pull from (https://, ssh://, a path)",
                ),
            );
        }
    }

    // Manifests: all missing ones are reported together (AC-W1).
    let manifest_paths: Vec<PathBuf> = if sources.manifests.is_empty() {
        settings.manifests.iter().map(|m| dir.join(m)).collect()
    } else {
        sources.manifests.clone()
    };
    let missing: Vec<String> = manifest_paths
        .iter()
        .filter(|p| !p.is_file())
        .map(|p| label(p))
        .collect();
    if !missing.is_empty() {
        diags.push(
            Diagnostic::whole_file(settings_label.clone(), format!("manifest files not found: {}", missing.join(", ")))
                .with_help("create them, or list existing ones in `manifests` (master.toml) or with --manifest"),
        );
    }
    let mut sections = Vec::new();
    for path in manifest_paths.iter().filter(|p| p.is_file()) {
        let Some(text) = read_text(path, &mut diags) else {
            continue;
        };
        let (parsed, d) = ini::parse(&label(path), &text);
        diags.extend(d);
        warnings.extend(parsed.duplicate_warnings());
        let manifest_dir = master_relative(dir, path.parent().unwrap_or(Path::new(".")));
        let (s, d) = read_manifest(&parsed, &manifest_dir);
        diags.extend(d);
        sections.extend(s);
    }

    // Workers: --workers, master.toml's `workers`, workers.cfg, or the seed's slaves.cfg.
    let workers_path = match (&sources.workers, &settings.workers) {
        (Some(p), _) => p.clone(),
        (None, Some(w)) => dir.join(w),
        (None, None) if !dir.join(DEFAULT_WORKERS).exists() && dir.join(SEED_WORKERS).exists() => {
            dir.join(SEED_WORKERS)
        }
        (None, None) => dir.join(DEFAULT_WORKERS),
    };
    let mut workers = Vec::new();
    if let Some(text) = read_text(&workers_path, &mut diags) {
        let (parsed, d) = ini::parse(&label(&workers_path), &text);
        diags.extend(d);
        warnings.extend(parsed.duplicate_warnings());
        let (w, d) = read_workers(&parsed);
        diags.extend(d);
        workers = w;
    }

    let planned = plan(&PlanInput {
        sections: &sections,
        workers: &workers,
        settings: &settings,
        settings_file: &settings_label,
    });
    let plan = match planned {
        Ok(p) => Some(p),
        Err(d) => {
            diags.extend(d);
            None
        }
    };
    if let Some(plan) = &plan {
        check_master_files(dir, plan, &sections, &mut diags);
        warnings.extend(sections_without_builders(plan, &sections));
        warnings.extend(shadowed_watch_lines(&sections));
    }
    match plan {
        Some(plan) if diags.is_empty() => Ok(Loaded {
            settings,
            sections,
            workers,
            plan,
            warnings,
        }),
        _ => {
            diags.sort_by(|a, b| (&a.file, a.line).cmp(&(&b.file, b.line)));
            diags.dedup();
            Err(diags)
        }
    }
}

/// A section meant to build that gets no builder is almost always a mistake (a typo in a
/// capability, a version no worker has): say so, without refusing the configuration.
fn sections_without_builders(plan: &Plan, sections: &[ManifestSection]) -> Vec<Diagnostic> {
    let built: std::collections::BTreeSet<&str> =
        plan.builders.iter().map(|b| b.buildout.as_str()).collect();
    sections
        .iter()
        .filter(|s| (s.get("buildout").is_some() || s.get("steps").is_some()) && !built.contains(s.name.as_str()))
        .map(|s| {
            let wants: Vec<String> = ["build-for", "build-requires"]
                .iter()
                .filter_map(|k| s.get(k).map(|v| format!("{k} = {}", v.replace('\n', "; "))))
                .collect();
            let wants = if wants.is_empty() { "a PostgreSQL version".to_string() } else { wants.join(", ") };
            Diagnostic::new(&s.file, s.line, format!("section `{}` gets no builder: no worker offers {wants}", s.name))
                .with_help("check the capabilities in the workers file (`abo worker detect` prints a machine's)")
        })
        .collect()
}

/// Two `watch` lines of a section naming one repository: only the last one's branch is
/// watched (0.9's watch table holds one branch per URL, and abo reads it the same way), so
/// the earlier line is silently useless. Say so.
fn shadowed_watch_lines(sections: &[ManifestSection]) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for s in sections {
        let lines = s.lines_at("watch");
        for (i, (line, at)) in lines.iter().enumerate() {
            let url = line.split_whitespace().nth(1);
            let later = lines[i + 1..]
                .iter()
                .find(|(l, _)| url.is_some() && l.split_whitespace().nth(1) == url);
            if let (Some(url), Some((_, later_at))) = (url, later) {
                out.push(
                    Diagnostic::new(&s.file, *at, format!("section `{}` watches {url} again on line {later_at}: only that later line's branch is watched", s.name))
                        .with_help("watch one branch per repository in a section, or split the section (one per branch)"),
                );
            }
        }
    }
    out
}

/// A directory as the plan names it: relative to the master directory when inside it (so
/// plans are stable wherever the master directory lives), absolute otherwise.
fn master_relative(dir: &Path, path: &Path) -> String {
    let abs = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    let (dir, path) = (abs(dir), abs(path));
    match path.strip_prefix(&dir) {
        Ok(rel) if rel.as_os_str().is_empty() => ".".to_string(),
        Ok(rel) => rel.display().to_string(),
        Err(_) => path.display().to_string(),
    }
}

/// Files the master will send to workers must exist now, not at the first build.
fn check_master_files(
    dir: &Path,
    plan: &Plan,
    sections: &[ManifestSection],
    diags: &mut Vec<Diagnostic>,
) {
    let mut checked = std::collections::BTreeSet::new();
    for builder in &plan.builders {
        for step in builder.steps.iter() {
            let StepKind::Download { src, .. } = &step.kind else {
                continue;
            };
            if !checked.insert(src.clone()) || src.contains("%(") {
                continue;
            }
            if !dir.join(src).is_file() {
                let section = sections.iter().find(|s| s.name == builder.buildout);
                let (file, line) = section.map_or(("?", 0), |s| s.place_of("buildout"));
                diags.push(
                    Diagnostic::new(file, line, format!("`{}` needs {src}, which does not exist", builder.buildout))
                        .with_help("create it, or correct the path (standalone buildout paths are relative to the manifest's directory)"),
                );
            }
        }
    }
}
