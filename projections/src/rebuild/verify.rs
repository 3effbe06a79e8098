//! Verify: the log replayed in memory up to each checkpoint, compared with the live tables
//! row by row while the checkpoints are held.

use super::*;

/// One row that differs between a live table and a replay of the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Difference {
    pub table: &'static str,
    pub key: String,
    pub kind: DifferenceKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DifferenceKind {
    /// The replay has the row; the table does not.
    Missing,
    /// The table has a row the replay does not.
    Unexpected,
    /// Both have the row, with different values in `column`. Values of sensitive columns are
    /// not shown.
    Column { column: String, table: Option<String>, replay: Option<String> },
}

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let show = |v: &Option<String>| v.as_ref().map_or("NULL".to_owned(), |v| format!("{v:?}"));
        match &self.kind {
            DifferenceKind::Missing => write!(f, "{} {:?}: missing from the table", self.table, self.key),
            DifferenceKind::Unexpected => {
                write!(f, "{} {:?}: in the table, but not in a replay of the log", self.table, self.key)
            }
            DifferenceKind::Column { column, table, replay } => write!(
                f,
                "{} {:?}: {column} is {} in the table, {} in a replay of the log",
                self.table,
                self.key,
                show(table),
                show(replay)
            ),
        }
    }
}

/// Columns whose values a difference never shows.
pub(super) const SENSITIVE: &[&str] = &["hash"];

/// Replays the log in memory up to each read model's checkpoint and compares the result with
/// the live tables, row by row. An empty list means they agree.
pub async fn verify(
    db: &Database,
    models: &[ReadModel],
    mut on_progress: impl FnMut(&Progress),
) -> Result<Vec<Difference>, RebuildError> {
    ensure_checkpoints(db).await?;
    let types = aggregate_types(models);
    let total = count_events(db, &types).await? as u64;
    let mut progress = Progress::new(total);
    let mut folded = Folded::of(tables(models));
    let mut conn = db.pool.acquire().await?;
    // Up to where the checkpoints stood at the start, without holding anything...
    let mut first = HashMap::new();
    for model in models {
        first.insert(model.name(), crate::projector::load_checkpoint(db, *model).await?);
    }
    let start = HashMap::new();
    fold_range(&mut conn, db.dialect, &mut folded, models, &types, &start, &first, &mut progress, &mut on_progress)
        .await?;
    // ...then, holding them, on to where they are now, and compare.
    let mut tx = conn.begin_tx(db.dialect).await?;
    hold_checkpoints(&mut tx, models).await?;
    let mut now = HashMap::new();
    for model in models {
        let row = sqlx::query("SELECT transaction_id, position FROM projection_checkpoints WHERE name = $1")
            .bind(model.name())
            .fetch_one(&mut *tx)
            .await?;
        let at = Position { transaction_id: row.try_get("transaction_id")?, position: row.try_get("position")? };
        now.insert(model.name(), at);
    }
    fold_range(&mut tx, db.dialect, &mut folded, models, &types, &first, &now, &mut progress, &mut on_progress).await?;
    let mut differences = Vec::new();
    for table in tables(models) {
        compare(&mut tx, table, &folded, &mut differences).await?;
    }
    tx.rollback().await?;
    progress.advance(0);
    progress.total = progress.replayed;
    on_progress(&progress);
    Ok(differences)
}

/// Folds into `folded`, for each model, the events after `from[model]` (the start when
/// absent) up to and including `to[model]`.
#[allow(clippy::too_many_arguments)]
pub(super) async fn fold_range(
    conn: &mut AnyConnection,
    dialect: Dialect,
    folded: &mut Folded,
    models: &[ReadModel],
    types: &[&str],
    from: &HashMap<&str, Position>,
    to: &HashMap<&str, Position>,
    progress: &mut Progress,
    on_progress: &mut impl FnMut(&Progress),
) -> Result<(), RebuildError> {
    let lower = |m: &ReadModel| from.get(m.name()).copied().unwrap_or_default();
    let mut at = models.iter().map(lower).min().unwrap_or_default();
    let end = to.values().copied().max().unwrap_or_default();
    while at < end {
        let page = log::read_for_replay(conn, dialect, at, types, PAGE).await?;
        for event in &page {
            for model in models {
                if event.position > lower(model) && event.position <= to[model.name()] {
                    for change in model.changes(event)? {
                        folded.apply(change);
                    }
                }
            }
        }
        at = page.last().map_or(end, |e| e.position);
        progress.advance(page.len());
        on_progress(progress);
        if (page.len() as i64) < PAGE {
            break;
        }
    }
    Ok(())
}

pub(super) async fn compare(
    conn: &mut AnyConnection,
    table: Table,
    folded: &Folded,
    out: &mut Vec<Difference>,
) -> Result<(), RebuildError> {
    let rows = sqlx::query(&format!("SELECT * FROM {}", table.name)).fetch_all(&mut *conn).await?;
    let mut live: BTreeMap<String, BTreeMap<String, Option<String>>> = BTreeMap::new();
    for row in &rows {
        let values = row_values(row)?;
        let key = values.get(table.key).cloned().flatten().unwrap_or_default();
        live.insert(key, values);
    }
    let mut replayed: BTreeMap<String, BTreeMap<String, Option<String>>> = BTreeMap::new();
    for row in folded.rows(table) {
        let values: BTreeMap<String, Option<String>> = row
            .iter()
            .map(|(c, v)| {
                let v = match v {
                    Cell::Null => None,
                    Cell::Int(n) => Some(n.to_string()),
                    Cell::Text(s) => Some(s.clone()),
                };
                ((*c).to_owned(), v)
            })
            .collect();
        let key = values.get(table.key).cloned().flatten().unwrap_or_default();
        replayed.insert(key, values);
    }
    for (key, want) in &replayed {
        match live.get(key) {
            None => out.push(Difference { table: table.name, key: key.clone(), kind: DifferenceKind::Missing }),
            Some(have) => {
                for (column, value) in want {
                    let actual = have.get(column).cloned().flatten();
                    if actual != *value {
                        let hide = |v: Option<String>| {
                            if SENSITIVE.contains(&column.as_str()) { v.map(|_| "(hidden)".to_owned()) } else { v }
                        };
                        out.push(Difference {
                            table: table.name,
                            key: key.clone(),
                            kind: DifferenceKind::Column {
                                column: column.clone(),
                                table: hide(actual),
                                replay: hide(value.clone()),
                            },
                        });
                    }
                }
            }
        }
    }
    for key in live.keys().filter(|k| !replayed.contains_key(*k)) {
        out.push(Difference { table: table.name, key: key.clone(), kind: DifferenceKind::Unexpected });
    }
    Ok(())
}

/// A row's values as text, by column; integers in decimal.
pub(super) fn row_values(row: &AnyRow) -> DbResult<BTreeMap<String, Option<String>>> {
    let mut values = BTreeMap::new();
    for (i, column) in row.columns().iter().enumerate() {
        let value = match row.try_get::<Option<i64>, _>(i) {
            Ok(n) => n.map(|n| n.to_string()),
            Err(_) => row.try_get::<Option<String>, _>(i)?,
        };
        values.insert(column.name().to_owned(), value);
    }
    Ok(values)
}
