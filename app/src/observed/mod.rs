//! What this replica observes of the Llms it proxies, and what it holds to call them: each Llm's
//! health as last seen, the usage counted per user and Llm (flushed to the database by the
//! hour), and the one HTTP client every provider call goes through. The proxy itself is the
//! server's; this is the state it shares with the services (an Llm's `health` in its document).

pub mod health;
pub mod usage;

use std::time::Duration;

/// The proxy's shared state: the HTTP client, usage counters and the Llms' health.
#[derive(Clone)]
pub struct Inference {
    pub client: reqwest::Client,
    pub usage: usage::Counters,
    pub health: health::Board,
}

impl Default for Inference {
    fn default() -> Self {
        Inference { client: client(), usage: Default::default(), health: Default::default() }
    }
}

/// The client for providers: redirects are never followed (a key goes only where its Llm says),
/// connections are kept for a minute, and each call sets its own timeout.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(10))
        .pool_idle_timeout(Duration::from_secs(60))
        .tcp_nodelay(true)
        .build()
        .expect("the HTTP client builds")
}
