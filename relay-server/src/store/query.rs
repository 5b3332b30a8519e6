//! Running a statement of either store engine the way their methods all do: an insert whose
//! taken key is a [`StoreError::Conflict`], rows read back as records, a change of exactly one
//! row. Shared by both stores, their webhook halves and their batch writers, importing none;
//! and [`sql!`], one statement's text for both engines.

use sqlx::query::Query;
use sqlx::{Database, Executor, IntoArguments};

use super::{StoreError, StoreResult};

/// A statement of engine `DB` with its parameters bound.
type Statement<'q, DB> = Query<'q, DB, <DB as Database>::Arguments<'q>>;

/// Reads a row as a record.
type Codec<DB, T> = fn(<DB as Database>::Row) -> StoreResult<T>;

/// Runs an `INSERT`; a unique violation (the key is taken) is [`StoreError::Conflict`].
pub(super) async fn insert_or_conflict<'q, 'c, DB>(
    insert: Statement<'q, DB>,
    db: impl Executor<'c, Database = DB>,
) -> StoreResult<()>
where
    DB: Database,
    <DB as Database>::Arguments<'q>: IntoArguments<'q, DB>,
{
    match insert.execute(db).await {
        Ok(_) => Ok(()),
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Err(StoreError::Conflict),
        Err(e) => Err(e.into()),
    }
}

/// Fetches the row a query finds, if any, as a record.
pub(super) async fn fetch_record<'q, 'c, DB, T>(
    query: Statement<'q, DB>,
    db: impl Executor<'c, Database = DB>,
    record: Codec<DB, T>,
) -> StoreResult<Option<T>>
where
    DB: Database,
    <DB as Database>::Arguments<'q>: IntoArguments<'q, DB>,
{
    query.fetch_optional(db).await?.map(record).transpose()
}

/// Fetches every row a query finds, in its order, as records.
pub(super) async fn fetch_records<'q, 'c, DB, T>(
    query: Statement<'q, DB>,
    db: impl Executor<'c, Database = DB>,
    record: Codec<DB, T>,
) -> StoreResult<Vec<T>>
where
    DB: Database,
    <DB as Database>::Arguments<'q>: IntoArguments<'q, DB>,
{
    query.fetch_all(db).await?.into_iter().map(record).collect()
}

/// Runs a statement; true if it changed exactly one row (false: the row is not there).
pub(super) async fn changed_one<'q, 'c, DB>(
    statement: Statement<'q, DB>,
    db: impl Executor<'c, Database = DB>,
) -> StoreResult<bool>
where
    DB: Database,
    <DB as Database>::Arguments<'q>: IntoArguments<'q, DB>,
    <DB as Database>::QueryResult: RowsAffected,
{
    Ok(statement.execute(db).await?.rows_affected() == 1)
}

/// How many rows a statement changed, on either engine.
pub(super) trait RowsAffected {
    /// Rows changed.
    fn rows_affected(&self) -> u64;
}

impl RowsAffected for sqlx::sqlite::SqliteQueryResult {
    fn rows_affected(&self) -> u64 {
        sqlx::sqlite::SqliteQueryResult::rows_affected(self)
    }
}

impl RowsAffected for sqlx::postgres::PgQueryResult {
    fn rows_affected(&self) -> u64 {
        sqlx::postgres::PgQueryResult::rows_affected(self)
    }
}

/// One statement for both engines: its PostgreSQL text (`$N` parameters) and its SQLite text
/// (`?N`), made by [`sql!`].
#[derive(Debug, Clone, Copy)]
pub(super) struct Sql {
    /// With `$1`, `$2`, ….
    pub pg: &'static str,
    /// The same with `?1`, `?2`, ….
    pub sqlite: &'static str,
}

/// The bytes of `sql` (`N` long) with every `$` followed by a digit made `?`: PostgreSQL's
/// numbered parameters as SQLite's (a `$` anywhere else, in a string say, stays).
pub(super) const fn sqlite_text<const N: usize>(sql: &str) -> [u8; N] {
    let sql = sql.as_bytes();
    let mut out = [0u8; N];
    let mut i = 0;
    while i < N {
        out[i] = if sql[i] == b'$' && i + 1 < N && sql[i + 1].is_ascii_digit() {
            b'?'
        } else {
            sql[i]
        };
        i += 1;
    }
    out
}

/// A [`Sql`] from one statement written for PostgreSQL, at compile time.
macro_rules! sql {
    ($text:expr) => {{
        const TEXT: &str = $text;
        const SQLITE: [u8; TEXT.len()] = $crate::store::query::sqlite_text(TEXT);
        $crate::store::query::Sql {
            pg: TEXT,
            sqlite: match ::std::str::from_utf8(&SQLITE) {
                Ok(text) => text,
                Err(_) => panic!("a statement that is not UTF-8"),
            },
        }
    }};
}
pub(super) use sql;
