//! Limits that keep one caller or one slow request from taking mcpd from the rest: a request
//! rate per token (429 with `Retry-After` past it), an overall timeout for requests that are
//! not streams (503, and only when the request has changed nothing yet: a write under way is
//! never cut in half), and a cap on streams open at once (watches, streamed inference).

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};

use crate::error::ApiError;

/// The limits mcpd runs with; [`Tuning::default`] is what tests' in-process apps get.
#[derive(Debug, Clone)]
pub struct Tuning {
    /// Requests per second each token may make, and the burst above it; `None`: no limit.
    pub rate: Option<(NonZeroU32, NonZeroU32)>,
    /// Longest a request that is not a stream may take before it is answered 503.
    pub request_timeout: Option<Duration>,
    /// Streams (watches, streamed inference) open at once.
    pub max_streams: usize,
    /// How long an `Idempotency-Key` is remembered.
    pub idempotency_lifetime: Duration,
    /// How long a streamed answer may go on once shutdown begins, before it is ended with an
    /// error event (a little under the shutdown grace, so the event goes out before the cut).
    pub stream_grace: Duration,
}

impl Default for Tuning {
    fn default() -> Self {
        Tuning {
            rate: None,
            request_timeout: Some(Duration::from_secs(30)),
            max_streams: 256,
            idempotency_lifetime: Duration::from_secs(24 * 3600),
            stream_grace: Duration::from_secs(9),
        }
    }
}

/// The running limits: the rate limiter's state per token and the stream permits.
pub struct Limiter {
    pub tuning: Tuning,
    rate: Option<DefaultKeyedRateLimiter<String>>,
    streams: Arc<tokio::sync::Semaphore>,
}

/// Held while a stream is open.
pub type StreamPermit = tokio::sync::OwnedSemaphorePermit;

impl Limiter {
    pub fn new(tuning: Tuning) -> Limiter {
        let rate = tuning.rate.map(|(per_second, burst)| {
            DefaultKeyedRateLimiter::keyed(Quota::per_second(per_second).allow_burst(burst))
        });
        let streams = Arc::new(tokio::sync::Semaphore::new(tuning.max_streams));
        Limiter { tuning, rate, streams }
    }

    /// Counts one request of the token `token_id` against its rate.
    pub fn admit(&self, token_id: &str) -> Result<(), ApiError> {
        let Some(rate) = &self.rate else { return Ok(()) };
        match rate.check_key(&token_id.to_owned()) {
            Ok(()) => Ok(()),
            Err(not_until) => {
                let wait = not_until.wait_time_from(DefaultClock::default().now());
                // Whole seconds, rounded up: 0 would invite an immediate retry.
                let retry_after = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
                Err(ApiError::RateLimited {
                    message: format!(
                        "this token made more than its {} requests per second (burst {}); retry after {retry_after} s",
                        self.tuning.rate.map_or(0, |r| r.0.get()),
                        self.tuning.rate.map_or(0, |r| r.1.get())
                    ),
                    retry_after: retry_after.max(1),
                })
            }
        }
    }

    /// Forgets tokens idle long enough to be back at a full burst (keeps memory bounded).
    pub fn forget_idle(&self) {
        if let Some(rate) = &self.rate {
            rate.retain_recent();
            rate.shrink_to_fit();
        }
    }

    /// A permit for one more stream, or 503 when `max_streams` are open.
    pub fn stream(&self) -> Result<StreamPermit, ApiError> {
        self.streams.clone().try_acquire_owned().map_err(|_| {
            ApiError::Overloaded(format!(
                "{} streams are open, the most this mcpd serves at once (--max-streams); retry shortly",
                self.tuning.max_streams
            ))
        })
    }
}
