//! `[server]`: how much of the server one caller, and all callers together, may hold, and how
//! long connections may sit without doing anything. Every limit refuses with
//! `RESOURCE_EXHAUSTED` and a `google.rpc.RetryInfo` saying when to try again.

use serde::Deserialize;
use std::time::Duration;

/// Limits of the gRPC listener.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Unary calls one caller (one token) may have in flight at once.
    pub calls_per_caller: usize,
    /// Unary calls all callers together may have in flight at once.
    pub calls_total: usize,
    /// Server streams (`Watch…`, file downloads, verification) one caller may hold open at once.
    pub streams_per_caller: usize,
    /// Server streams all callers together may hold open at once.
    pub streams_total: usize,
    /// Most events per second one watch sends while it catches up with a backlog; a watch that
    /// is up to date sends each event as it happens.
    pub catch_up_rate: u32,
    /// Messages a stream holds for a caller that reads slowly; the server reads no further ahead.
    pub stream_buffer: usize,
    /// A connection that has not sent the HTTP/2 preface within this is closed.
    #[serde(with = "humantime_serde")]
    pub handshake_timeout: Duration,
    /// A connection with no call in flight for this long is closed; clients reconnect when they
    /// next call.
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// How often the server pings each connection (HTTP/2 PING) to find peers that are gone.
    #[serde(with = "humantime_serde")]
    pub keepalive_interval: Duration,
    /// How long a ping may go unanswered before the connection is closed.
    #[serde(with = "humantime_serde")]
    pub keepalive_timeout: Duration,
    /// HTTP/2 streams one connection may open at once (SETTINGS_MAX_CONCURRENT_STREAMS).
    pub max_streams_per_connection: u32,
    /// The delay a refusal suggests in its `RetryInfo`.
    #[serde(with = "humantime_serde")]
    pub retry_after: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            calls_per_caller: 256,
            calls_total: 1024,
            streams_per_caller: 8,
            streams_total: 512,
            catch_up_rate: 1_000,
            stream_buffer: 32,
            handshake_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(300),
            keepalive_interval: Duration::from_secs(60),
            keepalive_timeout: Duration::from_secs(20),
            max_streams_per_connection: 256,
            retry_after: Duration::from_secs(1),
        }
    }
}

impl ServerConfig {
    /// Why the limits cannot work, if they cannot.
    pub fn check(&self) -> Result<(), String> {
        let positive = [
            ("calls_per_caller", self.calls_per_caller),
            ("calls_total", self.calls_total),
            ("streams_per_caller", self.streams_per_caller),
            ("streams_total", self.streams_total),
            ("stream_buffer", self.stream_buffer),
            ("catch_up_rate", self.catch_up_rate as usize),
            (
                "max_streams_per_connection",
                self.max_streams_per_connection as usize,
            ),
        ];
        for (name, value) in positive {
            if value == 0 {
                return Err(format!("server.{name} must be at least 1"));
            }
        }
        for (name, value) in [
            ("handshake_timeout", self.handshake_timeout),
            ("idle_timeout", self.idle_timeout),
            ("keepalive_interval", self.keepalive_interval),
            ("keepalive_timeout", self.keepalive_timeout),
        ] {
            if value.is_zero() {
                return Err(format!("server.{name} must be longer than zero"));
            }
        }
        Ok(())
    }
}
