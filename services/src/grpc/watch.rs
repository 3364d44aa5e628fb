//! Following an event table as a server stream: what `WatchInvoices` and `WatchRedLetterForms`
//! share. Rows after a cursor are read in pages and sent in order; an idle stream gets a
//! heartbeat; a local change wakes the reader at once and other replicas' changes are seen by
//! polling.
//!
//! A stream that starts far behind catches up at most at `catch_up_rate` events a second, so a
//! few callers replaying their history cannot take the database and the CPU from everyone else;
//! and it holds at most `stream_buffer` messages for a caller that reads slowly, reading no
//! further ahead until the caller takes them.

use super::edge::ServerConfig;
use super::status;
use std::future::Future;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;
use tonic::codegen::BoxStream;

/// How long an idle stream waits before sending a heartbeat.
const HEARTBEAT: Duration = Duration::from_secs(30);
/// How often the table is read again when nothing local woke the reader.
const POLL: Duration = Duration::from_millis(500);
/// Most rows read at a time.
const PAGE: u32 = 500;

/// How a stream paces itself, from the server's limits.
#[derive(Debug, Clone, Copy)]
pub struct Pace {
    /// Most events a second while catching up.
    pub catch_up_rate: u32,
    /// Most messages waiting for the caller.
    pub buffer: usize,
}

impl From<&ServerConfig> for Pace {
    fn from(config: &ServerConfig) -> Self {
        Self {
            catch_up_rate: config.catch_up_rate.max(1),
            buffer: config.stream_buffer.max(1),
        }
    }
}

/// What a stream needs to know about the events it follows.
pub trait Followed: Send + Sync + 'static {
    /// The event's id, which is the cursor after it.
    fn id(&self) -> i64;
}

/// Stream the events `read(after, limit)` returns, from `cursor` on, each wrapped by
/// `message(cursor, Some(event))`; heartbeats are `message(cursor, None)`. `what` names the
/// events in errors.
pub fn follow<E, M, R, Fut>(
    mut cursor: i64,
    mut changes: watch::Receiver<u64>,
    read: R,
    message: fn(i64, Option<&E>) -> M,
    what: &'static str,
    pace: Pace,
) -> BoxStream<M>
where
    E: Followed,
    M: Send + 'static,
    R: Fn(i64, u32) -> Fut + Send + 'static,
    Fut: Future<Output = anyhow::Result<Vec<E>>> + Send,
{
    let (tx, rx) = mpsc::channel::<Result<M, Status>>(pace.buffer);
    // A page never holds more than a second's worth of catching up, nor more than the buffer
    // twice over, so a slow reader never makes the stream hold a large page.
    let page = PAGE
        .min(pace.catch_up_rate)
        .min(u32::try_from(pace.buffer.saturating_mul(2)).unwrap_or(u32::MAX))
        .max(1);
    let per_event = Duration::from_secs(1) / pace.catch_up_rate;
    tokio::spawn(async move {
        let mut idle_since = tokio::time::Instant::now();
        let mut catching_up = tokio::time::Instant::now();
        loop {
            let events = match read(cursor, page).await {
                Ok(events) => events,
                Err(e) => {
                    let _ = tx.send(Err(status::internal(what, &e))).await;
                    return;
                }
            };
            for event in &events {
                cursor = event.id();
                if tx.send(Ok(message(cursor, Some(event)))).await.is_err() {
                    return;
                }
            }
            if !events.is_empty() {
                // A full page means more is waiting: keep to the catch-up rate before the next.
                if events.len() >= page as usize {
                    // At most a second of unused allowance carries over from a slow reader.
                    let now = tokio::time::Instant::now();
                    let floor = now.checked_sub(Duration::from_secs(1)).unwrap_or(now);
                    let sent = u32::try_from(events.len()).unwrap_or(u32::MAX);
                    catching_up = catching_up.max(floor) + per_event.saturating_mul(sent);
                    tokio::time::sleep_until(catching_up).await;
                } else {
                    catching_up = tokio::time::Instant::now();
                }
                idle_since = tokio::time::Instant::now();
                continue;
            }
            if idle_since.elapsed() >= HEARTBEAT {
                idle_since = tokio::time::Instant::now();
                if tx.send(Ok(message(cursor, None))).await.is_err() {
                    return;
                }
            }
            // Wake on a local change; poll now and then for other replicas' changes.
            tokio::select! {
                _ = changes.changed() => {}
                () = tokio::time::sleep(POLL) => {}
                () = tx.closed() => return,
            }
        }
    });
    Box::pin(ReceiverStream::new(rx))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio_stream::StreamExt as _;

    #[derive(Debug)]
    struct Event(i64);

    impl Followed for Event {
        fn id(&self) -> i64 {
            self.0
        }
    }

    /// A table of `total` events, ids 1 to `total`.
    fn table(
        total: i64,
    ) -> impl Fn(i64, u32) -> futures::future::Ready<anyhow::Result<Vec<Event>>> {
        move |after, limit| {
            let last = (after + i64::from(limit)).min(total);
            futures::future::ready(Ok((after + 1..=last).map(Event).collect()))
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_stream_far_behind_catches_up_at_the_configured_rate() {
        let (_changes_tx, changes) = watch::channel(0);
        let pace = Pace {
            catch_up_rate: 1_000,
            buffer: 16,
        };
        let started = tokio::time::Instant::now();
        let mut stream = follow(0, changes, table(5_000), |c, _| c, "events", pace);
        let mut last = 0;
        while last < 5_000 {
            last = stream.next().await.expect("a message").expect("an event");
        }
        // 5,000 events at 1,000 a second: about five seconds, never much less.
        let took = started.elapsed();
        assert!(took >= Duration::from_millis(4_900), "{took:?}");
        assert!(took <= Duration::from_millis(6_000), "{took:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_reader_that_stops_holds_only_the_buffer() {
        let (_changes_tx, changes) = watch::channel(0);
        let reads = std::sync::Arc::new(std::sync::atomic::AtomicI64::new(0));
        let seen = reads.clone();
        let read = move |after: i64, limit: u32| {
            seen.fetch_max(
                after + i64::from(limit),
                std::sync::atomic::Ordering::SeqCst,
            );
            table(1_000_000)(after, limit)
        };
        let pace = Pace {
            catch_up_rate: 1_000_000,
            buffer: 8,
        };
        let stream = follow(0, changes, read, |c, _| c, "events", pace);
        tokio::time::sleep(Duration::from_secs(10)).await;
        // Nothing was taken: the stream read one page ahead of a full buffer and stopped.
        let read_ahead = reads.load(std::sync::atomic::Ordering::SeqCst);
        assert!(read_ahead <= 8 + 2 * 16, "read {read_ahead} events ahead");
        drop(stream);
    }
}
