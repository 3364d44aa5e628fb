//! Following an event table as a server stream: what `WatchInvoices` and `WatchRedLetterForms`
//! share. Rows after a cursor are read in pages and sent in order; an idle stream gets a
//! heartbeat; a local change wakes the reader at once and other replicas' changes are seen by
//! polling.

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
/// Rows read at a time.
const PAGE: u32 = 500;

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
) -> BoxStream<M>
where
    E: Followed,
    M: Send + 'static,
    R: Fn(i64, u32) -> Fut + Send + 'static,
    Fut: Future<Output = anyhow::Result<Vec<E>>> + Send,
{
    let (tx, rx) = mpsc::channel::<Result<M, Status>>(256);
    tokio::spawn(async move {
        let mut idle_since = tokio::time::Instant::now();
        loop {
            let events = match read(cursor, PAGE).await {
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
