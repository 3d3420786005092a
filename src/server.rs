//! The HTTP front: accepts Graph's notification POSTs and screens their invites. An invite
//! whose decision calls nothing (dry-run, allow, audit mode, a repeat) is decided and
//! recorded before the answer, which takes microseconds; one that Graph must reject or
//! redirect is answered at once and carried out by a tracked task. Plus `/healthz`,
//! `/readyz`, `/metrics` and `/status`.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper::header::{
    ALLOW, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, HeaderValue, WWW_AUTHENTICATE,
};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tokio_util::task::TaskTracker;

use crate::gateway::{Upstream, partial_batch};
use crate::inbound::JwtVerifier;
use crate::notification::{self, NotificationError, Notifications, SkipReason};
use crate::screen::{Forwarded, Screener, loggable};

/// Screenings that may run after their answer (Graph requests, records waiting for room
/// in the audit queue, forwards to the bot). Beyond this the answers wait, so a slow Graph
/// or audit log slows the callers down instead of filling memory.
pub const PENDING_SCREENINGS: usize = 4096;
/// Bodies larger than this are parsed on the blocking pool.
const BLOCKING_PARSE_THRESHOLD: usize = 64 * 1024;
/// Open connections get this long to finish their current request at shutdown.
const CONNECTION_GRACE: Duration = Duration::from_secs(5);

pub struct Server {
    pub screener: Arc<Screener>,
    pub notification_path: String,
    pub max_body: usize,
    /// Screenings still running; shutdown waits for them.
    pub tracker: TaskTracker,
    /// Bounds the screenings running after their answer (see [`Server::spawn_tracked`]).
    pub pending: Arc<Semaphore>,
    /// Bearer-token check for notifications; `None` trusts every POST (`auth = "off"`).
    pub auth: Option<Arc<JwtVerifier>>,
    /// Native HTTPS; `None` serves plain HTTP.
    pub tls: Option<TlsAcceptor>,
    /// Gateway mode: the bot that kept notifications are forwarded to.
    pub upstream: Option<Arc<Upstream>>,
    /// The log writer's count of lines it dropped, for `/metrics`.
    pub log_drops: Option<crate::log_writer::DroppedLines>,
    /// A client gets this long for the TLS handshake, again for its request headers, and
    /// again for its body; a slow client only ever holds its own connection.
    pub read_timeout: Duration,
}

type HttpResponse = Response<Full<Bytes>>;

impl Server {
    /// Serves on `listener` until `shutdown` completes, then stops accepting, lets open
    /// requests finish, and waits up to `drain` for screenings already under way.
    pub async fn run(
        self: Arc<Self>,
        listener: TcpListener,
        shutdown: impl Future<Output = ()>,
        drain: Duration,
    ) {
        let graceful = GracefulShutdown::new();
        tokio::pin!(shutdown);
        loop {
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                () = &mut shutdown => break,
            };
            let (stream, peer) = match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Usually EMFILE: back off instead of spinning.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let server = self.clone();
            let watcher = graceful.watcher();
            tokio::spawn(async move {
                match server.tls.clone() {
                    None => server.serve_connection(stream, watcher, peer).await,
                    Some(acceptor) => {
                        let handshake = acceptor.accept(stream);
                        match tokio::time::timeout(server.read_timeout, handshake).await {
                            Ok(Ok(tls)) => server.serve_connection(tls, watcher, peer).await,
                            Ok(Err(error)) => {
                                tracing::debug!(client.addr = %peer, %error, "tls handshake");
                            }
                            Err(_) => {
                                tracing::debug!(client.addr = %peer, "tls handshake timed out");
                            }
                        }
                    }
                }
            });
        }

        drop(listener);
        tracing::info!("shutting down: no new connections");
        if tokio::time::timeout(CONNECTION_GRACE, graceful.shutdown())
            .await
            .is_err()
        {
            tracing::warn!("open connections did not finish in time");
        }
        self.tracker.close();
        if tokio::time::timeout(drain, self.tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                pending = self.tracker.len(),
                "screenings still running at exit"
            );
        }
    }

    async fn serve_connection<I>(
        self: Arc<Self>,
        io: I,
        watcher: hyper_util::server::graceful::Watcher,
        peer: std::net::SocketAddr,
    ) where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let server = self.clone();
        let service = hyper::service::service_fn(move |request| {
            let server = server.clone();
            async move { Ok::<_, Infallible>(server.route(request).await) }
        });
        let connection = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(self.read_timeout)
            .serve_connection(TokioIo::new(io), service);
        if let Err(error) = watcher.watch(connection).await {
            tracing::debug!(client.addr = %peer, %error, "connection ended with an error");
        }
    }

    async fn route(&self, request: Request<Incoming>) -> HttpResponse {
        let path = request.uri().path();
        // Per-call callback URIs below the notification path are notifications too.
        let below = path
            .strip_prefix(self.notification_path.as_str())
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'));
        if below {
            if request.method() != Method::POST {
                let mut response = error(StatusCode::METHOD_NOT_ALLOWED, "use POST");
                response
                    .headers_mut()
                    .insert(ALLOW, HeaderValue::from_static("POST"));
                return response;
            }
            let response = self.notification(request).await;
            self.screener
                .metrics()
                .notification_answered(response.status().as_u16());
            return response;
        }
        match (request.method(), path) {
            (&Method::GET | &Method::HEAD, "/healthz") => json(StatusCode::OK, r#"{"ok":true}"#),
            (&Method::GET | &Method::HEAD, "/readyz") => self.readiness(),
            (&Method::GET | &Method::HEAD, "/metrics") => {
                let health = self.screener.audit().health();
                let metrics = self.screener.metrics();
                metrics.sync_audit(health.written(), health.write_errors());
                if let Some(drops) = &self.log_drops {
                    metrics.sync_log_drops(drops.get());
                }
                Response::builder()
                    .status(StatusCode::OK)
                    .header(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")
                    .body(Full::new(Bytes::from(metrics.encode())))
                    .expect("static response")
            }
            (&Method::GET | &Method::HEAD, "/status") => {
                let rules = self.screener.rules().load();
                let report = self
                    .screener
                    .status()
                    .report(&rules, self.screener.mode_name());
                let body = serde_json::to_string(&report).expect("status serialises");
                json(StatusCode::OK, &body)
            }
            (_, "/healthz" | "/readyz" | "/metrics" | "/status") => {
                let mut response = error(StatusCode::METHOD_NOT_ALLOWED, "use GET");
                response
                    .headers_mut()
                    .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
                response
            }
            _ => error(StatusCode::NOT_FOUND, "not found"),
        }
    }

    fn readiness(&self) -> HttpResponse {
        let rules = self.screener.rules().load();
        let audit_ok = !self.screener.audit().health().is_failing();
        let keys_ok = self
            .auth
            .as_ref()
            .is_none_or(|verifier| verifier.has_keys());
        let graph_ok = self.screener.graph_ready();
        let upstream_ok = self
            .upstream
            .as_ref()
            .is_none_or(|upstream| upstream.is_reachable());
        let ready = audit_ok && keys_ok && graph_ok && upstream_ok;
        let body = serde_json::json!({
            "ready": ready,
            "mode": self.screener.mode_name(),
            "rules_version": rules.version(),
            "rules": rules.len(),
            "audit_ok": audit_ok,
            "graph_token": graph_ok,
            "upstream": self.upstream.as_ref().map(|upstream| upstream.display_url()),
            "upstream_reachable": self.upstream.as_ref().map(|upstream| upstream.is_reachable()),
            "inbound_auth": if self.auth.is_some() { "jwt" } else { "off" },
            "inbound_keys_loaded": self.auth.as_ref().map(|verifier| verifier.has_keys()),
            "tls": self.tls.is_some(),
        });
        let status = if ready {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        };
        json(status, &body.to_string())
    }

    async fn notification(&self, request: Request<Incoming>) -> HttpResponse {
        let received = Instant::now();
        // Authenticate before reading the body: a forged POST costs us no more than a header.
        if let Some(verifier) = &self.auth {
            if request.headers().get_all(AUTHORIZATION).iter().count() > 1 {
                tracing::warn!(reason = "several_headers", "notification refused");
                self.screener.metrics().auth_failed("several_headers");
                return error(StatusCode::UNAUTHORIZED, "authentication failed");
            }
            let header = request
                .headers()
                .get(AUTHORIZATION)
                .and_then(|v| v.to_str().ok());
            if let Err(failure) = verifier.verify(header).await {
                tracing::warn!(reason = failure.reason(), "notification refused: {failure}");
                self.screener.metrics().auth_failed(failure.reason());
                let mut response = error(StatusCode::UNAUTHORIZED, "authentication failed");
                response
                    .headers_mut()
                    .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
                return response;
            }
        }
        if !is_json(request.headers().get(CONTENT_TYPE)) {
            return error(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "expected application/json",
            );
        }
        // A declared length over the limit is refused before reading a byte.
        let declared = request
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.parse::<u64>().ok());
        if declared.is_some_and(|length| length > self.max_body as u64) {
            tracing::warn!(
                declared,
                limit = self.max_body,
                "notification body too large"
            );
            return error(StatusCode::PAYLOAD_TOO_LARGE, "body too large");
        }

        // In front of a bot, Graph's headers (its bearer token too) go on with the body, to
        // the same path below the notification path and with the same query.
        let forward_parts = self.upstream.as_ref().map(|_| {
            let suffix = request.uri().path()[self.notification_path.len()..].to_owned();
            let query = request.uri().query().map(str::to_owned);
            (request.headers().clone(), suffix, query)
        });
        let body = Limited::new(request.into_body(), self.max_body);
        let bytes = match tokio::time::timeout(self.read_timeout, body.collect()).await {
            Err(_) => {
                tracing::warn!("notification body not received in time");
                return error(StatusCode::REQUEST_TIMEOUT, "body not received in time");
            }
            Ok(Err(failure)) if failure.downcast_ref::<LengthLimitError>().is_some() => {
                tracing::warn!(limit = self.max_body, "notification body too large");
                return error(StatusCode::PAYLOAD_TOO_LARGE, "body too large");
            }
            Ok(Err(failure)) => {
                tracing::warn!(error = %failure, "notification body could not be read");
                return error(StatusCode::BAD_REQUEST, "body could not be read");
            }
            Ok(Ok(collected)) => collected.to_bytes(),
        };

        // Large bodies are parsed off the async workers so they cannot stall other requests.
        let parsed = if bytes.len() > BLOCKING_PARSE_THRESHOLD {
            let body = bytes.clone();
            tokio::task::spawn_blocking(move || notification::parse(&body))
                .await
                .unwrap_or(Err(NotificationError::NotNotifications))
        } else {
            notification::parse(&bytes)
        };
        let parsed = match parsed {
            Ok(parsed) => parsed,
            Err(NotificationError::Legacy) => {
                // Graph re-sends a legacy-format notification in Graph format after a 204.
                tracing::info!("legacy notification format, asking for the Graph format");
                return Response::builder()
                    .status(StatusCode::NO_CONTENT)
                    .body(Full::new(Bytes::new()))
                    .expect("static response");
            }
            Err(failure) => {
                tracing::warn!(error = %failure, bytes = bytes.len(), "bad notification");
                return error(StatusCode::BAD_REQUEST, &failure.to_string());
            }
        };

        for skipped in &parsed.skipped {
            // An invite without a usable call id cannot be decided or audited: say so loudly.
            if matches!(skipped.why, SkipReason::NoCallId) {
                tracing::warn!(
                    index = skipped.index,
                    why = skipped.why.as_str(),
                    "invite without a call id: not screened"
                );
                continue;
            }
            tracing::debug!(
                index = skipped.index,
                call_id = skipped.call_id.as_deref().map(loggable).as_deref(),
                change_type = skipped.change_type.as_deref().map(loggable).as_deref(),
                why = skipped.why.as_str(),
                "notification not screened"
            );
        }
        if let (Some(upstream), Some((headers, suffix, query))) = (&self.upstream, forward_parts) {
            let request = GatewayRequest {
                headers,
                suffix,
                query,
                body: bytes,
            };
            return self
                .through_gateway(upstream, request, parsed, received)
                .await;
        }
        for facts in parsed.invites {
            self.screener.metrics().invite_received();
            let screening = self.screener.decide(facts);
            // A decision that calls nothing is finished here, before the answer; one that
            // calls Graph is finished by a tracked task, after it.
            if screening.calls_graph() {
                let screener = self.screener.clone();
                self.spawn_tracked(async move {
                    screener.finish(screening, received, None).await;
                })
                .await;
            } else if let Err(record) = self.screener.finish_at_once(screening, received) {
                // The audit queue is full: the answer waits for room (backpressure on
                // Graph), in a tracked task so that a client hanging up loses no record.
                let audit = self.screener.audit().clone();
                let queued = self
                    .spawn_tracked(async move { audit.record(*record).await })
                    .await;
                let _ = queued.await;
            }
        }
        accepted()
    }

    /// Spawns `task` as a tracked screening once fewer than [`PENDING_SCREENINGS`] are
    /// running; until then the request, and so its answer, waits.
    async fn spawn_tracked(
        &self,
        task: impl Future<Output = ()> + Send + 'static,
    ) -> tokio::task::JoinHandle<()> {
        let permit = self
            .pending
            .clone()
            .acquire_owned()
            .await
            .expect("the pending-screenings semaphore is never closed");
        self.tracker.spawn(async move {
            task.await;
            drop(permit);
        })
    }

    /// Gateway mode: decides every invite at once, starts the Graph requests for the calls
    /// taken away, forwards the rest of the batch to the bot and answers Graph with the
    /// bot's answer (202 when nothing was left to forward). The forward runs as a tracked
    /// task, so a shutdown that drops the connection still records its invites.
    async fn through_gateway(
        &self,
        upstream: &Arc<Upstream>,
        request: GatewayRequest,
        parsed: Notifications,
        received: Instant,
    ) -> HttpResponse {
        let mut kept = vec![true; parsed.elements.len()];
        // Kept invites are recorded once the bot has answered; the others at once.
        let mut awaiting_bot = Vec::new();
        for (facts, index) in parsed.invites.into_iter().zip(parsed.invite_indices) {
            self.screener.metrics().invite_received();
            let screening = self.screener.decide(facts);
            kept[index] = screening.is_kept();
            if screening.is_kept() {
                awaiting_bot.push(screening);
            } else {
                let screener = self.screener.clone();
                self.spawn_tracked(async move {
                    screener.finish(screening, received, None).await;
                })
                .await;
            }
        }
        // After the invites: a later notification in the same batch about a call taken away
        // must stay away from the bot too.
        for skipped in &parsed.skipped {
            let withheld = skipped
                .call_id
                .as_deref()
                .is_some_and(|id| self.screener.is_withheld(id));
            kept[skipped.index] = !withheld;
        }

        let kept_count = kept.iter().filter(|kept| **kept).count();
        if kept_count == 0 {
            return accepted();
        }
        let body = if kept_count == kept.len() {
            request.body
        } else {
            partial_batch(&parsed.envelope, &parsed.elements, &kept)
        };

        let (answer_sender, answer_receiver) = tokio::sync::oneshot::channel();
        let (screener, upstream) = (self.screener.clone(), upstream.clone());
        self.spawn_tracked(async move {
            let query = request.query.as_deref();
            let answer = upstream
                .forward(&request.headers, &request.suffix, query, body)
                .await;
            let forwarded = match &answer {
                Ok(answer) => Forwarded::Answered(answer.status),
                Err(reason) => Forwarded::Failed(reason.clone()),
            };
            // Graph gets its answer first; the records follow.
            let _ = answer_sender.send(answer);
            for screening in awaiting_bot {
                screener
                    .finish(screening, received, Some(forwarded.clone()))
                    .await;
            }
        })
        .await;
        match answer_receiver.await {
            Ok(Ok(answer)) => {
                let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::BAD_GATEWAY);
                let mut response = Response::builder().status(status);
                if let Some(content_type) = answer.content_type {
                    response = response.header(CONTENT_TYPE, content_type);
                }
                if let Some(encoding) = answer.content_encoding {
                    response = response.header(hyper::header::CONTENT_ENCODING, encoding);
                }
                response
                    .body(Full::new(answer.body))
                    .expect("valid response parts")
            }
            Ok(Err(reason)) => {
                tracing::error!(%reason, "cannot forward to the bot");
                error(
                    StatusCode::BAD_GATEWAY,
                    "the bot behind callscreen did not answer",
                )
            }
            Err(_) => error(StatusCode::SERVICE_UNAVAILABLE, "shutting down"),
        }
    }
}

/// What gateway mode forwards besides the (possibly trimmed) body.
struct GatewayRequest {
    headers: hyper::HeaderMap,
    /// The request path below the notification path (a per-call callback URI).
    suffix: String,
    query: Option<String>,
    body: Bytes,
}

fn is_json(content_type: Option<&HeaderValue>) -> bool {
    let Some(value) = content_type.and_then(|value| value.to_str().ok()) else {
        return false;
    };
    let media_type = value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let structured_json = media_type
        .strip_prefix("application/")
        .and_then(|subtype| subtype.strip_suffix("+json"))
        .is_some_and(|prefix| !prefix.is_empty());
    media_type == "application/json" || structured_json
}

fn json(status: StatusCode, body: &str) -> HttpResponse {
    Response::builder()
        .status(status)
        .header(CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body.to_owned())))
        .expect("static response")
}

/// The answer to a notification taken in; the hot path, so built from static parts.
fn accepted() -> HttpResponse {
    let mut response = Response::new(Full::new(Bytes::from_static(br#"{"accepted":true}"#)));
    *response.status_mut() = StatusCode::ACCEPTED;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// Error bodies say what was wrong with the request, never anything internal.
fn error(status: StatusCode, message: &str) -> HttpResponse {
    json(status, &serde_json::json!({ "error": message }).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_media_types_are_recognised() {
        let accepted = [
            "application/json",
            "application/json; charset=utf-8",
            "Application/JSON",
        ];
        for value in accepted {
            assert!(is_json(Some(&HeaderValue::from_static(value))), "{value}");
        }
        assert!(is_json(Some(&HeaderValue::from_static(
            "application/vnd.api+json"
        ))));
        for value in [
            "text/plain",
            "application/x-www-form-urlencoded",
            "json",
            "application/+json",
        ] {
            assert!(!is_json(Some(&HeaderValue::from_static(value))), "{value}");
        }
        assert!(!is_json(None));
    }
}
