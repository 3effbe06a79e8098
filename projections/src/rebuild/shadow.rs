//! Shadow tables: `<table>__rebuild` made with the live table's columns and indexes, and
//! swapped into place keeping the index names.

use super::*;

/// Creates `<table>__rebuild` with the live table's columns and keys; any leftover from an
/// interrupted rebuild is dropped first.
pub(super) async fn create_shadow(conn: &mut AnyConnection, dialect: Dialect, table: &str) -> DbResult<()> {
    let shadow = format!("{table}{SHADOW}");
    sqlx::query(&format!("DROP TABLE IF EXISTS {shadow}")).execute(&mut *conn).await?;
    match dialect {
        Dialect::Postgres => {
            sqlx::query(&format!("CREATE TABLE {shadow} (LIKE {table} INCLUDING ALL)")).execute(&mut *conn).await?;
        }
        Dialect::Sqlite => {
            // The table's own definition, renamed; its secondary indexes are created at the
            // swap, under their own names.
            let sql: String = sqlx::query("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = $1")
                .bind(table)
                .fetch_one(&mut *conn)
                .await?
                .try_get(0)?;
            let columns =
                sql.find('(').ok_or_else(|| sqlx::Error::Protocol(format!("cannot read {table}'s schema")))?;
            sqlx::query(&format!("CREATE TABLE {shadow} {}", &sql[columns..])).execute(&mut *conn).await?;
        }
    }
    Ok(())
}

/// Replaces `table` with `<table>__rebuild`, keeping the index names.
pub(super) async fn swap(conn: &mut AnyConnection, dialect: Dialect, table: &str) -> DbResult<()> {
    let shadow = format!("{table}{SHADOW}");
    match dialect {
        Dialect::Postgres => {
            let indexes = |name: String| {
                sqlx::query(
                    "SELECT indexname::text, indexdef FROM pg_indexes \
                     WHERE schemaname = current_schema() AND tablename = $1",
                )
                .bind(name)
            };
            let live: HashMap<String, String> = indexes(table.to_owned())
                .fetch_all(&mut *conn)
                .await?
                .iter()
                .map(|r| Ok((index_shape(&r.try_get::<String, _>(1)?), r.try_get(0)?)))
                .collect::<DbResult<_>>()?;
            let fresh: Vec<(String, String)> = indexes(shadow.clone())
                .fetch_all(&mut *conn)
                .await?
                .iter()
                .map(|r| Ok((r.try_get(0)?, index_shape(&r.try_get::<String, _>(1)?))))
                .collect::<DbResult<_>>()?;
            sqlx::query(&format!("DROP TABLE {table}")).execute(&mut *conn).await?;
            sqlx::query(&format!("ALTER TABLE {shadow} RENAME TO {table}")).execute(&mut *conn).await?;
            for (name, shape) in fresh {
                if let Some(original) = live.get(&shape) {
                    sqlx::query(&format!("ALTER INDEX {name} RENAME TO {original}")).execute(&mut *conn).await?;
                }
            }
        }
        Dialect::Sqlite => {
            let indexes: Vec<String> =
                sqlx::query("SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = $1 AND sql IS NOT NULL")
                    .bind(table)
                    .fetch_all(&mut *conn)
                    .await?
                    .iter()
                    .map(|r| r.try_get(0))
                    .collect::<DbResult<_>>()?;
            sqlx::query(&format!("DROP TABLE {table}")).execute(&mut *conn).await?;
            sqlx::query(&format!("ALTER TABLE {shadow} RENAME TO {table}")).execute(&mut *conn).await?;
            for index in indexes {
                sqlx::query(&index).execute(&mut *conn).await?;
            }
        }
    }
    Ok(())
}

/// An index definition without its name and table, to pair a shadow's index with the live one.
pub(super) fn index_shape(definition: &str) -> String {
    let unique = definition.starts_with("CREATE UNIQUE");
    let using = definition.find(" USING ").map_or(definition, |i| &definition[i..]);
    format!("{unique}{using}")
}
