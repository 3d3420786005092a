//! The Graph client: a cached client-credentials token and `POST …/calls/{id}/reject`,
//! each attempt bounded by the invite's answer deadline.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;
use tokio::time::Instant;
use url::Url;

use crate::config::{GraphCredentials, Secret};
use crate::metrics::Metrics;
use crate::rules::{Reason, Redirect, RedirectTarget};
use crate::screen::loggable;

/// Everything but RFC 3986 unreserved characters is escaped, so a call id always stays one
/// path segment whatever it contains (`/`, `?`, `#`, `%`, spaces, unicode).
pub(crate) const PATH_SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// A token is refreshed this long before Graph says it expires, so a reject never leaves
/// with a token that dies in flight.
const REFRESH_MARGIN: Duration = Duration::from_secs(300);
/// Backoff between attempts after a transient failure; doubled each time, with jitter.
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// Reject requests in flight at once. Graph's calling limits are far higher; this bounds
/// sockets and memory when a burst meets a slow Graph.
const MAX_IN_FLIGHT: usize = 512;
/// Below this much time left, another attempt could not complete; the reject has expired.
const LAST_ATTEMPT: Duration = Duration::from_millis(50);

#[derive(Debug, thiserror::Error)]
pub enum GraphError {
    #[error("call id {0:?} cannot name a Graph resource")]
    UnusableCallId(String),
    #[error("token request failed: {0}")]
    Token(String),
    #[error("graph answered {status}{}", code_suffix(code))]
    Status {
        status: u16,
        code: Option<String>,
        request_id: Option<String>,
    },
    #[error("request to graph failed: {0}")]
    Transport(String),
    #[error("the answer deadline passed{}", status_suffix(last_status))]
    Expired { last_status: Option<u16> },
}

impl GraphError {
    /// The HTTP status Graph answered, when it answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            GraphError::Status { status, .. } => Some(*status),
            GraphError::Expired { last_status } => *last_status,
            _ => None,
        }
    }
}

/// The JSON body of a redirect request: invitation targets and the rule's options.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RedirectBody {
    pub targets: Vec<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mask_callee: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mask_caller: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub callback_uri: Option<String>,
}

impl RedirectBody {
    /// `masking`: whether the Graph version in use takes `maskCallee`/`maskCaller` (the
    /// beta endpoint does; v1.0 refuses them), so they are sent only then.
    pub fn new(redirect: &Redirect, callback_uri: Option<String>, masking: bool) -> RedirectBody {
        RedirectBody {
            targets: redirect.targets.iter().map(invitation_target).collect(),
            timeout: redirect.timeout,
            mask_callee: redirect.mask_callee.filter(|_| masking),
            mask_caller: redirect.mask_caller.filter(|_| masking),
            callback_uri,
        }
    }
}

/// An `invitationParticipantInfo` naming one target by the identity Graph expects.
fn invitation_target(target: &RedirectTarget) -> serde_json::Value {
    let (member, id) = match target {
        RedirectTarget::User(id) => ("user", id),
        RedirectTarget::Phone(number) => ("phone", number),
        RedirectTarget::ApplicationInstance(id) => ("applicationInstance", id),
    };
    serde_json::json!({
        "@odata.type": "#microsoft.graph.invitationParticipantInfo",
        "identity": {
            "@odata.type": "#microsoft.graph.identitySet",
            member: { "@odata.type": "#microsoft.graph.identity", "id": id },
        },
    })
}

/// The JSON body of a reject request, exactly as the Graph API documents it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RejectBody {
    pub reason: Reason,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub callback_uri: Option<String>,
}

#[derive(Clone)]
struct CachedToken {
    secret: Secret,
    refresh_at: Instant,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    expires_in: Option<u64>,
}

#[derive(Deserialize)]
struct TokenError {
    error: Option<String>,
}

#[derive(Deserialize)]
struct ErrorBody {
    error: Option<ErrorDetail>,
}

#[derive(Deserialize)]
struct ErrorDetail {
    code: Option<String>,
}

pub struct GraphClient {
    http: reqwest::Client,
    base_url: Url,
    credentials: GraphCredentials,
    /// Held across the token request so that concurrent rejects share one refresh.
    token: Mutex<Option<CachedToken>>,
    /// Set once a token has been obtained; read by `/readyz` without taking the lock.
    has_token: AtomicBool,
    /// Reject requests in flight at once; the rest wait for a slot within their deadline.
    in_flight: tokio::sync::Semaphore,
    metrics: Arc<Metrics>,
}

impl GraphClient {
    pub fn new(
        base_url: Url,
        credentials: GraphCredentials,
        metrics: Arc<Metrics>,
    ) -> Result<GraphClient, GraphError> {
        // reqwest is built without a bundled crypto provider; ring is ours. A second
        // install (another client in the same process) is harmless and ignored.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            // Graph and the token endpoint answer where they are asked; a redirect would
            // carry the client secret or a reject to a host nobody configured.
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(5))
            .pool_idle_timeout(Duration::from_secs(90))
            .user_agent(concat!("callscreen/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|error| GraphError::Transport(error.to_string()))?;
        Ok(GraphClient {
            http,
            base_url,
            credentials,
            token: Mutex::new(None),
            has_token: AtomicBool::new(false),
            in_flight: tokio::sync::Semaphore::new(MAX_IN_FLIGHT),
            metrics,
        })
    }

    /// The reject URL for `call_id`: the id is one percent-encoded path segment. Ids that
    /// are empty or dot segments would change the path after URL normalisation, so they are
    /// refused rather than sent.
    pub fn reject_url(&self, call_id: &str) -> Result<Url, GraphError> {
        reject_url(&self.base_url, call_id)
    }

    /// Whether this Graph version takes the redirect masking options (only `beta` does).
    pub fn accepts_masking(&self) -> bool {
        self.base_url
            .path_segments()
            .is_some_and(|mut segments| segments.any(|s| s == "beta"))
    }

    /// Whether a token has been obtained since start.
    pub fn has_token(&self) -> bool {
        self.has_token.load(Ordering::Relaxed)
    }

    /// Fetches a token now unless a fresh one is cached; used to warm the cache at start.
    pub async fn ensure_token(&self, deadline: Instant) -> Result<(), GraphError> {
        self.token(deadline, None).await.map(|_| ())
    }

    /// A fresh token: the cached one, unless it is due for refresh or is `rejected` (Graph
    /// answered 401 to it). Waiting for another task's refresh counts against `deadline`.
    async fn token(
        &self,
        deadline: Instant,
        rejected: Option<&Secret>,
    ) -> Result<Secret, GraphError> {
        let mut cached = tokio::time::timeout_at(deadline, self.token.lock())
            .await
            .map_err(|_| GraphError::Expired { last_status: None })?;
        if let Some(token) = cached.as_ref()
            && Instant::now() < token.refresh_at
            && rejected.is_none_or(|bad| bad.expose() != token.secret.expose())
        {
            return Ok(token.secret.clone());
        }
        let fetched = self.fetch_token(deadline).await;
        self.metrics.token_refreshed(fetched.is_ok());
        let token = fetched?;
        *cached = Some(token.clone());
        self.has_token.store(true, Ordering::Relaxed);
        Ok(token.secret)
    }

    async fn fetch_token(&self, deadline: Instant) -> Result<CachedToken, GraphError> {
        let form = [
            ("client_id", self.credentials.client_id.as_str()),
            ("scope", self.credentials.scope.as_str()),
            ("client_secret", self.credentials.client_secret.expose()),
            ("grant_type", "client_credentials"),
        ];
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        let request = self
            .http
            .post(self.credentials.token_url.clone())
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(body)
            .send();
        let expired = |_| GraphError::Expired { last_status: None };
        let response = tokio::time::timeout_at(deadline, request)
            .await
            .map_err(expired)?
            .map_err(|error| GraphError::Token(describe_transport(&error)))?;
        let status = response.status();
        if !status.is_success() {
            // The identity platform names the problem in `error` (invalid_client…); its
            // description may echo request details, so only the code is kept.
            let code = tokio::time::timeout_at(deadline, response.bytes())
                .await
                .ok()
                .and_then(Result::ok)
                .and_then(|bytes| serde_json::from_slice::<TokenError>(&bytes).ok())
                .and_then(|body| body.error);
            let code = code.map(|code| format!(" ({code})")).unwrap_or_default();
            return Err(GraphError::Token(format!(
                "token endpoint answered {}{code}",
                status.as_u16()
            )));
        }
        let parsed: TokenResponse = tokio::time::timeout_at(deadline, response.json())
            .await
            .map_err(expired)?
            .map_err(|_| GraphError::Token("token response is not the expected JSON".into()))?;
        let lifetime = Duration::from_secs(parsed.expires_in.unwrap_or(3599));
        // Short-lived tokens (tests, odd tenants) are refreshed at half their life.
        let margin = REFRESH_MARGIN.min(lifetime / 2);
        let token = CachedToken {
            secret: Secret::new(parsed.access_token),
            refresh_at: Instant::now() + lifetime - margin,
        };
        tracing::info!(expires_in_s = lifetime.as_secs(), "graph token refreshed");
        Ok(token)
    }

    /// Rejects the call. Retries transient failures (transport errors, token endpoint
    /// failures, 429, 5xx) with jittered exponential backoff, honouring `Retry-After`;
    /// refreshes the token once on 401; gives up with [`GraphError::Expired`] when
    /// `deadline` passes, or at once when Graph's `Retry-After` reaches past it. Returns the
    /// status Graph accepted with (202).
    pub async fn reject(
        &self,
        call_id: &str,
        body: &RejectBody,
        deadline: Instant,
    ) -> Result<u16, GraphError> {
        let url = action_url(&self.base_url, call_id, "reject")?;
        let payload = serde_json::to_vec(body).expect("reject body always serialises");
        self.post_action(call_id, url, payload, deadline).await
    }

    /// Redirects the call to the rule's targets (`POST …/calls/{id}/redirect`), with the
    /// same retries and deadline as [`GraphClient::reject`].
    pub async fn redirect(
        &self,
        call_id: &str,
        body: &RedirectBody,
        deadline: Instant,
    ) -> Result<u16, GraphError> {
        let url = action_url(&self.base_url, call_id, "redirect")?;
        let payload = serde_json::to_vec(body).expect("redirect body always serialises");
        self.post_action(call_id, url, payload, deadline).await
    }

    async fn post_action(
        &self,
        call_id: &str,
        url: Url,
        payload: Vec<u8>,
        deadline: Instant,
    ) -> Result<u16, GraphError> {
        // Bounded fan-out: a burst of rejects queues here instead of exhausting sockets.
        let _permit = tokio::time::timeout_at(deadline, self.in_flight.acquire())
            .await
            .map_err(|_| GraphError::Expired { last_status: None })?
            .expect("the semaphore is never closed");
        let mut backoff = FIRST_BACKOFF;
        let mut rejected_token: Option<Secret> = None;
        let mut refreshed = false;
        let mut last_status = None;
        loop {
            let retry_after = match self.token(deadline, rejected_token.as_ref()).await {
                Err(GraphError::Token(reason)) => {
                    let call_id = loggable(call_id);
                    tracing::warn!(%call_id, %reason, "no Graph token for the reject");
                    None
                }
                Err(GraphError::Expired { .. }) => return Err(GraphError::Expired { last_status }),
                Err(other) => return Err(other),
                Ok(token) => match self
                    .attempt(call_id, &url, &payload, &token, deadline)
                    .await
                {
                    Attempt::Accepted(status) => return Ok(status),
                    Attempt::Expired => return Err(GraphError::Expired { last_status }),
                    Attempt::Transient {
                        status,
                        retry_after,
                    } => {
                        last_status = status.or(last_status);
                        retry_after
                    }
                    Attempt::Unauthorized if !refreshed => {
                        refreshed = true;
                        last_status = Some(401);
                        rejected_token = Some(token);
                        continue;
                    }
                    Attempt::Unauthorized => {
                        let (code, request_id) = (Some("unauthenticated".into()), None);
                        return Err(GraphError::Status {
                            status: 401,
                            code,
                            request_id,
                        });
                    }
                    Attempt::Refused(error) => return Err(error),
                },
            };
            let remaining = deadline.saturating_duration_since(Instant::now());
            let wait = match retry_after {
                // Graph asked us to wait past the deadline: the call is lost, stop now.
                Some(wait) if wait >= remaining => return Err(GraphError::Expired { last_status }),
                Some(wait) => wait,
                // Our own backoff yields to the deadline: keep trying until it passes.
                None => jitter(backoff).min(remaining.saturating_sub(LAST_ATTEMPT)),
            };
            backoff = (backoff * 2).min(MAX_BACKOFF);
            if remaining <= LAST_ATTEMPT {
                return Err(GraphError::Expired { last_status });
            }
            tokio::time::sleep(wait).await;
        }
    }

    /// One reject request, classified.
    async fn attempt(
        &self,
        call_id: &str,
        url: &Url,
        payload: &[u8],
        token: &Secret,
        deadline: Instant,
    ) -> Attempt {
        let request = self
            .http
            .post(url.clone())
            .bearer_auth(token.expose())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(payload.to_vec())
            .send();
        let started = std::time::Instant::now();
        let answered = tokio::time::timeout_at(deadline, request).await;
        let status = answered
            .as_ref()
            .ok()
            .and_then(|r| r.as_ref().ok())
            .map(|r| r.status());
        self.metrics
            .graph_answered(status.map(|s| s.as_u16()), started.elapsed());
        let response = match answered {
            Err(_) => return Attempt::Expired,
            Ok(Err(error)) => {
                let error = describe_transport(&error);
                tracing::warn!(call_id = %loggable(call_id), %error, "reject request failed");
                return Attempt::Transient {
                    status: None,
                    retry_after: None,
                };
            }
            Ok(Ok(response)) => response,
        };
        let status = response.status().as_u16();
        if response.status().is_success() {
            return Attempt::Accepted(status);
        }
        let retry_after = parse_retry_after(response.headers());
        let request_id = header_text(response.headers(), "request-id");
        let code = tokio::time::timeout_at(deadline, response.bytes())
            .await
            .ok()
            .and_then(Result::ok)
            .and_then(|bytes| serde_json::from_slice::<ErrorBody>(&bytes).ok())
            .and_then(|body| body.error)
            .and_then(|detail| detail.code);
        tracing::warn!(
            call_id = %loggable(call_id),
            status,
            code = code.as_deref().map(loggable).as_deref(),
            request_id = request_id.as_deref().map(loggable).as_deref(),
            "graph refused the reject"
        );
        match status {
            401 => Attempt::Unauthorized,
            429 | 500 | 502 | 503 | 504 => Attempt::Transient {
                status: Some(status),
                retry_after,
            },
            _ => Attempt::Refused(GraphError::Status {
                status,
                code,
                request_id,
            }),
        }
    }
}

/// How one reject request ended.
enum Attempt {
    Accepted(u16),
    /// Worth another try: no answer, 429 or a 5xx.
    Transient {
        status: Option<u16>,
        retry_after: Option<Duration>,
    },
    Unauthorized,
    /// Graph refused for good (400, 403, 404, 409…).
    Refused(GraphError),
    Expired,
}

fn status_suffix(status: &Option<u16>) -> String {
    status
        .map(|status| format!(" (graph last answered {status})"))
        .unwrap_or_default()
}

fn code_suffix(code: &Option<String>) -> String {
    code.as_deref()
        .map(|code| format!(" ({code})"))
        .unwrap_or_default()
}

/// Builds `{base}/communications/calls/{id}/reject` with the id as one encoded segment.
pub fn reject_url(base: &Url, call_id: &str) -> Result<Url, GraphError> {
    action_url(base, call_id, "reject")
}

/// Builds `{base}/communications/calls/{id}/{action}` with the id as one encoded segment.
fn action_url(base: &Url, call_id: &str, action: &str) -> Result<Url, GraphError> {
    let unusable = call_id.is_empty() || call_id == "." || call_id == "..";
    if unusable {
        return Err(GraphError::UnusableCallId(call_id.to_owned()));
    }
    let segment = utf8_percent_encode(call_id, PATH_SEGMENT);
    let text = format!(
        "{}/communications/calls/{segment}/{action}",
        base.as_str().trim_end_matches('/')
    );
    Url::parse(&text).map_err(|_| GraphError::UnusableCallId(call_id.to_owned()))
}

fn parse_retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let text = header_text(headers, "retry-after")?;
    if let Ok(seconds) = text.trim().parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let when = httpdate::parse_http_date(text.trim()).ok()?;
    Some(
        when.duration_since(std::time::SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

fn header_text(headers: &reqwest::header::HeaderMap, name: &str) -> Option<String> {
    headers.get(name)?.to_str().ok().map(str::to_owned)
}

fn jitter(base: Duration) -> Duration {
    // Full jitter between half and the whole backoff keeps retries of many calls apart.
    let half = base / 2;
    half + half.mul_f64(rand::random::<f64>())
}

/// Transport errors without the URL's query or any header: enough to act on, nothing secret.
fn describe_transport(error: &reqwest::Error) -> String {
    let kind = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "connection failed"
    } else if error.is_body() || error.is_decode() {
        "bad response body"
    } else {
        "request failed"
    };
    let mut source = std::error::Error::source(error);
    let mut detail = String::new();
    while let Some(cause) = source {
        detail = cause.to_string();
        source = cause.source();
    }
    if detail.is_empty() {
        kind.to_owned()
    } else {
        format!("{kind}: {detail}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Url {
        Url::parse("https://graph.microsoft.com/v1.0").unwrap()
    }

    #[test]
    fn call_ids_become_one_encoded_segment() {
        let cases = [
            (
                "57dab8b1-894c-409a-b240-bd8beae78896",
                "57dab8b1-894c-409a-b240-bd8beae78896",
            ),
            ("a/b", "a%2Fb"),
            ("../../users", "..%2F..%2Fusers"),
            ("x?y=1#z", "x%3Fy%3D1%23z"),
            ("100%", "100%25"),
            ("ca ll", "ca%20ll"),
            ("appel-é", "appel-%C3%A9"),
            ("...", "..."),
        ];
        for (id, segment) in cases {
            let url = reject_url(&base(), id).unwrap();
            assert_eq!(
                url.as_str(),
                format!("https://graph.microsoft.com/v1.0/communications/calls/{segment}/reject"),
                "{id}"
            );
            assert_eq!(url.path_segments().unwrap().count(), 5, "{id}");
        }
    }

    #[test]
    fn empty_and_dot_ids_are_refused() {
        for id in ["", ".", ".."] {
            assert!(matches!(
                reject_url(&base(), id),
                Err(GraphError::UnusableCallId(_))
            ));
        }
    }

    #[test]
    fn reject_body_matches_the_documented_shape() {
        let body = RejectBody {
            reason: Reason::Busy,
            callback_uri: None,
        };
        assert_eq!(
            serde_json::to_string(&body).unwrap(),
            r#"{"reason":"busy"}"#
        );
        let body = RejectBody {
            reason: Reason::Forbidden,
            callback_uri: Some("https://bot.example.com/cb".into()),
        };
        assert_eq!(
            serde_json::to_string(&body).unwrap(),
            r#"{"reason":"forbidden","callbackUri":"https://bot.example.com/cb"}"#
        );
    }

    #[test]
    fn redirect_body_names_each_target_by_its_identity() {
        let redirect = Redirect {
            targets: vec![
                RedirectTarget::User("u-1".into()),
                RedirectTarget::Phone("+15550100".into()),
                RedirectTarget::ApplicationInstance("ai-1".into()),
            ],
            timeout: Some(30),
            mask_callee: None,
            mask_caller: Some(true),
        };
        let body = RedirectBody::new(&redirect, Some("https://bot.example.com/cb".into()), true);
        let plain = RedirectBody::new(&redirect, None, false);
        assert_eq!((plain.mask_callee, plain.mask_caller), (None, None));
        let json = serde_json::to_value(&body).unwrap();
        assert_eq!(json["timeout"], 30);
        assert_eq!(json["maskCaller"], true);
        assert!(json.get("maskCallee").is_none());
        assert_eq!(json["callbackUri"], "https://bot.example.com/cb");
        assert_eq!(
            json["targets"][1],
            serde_json::json!({
                "@odata.type": "#microsoft.graph.invitationParticipantInfo",
                "identity": {
                    "@odata.type": "#microsoft.graph.identitySet",
                    "phone": { "@odata.type": "#microsoft.graph.identity", "id": "+15550100" },
                },
            })
        );
        assert_eq!(json["targets"][0]["identity"]["user"]["id"], "u-1");
        assert_eq!(
            json["targets"][2]["identity"]["applicationInstance"]["id"],
            "ai-1"
        );
    }

    #[test]
    fn retry_after_accepts_seconds_and_http_dates() {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert("retry-after", "3".parse().unwrap());
        assert_eq!(parse_retry_after(&headers), Some(Duration::from_secs(3)));
        let later = std::time::SystemTime::now() + Duration::from_secs(5);
        headers.insert(
            "retry-after",
            httpdate::fmt_http_date(later).parse().unwrap(),
        );
        let wait = parse_retry_after(&headers).unwrap();
        assert!(
            wait <= Duration::from_secs(5) && wait >= Duration::from_secs(3),
            "{wait:?}"
        );
        headers.insert("retry-after", "soon".parse().unwrap());
        assert_eq!(parse_retry_after(&headers), None);
    }
}
