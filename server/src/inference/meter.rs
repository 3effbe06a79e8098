//! Counting one proxied call: requests, errors and tokens per user and Llm (the usage counters)
//! and in the metrics, when the call ends, however it ends.

use app::observed::usage::{self, Counts};

use super::labels;

/// Counts one call to an Llm when dropped: at the end of a stream, or when the client goes away.
pub(super) struct Meter {
    pub counters: usage::Counters,
    pub user: String,
    pub llm: String,
    pub counts: Counts,
}

impl Meter {
    pub fn tokens(&mut self, input: u64, output: u64) {
        self.counts.input_tokens = input as i64;
        self.counts.output_tokens = output as i64;
    }
}

impl Drop for Meter {
    fn drop(&mut self) {
        self.counters.record(&self.user, &self.llm, self.counts);
        let outcome = if self.counts.errors > 0 { "error" } else { "ok" };
        let llm = labels::label_of(&self.llm);
        metrics::counter!("mcpd_inference_requests_total", "llm" => llm.clone(), "outcome" => outcome).increment(1);
        for (direction, tokens) in [("input", self.counts.input_tokens), ("output", self.counts.output_tokens)] {
            metrics::counter!("mcpd_inference_tokens_total", "llm" => llm.clone(), "direction" => direction)
                .increment(tokens.max(0) as u64);
        }
    }
}

/// The tokens a stream's provider reported so far, on its meter.
pub(super) fn count(meter: &mut Option<Meter>, input: u64, output: u64) {
    if let Some(meter) = meter {
        meter.tokens(input, output);
    }
}
