//! Gateway mode: callscreen stands in front of an existing calling bot. Notifications the
//! rules keep are passed on to the bot unchanged, with the headers Graph sent (its bearer
//! token included); the bot's answer goes back to Graph.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use hyper::HeaderMap;
use hyper::header;
use url::Url;

/// How often the bot's address is probed for `/readyz`.
const PROBE_INTERVAL: Duration = Duration::from_secs(5);

/// The bot's answer goes back to Graph; a larger one is refused (502).
const MAX_ANSWER: usize = 1024 * 1024;

/// Headers that belong to one connection, not to the request; never forwarded, and neither
/// are the headers `Connection` names.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "host",
    "content-length",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "expect",
    "proxy-authorization",
    "proxy-authenticate",
    "proxy-connection",
];

/// The bot behind callscreen.
pub struct Upstream {
    url: Url,
    http: reqwest::Client,
    reachable: AtomicBool,
}

/// The bot's answer, returned to Graph as it is.
#[derive(Debug)]
pub struct UpstreamAnswer {
    pub status: u16,
    pub content_type: Option<header::HeaderValue>,
    pub content_encoding: Option<header::HeaderValue>,
    pub body: Bytes,
}

impl Upstream {
    pub fn new(url: Url, timeout: Duration) -> anyhow::Result<Upstream> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(2)))
            // The bot answers where it is configured; a redirect would carry Graph's token
            // somewhere nobody chose.
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Upstream {
            url,
            http,
            reachable: AtomicBool::new(true),
        })
    }

    /// The bot's URL without credentials or query, for logs, errors and `/readyz`.
    pub fn display_url(&self) -> String {
        let mut shown = self.url.clone();
        let _ = shown.set_username("");
        let _ = shown.set_password(None);
        shown.set_query(None);
        shown.to_string()
    }

    /// Whether the last probe or forward reached the bot.
    pub fn is_reachable(&self) -> bool {
        self.reachable.load(Ordering::Relaxed)
    }

    /// Passes a notification on: same method (POST), the headers Graph sent except the
    /// hop-by-hop ones, and `body`. `suffix` is the part of the request path below the
    /// notification path (a per-call callback URI), `query` the request's query string;
    /// both are appended to the bot's URL.
    pub async fn forward(
        &self,
        headers: &HeaderMap,
        suffix: &str,
        query: Option<&str>,
        body: Bytes,
    ) -> Result<UpstreamAnswer, String> {
        let mut target = self.url.clone();
        if !suffix.is_empty() {
            let path = format!("{}{suffix}", target.path().trim_end_matches('/'));
            target.set_path(&path);
        }
        if let Some(query) = query {
            target.set_query(Some(query));
        }
        let sent = self
            .http
            .post(target)
            .headers(forwardable(headers))
            .body(body)
            .send()
            .await;
        let response = match sent {
            Ok(response) => response,
            Err(error) => {
                self.reachable.store(false, Ordering::Relaxed);
                let reason = if error.is_timeout() {
                    "did not answer in time"
                } else {
                    "is unreachable"
                };
                return Err(format!("the bot at {} {reason}", self.display_url()));
            }
        };
        self.reachable.store(true, Ordering::Relaxed);
        let status = response.status().as_u16();
        let content_type = response.headers().get(header::CONTENT_TYPE).cloned();
        let content_encoding = response.headers().get(header::CONTENT_ENCODING).cloned();
        let body = read_limited(response).await?;
        Ok(UpstreamAnswer {
            status,
            content_type,
            content_encoding,
            body,
        })
    }

    /// Probes the bot's address with a TCP connection every few seconds, so `/readyz` shows
    /// an unreachable bot before a call needs it.
    pub fn spawn_probe(self: Arc<Self>) {
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(PROBE_INTERVAL);
            loop {
                ticks.tick().await;
                let reachable = self.probe().await;
                let was = self.reachable.swap(reachable, Ordering::Relaxed);
                let upstream = self.display_url();
                if was && !reachable {
                    tracing::warn!(%upstream, "the bot behind callscreen is down");
                } else if !was && reachable {
                    tracing::info!(%upstream, "the bot behind callscreen is up");
                }
            }
        });
    }

    async fn probe(&self) -> bool {
        let Some(addresses) = self.url.socket_addrs(|| None).ok() else {
            return false;
        };
        for address in addresses {
            let connect = tokio::net::TcpStream::connect(address);
            if let Ok(Ok(_)) = tokio::time::timeout(Duration::from_secs(1), connect).await {
                return true;
            }
        }
        false
    }
}

/// Graph's headers minus the hop-by-hop ones and those `Connection` names.
fn forwardable(headers: &HeaderMap) -> HeaderMap {
    let named: Vec<String> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(|name| name.trim().to_ascii_lowercase())
        .collect();
    let mut outgoing = HeaderMap::with_capacity(headers.len());
    for (name, value) in headers {
        let name_text = name.as_str();
        if HOP_BY_HOP.contains(&name_text) || named.iter().any(|named| named == name_text) {
            continue;
        }
        outgoing.append(name.clone(), value.clone());
    }
    outgoing
}

/// The bot's answer body, refused past [`MAX_ANSWER`] or when it arrives incomplete.
async fn read_limited(mut response: reqwest::Response) -> Result<Bytes, String> {
    let mut body = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > MAX_ANSWER {
                    return Err("the bot's answer is larger than 1 MiB".into());
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(Bytes::from(body)),
            Err(_) => return Err("the bot's answer broke off".into()),
        }
    }
}

/// The body to forward when only some elements of a batch are kept: the same top-level
/// object, with `value` holding the kept elements in their order.
pub fn partial_batch(
    envelope: &serde_json::Map<String, serde_json::Value>,
    elements: &[serde_json::Value],
    kept: &[bool],
) -> Bytes {
    let mut root = envelope.clone();
    let value = elements
        .iter()
        .zip(kept)
        .filter(|(_, kept)| **kept)
        .map(|(element, _)| element.clone())
        .collect();
    root.insert("value".into(), serde_json::Value::Array(value));
    Bytes::from(serde_json::to_vec(&root).expect("JSON values serialise"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_and_those_connection_names_stay_behind() {
        let mut headers = HeaderMap::new();
        headers.insert("authorization", "Bearer t".parse().unwrap());
        headers.insert("connection", "keep-alive, x-hop".parse().unwrap());
        headers.insert("keep-alive", "timeout=5".parse().unwrap());
        headers.insert("x-hop", "1".parse().unwrap());
        headers.insert("expect", "100-continue".parse().unwrap());
        headers.insert("host", "bot.example.com".parse().unwrap());
        headers.insert("x-microsoft-skype-chain-id", "c".parse().unwrap());
        let kept = forwardable(&headers);
        let mut names: Vec<&str> = kept.keys().map(|name| name.as_str()).collect();
        names.sort();
        assert_eq!(names, ["authorization", "x-microsoft-skype-chain-id"]);
    }

    #[test]
    fn the_shown_url_carries_no_credentials() {
        let url = Url::parse("http://user:pw@127.0.0.1:9000/api/calls?key=s").unwrap();
        let upstream = Upstream::new(url, Duration::from_secs(1)).unwrap();
        assert_eq!(upstream.display_url(), "http://127.0.0.1:9000/api/calls");
    }

    #[test]
    fn a_partial_batch_keeps_the_envelope_and_the_order() {
        let envelope: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(r##"{"@odata.type":"#microsoft.graph.commsNotifications"}"##)
                .unwrap();
        let elements = vec![
            serde_json::json!({"n": 1}),
            serde_json::json!({"n": 2}),
            serde_json::json!({"n": 3}),
        ];
        let body = partial_batch(&envelope, &elements, &[true, false, true]);
        let parsed: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            parsed,
            serde_json::json!({
                "@odata.type": "#microsoft.graph.commsNotifications",
                "value": [{"n": 1}, {"n": 3}],
            })
        );
    }
}
