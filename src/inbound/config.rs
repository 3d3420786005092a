//! What an inbound token must look like: accepted audiences, issuers and tenants, where the
//! signing keys are published, and the per-cloud defaults for those last two.

use std::time::Duration;

use url::Url;

/// The Microsoft cloud the bot is registered in; picks default issuers and key metadata.
///
/// Only [`Cloud::Public`] is documented for Graph calling notifications. The sovereign presets
/// reuse the Bot Framework values Microsoft publishes for messaging bots in those clouds; no
/// source confirms that the calling platform signs webhooks with the same keys there, so treat
/// them as a starting point and set `issuers` / `openid_config_url` explicitly once a real
/// notification has been seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Cloud {
    /// Commercial cloud. Metadata `https://api.aps.skype.com/v1/.well-known/OpenIdConfiguration`,
    /// issuers `https://api.botframework.com` (documented for calling) and
    /// `https://graph.microsoft.com` (accepted by Microsoft's calling sample).
    #[default]
    Public,
    /// US Government GCC High. Issuer `https://api.botframework.us`, metadata
    /// `https://login.botframework.azure.us/v1/.well-known/openidconfiguration`: Bot Framework
    /// messaging values, unconfirmed for calling webhooks.
    UsGov,
    /// US Government DoD. Same Bot Framework values as [`Cloud::UsGov`] (Microsoft's GCC High
    /// guide lists them for DoD too), unconfirmed for calling webhooks.
    UsGovDod,
    /// China, operated by 21Vianet. Issuer `https://api.botframework.azure.cn`, metadata
    /// `https://login.botframework.azure.cn/v1/.well-known/openidconfiguration`: Bot Framework
    /// messaging values, unconfirmed for calling webhooks.
    China,
}

impl Cloud {
    /// Names accepted by [`Cloud::parse`], for error messages and docs.
    pub const NAMES: &'static str = "public, usgov, usgovdod, china";

    /// Parses a config value; case, `-` and `_` are ignored (`us-gov-dod` = `USGovDoD`).
    pub fn parse(name: &str) -> Option<Cloud> {
        let folded: String = name
            .chars()
            .filter(|c| *c != '-' && *c != '_')
            .map(|c| c.to_ascii_lowercase())
            .collect();
        match folded.as_str() {
            "public" => Some(Cloud::Public),
            "usgov" => Some(Cloud::UsGov),
            "usgovdod" => Some(Cloud::UsGovDod),
            "china" => Some(Cloud::China),
            _ => None,
        }
    }

    /// Token issuers accepted when the config names none.
    pub fn issuers(self) -> &'static [&'static str] {
        match self {
            Cloud::Public => &[
                "https://api.botframework.com",
                "https://graph.microsoft.com",
            ],
            Cloud::UsGov | Cloud::UsGovDod => &["https://api.botframework.us"],
            Cloud::China => &["https://api.botframework.azure.cn"],
        }
    }

    /// OpenID metadata document whose `jwks_uri` lists the signing keys.
    pub fn openid_config_url(self) -> &'static str {
        match self {
            Cloud::Public => "https://api.aps.skype.com/v1/.well-known/OpenIdConfiguration",
            Cloud::UsGov | Cloud::UsGovDod => {
                "https://login.botframework.azure.us/v1/.well-known/openidconfiguration"
            }
            Cloud::China => {
                "https://login.botframework.azure.cn/v1/.well-known/openidconfiguration"
            }
        }
    }
}

/// Validated settings for [`JwtVerifier`](super::JwtVerifier); build with
/// [`InboundAuthConfig::from_parts`].
#[derive(Debug, Clone)]
pub struct InboundAuthConfig {
    pub(super) audiences: Vec<String>,
    pub(super) issuers: Vec<String>,
    pub(super) openid_config_url: Url,
    /// Lowercased, since tenant ids are GUIDs and their case carries no meaning.
    pub(super) tenant_ids: Vec<String>,
    pub(super) clock_skew: Duration,
    pub(super) refresh_interval: Duration,
    pub(super) min_refetch_interval: Duration,
}

impl InboundAuthConfig {
    /// Default allowance for clocks that disagree, as in the Bot Framework validators.
    pub const DEFAULT_CLOCK_SKEW: Duration = Duration::from_secs(5 * 60);
    /// Default time between scheduled key refreshes.
    pub const DEFAULT_REFRESH_INTERVAL: Duration = Duration::from_secs(24 * 60 * 60);
    /// Default least time between two unscheduled key fetches.
    pub const DEFAULT_MIN_REFETCH_INTERVAL: Duration = Duration::from_secs(60);

    /// Checks and combines the `[inbound]` settings.
    ///
    /// `cloud` (default public) supplies `issuers` and `openid_config_url` unless they are given.
    /// `audience` must list at least one non-empty app id. `openid_config_url` must be an
    /// http(s) URL with a host; plain http is meant for tests against a local server.
    /// `tenant_ids` empty means any tenant, though a token must still name one.
    pub fn from_parts(
        cloud: Option<&str>,
        audience: Vec<String>,
        issuers: Option<Vec<String>>,
        openid_config_url: Option<String>,
        tenant_ids: Vec<String>,
    ) -> Result<Self, String> {
        let cloud = match cloud {
            None => Cloud::default(),
            Some(name) => Cloud::parse(name)
                .ok_or_else(|| format!("inbound.cloud {name:?} is not one of {}", Cloud::NAMES))?,
        };

        let audiences = non_empty_list("inbound.audience", audience)?;
        let issuers = match issuers {
            Some(list) => non_empty_list("inbound.issuers", list)?,
            None => cloud.issuers().iter().map(|s| s.to_string()).collect(),
        };

        let raw_url = openid_config_url.unwrap_or_else(|| cloud.openid_config_url().to_string());
        let openid_config_url = parse_http_url("inbound.openid_config_url", &raw_url)?;

        let mut tenants = Vec::with_capacity(tenant_ids.len());
        for tenant in tenant_ids {
            let tenant = tenant.trim();
            if tenant.is_empty() {
                return Err("inbound.tenant_ids must not contain an empty entry".to_string());
            }
            tenants.push(tenant.to_ascii_lowercase());
        }

        Ok(InboundAuthConfig {
            audiences,
            issuers,
            openid_config_url,
            tenant_ids: tenants,
            clock_skew: Self::DEFAULT_CLOCK_SKEW,
            refresh_interval: Self::DEFAULT_REFRESH_INTERVAL,
            min_refetch_interval: Self::DEFAULT_MIN_REFETCH_INTERVAL,
        })
    }

    /// How far `exp` and `nbf` may be off; whole seconds count, the rest is dropped.
    pub fn with_clock_skew(mut self, skew: Duration) -> Self {
        self.clock_skew = skew;
        self
    }

    /// Time between scheduled key refreshes; at least one second.
    pub fn with_refresh_interval(mut self, interval: Duration) -> Self {
        self.refresh_interval = interval.max(Duration::from_secs(1));
        self
    }

    /// Least time between unscheduled fetches: after an unknown `kid`, or to retry a failed
    /// fetch. It bounds how hard forged tokens can make us hit the key endpoint.
    pub fn with_min_refetch_interval(mut self, interval: Duration) -> Self {
        self.min_refetch_interval = interval;
        self
    }

    pub fn audiences(&self) -> &[String] {
        &self.audiences
    }

    pub fn issuers(&self) -> &[String] {
        &self.issuers
    }

    pub fn openid_config_url(&self) -> &Url {
        &self.openid_config_url
    }

    /// Allowed tenants, lowercased; empty means any.
    pub fn tenant_ids(&self) -> &[String] {
        &self.tenant_ids
    }

    pub fn clock_skew(&self) -> Duration {
        self.clock_skew
    }

    pub fn refresh_interval(&self) -> Duration {
        self.refresh_interval
    }

    pub fn min_refetch_interval(&self) -> Duration {
        self.min_refetch_interval
    }
}

fn non_empty_list(key: &str, list: Vec<String>) -> Result<Vec<String>, String> {
    if list.is_empty() {
        return Err(format!("{key} must list at least one value"));
    }
    let mut out = Vec::with_capacity(list.len());
    for item in list {
        let item = item.trim();
        if item.is_empty() {
            return Err(format!("{key} must not contain an empty entry"));
        }
        out.push(item.to_string());
    }
    Ok(out)
}

/// Parses `raw` as an absolute http(s) URL with a host.
pub(super) fn parse_http_url(key: &str, raw: &str) -> Result<Url, String> {
    let url = Url::parse(raw).map_err(|e| format!("{key} {raw:?} is not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("{key} {raw:?} must use http or https"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("{key} {raw:?} has no host"));
    }
    Ok(url)
}
