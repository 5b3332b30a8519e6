//! Running a statement of either store engine the way their methods all do: an insert whose
//! taken key is a [`StoreError::Conflict`], rows read back as records, a change of exactly one
//! row. Shared by both stores, their webhook halves and their batch writers, importing none.

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
