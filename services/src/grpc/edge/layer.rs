//! The layer every call passes before its handler. For calls of `fapiao.v1` it authenticates the
//! caller (put into the request for handlers, `auth::caller`), admits the call within the caller's
//! and the server's limits, and turns a panicking handler into `INTERNAL` (counted and logged)
//! instead of a reset stream. What an admitted call holds is held by its response body, so a
//! server stream holds its share until the stream ends or the client goes away. Every call, of
//! any service, counts as activity on its connection.

use super::admission::{Admission, Kind, Permit, Refusal};
use super::connection::{CallOnConnection, ConnectionInfo};
use crate::auth::Authenticator;
use crate::metrics::EdgeMetrics;
use futures::FutureExt as _;
use std::collections::HashSet;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tonic::Status;
use tonic::body::Body;
use tonic::codegen::http;
use tonic_types::{ErrorDetails, StatusExt};

/// The prefix of the paths the edge authenticates and limits.
const CONTRACT: &str = "/fapiao.v1.";

/// What the edge needs, shared by every connection.
#[derive(Debug, Clone)]
pub struct EdgeLayer {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    auth: Arc<Authenticator>,
    admission: Admission,
    /// Paths of the contract's server-streaming methods.
    streaming: HashSet<String>,
    metrics: EdgeMetrics,
    retry_after: Duration,
}

impl EdgeLayer {
    pub fn new(
        auth: Arc<Authenticator>,
        admission: Admission,
        metrics: EdgeMetrics,
        retry_after: Duration,
    ) -> anyhow::Result<Self> {
        Ok(Self {
            shared: Arc::new(Shared {
                auth,
                admission,
                streaming: streaming_paths()?,
                metrics,
                retry_after,
            }),
        })
    }
}

/// `/package.Service/Method` of every server-streaming method of the contract.
fn streaming_paths() -> anyhow::Result<HashSet<String>> {
    use prost::Message as _;
    let set = prost_types::FileDescriptorSet::decode(fapiao_proto::FILE_DESCRIPTOR_SET)?;
    let mut paths = HashSet::new();
    for file in &set.file {
        for service in &file.service {
            for method in &service.method {
                if method.server_streaming() {
                    paths.insert(format!(
                        "/{}.{}/{}",
                        file.package(),
                        service.name(),
                        method.name()
                    ));
                }
            }
        }
    }
    Ok(paths)
}

impl<S> tower_layer::Layer<S> for EdgeLayer {
    type Service = Edge<S>;

    fn layer(&self, inner: S) -> Edge<S> {
        Edge {
            inner,
            shared: self.shared.clone(),
        }
    }
}

/// The edge around the routed services.
#[derive(Debug, Clone)]
pub struct Edge<S> {
    inner: S,
    shared: Arc<Shared>,
}

type Answer<E> = Result<http::Response<Body>, E>;

impl<S> tower_service::Service<http::Request<Body>> for Edge<S>
where
    S: tower_service::Service<http::Request<Body>, Response = http::Response<Body>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Answer<S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<Body>) -> Self::Future {
        // The clone is not ready; the one polled ready serves this call.
        let fresh = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, fresh);
        let shared = self.shared.clone();
        let on_connection = request
            .extensions()
            .get::<ConnectionInfo>()
            .cloned()
            .map(|info| {
                request.extensions_mut().insert(info.tcp.clone());
                info.activity.begin()
            });
        let path = request.uri().path().to_owned();
        if !path.starts_with(CONTRACT) {
            return Box::pin(async move {
                let answer = inner.call(request).await?;
                Ok(held(answer, None, on_connection))
            });
        }
        let caller = match shared.auth.authenticate_headers(request.headers()) {
            Ok(caller) => caller,
            Err(status) => return Box::pin(async move { Ok(status.into_http()) }),
        };
        let kind = if shared.streaming.contains(&path) {
            Kind::Stream
        } else {
            Kind::Call
        };
        let permit = match shared.admission.admit(&caller.id, kind) {
            Ok(permit) => permit,
            Err(refusal) => {
                shared.metrics.refused(refusal.label());
                tracing::info!(caller = caller.name, limit = refusal.code(), "call refused");
                let status = refused(refusal, shared.retry_after);
                return Box::pin(async move { Ok(status.into_http()) });
            }
        };
        request.extensions_mut().insert(caller);
        let call = inner.call(request);
        Box::pin(async move {
            match AssertUnwindSafe(call).catch_unwind().await {
                Ok(answer) => Ok(held(answer?, Some(permit), on_connection)),
                Err(_) => {
                    shared.metrics.panicked(&path);
                    tracing::error!(method = path, "a handler panicked; answered INTERNAL");
                    Ok(
                        Status::internal("INTERNAL: the service failed; see the service log")
                            .into_http(),
                    )
                }
            }
        })
    }
}

/// `RESOURCE_EXHAUSTED` naming the limit, with the delay to wait before trying again.
fn refused(refusal: Refusal, retry_after: Duration) -> Status {
    let message = match refusal {
        Refusal::Caller(_) => format!(
            "{}: this caller already holds as many calls of this kind as it may",
            refusal.code()
        ),
        Refusal::Total(_) => format!(
            "{}: the server holds as many calls of this kind as it may",
            refusal.code()
        ),
    };
    Status::with_error_details(
        tonic::Code::ResourceExhausted,
        message,
        ErrorDetails::with_retry_info(Some(retry_after)),
    )
}

/// Largest `grpc-message` sent, in bytes (percent-encoded).
const MAX_MESSAGE_HEADER: usize = 2048;
/// Largest `grpc-status-details-bin` sent, in bytes (base64). Clients commonly cap a header list
/// at 16 KiB.
const MAX_DETAILS_HEADER: usize = 12 * 1024;

/// Keep a status's headers within what clients accept: a long message is cut (on an encoded
/// character's boundary), details too large to send are dropped and the message says so. The
/// handlers bound what they say; this holds for whatever a future one forgets.
fn fit(headers: &mut http::HeaderMap) {
    if let Some(message) = headers.get("grpc-message")
        && message.len() > MAX_MESSAGE_HEADER
        && let Ok(cut) = http::HeaderValue::from_bytes(&shortened(message.as_bytes()))
    {
        headers.insert("grpc-message", cut);
    }
    if headers
        .get("grpc-status-details-bin")
        .is_some_and(|details| details.len() > MAX_DETAILS_HEADER)
    {
        headers.remove("grpc-status-details-bin");
        tracing::warn!("status details too large to send were dropped");
    }
}

/// A percent-encoded `grpc-message` cut to at most a third of [`MAX_MESSAGE_HEADER`] decoded
/// bytes, on a character boundary, with `…` where it was cut, and encoded again.
fn shortened(encoded: &[u8]) -> Vec<u8> {
    let hex = |b: u8| char::from(b).to_digit(16);
    let mut decoded = Vec::with_capacity(encoded.len());
    let mut i = 0;
    while i < encoded.len() {
        match (encoded[i], encoded.get(i + 1), encoded.get(i + 2)) {
            (b'%', Some(&high), Some(&low)) if hex(high).is_some() && hex(low).is_some() => {
                let value = hex(high).unwrap_or(0) * 16 + hex(low).unwrap_or(0);
                decoded.push(u8::try_from(value).unwrap_or(b'?'));
                i += 3;
            }
            (byte, _, _) => {
                decoded.push(byte);
                i += 1;
            }
        }
    }
    decoded.truncate(MAX_MESSAGE_HEADER / 3 - 3);
    let whole = match std::str::from_utf8(&decoded) {
        Ok(text) => text.len(),
        Err(error) => error.valid_up_to(),
    };
    decoded.truncate(whole);
    decoded.extend_from_slice("…".as_bytes());
    let mut out = Vec::with_capacity(decoded.len() * 3);
    for byte in decoded {
        if byte.is_ascii_graphic() && byte != b'%' || byte == b' ' {
            out.push(byte);
        } else {
            out.extend_from_slice(format!("%{byte:02X}").as_bytes());
        }
    }
    out
}

/// The answer, its body holding what the call holds until the body is done or dropped.
fn held(
    answer: http::Response<Body>,
    permit: Option<Permit>,
    on_connection: Option<CallOnConnection>,
) -> http::Response<Body> {
    let mut answer = answer;
    fit(answer.headers_mut());
    answer.map(|body| {
        Body::new(Holding {
            body,
            _permit: permit,
            _on_connection: on_connection,
        })
    })
}

/// A response body that keeps a call's share of the server while it is being sent.
struct Holding {
    body: Body,
    _permit: Option<Permit>,
    _on_connection: Option<CallOnConnection>,
}

impl http_body::Body for Holding {
    type Data = tonic::codegen::Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx).map(|frame| {
            frame.map(|frame| {
                frame.map(|mut frame| {
                    if let Some(trailers) = frame.trailers_mut() {
                        fit(trailers);
                    }
                    frame
                })
            })
        })
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{Role, TokenConfig};
    use crate::grpc::edge::ServerConfig;
    use tower_layer::Layer as _;
    use tower_service::Service as _;

    /// A routed service whose handler panics on every call.
    #[derive(Clone)]
    struct Panicking;

    impl tower_service::Service<http::Request<Body>> for Panicking {
        type Response = http::Response<Body>;
        type Error = std::convert::Infallible;
        type Future = Pin<Box<dyn Future<Output = Answer<Self::Error>> + Send>>;

        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, _: http::Request<Body>) -> Self::Future {
            Box::pin(async { panic!("a handler bug") })
        }
    }

    fn edge(streams_per_caller: usize) -> (Edge<Panicking>, crate::metrics::Metrics) {
        let auth = Authenticator::new(&[TokenConfig {
            name: "orders".into(),
            token: "a-long-enough-token".to_owned().into(),
            roles: vec![Role::Issuer],
            sellers: vec!["*".into()],
        }])
        .unwrap();
        let metrics = crate::metrics::Metrics::new();
        let limits = Arc::new(ServerConfig {
            streams_per_caller,
            ..ServerConfig::default()
        });
        let layer = EdgeLayer::new(
            Arc::new(auth),
            Admission::new(limits),
            metrics.edge().clone(),
            Duration::from_secs(3),
        )
        .unwrap();
        (layer.layer(Panicking), metrics)
    }

    fn call(path: &str) -> http::Request<Body> {
        http::Request::builder()
            .uri(path)
            .header("authorization", "Bearer a-long-enough-token")
            .body(Body::empty())
            .unwrap()
    }

    fn status_of(answer: &http::Response<Body>) -> Status {
        Status::from_header_map(answer.headers()).expect("a grpc-status header")
    }

    #[test]
    fn a_long_message_is_cut_on_a_character_and_still_decodes() {
        let long = format!("RED_LETTER_FORM_NOT_FOUND: {}", "票".repeat(2_000));
        let mut headers = http::HeaderMap::new();
        let status = Status::not_found(long);
        status.add_header(&mut headers).unwrap();
        assert!(headers["grpc-message"].len() > MAX_MESSAGE_HEADER);
        fit(&mut headers);
        assert!(headers["grpc-message"].len() <= MAX_MESSAGE_HEADER);
        let read = Status::from_header_map(&headers).unwrap();
        assert!(
            read.message()
                .starts_with("RED_LETTER_FORM_NOT_FOUND: 票票")
        );
        assert!(read.message().ends_with("票…"), "{}", read.message());
    }

    #[tokio::test]
    async fn a_panicking_handler_answers_internal_and_is_counted() {
        let (mut edge, metrics) = edge(4);
        let answer = edge
            .call(call("/fapiao.v1.IssuanceService/GetInvoice"))
            .await
            .unwrap();
        let status = status_of(&answer);
        assert_eq!(status.code(), tonic::Code::Internal);
        assert!(!status.message().contains("a handler bug"), "{status:?}");
        assert!(
            metrics.encode().contains(
                "fapiao_grpc_panics_total{method=\"/fapiao.v1.IssuanceService/GetInvoice\"} 1"
            ),
            "{}",
            metrics.encode()
        );
    }

    #[tokio::test]
    async fn a_stream_beyond_the_callers_share_is_refused_with_retry_info() {
        let (mut edge, metrics) = edge(0);
        let answer = edge
            .call(call("/fapiao.v1.IssuanceService/WatchInvoices"))
            .await
            .unwrap();
        let status = status_of(&answer);
        assert_eq!(status.code(), tonic::Code::ResourceExhausted);
        assert!(status.message().starts_with("CALLER_STREAM_LIMIT: "));
        let retry = status.get_details_retry_info().expect("RetryInfo");
        assert_eq!(retry.retry_delay, Some(Duration::from_secs(3)));
        assert!(
            metrics
                .encode()
                .contains("fapiao_grpc_refused_total{limit=\"caller_streams\"} 1")
        );
        // Unauthenticated calls are refused before any limit is consulted.
        let mut anonymous = call("/fapiao.v1.IssuanceService/GetInvoice");
        anonymous.headers_mut().remove("authorization");
        let answer = edge.call(anonymous).await.unwrap();
        assert_eq!(status_of(&answer).code(), tonic::Code::Unauthenticated);
    }
}
