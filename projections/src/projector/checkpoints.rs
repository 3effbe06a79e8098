//! The stored checkpoints: one row per read model in `projection_checkpoints`.

use std::collections::HashMap;

use sqlx::Row;

use crate::db::{Database, DbResult};
use crate::log::Position;
use crate::read_models::ReadModel;

/// Makes sure every read model has a checkpoint row.
pub(crate) async fn ensure_checkpoints(db: &Database) -> DbResult<()> {
    for model in ReadModel::ALL {
        sqlx::query(
            "INSERT INTO projection_checkpoints (name, transaction_id, position, updated_at) VALUES ($1, 0, 0, '') \
             ON CONFLICT (name) DO NOTHING",
        )
        .bind(model.name())
        .execute(&db.pool)
        .await?;
    }
    Ok(())
}

pub(crate) async fn load_checkpoint(db: &Database, model: ReadModel) -> DbResult<Position> {
    let row = sqlx::query("SELECT transaction_id, position FROM projection_checkpoints WHERE name = $1")
        .bind(model.name())
        .fetch_one(&db.pool)
        .await?;
    Ok(Position { transaction_id: row.try_get("transaction_id")?, position: row.try_get("position")? })
}

/// Every read model's stored checkpoint (one query): everything of its kinds up to it shows in
/// it, whichever replica runs it. A read model with nothing to apply may be further than this.
pub async fn stored_checkpoints(db: &Database) -> DbResult<HashMap<ReadModel, Position>> {
    let rows =
        sqlx::query("SELECT name, transaction_id, position FROM projection_checkpoints").fetch_all(&db.pool).await?;
    let mut out = HashMap::new();
    for row in rows {
        if let Some(model) = ReadModel::named(row.try_get(0)?) {
            out.insert(model, Position { transaction_id: row.try_get(1)?, position: row.try_get(2)? });
        }
    }
    Ok(out)
}
