//! Each Llm's health as this replica last saw it: from warmups (`POST
//! /api/v1/llms/{name}/warmup`, `mcpd serve --warmup`) and from every proxied call. Shown as
//! the STATUS column of `mcpctl get llms -o wide`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

pub use wire::llm::{LlmHealth, LlmStatus};

/// Each Llm's latest health, by name.
#[derive(Clone, Default)]
pub struct Board {
    inner: Arc<Mutex<HashMap<String, LlmHealth>>>,
}

impl Board {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, LlmHealth>> {
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn get(&self, llm: &str) -> Option<LlmHealth> {
        self.lock().get(llm).cloned()
    }

    pub fn set(&self, llm: &str, status: LlmStatus, message: impl Into<String>) {
        let health = LlmHealth { status, message: message.into(), checked_at: jiff::Timestamp::now().to_string() };
        self.lock().insert(llm.to_owned(), health);
    }

    /// Whether the last look at `llm` found it failing (tiers try such Llms last).
    pub fn failing(&self, llm: &str) -> bool {
        self.lock().get(llm).is_some_and(|h| h.status != LlmStatus::Ready)
    }

    /// What a provider's HTTP status says about the Llm.
    pub fn answered(&self, llm: &str, status: u16, message: &str) {
        match status {
            200..=299 | 400 | 404 | 413 | 422 => self.set(llm, LlmStatus::Ready, ""),
            401 | 403 => {
                self.set(llm, LlmStatus::KeyRejected, format!("the provider refused the key ({status}): {message}"))
            }
            _ => self.set(llm, LlmStatus::Failing, format!("the provider answered {status}: {message}")),
        }
    }

    /// The provider could not be reached.
    pub fn unreachable(&self, llm: &str, why: &str) {
        self.set(llm, LlmStatus::Unreachable, why);
    }

    /// The provider did not answer within `after`.
    pub fn timed_out(&self, llm: &str, after: std::time::Duration) {
        self.set(llm, LlmStatus::TimedOut, format!("no answer within {}s", after.as_secs_f64()));
    }
}
