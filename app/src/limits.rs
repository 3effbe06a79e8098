//! Limits that keep one caller or one slow request from taking mcpd from the rest: a request
//! rate per token (429 with `Retry-After` past it), a rate of failed token look-ups per peer
//! address (a token mcpd does not hold in memory costs a database query: once a peer has sent
//! too many that exist nowhere, its tokens that are not held are refused 429 before the
//! database is asked, until its allowance is back), an overall timeout for requests that are
//! not streams (503, and only when the request has changed nothing yet: a write under way is
//! never cut in half), and caps on streams (watches, streamed inference): open at once, open
//! at once per user (a share, so that one user cannot lock everyone else out), and how long a
//! streamed answer may last.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
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
    /// Streams one user may hold open at once.
    pub max_streams_per_user: usize,
    /// Longest a streamed answer may go on; it is then ended with an error event.
    pub max_stream_duration: Duration,
    /// Look-ups finding no token each peer address may cause per second, and the burst above
    /// it; `None`: no limit.
    pub token_lookups: Option<(NonZeroU32, NonZeroU32)>,
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
            max_streams_per_user: 64,
            max_stream_duration: Duration::from_secs(3600),
            token_lookups: NonZeroU32::new(20).zip(NonZeroU32::new(100)),
            idempotency_lifetime: Duration::from_secs(24 * 3600),
            stream_grace: Duration::from_secs(9),
        }
    }
}

/// `Retry-After` for a wait: whole seconds, rounded up, at least 1 (0 would invite an
/// immediate retry).
fn retry_after(wait: Duration) -> u64 {
    (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1)
}

/// The running limits: the rate limiters' state per token and per peer, and the stream permits.
pub struct Limiter {
    pub tuning: Tuning,
    rate: Option<DefaultKeyedRateLimiter<String>>,
    lookups: Option<DefaultKeyedRateLimiter<IpAddr>>,
    /// Peers past their allowance of failed look-ups, and until when.
    blocked: Mutex<HashMap<IpAddr, std::time::Instant>>,
    streams: Arc<tokio::sync::Semaphore>,
    /// Streams open per user.
    per_user: Arc<Mutex<HashMap<String, usize>>>,
}

/// Held while a stream is open: one of the streams of all, and one of its user's.
pub struct StreamPermit {
    _stream: tokio::sync::OwnedSemaphorePermit,
    user: String,
    per_user: Arc<Mutex<HashMap<String, usize>>>,
}

impl Drop for StreamPermit {
    fn drop(&mut self) {
        let mut open = self.per_user.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(count) = open.get_mut(&self.user) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.user);
            }
        }
    }
}

impl Limiter {
    pub fn new(tuning: Tuning) -> Limiter {
        let rate = tuning.rate.map(|(per_second, burst)| {
            DefaultKeyedRateLimiter::keyed(Quota::per_second(per_second).allow_burst(burst))
        });
        let lookups = tuning.token_lookups.map(|(per_second, burst)| {
            DefaultKeyedRateLimiter::keyed(Quota::per_second(per_second).allow_burst(burst))
        });
        let streams = Arc::new(tokio::sync::Semaphore::new(tuning.max_streams));
        Limiter { tuning, rate, lookups, blocked: Mutex::default(), streams, per_user: Arc::default() }
    }

    /// Whether `peer` may cause a look-up of a token not held in memory now: 429 while it is
    /// past its allowance of failed ones.
    pub fn may_look_up(&self, peer: IpAddr) -> Result<(), ApiError> {
        let blocked = self.blocked.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some(until) = blocked.get(&peer) else { return Ok(()) };
        let wait = until.saturating_duration_since(std::time::Instant::now());
        if wait.is_zero() {
            return Ok(());
        }
        let retry_after = retry_after(wait);
        Err(ApiError::RateLimited {
            message: format!(
                "too many unknown tokens from this address (more than {} a second); retry after {retry_after} s",
                self.tuning.token_lookups.map_or(0, |r| r.0.get())
            ),
            retry_after,
        })
    }

    /// Counts a look-up `peer` caused that found no token.
    pub fn failed_look_up(&self, peer: IpAddr) {
        let Some(lookups) = &self.lookups else { return };
        if let Err(not_until) = lookups.check_key(&peer) {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            let mut blocked = self.blocked.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            blocked.insert(peer, std::time::Instant::now() + wait.max(Duration::from_secs(1)));
        }
    }

    /// Counts one request of the token `token_id` against its rate.
    pub fn admit(&self, token_id: &str) -> Result<(), ApiError> {
        let Some(rate) = &self.rate else { return Ok(()) };
        match rate.check_key(&token_id.to_owned()) {
            Ok(()) => Ok(()),
            Err(not_until) => {
                let wait = not_until.wait_time_from(DefaultClock::default().now());
                let retry_after = retry_after(wait);
                Err(ApiError::RateLimited {
                    message: format!(
                        "this token made more than its {} requests per second (burst {}); retry after {retry_after} s",
                        self.tuning.rate.map_or(0, |r| r.0.get()),
                        self.tuning.rate.map_or(0, |r| r.1.get())
                    ),
                    retry_after,
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
        if let Some(lookups) = &self.lookups {
            lookups.retain_recent();
            lookups.shrink_to_fit();
        }
        let now = std::time::Instant::now();
        self.blocked.lock().unwrap_or_else(std::sync::PoisonError::into_inner).retain(|_, until| *until > now);
    }

    /// A permit for one more stream of `user`: 429 when the user holds
    /// `max_streams_per_user` already, 503 when `max_streams` are open.
    pub fn stream(&self, user: &str) -> Result<StreamPermit, ApiError> {
        let mut open = self.per_user.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let held = open.get(user).copied().unwrap_or(0);
        if held >= self.tuning.max_streams_per_user {
            return Err(ApiError::RateLimited {
                message: format!(
                    "user {user:?} holds {held} streams open, the most one user may (--max-streams-per-user); \
                     close one or retry later"
                ),
                retry_after: 1,
            });
        }
        let stream = self.streams.clone().try_acquire_owned().map_err(|_| {
            ApiError::Overloaded(format!(
                "{} streams are open, the most this mcpd serves at once (--max-streams); retry shortly",
                self.tuning.max_streams
            ))
        })?;
        *open.entry(user.to_owned()).or_default() += 1;
        Ok(StreamPermit { _stream: stream, user: user.to_owned(), per_user: self.per_user.clone() })
    }
}
