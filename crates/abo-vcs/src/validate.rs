//! Checks of everything from outside that reaches a VCS command line: repository URLs,
//! branch names and revisions. Pure functions.
//!
//! Argument vectors and `--` already keep values from being read as options by abo's own
//! calls; these checks refuse what a tool would still interpret on its own: transports that
//! run commands (`ext::`, `fd::`), ssh hosts and users starting with `-` (ssh reads them as
//! options), control characters (forged log lines, header injection), relative paths
//! (resolved against an unknown directory). They are allowlists: what is not known to be
//! harmless is refused.

use crate::error::VcsError;
use abo_plan::Vcs;

/// Longest URL, branch name or revision accepted: far above real ones, low enough that a
/// hostile value cannot bloat logs and the database.
const MAX_LEN: usize = 2048;

/// URL schemes each VCS may be given.
fn allowed_schemes(vcs: Vcs) -> &'static [&'static str] {
    match vcs {
        Vcs::Git => &["http", "https", "ssh", "git", "file", "git+ssh", "ssh+git"],
        Vcs::Hg => &["http", "https", "ssh", "file"],
        Vcs::Bzr => &["http", "https", "bzr", "bzr+ssh", "sftp", "file"],
    }
}

/// Checks that `url` is a repository location `vcs` may be given: an allowed scheme
/// (`http(s)://`, `ssh://`, `git://`, `file://`, `bzr+ssh://`... per VCS), an absolute local
/// path, or for git the scp-like `[user@]host:path`. Refused: remote-helper transports
/// (`ext::`, `fd::`, any `X::`), a leading `-`, ssh hosts or users starting with `-` (also
/// percent-encoded), blanks and control characters, relative paths, unresolved `lp:`.
pub fn validate_url(vcs: Vcs, url: &str) -> Result<(), VcsError> {
    check_url(vcs, url).map_err(|reason| VcsError::UnsafeUrl {
        vcs,
        url: quote(&redact_url(url)),
        reason,
    })
}

fn check_url(vcs: Vcs, url: &str) -> Result<(), String> {
    if url.is_empty() {
        return Err("it is empty".into());
    }
    if url.len() > MAX_LEN {
        return Err(format!("it is longer than {MAX_LEN} bytes"));
    }
    if url.chars().any(char::is_control) {
        return Err("it contains a control character (a newline?)".into());
    }
    // The most telling reason first; blanks, which no URL needs, are checked last.
    check_structure(vcs, url)?;
    if url.chars().any(char::is_whitespace) {
        return Err("it contains a blank".into());
    }
    Ok(())
}

fn check_structure(vcs: Vcs, url: &str) -> Result<(), String> {
    if url.starts_with('-') {
        return Err("it starts with `-`, which a tool would read as an option".into());
    }
    let helper = url.find("::");
    let scheme_end = url.find("://");
    // `transport::address` makes git run `git-remote-<transport>`, and `ext::` runs any
    // command; no abo URL needs one.
    if let Some(at) = helper {
        if scheme_end.is_none_or(|s| at < s) {
            return Err(format!(
                "`{}::` asks git to run a remote helper; give an http(s), ssh or file URL",
                printable(&url[..at])
            ));
        }
    }
    if let Some(end) = scheme_end {
        let scheme = &url[..end];
        if !scheme.is_empty()
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
        {
            let lower = scheme.to_ascii_lowercase();
            let allowed = allowed_schemes(vcs);
            if !allowed.contains(&lower.as_str()) {
                return Err(format!(
                    "scheme `{}` is not allowed for {} (allowed: {})",
                    printable(scheme),
                    vcs.as_str(),
                    allowed.join(", ")
                ));
            }
            let rest = &url[end + 3..];
            let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
            let (authority, path) = rest.split_at(authority_end);
            if lower == "file" {
                if !(authority.is_empty() || authority.eq_ignore_ascii_case("localhost")) {
                    return Err("a file URL names no host: write file:///absolute/path".into());
                }
                if !path.starts_with('/') {
                    return Err("a file URL needs an absolute path".into());
                }
                return Ok(());
            }
            return check_authority(authority);
        }
    }
    if url.starts_with('/') {
        return Ok(());
    }
    if let Some(rest) = url.strip_prefix("lp:") {
        return Err(format!(
            "`lp:` must be resolved first: {}{}",
            abo_plan::watch::LAUNCHPAD_BRANCH_PREFIX,
            printable(rest)
        ));
    }
    if vcs == Vcs::Git {
        // git reads `[user@]host:path` as ssh when a `:` comes before any `/`.
        if let Some(colon) = url.find(':') {
            if url.find('/').is_none_or(|slash| colon < slash) {
                return check_authority(&url[..colon]);
            }
        }
    }
    Err(match vcs {
        Vcs::Git => "not an allowed URL, an absolute path or `user@host:path`".into(),
        Vcs::Hg | Vcs::Bzr => "not an allowed URL or an absolute path".into(),
    })
}

/// `[user[:password]@]host[:port]` of a network URL: the user and host must not start with
/// `-` (ssh would read an option), even once percent-decoded (git decodes ssh URLs); the
/// host is a name, an IPv4 address or a bracketed IPv6 address; the port is numeric.
fn check_authority(authority: &str) -> Result<(), String> {
    let (userinfo, hostport) = match authority.rfind('@') {
        Some(at) => (Some(&authority[..at]), &authority[at + 1..]),
        None => (None, authority),
    };
    if let Some(userinfo) = userinfo {
        let user = userinfo.split(':').next().unwrap_or("");
        let decoded = percent_decode(user);
        if user.is_empty() {
            return Err("the user name before `@` is empty".into());
        }
        if decoded.starts_with('-') {
            return Err("the user name starts with `-`, which ssh would read as an option".into());
        }
        if decoded.chars().any(char::is_control) {
            return Err("the user name contains a control character".into());
        }
    }
    let (host, port) = if let Some(bracketed) = hostport.strip_prefix('[') {
        let Some(close) = bracketed.find(']') else {
            return Err("an IPv6 host lacks its `]`".into());
        };
        let inside = &bracketed[..close];
        if inside.is_empty() || !inside.chars().all(|c| c.is_ascii_hexdigit() || c == ':') {
            return Err("not an IPv6 address between `[` and `]`".into());
        }
        match &bracketed[close + 1..] {
            "" => (inside, None),
            rest => match rest.strip_prefix(':') {
                Some(port) => (inside, Some(port)),
                None => return Err("unexpected text after the IPv6 address".into()),
            },
        }
    } else {
        match hostport.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (hostport, None),
        }
    };
    if host.is_empty() {
        return Err("it names no host".into());
    }
    if host.starts_with('-') || percent_decode(host).starts_with('-') {
        return Err("the host starts with `-`, which ssh would read as an option".into());
    }
    if !hostport.starts_with('[')
        && !host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
    {
        return Err(format!(
            "host `{}` is not a host name or address",
            printable(host)
        ));
    }
    if let Some(port) = port {
        // `ssh://host:/path` (an empty port) is accepted by the tools and harmless.
        if !port.chars().all(|c| c.is_ascii_digit()) {
            return Err(format!("port `{}` is not a number", printable(port)));
        }
    }
    Ok(())
}

/// `%XX` decoded; anything else kept. Only used to look at the first character and control
/// characters, so invalid sequences need no error.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = |b: u8| (b as char).to_digit(16);
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Checks a branch name before it reaches a command or a refspec. git: the rules of
/// `git check-ref-format` for `refs/heads/<name>`, no leading `-`, not `HEAD`; hg: any
/// name without control characters, leading `-` or surrounding blanks (hg strips them);
/// bzr: a bzr branch is its URL, so the name is empty or a valid bzr URL.
pub fn validate_branch(vcs: Vcs, name: &str) -> Result<(), VcsError> {
    let checked = match vcs {
        Vcs::Git => check_git_branch(name),
        Vcs::Hg => check_hg_branch(name),
        Vcs::Bzr if name.is_empty() => Ok(()),
        Vcs::Bzr => check_url(Vcs::Bzr, name).map_err(|r| format!("a bzr branch is its URL: {r}")),
    };
    checked.map_err(|reason| VcsError::UnsafeBranch {
        vcs,
        name: quote(name),
        reason,
    })
}

fn check_common(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("it is empty".into());
    }
    if name.len() > MAX_LEN {
        return Err(format!("it is longer than {MAX_LEN} bytes"));
    }
    if name.chars().any(char::is_control) {
        return Err("it contains a control character (a newline?)".into());
    }
    if name.starts_with('-') {
        return Err("it starts with `-`, which a tool would read as an option".into());
    }
    Ok(())
}

fn check_git_branch(name: &str) -> Result<(), String> {
    check_common(name)?;
    if name == "HEAD" || name == "@" {
        return Err("it is reserved by git".into());
    }
    if let Some(c) = name
        .chars()
        .find(|c| matches!(c, ' ' | '~' | '^' | ':' | '?' | '*' | '[' | '\\'))
    {
        return Err(format!("git forbids `{c}` in branch names"));
    }
    if name.contains("..") || name.contains("@{") {
        return Err("git forbids `..` and `@{` in branch names".into());
    }
    if name.starts_with('/') || name.ends_with('/') || name.contains("//") {
        return Err("git forbids empty path components in branch names".into());
    }
    if name.ends_with('.') {
        return Err("git forbids a branch name ending with `.`".into());
    }
    for component in name.split('/') {
        if component.starts_with('.') || component.ends_with(".lock") {
            return Err("git forbids components starting with `.` or ending with `.lock`".into());
        }
    }
    Ok(())
}

fn check_hg_branch(name: &str) -> Result<(), String> {
    check_common(name)?;
    if name.trim() != name {
        return Err("Mercurial strips blanks around branch names: remove them".into());
    }
    Ok(())
}

/// Checks a revision before it reaches a command: hex object names for git (4 to 64
/// digits) and hg (12 to 40); for bzr a revno (`12`, `1.2.3`) or a revision id (no blanks,
/// control characters or `..`, not starting with `-`).
pub fn validate_revision(vcs: Vcs, revision: &str) -> Result<(), VcsError> {
    let hex = |min: usize, max: usize| {
        if (min..=max).contains(&revision.len()) && revision.chars().all(|c| c.is_ascii_hexdigit())
        {
            Ok(())
        } else {
            Err(format!("not {min} to {max} hexadecimal digits"))
        }
    };
    let checked = match vcs {
        Vcs::Git => hex(4, 64),
        Vcs::Hg => hex(12, 40),
        Vcs::Bzr => check_bzr_revision(revision),
    };
    checked.map_err(|reason| VcsError::UnsafeRevision {
        vcs,
        revision: quote(revision),
        reason,
    })
}

fn check_bzr_revision(revision: &str) -> Result<(), String> {
    check_common(revision)?;
    if revision.chars().any(char::is_whitespace) {
        return Err("it contains a blank".into());
    }
    // `..` separates the two ends of a revision range in `-r`.
    if revision.contains("..") {
        return Err("it contains `..`".into());
    }
    Ok(())
}

/// Whether `revision` is a bzr revno (`12`, or `1.2.3` for a merged revision) rather than a
/// revision id.
pub fn is_bzr_revno(revision: &str) -> bool {
    !revision.is_empty()
        && revision
            .split('.')
            .all(|part| !part.is_empty() && part.chars().all(|c| c.is_ascii_digit()))
}

/// `url` with the password of its user info replaced by `***`, for messages and logs.
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_string();
    };
    let start = scheme_end + 3;
    let rest = &url[start..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let Some(at) = authority.rfind('@') else {
        return url.to_string();
    };
    let Some(colon) = authority[..at].find(':') else {
        return url.to_string();
    };
    format!(
        "{}{}***{}",
        &url[..start],
        &authority[..=colon],
        &url[start + at..]
    )
}

/// The password in `url`'s user info, if any: what must not appear in messages.
pub(crate) fn url_password(url: &str) -> Option<&str> {
    let rest = &url[url.find("://")? + 3..];
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    let userinfo = &authority[..authority.rfind('@')?];
    let password = &userinfo[userinfo.find(':')? + 1..];
    (!password.is_empty()).then_some(password)
}

/// `s` with control characters escaped (`\n`, `\u{1b}`), so that it stays on one line and
/// cannot drive a terminal.
pub fn printable(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// `s` escaped and between backquotes, for messages.
fn quote(s: &str) -> String {
    let cut: String = s.chars().take(200).collect();
    let ellipsis = if cut.len() < s.len() { "..." } else { "" };
    format!("`{}{ellipsis}`", printable(&cut))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url_ok(vcs: Vcs, url: &str) -> bool {
        validate_url(vcs, url).is_ok()
    }

    #[test]
    fn urls_allowed() {
        for (vcs, url) in [
            (Vcs::Git, "https://git.example/repo.git"),
            (Vcs::Git, "http://git.example:8080/repo.git"),
            (Vcs::Git, "ssh://git@git.example/repo.git"),
            (Vcs::Git, "ssh://git@git.example:2222/repo.git"),
            (Vcs::Git, "ssh://[::1]/repo.git"),
            (Vcs::Git, "git://git.example/repo"),
            (Vcs::Git, "git+ssh://git.example/repo"),
            (Vcs::Git, "file:///srv/git/repo.git"),
            (Vcs::Git, "/srv/git/repo.git"),
            (Vcs::Git, "user@git.example:my/repo"),
            (Vcs::Git, "git.example:my/repo"),
            (Vcs::Git, "https://user:s3cr%40t@git.example/repo.git"),
            (Vcs::Hg, "http://mercurial.example/some/repo"),
            (Vcs::Hg, "ssh://hg@mercurial.example/some/repo"),
            (Vcs::Hg, "/srv/hg/repo"),
            (
                Vcs::Bzr,
                "http://bazaar.launchpad.net/+branch/openobject-server/6.1",
            ),
            (Vcs::Bzr, "bzr+ssh://bazaar.launchpad.net/~user/proj/trunk"),
            (Vcs::Bzr, "bzr://host/branch"),
            (Vcs::Bzr, "sftp://host/branch"),
            (Vcs::Bzr, "/srv/bzr/trunk"),
        ] {
            assert!(url_ok(vcs, url), "{vcs:?} {url} should be allowed");
        }
    }

    #[test]
    fn urls_refused() {
        for (vcs, url, why) in [
            (Vcs::Git, "--upload-pack=touch /tmp/pwned", "option"),
            (Vcs::Git, "-x", "option"),
            (Vcs::Git, "ext::sh -c touch% /tmp/pwned", "remote helper"),
            (Vcs::Git, "ext::sh", "remote helper"),
            (Vcs::Git, "fd::3", "remote helper"),
            (Vcs::Git, "hg::https://x/y", "remote helper"),
            (
                Vcs::Git,
                "ssh://-oProxyCommand=touch%20/tmp/pwned/x",
                "host starts with `-`",
            ),
            (
                Vcs::Git,
                "ssh://-oProxyCommand=touch /tmp/pwned/x",
                "host starts with `-`",
            ),
            (Vcs::Git, "https://host/a b", "blank"),
            (
                Vcs::Git,
                "ssh://%2DoProxyCommand=x/repo",
                "host starts with `-`",
            ),
            (
                Vcs::Git,
                "ssh://-user@host/repo",
                "user name starts with `-`",
            ),
            (
                Vcs::Git,
                "ssh://%2duser@host/repo",
                "user name starts with `-`",
            ),
            (Vcs::Git, "-oProxyCommand=x:repo", "option"),
            (Vcs::Git, "user@-host:repo", "host starts with `-`"),
            (Vcs::Git, "ssh://host$(id)/repo", "not a host name"),
            (
                Vcs::Git,
                "https://git.example/repo\n--upload-pack=x",
                "control",
            ),
            (Vcs::Git, "https://git.example/\u{1b}[2J", "control"),
            (Vcs::Git, "relative/path", "not an allowed URL"),
            (Vcs::Git, "", "empty"),
            (Vcs::Git, "ftp://host/repo", "scheme `ftp` is not allowed"),
            (Vcs::Git, "file://host/repo", "names no host"),
            (Vcs::Git, "ssh://host:22x/repo", "port"),
            (Vcs::Hg, "user@host:repo", "not an allowed URL"),
            (
                Vcs::Hg,
                "ssh://-oProxyCommand=x/repo",
                "host starts with `-`",
            ),
            (Vcs::Hg, "bzr+ssh://host/x", "scheme"),
            (Vcs::Bzr, "lp:openobject-server", "resolved first"),
            (Vcs::Bzr, "git://host/x", "scheme"),
            (
                Vcs::Bzr,
                "bzr+ssh://-oProxyCommand=x/y",
                "host starts with `-`",
            ),
        ] {
            let err = validate_url(vcs, url).expect_err(url).to_string();
            assert!(err.contains(why), "{url}: {err}");
            assert!(!err.contains('\n'), "{err}");
        }
    }

    #[test]
    fn refusals_mask_passwords() {
        let err = validate_url(Vcs::Git, "ftp://bob:hunter2@host/x").unwrap_err();
        let text = err.to_string();
        assert!(text.contains("bob:***@host"), "{text}");
        assert!(!text.contains("hunter2"));
    }

    #[test]
    fn redaction() {
        assert_eq!(
            redact_url("https://bob:pw@host/x"),
            "https://bob:***@host/x"
        );
        assert_eq!(redact_url("https://bob@host/x"), "https://bob@host/x");
        assert_eq!(redact_url("https://host/a:b@c"), "https://host/a:b@c");
        assert_eq!(redact_url("user@host:path"), "user@host:path");
        assert_eq!(url_password("https://bob:pw@host/x"), Some("pw"));
        assert_eq!(url_password("https://bob@host/x"), None);
        assert_eq!(url_password("https://host/x:y@z"), None);
    }

    #[test]
    fn git_branches() {
        for ok in [
            "master",
            "7.0",
            "feature/x-y",
            "release-1.2",
            "a@b",
            "ünïcode",
        ] {
            assert!(validate_branch(Vcs::Git, ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "--exec=touch x",
            "-x",
            "$(touch x)",
            "a b",
            "a\nb",
            "a\u{7f}",
            "a..b",
            "a@{1}",
            "a~1",
            "a^",
            "a:b",
            "a?",
            "a*",
            "a[",
            "a\\b",
            "/a",
            "a/",
            "a//b",
            "a.",
            ".a",
            "a/.b",
            "a.lock",
            "a.lock/b",
            "HEAD",
            "@",
        ] {
            // `$(touch x)` is refused for its blank: git forbids spaces.
            assert!(validate_branch(Vcs::Git, bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn hg_and_bzr_branches() {
        for ok in ["default", "stable", "$(touch x)", "a b", "`x`"] {
            assert!(validate_branch(Vcs::Hg, ok).is_ok(), "{ok}");
        }
        for bad in ["", "-x", "--config=x", "a\nb", " a", "a ", "a\rb"] {
            assert!(validate_branch(Vcs::Hg, bad).is_err(), "{bad:?}");
        }
        assert!(validate_branch(Vcs::Bzr, "").is_ok());
        assert!(validate_branch(Vcs::Bzr, "http://host/branch").is_ok());
        assert!(validate_branch(Vcs::Bzr, "trunk").is_err());
        assert!(validate_branch(Vcs::Bzr, "--x").is_err());
    }

    #[test]
    fn revisions() {
        let full = "0123456789abcdef0123456789abcdef01234567";
        assert!(validate_revision(Vcs::Git, full).is_ok());
        assert!(validate_revision(Vcs::Git, &"a".repeat(64)).is_ok());
        assert!(validate_revision(Vcs::Hg, full).is_ok());
        assert!(validate_revision(Vcs::Hg, &full[..12]).is_ok());
        for bad in [
            "",
            "-x",
            "HEAD",
            "master",
            "abc",
            "0123456789abcdeg",
            "$(x)",
        ] {
            assert!(validate_revision(Vcs::Git, bad).is_err(), "{bad}");
            assert!(validate_revision(Vcs::Hg, bad).is_err(), "{bad}");
        }
        assert!(validate_revision(Vcs::Git, &"a".repeat(65)).is_err());
        for ok in [
            "12",
            "1.2.3",
            "null:",
            "j@x.org-20261125160119-vs5xkc5db46ywjz0",
            "git-v1:0123abcd",
        ] {
            assert!(validate_revision(Vcs::Bzr, ok).is_ok(), "{ok}");
        }
        for bad in ["", "-r", "a b", "a\nb", "1..3", "revid:x..y"] {
            assert!(validate_revision(Vcs::Bzr, bad).is_err(), "{bad:?}");
        }
        assert!(is_bzr_revno("12") && is_bzr_revno("1.2.3"));
        assert!(!is_bzr_revno("1..2") && !is_bzr_revno("") && !is_bzr_revno("x@y-1"));
    }

    #[test]
    fn printable_escapes_controls() {
        assert_eq!(printable("a\nb\u{1b}c"), "a\\nb\\u{1b}c");
        assert_eq!(printable("ünï"), "ünï");
    }
}
