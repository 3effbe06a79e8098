//! The `llm` label of the inference metrics: anyone who may create Llms chooses their names,
//! so the label takes at most [`LLM_LABELS`] at once; the rest count as `llm="other"`. A name
//! idle for [`IDLE`] (an Llm deleted, or unused) makes room, as its series leave the
//! exposition after as long.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// How long a counter or histogram series nobody updates stays in the exposition.
pub const IDLE: Duration = Duration::from_secs(600);

/// The most Llm names the `llm` label holds at once.
pub const LLM_LABELS: usize = 200;

/// The `llm` label's names, each with when it was last used.
#[derive(Default)]
pub struct LlmLabels {
    names: HashMap<String, Instant>,
}

impl LlmLabels {
    /// The label for `llm` at `now`: its name while fewer than [`LLM_LABELS`] others are in use
    /// (a name idle for [`IDLE`] makes room), else `other`.
    pub fn label(&mut self, llm: &str, now: Instant) -> String {
        if let Some(used) = self.names.get_mut(llm) {
            *used = now;
            return llm.to_owned();
        }
        if self.names.len() >= LLM_LABELS {
            self.names.retain(|_, used| now.duration_since(*used) < IDLE);
        }
        if self.names.len() >= LLM_LABELS {
            return "other".to_owned();
        }
        self.names.insert(llm.to_owned(), now);
        llm.to_owned()
    }
}

/// The `llm` label of this process for `llm`.
pub fn label_of(llm: &str) -> String {
    static LABELS: OnceLock<Mutex<LlmLabels>> = OnceLock::new();
    let labels = LABELS.get_or_init(Mutex::default);
    labels.lock().unwrap_or_else(std::sync::PoisonError::into_inner).label(llm, Instant::now())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_llm_label_holds_a_bounded_set_of_names() {
        let mut labels = LlmLabels::default();
        let start = Instant::now();
        for i in 0..LLM_LABELS {
            assert_eq!(labels.label(&format!("l{i}"), start), format!("l{i}"));
        }
        assert_eq!(labels.label("one-too-many", start), "other");
        assert_eq!(labels.label("l0", start + Duration::from_secs(2)), "l0", "a name in use keeps its label");
        // Once the others have been idle long enough, they make room.
        let later = start + IDLE + Duration::from_secs(1);
        assert_eq!(labels.label("newcomer", later), "newcomer");
        assert_eq!(labels.names.len(), 2, "l0 was used later than the rest: {:?}", labels.names.keys());
    }
}
