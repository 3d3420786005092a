//! Gateway mode: callscreen stands in front of an existing calling bot. Notifications the
//! rules keep are passed on to the bot unchanged, with the headers Graph sent (its bearer
//! token included); the bot's answer goes back to Graph.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use hyper::HeaderMap;
use hyper::header::{self, HeaderName};
use url::Url;

/// How often the bot's address is probed for `/readyz`.
const PROBE_INTERVAL: Duration = Duration::from_secs(5);

/// Headers that belong to one connection, not to the request; never forwarded.
const HOP_BY_HOP: &[HeaderName] = &[
    header::CONNECTION,
    header::HOST,
    header::CONTENT_LENGTH,
    header::TRANSFER_ENCODING,
    header::TE,
    header::TRAILER,
    header::UPGRADE,
    header::PROXY_AUTHORIZATION,
    header::PROXY_AUTHENTICATE,
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

    pub fn url(&self) -> &Url {
        &self.url
    }

    /// Whether the last probe or forward reached the bot.
    pub fn is_reachable(&self) -> bool {
        self.reachable.load(Ordering::Relaxed)
    }

    /// Passes a notification on: same method (POST), the headers Graph sent except the
    /// hop-by-hop ones, and `body`.
    pub async fn forward(
        &self,
        headers: &HeaderMap,
        body: Bytes,
    ) -> Result<UpstreamAnswer, String> {
        let mut outgoing = headers.clone();
        for name in HOP_BY_HOP {
            outgoing.remove(name);
        }
        let sent = self
            .http
            .post(self.url.clone())
            .headers(outgoing)
            .body(body)
            .send()
            .await;
        let response = match sent {
            Ok(response) => response,
            Err(error) => {
                self.reachable.store(false, Ordering::Relaxed);
                let reason = if error.is_timeout() {
                    "timed out"
                } else {
                    "unreachable"
                };
                return Err(format!("the bot at {} is {reason}", self.url));
            }
        };
        self.reachable.store(true, Ordering::Relaxed);
        let status = response.status().as_u16();
        let content_type = response.headers().get(header::CONTENT_TYPE).cloned();
        let body = response.bytes().await.unwrap_or_default();
        Ok(UpstreamAnswer {
            status,
            content_type,
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
                if was && !reachable {
                    tracing::warn!(upstream = %self.url, "the bot behind callscreen is down");
                } else if !was && reachable {
                    tracing::info!(upstream = %self.url, "the bot behind callscreen is reachable");
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
