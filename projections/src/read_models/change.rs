//! What an event does to a read model, as data: each projection turns an event into
//! [`Change`]s, and two interpreters carry them out. The projector runs them as SQL against
//! the live tables, one event at a time; a rebuild folds a whole log of them in memory
//! ([`Folded`]) and writes the final rows in bulk. Both interpret the same changes, so the
//! incremental and the bulk path cannot drift apart, and `verify` compares one with the other.

use std::collections::{BTreeMap, HashMap};

use sqlx::AnyConnection;

/// A read-model table and its key column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Table {
    pub name: &'static str,
    pub key: &'static str,
}

/// One column value. Read-model columns are text or integers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cell {
    Null,
    Int(i64),
    Text(String),
}

impl From<i64> for Cell {
    fn from(value: i64) -> Self {
        Cell::Int(value)
    }
}

impl From<String> for Cell {
    fn from(value: String) -> Self {
        Cell::Text(value)
    }
}

impl From<&str> for Cell {
    fn from(value: &str) -> Self {
        Cell::Text(value.to_owned())
    }
}

impl From<&String> for Cell {
    fn from(value: &String) -> Self {
        Cell::Text(value.clone())
    }
}

impl<T: Into<Cell>> From<Option<T>> for Cell {
    fn from(value: Option<T>) -> Self {
        value.map_or(Cell::Null, Into::into)
    }
}

/// A column's new value in an [`Change::Update`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Set {
    To(Cell),
    /// Adds to an integer column.
    Add(i64),
}

/// A row: its columns in table order, the key column among them.
pub type Row = Vec<(&'static str, Cell)>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Inserts `row`; when its key exists, overwrites every column except those in `keep`.
    Upsert {
        table: Table,
        row: Row,
        keep: &'static [&'static str],
    },
    /// Inserts `row` unless its key exists.
    InsertNew {
        table: Table,
        row: Row,
    },
    /// Sets columns of the row with `key`, if there is one.
    Update {
        table: Table,
        key: String,
        set: Vec<(&'static str, Set)>,
    },
    Delete {
        table: Table,
        key: String,
    },
    /// Sets the flag `column` to 1 on the row with `key` and to 0 on every other row.
    Only {
        table: Table,
        key: String,
        column: &'static str,
    },
}

/// Carries out `change` on the tables named with `suffix` (empty for the live tables).
pub(crate) async fn execute(conn: &mut AnyConnection, suffix: &str, change: &Change) -> sqlx::Result<()> {
    match change {
        Change::Upsert { table, row, keep } => {
            let updates: Vec<String> = row
                .iter()
                .filter(|(c, _)| *c != table.key && !keep.contains(c))
                .map(|(c, _)| format!("{c} = excluded.{c}"))
                .collect();
            let conflict = if updates.is_empty() {
                "DO NOTHING".to_owned()
            } else {
                format!("DO UPDATE SET {}", updates.join(", "))
            };
            let sql = format!("{} ON CONFLICT ({}) {conflict}", insert_sql(*table, suffix, row, 1), table.key);
            bind_cells(sqlx::query(&sql), row.iter().map(|(_, v)| v)).execute(&mut *conn).await?;
        }
        Change::InsertNew { table, row } => {
            let sql = format!("{} ON CONFLICT ({}) DO NOTHING", insert_sql(*table, suffix, row, 1), table.key);
            bind_cells(sqlx::query(&sql), row.iter().map(|(_, v)| v)).execute(&mut *conn).await?;
        }
        Change::Update { table, key, set } => {
            let assignments: Vec<String> = set
                .iter()
                .enumerate()
                .map(|(i, (column, value))| match value {
                    Set::To(_) => format!("{column} = ${}", i + 2),
                    Set::Add(_) => format!("{column} = {column} + ${}", i + 2),
                })
                .collect();
            let sql = format!("UPDATE {}{suffix} SET {} WHERE {} = $1", table.name, assignments.join(", "), table.key);
            let mut query = sqlx::query(&sql).bind(key.as_str());
            for (_, value) in set {
                query = match value {
                    Set::To(cell) => bind_cell(query, cell),
                    Set::Add(n) => query.bind(*n),
                };
            }
            query.execute(&mut *conn).await?;
        }
        Change::Delete { table, key } => {
            sqlx::query(&format!("DELETE FROM {}{suffix} WHERE {} = $1", table.name, table.key))
                .bind(key.as_str())
                .execute(&mut *conn)
                .await?;
        }
        Change::Only { table, key, column } => {
            sqlx::query(&format!(
                "UPDATE {}{suffix} SET {column} = CASE WHEN {} = $1 THEN 1 ELSE 0 END",
                table.name, table.key
            ))
            .bind(key.as_str())
            .execute(&mut *conn)
            .await?;
        }
    }
    Ok(())
}

/// Carries out `changes` in order, each run of inserts of new rows into one table with the same
/// columns as one statement: a projector's batch of creates is one round trip, not one each.
/// The same outcome as one `execute` after another (`ON CONFLICT DO NOTHING` skips a key that
/// an earlier row of the same statement took, as the earlier statement would have).
pub(crate) async fn execute_all(conn: &mut AnyConnection, suffix: &str, changes: &[Change]) -> sqlx::Result<()> {
    let mut i = 0;
    while i < changes.len() {
        let Change::InsertNew { table, row } = &changes[i] else {
            execute(conn, suffix, &changes[i]).await?;
            i += 1;
            continue;
        };
        let columns: Vec<&str> = row.iter().map(|(c, _)| *c).collect();
        let most = (MAX_PARAMETERS / columns.len().max(1)).max(1);
        let mut run = vec![row];
        while let Some(Change::InsertNew { table: next, row: next_row }) = changes.get(i + run.len()) {
            let same = next == table && next_row.iter().map(|(c, _)| *c).eq(columns.iter().copied());
            if !same || run.len() == most {
                break;
            }
            run.push(next_row);
        }
        if run.len() == 1 {
            execute(conn, suffix, &changes[i]).await?;
        } else {
            let sql = format!("{} ON CONFLICT ({}) DO NOTHING", insert_sql(*table, suffix, row, run.len()), table.key);
            bind_cells(sqlx::query(&sql), run.iter().flat_map(|r| r.iter().map(|(_, v)| v)))
                .execute(&mut *conn)
                .await?;
        }
        i += run.len();
    }
    Ok(())
}

/// Bound parameters one statement carries at most (SQLite's default limit is 32,766,
/// PostgreSQL's 65,535).
const MAX_PARAMETERS: usize = 30_000;

/// `INSERT INTO table (columns) VALUES (…), …` for `rows` rows shaped like `row`.
fn insert_sql(table: Table, suffix: &str, row: &Row, rows: usize) -> String {
    let columns: Vec<&str> = row.iter().map(|(c, _)| *c).collect();
    let width = columns.len();
    let values: Vec<String> = (0..rows)
        .map(|r| {
            let placeholders: Vec<String> = (1..=width).map(|c| format!("${}", r * width + c)).collect();
            format!("({})", placeholders.join(", "))
        })
        .collect();
    format!("INSERT INTO {}{suffix} ({}) VALUES {}", table.name, columns.join(", "), values.join(", "))
}

type Query<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>;

fn bind_cell<'q>(query: Query<'q>, cell: &'q Cell) -> Query<'q> {
    match cell {
        Cell::Null => query.bind(None::<String>),
        Cell::Int(n) => query.bind(*n),
        Cell::Text(s) => query.bind(s.as_str()),
    }
}

fn bind_cells<'q>(mut query: Query<'q>, cells: impl Iterator<Item = &'q Cell>) -> Query<'q> {
    for cell in cells {
        query = bind_cell(query, cell);
    }
    query
}

/// Read-model tables held in memory: a replay folds every change here and writes each final
/// row once, instead of one statement per event. Memory grows with the number of rows, not
/// with the length of the log.
#[derive(Debug, Default)]
pub(crate) struct Folded {
    tables: HashMap<Table, BTreeMap<String, Row>>,
}

impl Folded {
    /// An empty copy of `tables`: each is written (and compared) even when it ends up with
    /// no rows.
    pub(crate) fn of(tables: impl IntoIterator<Item = Table>) -> Self {
        Folded { tables: tables.into_iter().map(|t| (t, BTreeMap::new())).collect() }
    }

    pub(crate) fn apply(&mut self, change: Change) {
        match change {
            Change::Upsert { table, row, keep } => {
                let rows = self.tables.entry(table).or_default();
                let key = key_of(table, &row);
                match rows.get_mut(&key) {
                    Some(existing) => {
                        for (column, value) in row {
                            if !keep.contains(&column) {
                                set_column(existing, column, value);
                            }
                        }
                    }
                    None => {
                        rows.insert(key, row);
                    }
                }
            }
            Change::InsertNew { table, row } => {
                let key = key_of(table, &row);
                self.tables.entry(table).or_default().entry(key).or_insert(row);
            }
            Change::Update { table, key, set } => {
                if let Some(existing) = self.tables.entry(table).or_default().get_mut(&key) {
                    for (column, value) in set {
                        match value {
                            Set::To(cell) => set_column(existing, column, cell),
                            Set::Add(n) => {
                                if let Some((_, Cell::Int(current))) = existing.iter_mut().find(|(c, _)| *c == column) {
                                    *current += n;
                                }
                            }
                        }
                    }
                }
            }
            Change::Delete { table, key } => {
                self.tables.entry(table).or_default().remove(&key);
            }
            Change::Only { table, key, column } => {
                for (k, row) in self.tables.entry(table).or_default().iter_mut() {
                    set_column(row, column, Cell::Int(i64::from(*k == key)));
                }
            }
        }
    }

    /// The rows of `table`, by key.
    pub(crate) fn rows(&self, table: Table) -> impl Iterator<Item = &Row> {
        self.tables.get(&table).into_iter().flat_map(|rows| rows.values())
    }

    /// Writes every row into the tables named with `suffix`, which must be empty.
    pub(crate) async fn write(&self, conn: &mut AnyConnection, suffix: &str) -> sqlx::Result<()> {
        for (table, rows) in &self.tables {
            let rows: Vec<&Row> = rows.values().collect();
            // Rows of one table have the same columns; group them anyway, so a row built by a
            // different change is never written into the wrong columns.
            let mut start = 0;
            while start < rows.len() {
                let shape: Vec<&str> = rows[start].iter().map(|(c, _)| *c).collect();
                let per_statement = (30_000 / shape.len().max(1)).clamp(1, 1_000);
                let mut end = start;
                while end < rows.len()
                    && end - start < per_statement
                    && rows[end].iter().map(|(c, _)| *c).eq(shape.iter().copied())
                {
                    end += 1;
                }
                let sql = insert_sql(*table, suffix, rows[start], end - start);
                bind_cells(sqlx::query(&sql), rows[start..end].iter().flat_map(|r| r.iter().map(|(_, v)| v)))
                    .execute(&mut *conn)
                    .await?;
                start = end;
            }
        }
        Ok(())
    }
}

fn key_of(table: Table, row: &Row) -> String {
    match row.iter().find(|(c, _)| *c == table.key) {
        Some((_, Cell::Text(key))) => key.clone(),
        Some((_, Cell::Int(key))) => key.to_string(),
        _ => String::new(),
    }
}

fn set_column(row: &mut Row, column: &'static str, value: Cell) {
    match row.iter_mut().find(|(c, _)| *c == column) {
        Some((_, existing)) => *existing = value,
        None => row.push((column, value)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Table = Table { name: "t", key: "name" };

    fn row(name: &str, n: i64, created: &str) -> Row {
        vec![("name", name.into()), ("n", n.into()), ("created_at", created.into())]
    }

    #[test]
    fn folding_follows_the_sql_semantics() {
        let mut f = Folded::default();
        f.apply(Change::Upsert { table: T, row: row("a", 1, "t1"), keep: &["created_at"] });
        f.apply(Change::Upsert { table: T, row: row("a", 2, "t2"), keep: &["created_at"] });
        f.apply(Change::InsertNew { table: T, row: row("b", 5, "t3") });
        f.apply(Change::InsertNew { table: T, row: row("b", 9, "t4") });
        f.apply(Change::Update { table: T, key: "b".into(), set: vec![("n", Set::Add(3))] });
        f.apply(Change::Update { table: T, key: "missing".into(), set: vec![("n", Set::To(1.into()))] });
        f.apply(Change::Upsert { table: T, row: row("c", 0, "t5"), keep: &[] });
        f.apply(Change::Delete { table: T, key: "c".into() });
        let rows: Vec<&Row> = f.rows(T).collect();
        assert_eq!(rows, vec![&row("a", 2, "t1"), &row("b", 8, "t3")]);

        f.apply(Change::Only { table: T, key: "b".into(), column: "n" });
        let flags: Vec<Cell> = f.rows(T).map(|r| r[1].1.clone()).collect();
        assert_eq!(flags, vec![Cell::Int(0), Cell::Int(1)]);
    }
}
