//! `db-steps`: how the testing database is made (the seed's `subfactories/db.py`).
//!
//! `simple_create` (the default) drops and creates it with `psql` from a template
//! (`db_template`, default `template1`); `pg_remote_copy` drops it and has a site script
//! mount a copy (of a production dump, say) under the testing database's name.

use super::{literal, Scope, StepExt};
use crate::model::Step;

/// Names accepted in `db-steps`.
pub const BUILTINS: [&str; 2] = ["pg_remote_copy", "simple_create"];

fn dropdb(scope: &Scope<'_>) -> Step {
    Step::argv(
        "dropdb",
        [
            "psql",
            "postgres",
            "-c",
            "DROP DATABASE IF EXISTS \"%(testing_db)s\"",
        ],
    )
    .halt()
    .with_env(scope.env())
}

pub(crate) fn simple_create(scope: &mut Scope<'_>) -> Vec<Step> {
    let template = literal(scope.get_or("db_template", "template1"));
    let create = Step::argv(
        "createdb",
        [
            "psql".to_string(),
            "postgres".to_string(),
            "-c".to_string(),
            format!("CREATE DATABASE \"%(testing_db)s\" TEMPLATE \"{template}\""),
        ],
    )
    .halt()
    .with_env(scope.env());
    vec![dropdb(scope), create]
}

pub(crate) fn pg_remote_copy(scope: &mut Scope<'_>) -> Vec<Step> {
    let mut argv = vec![literal(
        scope.get_or("pg_remote_copy.executable", "pg_remote_copy"),
    )];
    // The seed documented "None for no option"; a manifest can only say that by leaving
    // the option empty.
    let db_option = scope.get_or("pg_remote_copy.db_option", "--copied_db_name");
    if !db_option.is_empty() {
        argv.push(literal(db_option));
    }
    argv.push("%(testing_db)s".to_string());
    match scope.require(
        "pg_remote_copy.arguments",
        "db-steps",
        "pg_remote_copy db-steps",
        "add `pg_remote_copy.arguments = ...`, the arguments of the copy script \
         (split on whitespace)",
    ) {
        Some(args) => argv.extend(args.split_whitespace().map(literal)),
        None => return Vec::new(),
    }
    let copy = Step::argv("pg_remote_copy", argv)
        .halt()
        .with_env(scope.env());
    vec![dropdb(scope), copy]
}
