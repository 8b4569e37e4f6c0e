//! The backend-neutral layer the query modules are written against: [`Tx`], one transaction
//! on SQLite or PostgreSQL, with `execute` and `query_*` taking `?N` placeholders and
//! [`Param`]s, and [`Row`] with typed [`Row::get`]. Each query is written once; the few
//! dialect differences are kept out of the SQL (both backends accept `ON CONFLICT`,
//! `RETURNING`, `TRUE`/`FALSE`, `EXISTS`) or marked `Dialect:` where they are handled.
//!
//! Values cross the layer as [`Value`]: integers (`i64`, what both databases store; the
//! store's `u64` newtypes are checked on the way in and out), text, bytes, booleans (0/1 in
//! SQLite, `BOOLEAN` in PostgreSQL) and NULL.

use crate::error::{Error, Result};
use crate::types::{
    BuildId, BuildResult, ChangeId, Lease, LogId, LogKind, RequestId, RequestState, StepId,
    Timestamp,
};
use bytes::BytesMut;
use postgres::types::{IsNull, ToSql as PgToSql, Type};
use rusqlite::types::{ToSqlOutput, ValueRef};
use std::cell::RefCell;
use std::collections::HashMap;

/// One value passed to or read from a statement.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Value<'a> {
    Null,
    Int(i64),
    Text(&'a str),
    Blob(&'a [u8]),
    Bool(bool),
}

impl Value<'_> {
    fn kind(&self) -> &'static str {
        match self {
            Value::Null => "NULL",
            Value::Int(_) => "an integer",
            Value::Text(_) => "text",
            Value::Blob(_) => "bytes",
            Value::Bool(_) => "a boolean",
        }
    }
}

/// Something that can be a statement parameter.
pub(crate) trait Param {
    fn value(&self) -> Result<Value<'_>>;
}

/// Something a column converts to. The error is a description; [`Row::get`] turns it into
/// [`Error::Corrupt`] with the column's position.
pub(crate) trait FromValue: Sized {
    fn from_value(v: Value<'_>) -> Result<Self, String>;
}

fn mismatch<T>(want: &str, got: Value<'_>) -> Result<T, String> {
    Err(format!("expected {want}, found {}", got.kind()))
}

impl<T: Param + ?Sized> Param for &T {
    fn value(&self) -> Result<Value<'_>> {
        (**self).value()
    }
}

impl<T: Param> Param for Option<T> {
    fn value(&self) -> Result<Value<'_>> {
        match self {
            Some(v) => v.value(),
            None => Ok(Value::Null),
        }
    }
}

impl Param for i64 {
    fn value(&self) -> Result<Value<'_>> {
        Ok(Value::Int(*self))
    }
}

impl Param for u32 {
    fn value(&self) -> Result<Value<'_>> {
        Ok(Value::Int(i64::from(*self)))
    }
}

/// A `u64` (ids, times, counts) as a database integer: both databases store signed 64-bit
/// integers, so values above `i64::MAX` are refused rather than wrapped.
pub(crate) fn i64_of(v: u64) -> Result<i64> {
    i64::try_from(v).map_err(|_| Error::Invalid(format!("{v} does not fit in the database")))
}

impl Param for u64 {
    fn value(&self) -> Result<Value<'_>> {
        i64_of(*self).map(Value::Int)
    }
}

impl Param for bool {
    fn value(&self) -> Result<Value<'_>> {
        Ok(Value::Bool(*self))
    }
}

impl Param for str {
    fn value(&self) -> Result<Value<'_>> {
        Ok(Value::Text(self))
    }
}

impl Param for String {
    fn value(&self) -> Result<Value<'_>> {
        Ok(Value::Text(self))
    }
}

impl Param for [u8] {
    fn value(&self) -> Result<Value<'_>> {
        Ok(Value::Blob(self))
    }
}

impl Param for Vec<u8> {
    fn value(&self) -> Result<Value<'_>> {
        Ok(Value::Blob(self))
    }
}

impl FromValue for i64 {
    fn from_value(v: Value<'_>) -> Result<Self, String> {
        match v {
            Value::Int(i) => Ok(i),
            other => mismatch("an integer", other),
        }
    }
}

impl FromValue for u64 {
    fn from_value(v: Value<'_>) -> Result<Self, String> {
        let i = i64::from_value(v)?;
        u64::try_from(i).map_err(|_| format!("{i} is out of range"))
    }
}

impl FromValue for u32 {
    fn from_value(v: Value<'_>) -> Result<Self, String> {
        let i = i64::from_value(v)?;
        u32::try_from(i).map_err(|_| format!("{i} is out of range"))
    }
}

impl FromValue for bool {
    fn from_value(v: Value<'_>) -> Result<Self, String> {
        match v {
            Value::Bool(b) => Ok(b),
            // Dialect: SQLite has no boolean type; 0/1 integers stand for them.
            Value::Int(i) => Ok(i != 0),
            other => mismatch("a boolean", other),
        }
    }
}

impl FromValue for String {
    fn from_value(v: Value<'_>) -> Result<Self, String> {
        match v {
            Value::Text(s) => Ok(s.to_owned()),
            other => mismatch("text", other),
        }
    }
}

impl FromValue for Vec<u8> {
    fn from_value(v: Value<'_>) -> Result<Self, String> {
        match v {
            Value::Blob(b) => Ok(b.to_vec()),
            other => mismatch("bytes", other),
        }
    }
}

impl<T: FromValue> FromValue for Option<T> {
    fn from_value(v: Value<'_>) -> Result<Self, String> {
        match v {
            Value::Null => Ok(None),
            v => T::from_value(v).map(Some),
        }
    }
}

macro_rules! int_newtype_value {
    ($($t:ident),+) => {$(
        impl Param for $t {
            fn value(&self) -> Result<Value<'_>> {
                self.0.value()
            }
        }
        impl FromValue for $t {
            fn from_value(v: Value<'_>) -> Result<Self, String> {
                u64::from_value(v).map($t)
            }
        }
    )+};
}
int_newtype_value!(RequestId, BuildId, StepId, LogId, ChangeId, Lease, Timestamp);

macro_rules! word_value {
    ($($t:ident),+) => {$(
        impl Param for $t {
            fn value(&self) -> Result<Value<'_>> {
                Ok(Value::Text(self.as_str()))
            }
        }
        impl FromValue for $t {
            fn from_value(v: Value<'_>) -> Result<Self, String> {
                match v {
                    Value::Text(s) => s.parse().map_err(|e: crate::types::UnknownWord| e.to_string()),
                    other => mismatch("text", other),
                }
            }
        }
    )+};
}
word_value!(BuildResult, RequestState, LogKind);

/// A JSON document stored as TEXT (not PostgreSQL's `jsonb`, which would reorder keys).
pub(crate) fn json_out(v: &impl serde::Serialize) -> Result<String> {
    serde_json::to_string(v).map_err(|e| Error::Invalid(format!("unserializable JSON: {e}")))
}

// --- SQLite side of the values ------------------------------------------------------------

impl rusqlite::ToSql for Value<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(match *self {
            Value::Null => ValueRef::Null,
            Value::Int(i) => ValueRef::Integer(i),
            Value::Text(s) => ValueRef::Text(s.as_bytes()),
            Value::Blob(b) => ValueRef::Blob(b),
            Value::Bool(b) => ValueRef::Integer(i64::from(b)),
        }))
    }
}

fn sqlite_value<'r>(row: &'r rusqlite::Row<'_>, idx: usize) -> Result<Value<'r>> {
    Ok(match row.get_ref(idx)? {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::Int(i),
        ValueRef::Text(t) => Value::Text(
            std::str::from_utf8(t)
                .map_err(|e| Error::Corrupt(format!("column {idx}: invalid UTF-8: {e}")))?,
        ),
        ValueRef::Blob(b) => Value::Blob(b),
        ValueRef::Real(r) => {
            return Err(Error::Corrupt(format!(
                "column {idx}: unexpected real number {r}"
            )))
        }
    })
}

// --- PostgreSQL side of the values --------------------------------------------------------

impl PgToSql for Value<'_> {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        // The server infers each parameter's type from the statement; integers convert to
        // the column's width, booleans to BOOLEAN (or 0/1 where an integer is expected).
        match *self {
            Value::Null => Ok(IsNull::Yes),
            Value::Int(i) => match *ty {
                Type::INT8 => i.to_sql(ty, out),
                Type::INT4 => i32::try_from(i)?.to_sql(ty, out),
                Type::INT2 => i16::try_from(i)?.to_sql(ty, out),
                Type::BOOL => (i != 0).to_sql(ty, out),
                _ => Err(format!("cannot pass an integer as {ty}").into()),
            },
            Value::Bool(b) => match *ty {
                Type::BOOL => b.to_sql(ty, out),
                Type::INT8 | Type::INT4 | Type::INT2 => Value::Int(i64::from(b)).to_sql(ty, out),
                _ => Err(format!("cannot pass a boolean as {ty}").into()),
            },
            Value::Text(s) => s.to_sql(ty, out),
            Value::Blob(b) => b.to_sql(ty, out),
        }
    }

    fn accepts(_: &Type) -> bool {
        // Checked in `to_sql`, which knows the value and so which conversion applies.
        true
    }

    postgres::types::to_sql_checked!();
}

fn pg_value(row: &postgres::Row, idx: usize) -> Result<Value<'_>> {
    let ty = row
        .columns()
        .get(idx)
        .map(|c| c.type_().clone())
        .ok_or_else(|| Error::Corrupt(format!("no column {idx}")))?;
    let bad = |e: postgres::Error| Error::Corrupt(format!("column {idx} ({ty}): {e}"));
    let v = match ty {
        Type::INT8 => row
            .try_get::<_, Option<i64>>(idx)
            .map_err(bad)?
            .map(Value::Int),
        Type::INT4 => row
            .try_get::<_, Option<i32>>(idx)
            .map_err(bad)?
            .map(|i| Value::Int(i.into())),
        Type::INT2 => row
            .try_get::<_, Option<i16>>(idx)
            .map_err(bad)?
            .map(|i| Value::Int(i.into())),
        Type::BOOL => row
            .try_get::<_, Option<bool>>(idx)
            .map_err(bad)?
            .map(Value::Bool),
        Type::BYTEA => row
            .try_get::<_, Option<&[u8]>>(idx)
            .map_err(bad)?
            .map(Value::Blob),
        _ => row
            .try_get::<_, Option<&str>>(idx)
            .map_err(bad)?
            .map(Value::Text),
    };
    Ok(v.unwrap_or(Value::Null))
}

// --- rows and transactions ----------------------------------------------------------------

/// One result row.
pub(crate) enum Row<'a> {
    Sqlite(&'a rusqlite::Row<'a>),
    Pg(&'a postgres::Row),
}

impl Row<'_> {
    fn value(&self, idx: usize) -> Result<Value<'_>> {
        match self {
            Row::Sqlite(r) => sqlite_value(r, idx),
            Row::Pg(r) => pg_value(r, idx),
        }
    }

    /// Column `idx` (from 0) as `T`; a value that does not convert is [`Error::Corrupt`].
    pub(crate) fn get<T: FromValue>(&self, idx: usize) -> Result<T> {
        T::from_value(self.value(idx)?).map_err(|e| Error::Corrupt(format!("column {idx}: {e}")))
    }

    /// A BLOB / BYTEA column, borrowed (log chunks are decompressed straight from it).
    pub(crate) fn blob(&self, idx: usize) -> Result<&[u8]> {
        match self.value(idx)? {
            Value::Blob(b) => Ok(b),
            other => Err(Error::Corrupt(format!(
                "column {idx}: expected bytes, found {}",
                other.kind()
            ))),
        }
    }

    /// A TEXT column holding JSON; a malformed document is [`Error::Corrupt`], not a panic.
    pub(crate) fn json<T: serde::de::DeserializeOwned>(&self, idx: usize) -> Result<T> {
        match self.value(idx)? {
            Value::Text(s) => serde_json::from_str(s)
                .map_err(|e| Error::Corrupt(format!("column {idx} (JSON): {e}"))),
            other => Err(Error::Corrupt(format!(
                "column {idx}: expected JSON text, found {}",
                other.kind()
            ))),
        }
    }
}

/// Prepared statements of one PostgreSQL connection, by their `?N` SQL text.
pub(crate) type StatementCache = HashMap<String, postgres::Statement>;

/// An open PostgreSQL transaction with its connection's statement cache.
pub(crate) struct PgTx<'a> {
    pub(crate) tx: postgres::Transaction<'a>,
    pub(crate) stmts: &'a mut StatementCache,
}

impl PgTx<'_> {
    /// The prepared statement for `sql`, prepared (after `?N` → `$N`) on first use.
    fn statement(&mut self, sql: &str) -> Result<postgres::Statement> {
        if let Some(s) = self.stmts.get(sql) {
            return Ok(s.clone());
        }
        let stmt = self.tx.prepare(&dollar_placeholders(sql))?;
        self.stmts.insert(sql.to_owned(), stmt.clone());
        Ok(stmt)
    }
}

/// Rows a PostgreSQL cursor fetches at a time in [`Tx::query_each`]: log chunks are up to
/// 64 KiB compressed, so a batch stays well under a megabyte.
const PG_FETCH_ROWS: i32 = 8;

/// One transaction, on either backend. Query helpers borrow it shared (`&Tx`), so they
/// call each other as they did with a `rusqlite::Transaction`; the PostgreSQL client needs
/// `&mut`, hence the `RefCell` (a transaction belongs to one thread).
pub(crate) enum Tx<'a> {
    Sqlite(&'a rusqlite::Transaction<'a>),
    Pg(RefCell<PgTx<'a>>),
}

fn values<'p>(params: &'p [&'p dyn Param]) -> Result<Vec<Value<'p>>> {
    params.iter().map(|p| p.value()).collect()
}

fn pg_params<'v>(values: &'v [Value<'v>]) -> Vec<&'v (dyn PgToSql + Sync)> {
    values.iter().map(|v| v as &(dyn PgToSql + Sync)).collect()
}

impl Tx<'_> {
    /// Runs a statement; returns the number of rows changed.
    pub(crate) fn execute(&self, sql: &str, params: &[&dyn Param]) -> Result<u64> {
        let vals = values(params)?;
        match self {
            Tx::Sqlite(tx) => {
                let n = tx
                    .prepare_cached(sql)?
                    .execute(rusqlite::params_from_iter(vals.iter()))?;
                Ok(n as u64)
            }
            Tx::Pg(cell) => {
                let mut pg = cell.borrow_mut();
                let stmt = pg.statement(sql)?;
                Ok(pg.tx.execute(&stmt, &pg_params(&vals))?)
            }
        }
    }

    /// Runs several statements without parameters (migrations).
    pub(crate) fn batch(&self, sql: &str) -> Result<()> {
        match self {
            Tx::Sqlite(tx) => Ok(tx.execute_batch(sql)?),
            Tx::Pg(cell) => Ok(cell.borrow_mut().tx.batch_execute(sql)?),
        }
    }

    /// Calls `f` on each row in order until it returns `false`. Rows are fetched as they
    /// are visited (a cursor on PostgreSQL), never all at once.
    pub(crate) fn query_each(
        &self,
        sql: &str,
        params: &[&dyn Param],
        mut f: impl FnMut(&Row<'_>) -> Result<bool>,
    ) -> Result<()> {
        let vals = values(params)?;
        match self {
            Tx::Sqlite(tx) => {
                let mut stmt = tx.prepare_cached(sql)?;
                let mut rows = stmt.query(rusqlite::params_from_iter(vals.iter()))?;
                while let Some(r) = rows.next()? {
                    if !f(&Row::Sqlite(r))? {
                        break;
                    }
                }
                Ok(())
            }
            Tx::Pg(cell) => {
                let mut pg = cell.borrow_mut();
                let stmt = pg.statement(sql)?;
                let portal = pg.tx.bind(&stmt, &pg_params(&vals))?;
                loop {
                    let rows = pg.tx.query_portal(&portal, PG_FETCH_ROWS)?;
                    let last = rows.len() < PG_FETCH_ROWS as usize;
                    for r in &rows {
                        if !f(&Row::Pg(r))? {
                            return Ok(());
                        }
                    }
                    if last {
                        return Ok(());
                    }
                }
            }
        }
    }

    /// Every row, each mapped by `f`.
    pub(crate) fn query_all<T>(
        &self,
        sql: &str,
        params: &[&dyn Param],
        mut f: impl FnMut(&Row<'_>) -> Result<T>,
    ) -> Result<Vec<T>> {
        let vals = values(params)?;
        match self {
            Tx::Sqlite(tx) => {
                let mut stmt = tx.prepare_cached(sql)?;
                let mut rows = stmt.query(rusqlite::params_from_iter(vals.iter()))?;
                let mut out = Vec::new();
                while let Some(r) = rows.next()? {
                    out.push(f(&Row::Sqlite(r))?);
                }
                Ok(out)
            }
            Tx::Pg(cell) => {
                let mut pg = cell.borrow_mut();
                let stmt = pg.statement(sql)?;
                let rows = pg.tx.query(&stmt, &pg_params(&vals))?;
                rows.iter().map(|r| f(&Row::Pg(r))).collect()
            }
        }
    }

    /// The first row, mapped by `f`, if there is one.
    pub(crate) fn query_opt<T>(
        &self,
        sql: &str,
        params: &[&dyn Param],
        f: impl FnOnce(&Row<'_>) -> Result<T>,
    ) -> Result<Option<T>> {
        let vals = values(params)?;
        match self {
            Tx::Sqlite(tx) => {
                let mut stmt = tx.prepare_cached(sql)?;
                let mut rows = stmt.query(rusqlite::params_from_iter(vals.iter()))?;
                match rows.next()? {
                    Some(r) => f(&Row::Sqlite(r)).map(Some),
                    None => Ok(None),
                }
            }
            Tx::Pg(cell) => {
                let mut pg = cell.borrow_mut();
                let stmt = pg.statement(sql)?;
                // `query`, not `query_opt`: several rows are fine, the first is taken.
                let rows = pg.tx.query(&stmt, &pg_params(&vals))?;
                rows.first().map(|r| f(&Row::Pg(r))).transpose()
            }
        }
    }

    /// The one row, mapped by `f` (a missing row is a database error: the statement always
    /// returns one, as an aggregate or an `UPDATE ... RETURNING` of a known row).
    pub(crate) fn query_one<T>(
        &self,
        sql: &str,
        params: &[&dyn Param],
        f: impl FnOnce(&Row<'_>) -> Result<T>,
    ) -> Result<T> {
        self.query_opt(sql, params, f)?.ok_or_else(|| {
            Error::Corrupt(format!(
                "no row where one was expected: {}",
                sql.split_whitespace().collect::<Vec<_>>().join(" ")
            ))
        })
    }
}

/// Rewrites SQLite's `?N` placeholders as PostgreSQL's `$N` (outside quoted strings and
/// identifiers). Runs once per statement and connection: the result is prepared and cached.
pub(crate) fn dollar_placeholders(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut quote: Option<char> = None;
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        match quote {
            Some(q) => {
                if c == q {
                    quote = None;
                }
                out.push(c);
            }
            None if c == '\'' || c == '"' => {
                quote = Some(c);
                out.push(c);
            }
            None if c == '?' && chars.peek().is_some_and(char::is_ascii_digit) => out.push('$'),
            None => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::dollar_placeholders;

    #[test]
    fn placeholders_become_dollars_outside_strings() {
        assert_eq!(
            dollar_placeholders("SELECT ?1, '?2', \"?3\" FROM t WHERE a = ?12 AND b = '?'"),
            "SELECT $1, '?2', \"?3\" FROM t WHERE a = $12 AND b = '?'"
        );
    }
}
