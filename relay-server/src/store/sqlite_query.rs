//! Running a statement of the SQLite store the way its methods all do: an insert whose taken
//! key is a [`StoreError::Conflict`], rows read back as records, a change of exactly one row.
//! Shared by the store, its webhook half and its batch writer, and importing none of them.

use sqlx::query::Query;
use sqlx::sqlite::{Sqlite, SqliteArguments, SqliteRow};
use sqlx::Executor;

use super::{StoreError, StoreResult};

/// A statement with its parameters bound.
type Statement<'q> = Query<'q, Sqlite, SqliteArguments<'q>>;

/// Reads a row as a record.
type Codec<T> = fn(SqliteRow) -> StoreResult<T>;

/// Runs an `INSERT`; a unique violation (the key is taken) is [`StoreError::Conflict`].
pub(super) async fn insert_or_conflict<'c>(
    insert: Statement<'_>,
    db: impl Executor<'c, Database = Sqlite>,
) -> StoreResult<()> {
    match insert.execute(db).await {
        Ok(_) => Ok(()),
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Err(StoreError::Conflict),
        Err(e) => Err(e.into()),
    }
}

/// Fetches the row a query finds, if any, as a record.
pub(super) async fn fetch_record<'c, T>(
    query: Statement<'_>,
    db: impl Executor<'c, Database = Sqlite>,
    record: Codec<T>,
) -> StoreResult<Option<T>> {
    query.fetch_optional(db).await?.map(record).transpose()
}

/// Fetches every row a query finds, in its order, as records.
pub(super) async fn fetch_records<'c, T>(
    query: Statement<'_>,
    db: impl Executor<'c, Database = Sqlite>,
    record: Codec<T>,
) -> StoreResult<Vec<T>> {
    query.fetch_all(db).await?.into_iter().map(record).collect()
}

/// Runs a statement; true if it changed exactly one row (false: the row is not there).
pub(super) async fn changed_one<'c>(
    statement: Statement<'_>,
    db: impl Executor<'c, Database = Sqlite>,
) -> StoreResult<bool> {
    Ok(statement.execute(db).await?.rows_affected() == 1)
}
