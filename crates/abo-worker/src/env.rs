//! A shell command's environment: the worker's own, changed by the master's `env`, as
//! buildbot-worker 4.3.0's `RunProcess` does it (spec §3.10).
//!
//! - A list value is joined with `:` (`os.pathsep`), so the master writes
//!   `PATH: ["/opt/pg/bin", "${PATH}"]` to prepend.
//! - `${NAME}` (letters, digits, `_`) is replaced by the *worker's* value of `NAME`, or by
//!   nothing when it has none; there is no other syntax (no `$NAME`, no escapes).
//! - nil removes the variable.
//! - A `PYTHONPATH` the master sets gets `:${PYTHONPATH}` appended, so the worker's own entries
//!   stay visible. Unlike 4.3.0, nothing is appended when the worker has no `PYTHONPATH`: the
//!   stock worker then leaves a trailing `:`, an empty entry that Python reads as "the current
//!   directory".
//!
//! Pure: the worker's environment comes in as a parameter.

use std::collections::BTreeMap;

use abo_proto::EnvValue;

/// What to change in the inherited environment.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EnvChanges {
    /// Variables to set, after expansion.
    pub set: BTreeMap<String, String>,
    /// Variables to remove.
    pub remove: Vec<String>,
}

impl EnvChanges {
    /// The resulting environment, for the command's header.
    pub fn apply(&self, base: &BTreeMap<String, String>) -> BTreeMap<String, String> {
        let mut env = base.clone();
        for name in &self.remove {
            env.remove(name);
        }
        env.extend(self.set.iter().map(|(k, v)| (k.clone(), v.clone())));
        env
    }
}

/// Computes the changes the master's `env` asks for, expanding `${VAR}` from `worker_env`.
pub fn changes(
    worker_env: &BTreeMap<String, String>,
    requested: &BTreeMap<String, EnvValue>,
) -> EnvChanges {
    let mut out = EnvChanges::default();
    for (name, value) in requested {
        let mut raw = match value {
            EnvValue::Set(s) => s.clone(),
            EnvValue::PathList(items) => items.join(":"),
            EnvValue::Unset => {
                out.remove.push(name.clone());
                continue;
            }
        };
        if name == "PYTHONPATH" && worker_env.get("PYTHONPATH").is_some_and(|p| !p.is_empty()) {
            raw.push_str(":${PYTHONPATH}");
        }
        out.set.insert(name.clone(), expand(&raw, worker_env));
    }
    out
}

/// Replaces each `${NAME}` by `vars[NAME]` (empty when absent). Anything else, including a
/// `${` without its `}` or with other characters inside, stays as written.
pub fn expand(s: &str, vars: &BTreeMap<String, String>) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(at) = rest.find("${") {
        out.push_str(&rest[..at]);
        let after = &rest[at + 2..];
        let name_len = after
            .bytes()
            .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_')
            .count();
        if after.as_bytes().get(name_len) == Some(&b'}') {
            let name = &after[..name_len];
            out.push_str(vars.get(name).map(String::as_str).unwrap_or(""));
            rest = &after[name_len + 1..];
        } else {
            out.push_str("${");
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn expansion_follows_the_stock_regex() {
        let v = vars(&[("HOME", "/home/w"), ("A_1", "x")]);
        for (input, expected) in [
            ("${HOME}/bin", "/home/w/bin"),
            ("${A_1}${A_1}", "xx"),
            ("${MISSING}-", "-"),
            ("${}", ""),
            ("$HOME", "$HOME"),
            ("${HOME", "${HOME"),
            ("${HO-ME}", "${HO-ME}"),
            ("a${", "a${"),
            ("${${HOME}}", "${/home/w}"),
            ("é${HOME}é", "é/home/wé"),
        ] {
            assert_eq!(expand(input, &v), expected, "{input}");
        }
    }

    #[test]
    fn lists_join_with_colons_and_prepend_to_path() {
        let worker = vars(&[("PATH", "/usr/bin:/bin"), ("GONE", "1"), ("KEEP", "k")]);
        let requested = BTreeMap::from([
            (
                "PATH".to_string(),
                EnvValue::PathList(vec!["/opt/pg/15/bin".into(), "${PATH}".into()]),
            ),
            ("GONE".to_string(), EnvValue::Unset),
            ("PGPORT".to_string(), EnvValue::Set("5433".into())),
        ]);
        let c = changes(&worker, &requested);
        assert_eq!(c.set["PATH"], "/opt/pg/15/bin:/usr/bin:/bin");
        assert_eq!(c.remove, ["GONE"]);
        let env = c.apply(&worker);
        assert_eq!(
            env,
            vars(&[
                ("KEEP", "k"),
                ("PATH", "/opt/pg/15/bin:/usr/bin:/bin"),
                ("PGPORT", "5433"),
            ])
        );
    }

    #[test]
    fn pythonpath_keeps_the_workers_entries() {
        let requested = BTreeMap::from([(
            "PYTHONPATH".to_string(),
            EnvValue::PathList(vec!["/a".into(), "/b".into()]),
        )]);
        let with = changes(&vars(&[("PYTHONPATH", "/w")]), &requested);
        assert_eq!(with.set["PYTHONPATH"], "/a:/b:/w");
        // No trailing empty entry when the worker has none.
        let without = changes(&vars(&[]), &requested);
        assert_eq!(without.set["PYTHONPATH"], "/a:/b");
    }
}
