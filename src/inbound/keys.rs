//! The calling platform's signing keys: the OpenID metadata document names a JWKS, whose RSA
//! keys become verification keys indexed by `kid`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use jsonwebtoken::DecodingKey;
use rsa::pkcs8::DecodePublicKey as _;
use rsa::traits::PublicKeyParts as _;
use rustls::pki_types::CertificateDer;
use serde::Deserialize;
use tracing::{debug, warn};
use url::Url;

/// Both documents are a few kilobytes; the cap keeps a broken endpoint from filling memory.
const MAX_DOCUMENT_BYTES: usize = 1024 * 1024;
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// Shorter RSA keys are refused even if the key endpoint publishes them.
const MIN_RSA_BYTES: usize = 2048 / 8;

/// JWK `n`/`e` are unpadded base64url; padding is tolerated since it changes nothing.
const B64URL: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Why the signing keys could not be (re)loaded; the previous keys stay in use.
#[derive(Debug, thiserror::Error)]
pub enum KeyFetchError {
    #[error("fetching {url}: {source}")]
    Http {
        url: Url,
        #[source]
        source: reqwest::Error,
    },
    #[error("fetching {url}: status {status}")]
    Status { url: Url, status: u16 },
    #[error("fetching {url}: body exceeds {MAX_DOCUMENT_BYTES} bytes")]
    TooLarge { url: Url },
    #[error("parsing {url}: {source}")]
    Json {
        url: Url,
        #[source]
        source: serde_json::Error,
    },
    #[error("jwks_uri {uri:?} in the OpenID metadata is not usable: {reason}")]
    BadJwksUri { uri: String, reason: &'static str },
    #[error("{url} holds no usable RSA signing key")]
    NoUsableKeys { url: Url },
}

/// Verification keys by `kid`; empty until the first successful fetch.
#[derive(Default)]
pub(super) struct KeySet {
    by_kid: HashMap<String, Arc<DecodingKey>>,
}

impl KeySet {
    pub(super) fn get(&self, kid: &str) -> Option<Arc<DecodingKey>> {
        self.by_kid.get(kid).cloned()
    }

    pub(super) fn len(&self) -> usize {
        self.by_kid.len()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.by_kid.is_empty()
    }
}

#[derive(Deserialize)]
struct OpenIdMetadata {
    jwks_uri: String,
}

#[derive(Deserialize)]
struct JwksDocument {
    /// Kept as raw JSON so one odd entry (another key type, a field of the wrong type) is
    /// skipped instead of failing the whole set.
    keys: Vec<serde_json::Value>,
}

#[derive(Deserialize)]
struct RawJwk {
    kty: String,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default, rename = "use")]
    usage: Option<String>,
    #[serde(default)]
    n: Option<String>,
    #[serde(default)]
    e: Option<String>,
    #[serde(default)]
    x5c: Option<Vec<String>>,
}

/// Reads the metadata document at `metadata_url`, then the JWKS it names.
pub(super) async fn fetch(
    http: &reqwest::Client,
    metadata_url: &Url,
) -> Result<KeySet, KeyFetchError> {
    let metadata: OpenIdMetadata = get_json(http, metadata_url).await?;
    let jwks_url = resolve_jwks_uri(metadata_url, &metadata.jwks_uri)?;
    let document: JwksDocument = get_json(http, &jwks_url).await?;

    let set = key_set_from(document);
    if set.is_empty() {
        return Err(KeyFetchError::NoUsableKeys { url: jwks_url });
    }
    Ok(set)
}

pub(super) fn resolve_jwks_uri(metadata_url: &Url, raw: &str) -> Result<Url, KeyFetchError> {
    let bad = |reason| KeyFetchError::BadJwksUri {
        uri: raw.to_string(),
        reason,
    };
    let url = metadata_url.join(raw).map_err(|_| bad("not a URL"))?;
    match url.scheme() {
        "https" => Ok(url),
        // Keys fetched over plain http could be swapped in transit; only follow http when
        // the metadata itself came that way (a local test server).
        "http" if metadata_url.scheme() == "http" => Ok(url),
        "http" => Err(bad("http from an https metadata document")),
        _ => Err(bad("not http or https")),
    }
}

async fn get_json<T: serde::de::DeserializeOwned>(
    http: &reqwest::Client,
    url: &Url,
) -> Result<T, KeyFetchError> {
    let http_err = |source| KeyFetchError::Http {
        url: url.clone(),
        source,
    };
    let mut response = http
        .get(url.clone())
        .header(reqwest::header::ACCEPT, "application/json")
        .timeout(FETCH_TIMEOUT)
        .send()
        .await
        .map_err(http_err)?;

    let status = response.status();
    if !status.is_success() {
        return Err(KeyFetchError::Status {
            url: url.clone(),
            status: status.as_u16(),
        });
    }
    if response
        .content_length()
        .is_some_and(|len| len > MAX_DOCUMENT_BYTES as u64)
    {
        return Err(KeyFetchError::TooLarge { url: url.clone() });
    }

    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(http_err)? {
        if body.len() + chunk.len() > MAX_DOCUMENT_BYTES {
            return Err(KeyFetchError::TooLarge { url: url.clone() });
        }
        body.extend_from_slice(&chunk);
    }

    serde_json::from_slice(&body).map_err(|source| KeyFetchError::Json {
        url: url.clone(),
        source,
    })
}

fn key_set_from(document: JwksDocument) -> KeySet {
    let mut set = KeySet::default();
    for value in document.keys {
        let Ok(raw) = serde_json::from_value::<RawJwk>(value) else {
            debug!("jwks entry skipped: not a key object");
            continue;
        };
        let kid = raw.kid.clone().unwrap_or_default();
        match decoding_key(raw) {
            // Two keys under one kid would make the choice arbitrary; keep the first.
            Ok(_) if set.by_kid.contains_key(&kid) => {
                warn!(kid = %kid, "jwks lists a kid twice; keeping the first key");
            }
            Ok(key) => {
                set.by_kid.insert(kid, Arc::new(key));
            }
            Err(reason) => debug!(kid = %kid, reason, "jwks entry skipped"),
        }
    }
    set
}

fn decoding_key(raw: RawJwk) -> Result<DecodingKey, &'static str> {
    if raw.kty != "RSA" {
        return Err("not an RSA key");
    }
    if raw.kid.as_deref().is_none_or(str::is_empty) {
        return Err("no kid");
    }
    if raw.usage.as_deref().is_some_and(|usage| usage != "sig") {
        return Err("not a signing key");
    }

    let key = match (raw.n, raw.e, raw.x5c) {
        (Some(n), Some(e), _) => {
            let n = B64URL.decode(n).map_err(|_| "n is not base64url")?;
            let e = B64URL.decode(e).map_err(|_| "e is not base64url")?;
            rsa::PublicKey::new(
                rsa::BoxedUint::from_be_slice_vartime(&n),
                rsa::BoxedUint::from_be_slice_vartime(&e),
            )
            .map_err(|_| "n/e do not form an RSA public key")?
        }
        (_, _, Some(chain)) => {
            let first = chain.first().ok_or("x5c is empty")?;
            let der = STANDARD.decode(first).map_err(|_| "x5c is not base64")?;
            let der = CertificateDer::from(der);
            let cert = webpki::EndEntityCert::try_from(&der)
                .map_err(|_| "x5c certificate does not parse")?;
            rsa::PublicKey::from_public_key_der(cert.subject_public_key_info().as_ref())
                .map_err(|_| "x5c certificate does not hold an RSA key")?
        }
        _ => return Err("neither n/e nor x5c"),
    };

    if key.size() < MIN_RSA_BYTES {
        return Err("RSA key shorter than 2048 bits");
    }
    Ok(DecodingKey::from_rsa_raw_components(
        &key.n_bytes(),
        &key.e_bytes(),
    ))
}
