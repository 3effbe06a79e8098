//! Inference usage: requests, errors and tokens per hour, user and Llm. Counted in memory on
//! each call and added to the `inference_usage` table every [`FLUSH_INTERVAL`] (and before each
//! query, so this replica's own counts are always current); counters, not events.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use projections::Database;
use serde::Serialize;
use sqlx::Row;

/// How often counts are written; other replicas' queries see them after at most this long.
pub const FLUSH_INTERVAL: Duration = Duration::from_secs(5);

/// What one call adds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub requests: i64,
    pub errors: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
}

impl Counts {
    fn add(&mut self, other: Counts) {
        self.requests += other.requests;
        self.errors += other.errors;
        self.input_tokens += other.input_tokens;
        self.output_tokens += other.output_tokens;
    }
}

/// (hour, user, Llm)
type Key = (String, String, String);

/// The counts not written yet.
#[derive(Clone, Default)]
pub struct Counters {
    pending: Arc<Mutex<HashMap<Key, Counts>>>,
    /// One flush at a time, so that counts taken by one are written before the next query reads.
    flushing: Arc<tokio::sync::Mutex<()>>,
}

/// The hour `at` falls in, as the table keys it.
fn bucket(at: jiff::Timestamp) -> String {
    let second = at.as_second();
    let hour = jiff::Timestamp::from_second(second - second.rem_euclid(3600)).expect("in range");
    hour.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// One row of a usage answer.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UsageRow {
    pub user: String,
    pub llm: String,
    pub requests: i64,
    pub errors: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
}

/// Which usage to sum.
#[derive(Debug, Default, Clone)]
pub struct Filter {
    pub llm: Option<String>,
    pub user: Option<String>,
    /// From the hour this falls in.
    pub since: Option<jiff::Timestamp>,
}

impl Counters {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Counts>> {
        self.pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Counts one call's `counts` for `user` on `llm`, in the current hour.
    pub fn record(&self, user: &str, llm: &str, counts: Counts) {
        let key = (bucket(jiff::Timestamp::now()), user.to_owned(), llm.to_owned());
        self.lock().entry(key).or_default().add(counts);
    }

    /// Writes the pending counts; what could not be written stays pending.
    pub async fn flush(&self, db: &Database) -> Result<(), sqlx::Error> {
        let _one = self.flushing.lock().await;
        let taken = std::mem::take(&mut *self.lock());
        let mut rows = taken.into_iter();
        while let Some((key, counts)) = rows.next() {
            if let Err(e) = add_row(db, &key, counts).await {
                let mut pending = self.lock();
                for (key, counts) in std::iter::once((key, counts)).chain(rows) {
                    pending.entry(key).or_default().add(counts);
                }
                return Err(e);
            }
        }
        Ok(())
    }

    /// Flushes every [`FLUSH_INTERVAL`] until the counters are dropped.
    pub fn spawn_flusher(&self, db: Database) {
        let pending: Weak<Mutex<HashMap<Key, Counts>>> = Arc::downgrade(&self.pending);
        let flushing = self.flushing.clone();
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(FLUSH_INTERVAL);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                let Some(pending) = pending.upgrade() else { return };
                let counters = Counters { pending, flushing: flushing.clone() };
                if let Err(e) = counters.flush(&db).await {
                    tracing::warn!(error = %e, "writing inference usage failed; it is kept for the next try");
                }
            }
        });
    }

    /// The sums per user and Llm matching `filter`, this replica's pending counts included.
    pub async fn query(&self, db: &Database, filter: &Filter) -> Result<Vec<UsageRow>, sqlx::Error> {
        self.flush(db).await?;
        let mut conditions = Vec::new();
        let mut values = Vec::new();
        if let Some(since) = filter.since {
            values.push(bucket(since));
            conditions.push(format!("bucket >= ${}", values.len()));
        }
        if let Some(user) = &filter.user {
            values.push(user.clone());
            conditions.push(format!("user_name = ${}", values.len()));
        }
        if let Some(llm) = &filter.llm {
            values.push(llm.clone());
            conditions.push(format!("llm = ${}", values.len()));
        }
        let condition =
            if conditions.is_empty() { String::new() } else { format!("WHERE {}", conditions.join(" AND ")) };
        let sql = format!(
            "SELECT user_name, llm, CAST(SUM(requests) AS BIGINT) AS requests, CAST(SUM(errors) AS BIGINT) AS errors, \
             CAST(SUM(input_tokens) AS BIGINT) AS input_tokens, CAST(SUM(output_tokens) AS BIGINT) AS output_tokens \
             FROM inference_usage {condition} GROUP BY user_name, llm ORDER BY user_name, llm"
        );
        let rows = values.iter().fold(sqlx::query(&sql), |q, v| q.bind(v)).fetch_all(&db.pool).await?;
        rows.iter()
            .map(|r| {
                Ok(UsageRow {
                    user: r.try_get("user_name")?,
                    llm: r.try_get("llm")?,
                    requests: r.try_get("requests")?,
                    errors: r.try_get("errors")?,
                    input_tokens: r.try_get("input_tokens")?,
                    output_tokens: r.try_get("output_tokens")?,
                })
            })
            .collect()
    }
}

async fn add_row(db: &Database, (bucket, user, llm): &Key, c: Counts) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO inference_usage (bucket, user_name, llm, requests, errors, input_tokens, output_tokens) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (bucket, user_name, llm) DO UPDATE SET \
         requests = inference_usage.requests + excluded.requests, errors = inference_usage.errors + excluded.errors, \
         input_tokens = inference_usage.input_tokens + excluded.input_tokens, \
         output_tokens = inference_usage.output_tokens + excluded.output_tokens",
    )
    .bind(bucket)
    .bind(user)
    .bind(llm)
    .bind(c.requests)
    .bind(c.errors)
    .bind(c.input_tokens)
    .bind(c.output_tokens)
    .execute(&db.pool)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_are_counted_by_the_hour() {
        let at: jiff::Timestamp = "2026-12-01T11:59:59.9Z".parse().unwrap();
        assert_eq!(bucket(at), "2026-12-01T11:00:00Z");
        let counters = Counters::default();
        counters.record("alice", "claude-fast", Counts { requests: 1, input_tokens: 3, ..Counts::default() });
        counters.record("alice", "claude-fast", Counts { requests: 1, errors: 1, ..Counts::default() });
        let pending = counters.lock();
        let (_, counts) = pending.iter().next().unwrap();
        assert_eq!(*counts, Counts { requests: 2, errors: 1, input_tokens: 3, output_tokens: 0 });
    }
}
