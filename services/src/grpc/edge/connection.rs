//! Accepted connections, watched: one that has not sent the HTTP/2 preface within the handshake
//! timeout is closed, and so is one with no call in flight for the idle timeout. Without this, a
//! client could hold sockets (and their buffers) forever by connecting and never calling, or by
//! connecting and never sending a byte.
//!
//! Calls are counted per connection by the edge layer through the connection's [`Activity`],
//! which travels with every request as part of [`ConnectionInfo`].

use futures::Stream;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{Instant, Sleep};
use tonic::transport::server::{Connected, TcpConnectInfo};

/// The client connection preface every HTTP/2 connection starts with, in bytes.
const PREFACE: usize = 24;

/// Calls in flight on one connection, and since when it has had none.
#[derive(Debug)]
pub struct Activity {
    started: Instant,
    in_flight: AtomicUsize,
    /// Milliseconds after `started` at which the last call ended.
    idle_since_ms: AtomicU64,
}

/// A call in flight on a connection; dropping it ends the call.
#[derive(Debug)]
pub struct CallOnConnection(Arc<Activity>);

impl Activity {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            started: Instant::now(),
            in_flight: AtomicUsize::new(0),
            idle_since_ms: AtomicU64::new(0),
        })
    }

    /// Count a call until the returned guard is dropped.
    pub fn begin(self: &Arc<Self>) -> CallOnConnection {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        CallOnConnection(self.clone())
    }

    /// When the connection will have been idle for `limit`, or `None` while a call is in flight.
    fn idle_deadline(&self, limit: Duration) -> Option<Instant> {
        if self.in_flight.load(Ordering::SeqCst) > 0 {
            return None;
        }
        let since = Duration::from_millis(self.idle_since_ms.load(Ordering::SeqCst));
        Some(self.started + since + limit)
    }
}

impl Drop for CallOnConnection {
    fn drop(&mut self) {
        let elapsed = u64::try_from(self.0.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.0.idle_since_ms.store(elapsed, Ordering::SeqCst);
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// What each request learns about its connection: the addresses (as tonic's own TCP listener
/// gives them, so `Request::remote_addr` works) and the connection's activity.
#[derive(Debug, Clone)]
pub struct ConnectionInfo {
    pub tcp: TcpConnectInfo,
    pub activity: Arc<Activity>,
}

/// A TCP connection with the handshake and idle timeouts applied to its reads.
#[derive(Debug)]
pub struct Watched {
    io: TcpStream,
    info: ConnectionInfo,
    accepted: Instant,
    read: usize,
    handshake: Duration,
    idle: Duration,
    timer: Pin<Box<Sleep>>,
}

impl Watched {
    fn new(io: TcpStream, handshake: Duration, idle: Duration) -> Self {
        let tcp = TcpConnectInfo {
            local_addr: io.local_addr().ok(),
            remote_addr: io.peer_addr().ok(),
        };
        let accepted = Instant::now();
        Self {
            io,
            info: ConnectionInfo {
                tcp,
                activity: Activity::new(),
            },
            accepted,
            read: 0,
            handshake,
            idle,
            timer: Box::pin(tokio::time::sleep_until(accepted + handshake)),
        }
    }

    /// When the connection is to be closed, as things stand; `None` while a call is in flight.
    fn deadline(&self) -> Option<Instant> {
        if self.read < PREFACE {
            Some(self.accepted + self.handshake)
        } else {
            self.info.activity.idle_deadline(self.idle)
        }
    }
}

impl Connected for Watched {
    type ConnectInfo = ConnectionInfo;

    fn connect_info(&self) -> ConnectionInfo {
        self.info.clone()
    }
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        if let Poll::Ready(result) = Pin::new(&mut self.io).poll_read(cx, buf) {
            self.read = self.read.saturating_add(buf.filled().len() - before);
            return Poll::Ready(result);
        }
        // Nothing to read: wake up at the deadline, or look again a while after a call ends.
        loop {
            let now = Instant::now();
            let wake = match self.deadline() {
                Some(deadline) if deadline <= now => {
                    let why = if self.read < PREFACE {
                        "no HTTP/2 preface within the handshake timeout"
                    } else {
                        "no call within the idle timeout"
                    };
                    return Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, why)));
                }
                Some(deadline) => deadline,
                None => now + self.idle,
            };
            self.timer.as_mut().reset(wake);
            if self.timer.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
        }
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// The connections `listener` accepts, each watched. Accepting goes on after an error (for
/// example when the process is out of file descriptors), after a short pause.
pub fn incoming(
    listener: TcpListener,
    handshake: Duration,
    idle: Duration,
) -> impl Stream<Item = io::Result<Watched>> + Send + 'static {
    futures::stream::unfold(listener, move |listener| async move {
        loop {
            match listener.accept().await {
                Ok((io, _)) => {
                    // Without TCP_NODELAY small responses wait for the peer's delayed ACK.
                    let _ = io.set_nodelay(true);
                    return Some((Ok(Watched::new(io, handshake, idle)), listener));
                }
                Err(error) => {
                    tracing::warn!(%error, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    })
}
