//! Authenticating Graph's webhook POSTs: the calling platform signs a JWT per request, and
//! [`JwtVerifier`] checks it against the platform's published keys before anything is parsed.
//!
//! Only RS256 is accepted. Keys come from an OpenID metadata document, refresh on a timer and
//! once more (rate limited) when a token names a key we have not seen. Until the first fetch
//! succeeds every request is refused: the verifier fails closed.

mod config;
mod keys;

#[cfg(test)]
mod tests;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use arc_swap::ArcSwap;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use tokio::sync::Mutex;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{debug, info, warn};

pub use config::{Cloud, InboundAuthConfig};
pub use keys::KeyFetchError;

use keys::KeySet;

/// Real tokens are about 1 KiB; anything far larger is refused before decoding it.
const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// Who sent an accepted webhook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedCaller {
    /// The token's `tid`, as sent.
    pub tenant_id: String,
    /// The configured audience (bot app id) the token was issued for.
    pub app_id: String,
}

/// Why a webhook's token was refused. Every variant maps to HTTP 401; none carries any part
/// of the token, so the text is safe to log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("authorization header is missing")]
    MissingHeader,
    #[error("authorization scheme is not bearer")]
    NotBearer,
    #[error("bearer token is malformed")]
    MalformedToken,
    #[error("token algorithm is not RS256")]
    UnsupportedAlg,
    #[error("token names no known signing key")]
    UnknownKey,
    #[error("token signature does not verify")]
    BadSignature,
    #[error("token issuer is not accepted")]
    WrongIssuer,
    #[error("token audience is not accepted")]
    WrongAudience,
    #[error("token has expired")]
    Expired,
    #[error("token is not valid yet")]
    NotYetValid,
    #[error("token lacks the {0} claim")]
    MissingClaim(&'static str),
    #[error("token names no tenant")]
    MissingTenant,
    #[error("token tenant is not allowed")]
    TenantNotAllowed,
    #[error("no signing keys loaded yet")]
    NoKeysYet,
}

impl AuthError {
    /// A short stable label for metrics and logs.
    pub fn reason(&self) -> &'static str {
        match self {
            AuthError::MissingHeader => "missing_header",
            AuthError::NotBearer => "not_bearer",
            AuthError::MalformedToken => "malformed_token",
            AuthError::UnsupportedAlg => "unsupported_alg",
            AuthError::UnknownKey => "unknown_key",
            AuthError::BadSignature => "bad_signature",
            AuthError::WrongIssuer => "wrong_issuer",
            AuthError::WrongAudience => "wrong_audience",
            AuthError::Expired => "expired",
            AuthError::NotYetValid => "not_yet_valid",
            AuthError::MissingClaim(_) => "missing_claim",
            AuthError::MissingTenant => "missing_tenant",
            AuthError::TenantNotAllowed => "tenant_not_allowed",
            AuthError::NoKeysYet => "no_keys",
        }
    }
}

/// Checks webhook tokens; share one in an `Arc` across connections.
pub struct JwtVerifier {
    config: InboundAuthConfig,
    http: reqwest::Client,
    validation: Validation,
    keys: ArcSwap<KeySet>,
    /// Serialises key fetches and remembers when the last unscheduled one started, so a burst
    /// of tokens with an unknown `kid` causes one fetch, not one each.
    fetch_gate: Mutex<Option<Instant>>,
    /// Counts finished fetch attempts; a caller that waited on the gate sees it move and knows
    /// someone else has just fetched.
    fetch_attempts: AtomicU64,
    last_fetch_ok: AtomicBool,
    accepted: AtomicU64,
    rejected: AtomicU64,
}

impl std::fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtVerifier")
            .field(
                "openid_config_url",
                &self.config.openid_config_url().as_str(),
            )
            .field("keys", &self.key_count())
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct TokenHeader {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
struct Claims {
    #[serde(default)]
    tid: Option<String>,
    #[serde(default)]
    aud: Option<OneOrMany>,
    /// Declared only so that an array-valued `iss` fails to parse: jsonwebtoken would accept
    /// one if any member matched.
    #[serde(default, rename = "iss")]
    _iss: Option<String>,
}

impl JwtVerifier {
    /// Builds the verifier and tries one key fetch (each document has a 10 s timeout). A
    /// failed fetch is logged, not returned: the daemon still starts, refuses tokens with
    /// [`AuthError::NoKeysYet`] and reports not-ready through [`JwtVerifier::has_keys`] until
    /// a later fetch succeeds.
    pub async fn start(config: InboundAuthConfig, http: reqwest::Client) -> JwtVerifier {
        let verifier = JwtVerifier::new(config, http);
        let _ = verifier.refresh().await;
        verifier
    }

    /// A verifier with no keys yet: every token is refused until the first fetch (see
    /// [`JwtVerifier::spawn_refresh`]) succeeds. For start-up that must not wait on the
    /// key server.
    pub fn new(config: InboundAuthConfig, http: reqwest::Client) -> JwtVerifier {
        let mut validation = Validation::new(Algorithm::RS256);
        validation.leeway = config.clock_skew().as_secs();
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.validate_aud = true;
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        validation.set_issuer(config.issuers());
        validation.set_audience(config.audiences());

        JwtVerifier {
            config,
            http,
            validation,
            keys: ArcSwap::from_pointee(KeySet::default()),
            fetch_gate: Mutex::new(None),
            fetch_attempts: AtomicU64::new(0),
            last_fetch_ok: AtomicBool::new(false),
            accepted: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
        }
    }

    pub fn config(&self) -> &InboundAuthConfig {
        &self.config
    }

    /// True once signing keys are loaded; the readiness probe's answer.
    pub fn has_keys(&self) -> bool {
        !self.keys.load().is_empty()
    }

    pub fn key_count(&self) -> usize {
        self.keys.load().len()
    }

    /// Tokens accepted since start.
    pub fn accepted_total(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }

    /// Tokens refused since start, for any reason.
    pub fn rejected_total(&self) -> u64 {
        self.rejected.load(Ordering::Relaxed)
    }

    /// Fetches the keys now, replacing the cached set on success and keeping it on failure.
    /// Returns how many keys were loaded. Failures are also logged here.
    pub async fn refresh(&self) -> Result<usize, KeyFetchError> {
        let _gate = self.fetch_gate.lock().await;
        self.fetch_locked().await
    }

    /// Refreshes on a timer: every `refresh_interval`, or after `min_refetch_interval` while
    /// the last fetch failed. The task holds only a weak reference and ends once the verifier
    /// is dropped; abort the handle to stop it sooner.
    pub fn spawn_refresh(self: Arc<Self>) -> JoinHandle<()> {
        let weak: Weak<Self> = Arc::downgrade(&self);
        drop(self);
        tokio::spawn(async move {
            // Fetch at once when no keys are loaded yet.
            if let Some(verifier) = weak.upgrade()
                && !verifier.has_keys()
            {
                let _ = verifier.refresh().await;
            }
            loop {
                let delay = match weak.upgrade() {
                    Some(verifier) => verifier.next_refresh_delay(),
                    None => return,
                };
                tokio::time::sleep(delay).await;
                let Some(verifier) = weak.upgrade() else {
                    return;
                };
                let _ = verifier.refresh().await;
            }
        })
    }

    fn next_refresh_delay(&self) -> Duration {
        if self.last_fetch_ok.load(Ordering::Relaxed) {
            self.config.refresh_interval()
        } else {
            self.config
                .min_refetch_interval()
                .max(Duration::from_secs(1))
        }
    }

    /// Checks the `Authorization` header value of one webhook request.
    pub async fn verify(&self, authorization: Option<&str>) -> Result<VerifiedCaller, AuthError> {
        let result = self.check(authorization).await;
        match &result {
            Ok(caller) => {
                self.accepted.fetch_add(1, Ordering::Relaxed);
                debug!(tenant = %caller.tenant_id, "inbound token accepted");
            }
            Err(err) => {
                self.rejected.fetch_add(1, Ordering::Relaxed);
                debug!(reason = err.reason(), "inbound token refused");
            }
        }
        result
    }

    async fn check(&self, authorization: Option<&str>) -> Result<VerifiedCaller, AuthError> {
        let token = bearer_token(authorization)?;

        // The algorithm is settled before any key is looked up, so `none`, HMAC with a public
        // key as the secret, and every other algorithm are refused without touching keys.
        let header = peek_header(token)?;
        if header.alg != "RS256" {
            return Err(AuthError::UnsupportedAlg);
        }
        let kid = header
            .kid
            .filter(|kid| !kid.is_empty())
            .ok_or(AuthError::UnknownKey)?;
        let key = self.key_for(&kid).await?;

        let data =
            jsonwebtoken::decode::<Claims>(token, &key, &self.validation).map_err(map_jwt_error)?;
        let claims = data.claims;

        let tenant_id = claims
            .tid
            .filter(|tid| !tid.trim().is_empty())
            .ok_or(AuthError::MissingTenant)?;
        let allowed = self.config.tenant_ids();
        if !allowed.is_empty() && !allowed.iter().any(|t| t.eq_ignore_ascii_case(&tenant_id)) {
            return Err(AuthError::TenantNotAllowed);
        }

        let audiences = self.config.audiences();
        let app_id = match claims.aud {
            Some(OneOrMany::One(aud)) => Some(aud),
            Some(OneOrMany::Many(list)) => list.into_iter().find(|a| audiences.contains(a)),
            None => None,
        }
        .filter(|aud| audiences.contains(aud))
        .ok_or(AuthError::WrongAudience)?;

        Ok(VerifiedCaller { tenant_id, app_id })
    }

    /// The key for `kid`, fetching the key set once more if it is unknown (or none is loaded)
    /// and no fetch happened within `min_refetch_interval`.
    async fn key_for(&self, kid: &str) -> Result<Arc<DecodingKey>, AuthError> {
        let attempts_seen = self.fetch_attempts.load(Ordering::Acquire);
        if let Some(key) = self.keys.load().get(kid) {
            return Ok(key);
        }

        self.refetch_unscheduled(attempts_seen).await;

        let keys = self.keys.load();
        match keys.get(kid) {
            Some(key) => Ok(key),
            None if keys.is_empty() => Err(AuthError::NoKeysYet),
            None => Err(AuthError::UnknownKey),
        }
    }

    async fn refetch_unscheduled(&self, attempts_seen: u64) {
        let mut last_unscheduled = self.fetch_gate.lock().await;
        if self.fetch_attempts.load(Ordering::Acquire) != attempts_seen {
            return;
        }
        let min_interval = self.config.min_refetch_interval();
        if last_unscheduled.is_some_and(|at| at.elapsed() < min_interval) {
            debug!("unscheduled key fetch skipped: one ran recently");
            return;
        }
        *last_unscheduled = Some(Instant::now());
        let _ = self.fetch_locked().await;
    }

    /// Fetches and stores the keys; callers hold `fetch_gate`.
    async fn fetch_locked(&self) -> Result<usize, KeyFetchError> {
        let url = self.config.openid_config_url();
        let result = keys::fetch(&self.http, url).await;

        let outcome = match result {
            Ok(set) => {
                let count = set.len();
                self.keys.store(Arc::new(set));
                info!(keys = count, url = %url, "inbound signing keys loaded");
                Ok(count)
            }
            Err(err) => {
                warn!(
                    error = %err,
                    kept = self.key_count(),
                    "inbound signing key fetch failed; keeping the previous keys"
                );
                Err(err)
            }
        };
        self.last_fetch_ok.store(outcome.is_ok(), Ordering::Relaxed);
        self.fetch_attempts.fetch_add(1, Ordering::Release);
        outcome
    }
}

fn bearer_token(authorization: Option<&str>) -> Result<&str, AuthError> {
    let value = authorization.ok_or(AuthError::MissingHeader)?.trim();
    let (scheme, rest) = value.split_once(char::is_whitespace).unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(AuthError::NotBearer);
    }
    let token = rest.trim();
    if token.is_empty() || token.len() > MAX_TOKEN_BYTES {
        return Err(AuthError::MalformedToken);
    }
    Ok(token)
}

/// Reads the JOSE header without trusting it, to choose the algorithm and key.
fn peek_header(token: &str) -> Result<TokenHeader, AuthError> {
    let mut parts = token.split('.');
    let (Some(header), Some(_payload), Some(_signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(AuthError::MalformedToken);
    };
    let bytes = URL_SAFE_NO_PAD
        .decode(header)
        .map_err(|_| AuthError::MalformedToken)?;
    serde_json::from_slice(&bytes).map_err(|_| AuthError::MalformedToken)
}

fn map_jwt_error(err: jsonwebtoken::errors::Error) -> AuthError {
    match err.kind() {
        ErrorKind::InvalidSignature => AuthError::BadSignature,
        ErrorKind::ExpiredSignature => AuthError::Expired,
        ErrorKind::ImmatureSignature => AuthError::NotYetValid,
        ErrorKind::InvalidIssuer => AuthError::WrongIssuer,
        ErrorKind::InvalidAudience => AuthError::WrongAudience,
        ErrorKind::MissingRequiredClaim(claim) => match claim.as_str() {
            "exp" => AuthError::MissingClaim("exp"),
            "iss" => AuthError::MissingClaim("iss"),
            "aud" => AuthError::MissingClaim("aud"),
            _ => AuthError::MalformedToken,
        },
        ErrorKind::InvalidAlgorithm
        | ErrorKind::MissingAlgorithm
        | ErrorKind::UnsupportedAlgorithm => AuthError::UnsupportedAlg,
        ErrorKind::InvalidRsaKey(_) | ErrorKind::InvalidKeyFormat => {
            // Keys are checked when loaded, so this means a published key we cannot use.
            warn!("a cached signing key could not verify a token");
            AuthError::BadSignature
        }
        _ => AuthError::MalformedToken,
    }
}
