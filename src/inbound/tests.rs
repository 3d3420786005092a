//! Verifier tests against a fake key endpoint on 127.0.0.1, with tokens signed by the
//! throwaway keys in `testdata/`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::Mutex as StdMutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::*;

const SIGNER: &[u8] = include_bytes!("testdata/signer.key.der");
const ROTATED: &[u8] = include_bytes!("testdata/rotated.key.der");
const ATTACKER: &[u8] = include_bytes!("testdata/attacker.key.der");
const X5C_KEY: &[u8] = include_bytes!("testdata/x5c.key.der");
const X5C_CERT: &[u8] = include_bytes!("testdata/x5c.crt.der");
const SIGNER_PUBLIC_PEM: &[u8] = include_bytes!("testdata/signer.pub.pem");

const APP_ID: &str = "8b5a6f3e-0c2d-4f43-9a61-2f0e7d9c1b10";
const TENANT: &str = "1fdd12d0-4620-44ed-baec-459b611f84b2";
const ISSUER: &str = "https://api.botframework.com";

// === fake key endpoint ===

struct FakeIdp {
    addr: SocketAddr,
    metadata_up: AtomicBool,
    jwks: StdMutex<String>,
    metadata_hits: AtomicUsize,
    jwks_hits: AtomicUsize,
}

impl FakeIdp {
    async fn serve(jwks: Value) -> Arc<FakeIdp> {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let idp = Arc::new(FakeIdp {
            addr: listener.local_addr().unwrap(),
            metadata_up: AtomicBool::new(true),
            jwks: StdMutex::new(jwks.to_string()),
            metadata_hits: AtomicUsize::new(0),
            jwks_hits: AtomicUsize::new(0),
        });
        let server = Arc::clone(&idp);
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                tokio::spawn(Arc::clone(&server).answer(stream));
            }
        });
        idp
    }

    /// One request per connection, answered with `Connection: close`.
    async fn answer(self: Arc<Self>, mut stream: tokio::net::TcpStream) {
        let mut request = Vec::new();
        let mut buf = [0u8; 1024];
        while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < 16 * 1024 {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => request.extend_from_slice(&buf[..n]),
            }
        }
        let request = String::from_utf8_lossy(&request);
        let path = request.split_whitespace().nth(1).unwrap_or("").to_string();

        let (status, body) = match path.as_str() {
            "/openid" => {
                self.metadata_hits.fetch_add(1, Ordering::SeqCst);
                if self.metadata_up.load(Ordering::SeqCst) {
                    let jwks_uri = format!("http://{}/keys", self.addr);
                    (
                        "200 OK",
                        json!({ "issuer": ISSUER, "jwks_uri": jwks_uri }).to_string(),
                    )
                } else {
                    ("503 Service Unavailable", "{}".to_string())
                }
            }
            "/keys" => {
                self.jwks_hits.fetch_add(1, Ordering::SeqCst);
                ("200 OK", self.jwks.lock().unwrap().clone())
            }
            _ => ("404 Not Found", "{}".to_string()),
        };
        let response = format!(
            "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
             connection: close\r\n\r\n{body}",
            body.len()
        );
        let _ = stream.write_all(response.as_bytes()).await;
        let _ = stream.shutdown().await;
    }

    fn metadata_url(&self) -> String {
        format!("http://{}/openid", self.addr)
    }

    fn set_jwks(&self, jwks: Value) {
        *self.jwks.lock().unwrap() = jwks.to_string();
    }

    fn jwks_hits(&self) -> usize {
        self.jwks_hits.load(Ordering::SeqCst)
    }
}

// === keys, tokens and verifiers ===

fn jwk(private_der: &[u8], kid: &str) -> Value {
    let mut jwk =
        Jwk::from_encoding_key(&EncodingKey::from_rsa_der(private_der), Algorithm::RS256).unwrap();
    jwk.common.key_id = Some(kid.to_string());
    serde_json::to_value(jwk).unwrap()
}

fn jwks(keys: &[(&[u8], &str)]) -> Value {
    json!({ "keys": keys.iter().map(|(der, kid)| jwk(der, kid)).collect::<Vec<_>>() })
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn good_claims() -> Value {
    let now = now();
    json!({
        "iss": ISSUER,
        "aud": APP_ID,
        "tid": TENANT,
        "iat": now,
        "nbf": now - 10,
        "exp": now + 3600,
    })
}

fn sign_with(alg: Algorithm, key: &EncodingKey, kid: &str, claims: &Value) -> String {
    let mut header = Header::new(alg);
    header.kid = Some(kid.to_string());
    jsonwebtoken::encode(&header, claims, key).unwrap()
}

fn sign(private_der: &[u8], kid: &str, claims: &Value) -> String {
    sign_with(
        Algorithm::RS256,
        &EncodingKey::from_rsa_der(private_der),
        kid,
        claims,
    )
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// A client that can only reach what the tests name (127.0.0.1) and ignores proxy settings.
fn http_client() -> reqwest::Client {
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(rustls::RootCertStore::empty())
    .with_no_client_auth();
    reqwest::Client::builder()
        .no_proxy()
        .tls_backend_preconfigured(tls)
        .build()
        .unwrap()
}

fn config_for(idp: &FakeIdp) -> InboundAuthConfig {
    InboundAuthConfig::from_parts(
        None,
        vec![APP_ID.to_string()],
        None,
        Some(idp.metadata_url()),
        vec![],
    )
    .unwrap()
}

async fn start(config: InboundAuthConfig) -> Arc<JwtVerifier> {
    Arc::new(JwtVerifier::start(config, http_client()).await)
}

async fn signer_setup() -> (Arc<FakeIdp>, Arc<JwtVerifier>) {
    let idp = FakeIdp::serve(jwks(&[(SIGNER, "signer")])).await;
    let verifier = start(config_for(&idp)).await;
    (idp, verifier)
}

async fn refused(verifier: &JwtVerifier, token: &str) -> AuthError {
    verifier.verify(Some(&bearer(token))).await.unwrap_err()
}

// === accepted tokens ===

#[tokio::test]
async fn good_token_is_accepted_and_names_the_tenant() {
    let (_idp, verifier) = signer_setup().await;
    assert!(verifier.has_keys());

    let token = sign(SIGNER, "signer", &good_claims());
    let caller = verifier.verify(Some(&bearer(&token))).await.unwrap();

    assert_eq!(
        caller,
        VerifiedCaller {
            tenant_id: TENANT.into(),
            app_id: APP_ID.into()
        }
    );
    assert_eq!(
        (verifier.accepted_total(), verifier.rejected_total()),
        (1, 0)
    );
}

#[tokio::test]
async fn graph_issuer_and_lowercase_scheme_are_accepted() {
    let (_idp, verifier) = signer_setup().await;
    let mut claims = good_claims();
    claims["iss"] = json!("https://graph.microsoft.com");
    let token = sign(SIGNER, "signer", &claims);

    assert!(
        verifier
            .verify(Some(&format!("bearer  {token} ")))
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn audience_list_naming_the_bot_is_accepted() {
    let (_idp, verifier) = signer_setup().await;
    let mut claims = good_claims();
    claims["aud"] = json!(["someone-else", APP_ID]);
    let token = sign(SIGNER, "signer", &claims);

    let caller = verifier.verify(Some(&bearer(&token))).await.unwrap();
    assert_eq!(caller.app_id, APP_ID);
}

#[tokio::test]
async fn clock_skew_allows_a_token_just_past_its_expiry() {
    let (_idp, verifier) = signer_setup().await;
    let mut claims = good_claims();
    claims["exp"] = json!(now() - 120);
    claims["nbf"] = json!(now() + 120);
    let token = sign(SIGNER, "signer", &claims);

    assert!(verifier.verify(Some(&bearer(&token))).await.is_ok());
}

#[tokio::test]
async fn key_published_only_as_x5c_certificate_verifies() {
    let jwks = json!({ "keys": [{
        "kty": "RSA",
        "kid": "cert-only",
        "use": "sig",
        "x5c": [STANDARD.encode(X5C_CERT)],
    }]});
    let idp = FakeIdp::serve(jwks).await;
    let verifier = start(config_for(&idp)).await;

    let token = sign(X5C_KEY, "cert-only", &good_claims());
    assert!(verifier.verify(Some(&bearer(&token))).await.is_ok());
}

// === refused requests, one reason each ===

#[tokio::test]
async fn header_problems_are_refused_with_their_reason() {
    let (_idp, verifier) = signer_setup().await;
    let token = sign(SIGNER, "signer", &good_claims());

    assert_eq!(verifier.verify(None).await, Err(AuthError::MissingHeader));
    let basic = format!("Basic {token}");
    assert_eq!(
        verifier.verify(Some(&basic)).await,
        Err(AuthError::NotBearer)
    );
    assert_eq!(
        verifier.verify(Some(&token)).await,
        Err(AuthError::NotBearer)
    );
    assert_eq!(
        verifier.verify(Some("Bearer")).await,
        Err(AuthError::MalformedToken)
    );
    assert_eq!(
        verifier.verify(Some("Bearer a.b")).await,
        Err(AuthError::MalformedToken)
    );
    assert_eq!(
        verifier.verify(Some("Bearer !!.e30.x")).await,
        Err(AuthError::MalformedToken)
    );
    let huge = format!("Bearer {}", "a".repeat(MAX_TOKEN_BYTES + 1));
    assert_eq!(
        verifier.verify(Some(&huge)).await,
        Err(AuthError::MalformedToken)
    );
    assert_eq!(verifier.rejected_total(), 7);
}

#[tokio::test]
async fn alg_none_is_refused_without_a_key_lookup() {
    let (idp, verifier) = signer_setup().await;
    let hits = idp.jwks_hits();

    // An unknown kid would cause a key fetch if the algorithm were not checked first.
    let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","kid":"nobody","typ":"JWT"}"#);
    let claims = URL_SAFE_NO_PAD.encode(good_claims().to_string());
    for token in [
        format!("{header}.{claims}."),
        format!("{header}.{claims}.AAAA"),
    ] {
        assert_eq!(refused(&verifier, &token).await, AuthError::UnsupportedAlg);
    }
    assert_eq!(idp.jwks_hits(), hits);
}

#[tokio::test]
async fn hmac_signed_with_the_public_key_is_refused() {
    let (idp, verifier) = signer_setup().await;
    let hits = idp.jwks_hits();
    let secret = EncodingKey::from_secret(SIGNER_PUBLIC_PEM).unwrap();

    for alg in [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512] {
        let token = sign_with(alg, &secret, "signer", &good_claims());
        assert_eq!(
            refused(&verifier, &token).await,
            AuthError::UnsupportedAlg,
            "{alg:?}"
        );
    }
    assert_eq!(idp.jwks_hits(), hits);
}

#[tokio::test]
async fn other_rsa_algorithms_are_refused() {
    let (_idp, verifier) = signer_setup().await;
    let key = EncodingKey::from_rsa_der(SIGNER);

    for alg in [Algorithm::RS384, Algorithm::RS512, Algorithm::PS256] {
        let token = sign_with(alg, &key, "signer", &good_claims());
        assert_eq!(
            refused(&verifier, &token).await,
            AuthError::UnsupportedAlg,
            "{alg:?}"
        );
    }
}

#[tokio::test]
async fn another_key_under_the_good_kid_is_refused() {
    let (_idp, verifier) = signer_setup().await;
    let token = sign(ATTACKER, "signer", &good_claims());

    assert_eq!(refused(&verifier, &token).await, AuthError::BadSignature);
}

#[tokio::test]
async fn edited_claims_break_the_signature() {
    let (_idp, verifier) = signer_setup().await;
    let token = sign(SIGNER, "signer", &good_claims());
    let parts: Vec<&str> = token.split('.').collect();
    let mut claims = good_claims();
    claims["tid"] = json!("00000000-0000-0000-0000-000000000000");
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(claims.to_string()),
        parts[2]
    );

    assert_eq!(refused(&verifier, &forged).await, AuthError::BadSignature);
}

#[tokio::test]
async fn claim_problems_are_refused_with_their_reason() {
    let (_idp, verifier) = signer_setup().await;
    let cases: Vec<(&str, Value, AuthError)> = vec![
        ("iss", json!("https://evil.example"), AuthError::WrongIssuer),
        ("iss", json!([ISSUER]), AuthError::MalformedToken),
        ("aud", json!("another-bot"), AuthError::WrongAudience),
        ("aud", json!(["another-bot"]), AuthError::WrongAudience),
        ("exp", json!(now() - 600), AuthError::Expired),
        ("nbf", json!(now() + 600), AuthError::NotYetValid),
        ("tid", json!(""), AuthError::MissingTenant),
        ("tid", json!(42), AuthError::MalformedToken),
    ];
    for (claim, value, expected) in cases {
        let mut claims = good_claims();
        claims[claim] = value.clone();
        let token = sign(SIGNER, "signer", &claims);
        assert_eq!(
            refused(&verifier, &token).await,
            expected,
            "{claim} = {value}"
        );
    }

    for (claim, expected) in [
        ("tid", AuthError::MissingTenant),
        ("exp", AuthError::MissingClaim("exp")),
        ("iss", AuthError::MissingClaim("iss")),
        ("aud", AuthError::MissingClaim("aud")),
    ] {
        let mut claims = good_claims();
        claims.as_object_mut().unwrap().remove(claim);
        let token = sign(SIGNER, "signer", &claims);
        assert_eq!(
            refused(&verifier, &token).await,
            expected,
            "without {claim}"
        );
    }
}

#[tokio::test]
async fn tenant_allow_list_is_enforced_ignoring_case() {
    let idp = FakeIdp::serve(jwks(&[(SIGNER, "signer")])).await;
    let config = InboundAuthConfig::from_parts(
        None,
        vec![APP_ID.to_string()],
        None,
        Some(idp.metadata_url()),
        vec![TENANT.to_ascii_uppercase()],
    )
    .unwrap();
    let verifier = start(config).await;

    let token = sign(SIGNER, "signer", &good_claims());
    assert!(verifier.verify(Some(&bearer(&token))).await.is_ok());

    let mut claims = good_claims();
    claims["tid"] = json!("72f988bf-86f1-41af-91ab-2d7cd011db47");
    let token = sign(SIGNER, "signer", &claims);
    assert_eq!(
        refused(&verifier, &token).await,
        AuthError::TenantNotAllowed
    );
}

#[tokio::test]
async fn error_text_never_repeats_the_token() {
    let (_idp, verifier) = signer_setup().await;
    let mut claims = good_claims();
    claims["aud"] = json!("another-bot");
    let tokens = [
        sign(SIGNER, "signer", &claims),
        sign(ATTACKER, "signer", &good_claims()),
        sign(SIGNER, "kid-nobody-knows", &good_claims()),
        "not-a-jwt".to_string(),
    ];
    for token in tokens {
        let err = refused(&verifier, &token).await;
        let text = format!("{err} {err:?}");
        for part in token.split('.').filter(|p| p.len() > 4) {
            assert!(!text.contains(part), "{text}");
        }
        assert!(!text.contains("kid-nobody-knows") && !text.contains("another-bot"));
    }
}

#[test]
fn reasons_are_distinct_snake_case_labels() {
    let all = [
        AuthError::MissingHeader,
        AuthError::NotBearer,
        AuthError::MalformedToken,
        AuthError::UnsupportedAlg,
        AuthError::UnknownKey,
        AuthError::BadSignature,
        AuthError::WrongIssuer,
        AuthError::WrongAudience,
        AuthError::Expired,
        AuthError::NotYetValid,
        AuthError::MissingClaim("exp"),
        AuthError::MissingTenant,
        AuthError::TenantNotAllowed,
        AuthError::NoKeysYet,
    ];
    let mut seen = std::collections::HashSet::new();
    for err in &all {
        let reason = err.reason();
        assert!(
            reason.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
            "{reason}"
        );
        assert!(seen.insert(reason), "{reason} used twice");
        let text = err.to_string();
        assert!(
            text.starts_with(char::is_lowercase) && !text.ends_with('.'),
            "{text}"
        );
    }
}

#[test]
fn verifier_can_be_shared_across_tasks() {
    fn shareable<T: Send + Sync + 'static>() {}
    shareable::<JwtVerifier>();
    shareable::<AuthError>();
}

// === key cache: unknown kids, rotation, outages ===

#[tokio::test]
async fn unknown_kid_refetches_once_per_interval() {
    let (idp, verifier) = signer_setup().await;
    assert_eq!(idp.jwks_hits(), 1);
    let token = sign(SIGNER, "unpublished", &good_claims());

    assert_eq!(refused(&verifier, &token).await, AuthError::UnknownKey);
    assert_eq!(idp.jwks_hits(), 2);

    // A second miss within the minute must not reach the endpoint again.
    assert_eq!(refused(&verifier, &token).await, AuthError::UnknownKey);
    assert_eq!(idp.jwks_hits(), 2);
}

#[tokio::test]
async fn unknown_kid_may_refetch_again_after_the_interval() {
    let idp = FakeIdp::serve(jwks(&[(SIGNER, "signer")])).await;
    let config = config_for(&idp).with_min_refetch_interval(Duration::from_millis(100));
    let verifier = start(config).await;
    let token = sign(SIGNER, "unpublished", &good_claims());

    assert_eq!(refused(&verifier, &token).await, AuthError::UnknownKey);
    assert_eq!(refused(&verifier, &token).await, AuthError::UnknownKey);
    assert_eq!(idp.jwks_hits(), 2);

    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(refused(&verifier, &token).await, AuthError::UnknownKey);
    assert_eq!(idp.jwks_hits(), 3);
}

#[tokio::test]
async fn concurrent_unknown_kids_share_one_refetch() {
    let (idp, verifier) = signer_setup().await;
    let token = sign(SIGNER, "unpublished", &good_claims());

    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let verifier = Arc::clone(&verifier);
            let header = bearer(&token);
            tokio::spawn(async move { verifier.verify(Some(&header)).await })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap(), Err(AuthError::UnknownKey));
    }
    assert_eq!(idp.jwks_hits(), 2);
}

#[tokio::test]
async fn rotated_key_is_accepted_after_one_refetch() {
    let (idp, verifier) = signer_setup().await;
    idp.set_jwks(jwks(&[(ROTATED, "rotated")]));

    let token = sign(ROTATED, "rotated", &good_claims());
    assert!(verifier.verify(Some(&bearer(&token))).await.is_ok());
    assert_eq!(idp.jwks_hits(), 2);

    // The old key left the set, so its tokens now fail (without another fetch this minute).
    let old = sign(SIGNER, "signer", &good_claims());
    assert_eq!(refused(&verifier, &old).await, AuthError::UnknownKey);
    assert_eq!(idp.jwks_hits(), 2);
}

#[tokio::test]
async fn unreachable_metadata_fails_closed_until_a_refresh_succeeds() {
    let idp = FakeIdp::serve(jwks(&[(SIGNER, "signer")])).await;
    idp.metadata_up.store(false, Ordering::SeqCst);
    let verifier = start(config_for(&idp)).await;
    let token = sign(SIGNER, "signer", &good_claims());

    assert!(!verifier.has_keys());
    // The first refusal may try the endpoint once more; the next must not.
    assert_eq!(refused(&verifier, &token).await, AuthError::NoKeysYet);
    assert_eq!(refused(&verifier, &token).await, AuthError::NoKeysYet);
    assert_eq!(idp.metadata_hits.load(Ordering::SeqCst), 2);

    idp.metadata_up.store(true, Ordering::SeqCst);
    assert_eq!(verifier.refresh().await.unwrap(), 1);
    assert!(verifier.has_keys());
    assert!(verifier.verify(Some(&bearer(&token))).await.is_ok());
}

#[tokio::test]
async fn timer_retries_a_failed_start_soon() {
    let idp = FakeIdp::serve(jwks(&[(SIGNER, "signer")])).await;
    idp.metadata_up.store(false, Ordering::SeqCst);
    let config = config_for(&idp).with_min_refetch_interval(Duration::from_millis(50));
    let verifier = start(config).await;
    assert!(!verifier.has_keys());

    let refresher = Arc::clone(&verifier).spawn_refresh();
    idp.metadata_up.store(true, Ordering::SeqCst);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !verifier.has_keys() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "refresh never succeeded"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    refresher.abort();

    let token = sign(SIGNER, "signer", &good_claims());
    assert!(verifier.verify(Some(&bearer(&token))).await.is_ok());
}

#[tokio::test]
async fn failed_refresh_keeps_the_previous_keys() {
    let (idp, verifier) = signer_setup().await;
    idp.set_jwks(json!({ "keys": "not a list" }));
    assert!(verifier.refresh().await.is_err());

    idp.set_jwks(json!({ "keys": [] }));
    assert!(matches!(
        verifier.refresh().await,
        Err(KeyFetchError::NoUsableKeys { .. })
    ));

    let token = sign(SIGNER, "signer", &good_claims());
    assert!(verifier.verify(Some(&bearer(&token))).await.is_ok());
}

#[tokio::test]
async fn unusable_jwks_entries_are_skipped() {
    let mut small_key = jwk(SIGNER, "short");
    small_key["n"] = json!(URL_SAFE_NO_PAD.encode([0xC5u8; 128]));
    let mut encryption_key = jwk(ROTATED, "enc");
    encryption_key["use"] = json!("enc");
    let mut no_kid = jwk(ROTATED, "x");
    no_kid.as_object_mut().unwrap().remove("kid");
    let jwks = json!({ "keys": [
        { "kty": "EC", "kid": "ec", "crv": "P-256", "x": "AA", "y": "AA" },
        { "kty": "RSA", "kid": "empty" },
        { "kty": "RSA", "kid": "junk", "x5c": ["not base64!"] },
        small_key,
        encryption_key,
        no_kid,
        "not an object",
        jwk(SIGNER, "signer"),
        jwk(ATTACKER, "signer"),
    ]});
    let idp = FakeIdp::serve(jwks).await;
    let verifier = start(config_for(&idp)).await;

    assert_eq!(verifier.key_count(), 1);
    let token = sign(SIGNER, "signer", &good_claims());
    assert!(verifier.verify(Some(&bearer(&token))).await.is_ok());
}

#[tokio::test]
async fn plain_http_jwks_from_https_metadata_is_refused() {
    let metadata = url::Url::parse("https://keys.example/openid").unwrap();
    assert!(keys::resolve_jwks_uri(&metadata, "http://keys.example/keys").is_err());
    assert!(keys::resolve_jwks_uri(&metadata, "ftp://keys.example/keys").is_err());
    assert_eq!(
        keys::resolve_jwks_uri(&metadata, "/v1/keys")
            .unwrap()
            .as_str(),
        "https://keys.example/v1/keys"
    );
}

// === configuration ===

fn parts(
    cloud: Option<&str>,
    audience: &[&str],
    issuers: Option<&[&str]>,
    url: Option<&str>,
) -> Result<InboundAuthConfig, String> {
    let strings = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    InboundAuthConfig::from_parts(
        cloud,
        strings(audience),
        issuers.map(strings),
        url.map(str::to_string),
        vec![],
    )
}

#[test]
fn public_cloud_is_the_default_preset() {
    let config = parts(None, &[APP_ID], None, None).unwrap();
    assert_eq!(
        config.issuers(),
        [
            "https://api.botframework.com",
            "https://graph.microsoft.com"
        ]
    );
    assert_eq!(
        config.openid_config_url().as_str(),
        "https://api.aps.skype.com/v1/.well-known/OpenIdConfiguration"
    );
    assert_eq!(config.clock_skew(), Duration::from_secs(300));
    assert_eq!(config.refresh_interval(), Duration::from_secs(86_400));
    assert_eq!(config.min_refetch_interval(), Duration::from_secs(60));
}

#[test]
fn cloud_names_pick_their_presets() {
    let gov = parts(Some("USGov"), &[APP_ID], None, None).unwrap();
    assert_eq!(gov.issuers(), ["https://api.botframework.us"]);
    let dod = parts(Some("us-gov-dod"), &[APP_ID], None, None).unwrap();
    assert_eq!(dod.openid_config_url(), gov.openid_config_url());
    let china = parts(Some("China"), &[APP_ID], None, None).unwrap();
    assert_eq!(china.issuers(), ["https://api.botframework.azure.cn"]);

    let err = parts(Some("mars"), &[APP_ID], None, None).unwrap_err();
    assert!(
        err.contains("\"mars\"") && err.contains(Cloud::NAMES),
        "{err}"
    );
}

#[test]
fn explicit_issuers_and_metadata_override_the_preset() {
    let config = parts(
        Some("china"),
        &[APP_ID],
        Some(&["https://issuer.example"]),
        Some("https://keys.example/openid"),
    )
    .unwrap();
    assert_eq!(config.issuers(), ["https://issuer.example"]);
    assert_eq!(
        config.openid_config_url().as_str(),
        "https://keys.example/openid"
    );
}

#[test]
fn bad_config_values_are_reported() {
    assert!(
        parts(None, &[], None, None)
            .unwrap_err()
            .contains("inbound.audience")
    );
    assert!(
        parts(None, &[" "], None, None)
            .unwrap_err()
            .contains("inbound.audience")
    );
    assert!(
        parts(None, &[APP_ID], Some(&[]), None)
            .unwrap_err()
            .contains("inbound.issuers")
    );
    for url in [
        "keys.example/openid",
        "ftp://keys.example/openid",
        "file:///etc/keys",
    ] {
        let err = parts(None, &[APP_ID], None, Some(url)).unwrap_err();
        assert!(
            err.contains("inbound.openid_config_url") && err.contains(url),
            "{err}"
        );
    }
    let err = InboundAuthConfig::from_parts(None, vec![APP_ID.into()], None, None, vec!["".into()])
        .unwrap_err();
    assert!(err.contains("inbound.tenant_ids"), "{err}");
}
