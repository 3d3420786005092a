//! Daemon configuration: the TOML file as written ([`RawConfig`]) and the validated
//! [`Config`] the daemon runs on. Every key has a default, so no file at all is a valid
//! configuration: loopback listener, `./rules`, dry-run, audit to stdout, no network.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use percent_encoding::utf8_percent_encode;
use serde::Deserialize;
use url::Url;

use crate::inbound::InboundAuthConfig;
use crate::tls::TlsFiles;

/// Where the secret is looked up when `client_secret_file` is not set: the file systemd
/// creates for `LoadCredential=client-secret:…`.
const CREDENTIAL_NAME: &str = "client-secret";
/// The environment variable that may carry the client secret.
pub const SECRET_ENV: &str = "CALLSCREEN_CLIENT_SECRET";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid {key} = {value:?}: {reason}")]
    Invalid {
        key: &'static str,
        value: String,
        reason: String,
    },
    #[error("enforce mode needs Graph credentials: {0}")]
    MissingCredentials(String),
    #[error("cannot read the secret in {path}")]
    Secret {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The config file as written; every field optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    listen: Option<String>,
    notification_path: Option<String>,
    rules: Option<PathBuf>,
    mode: Option<String>,
    answer_deadline: Option<String>,
    max_body: Option<String>,
    read_timeout: Option<String>,
    log_level: Option<String>,
    #[serde(default)]
    audit: RawAudit,
    #[serde(default)]
    graph: RawGraph,
    #[serde(default)]
    inbound: RawInbound,
    tls: Option<RawTls>,
    upstream: Option<RawUpstream>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUpstream {
    url: String,
    timeout: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAudit {
    path: Option<PathBuf>,
    #[serde(default)]
    redact: bool,
    redact_key_file: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGraph {
    base_url: Option<String>,
    token_url: Option<String>,
    scope: Option<String>,
    tenant_id: Option<String>,
    client_id: Option<String>,
    client_secret_file: Option<PathBuf>,
    default_callback_uri: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInbound {
    auth: Option<String>,
    #[serde(default)]
    audience: OneOrMany,
    issuers: Option<Vec<String>>,
    openid_config_url: Option<String>,
    cloud: Option<String>,
    #[serde(default)]
    tenant_ids: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    cert: PathBuf,
    key: PathBuf,
}

/// A key that takes one string or a list of them.
#[derive(Debug, Default, Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    #[default]
    None,
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    fn into_vec(self) -> Vec<String> {
        match self {
            OneOrMany::None => Vec::new(),
            OneOrMany::One(value) => vec![value],
            OneOrMany::Many(values) => values,
        }
    }
}

/// Command-line values that override the file.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub rules: Option<PathBuf>,
    pub listen: Option<String>,
    pub dry_run: bool,
}

/// A client secret. Its `Debug` and `Display` never show the value.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: String) -> Secret {
        Secret(value)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// What is needed to obtain a Graph token (client credentials grant).
#[derive(Debug, Clone)]
pub struct GraphCredentials {
    pub token_url: Url,
    pub scope: String,
    pub client_id: String,
    pub client_secret: Secret,
}

/// Enforce mode carries its credentials, so enforce without them cannot be represented.
#[derive(Debug, Clone)]
pub enum Mode {
    DryRun,
    Enforce(GraphCredentials),
}

impl Mode {
    pub fn name(&self) -> &'static str {
        match self {
            Mode::DryRun => "dry-run",
            Mode::Enforce(_) => "enforce",
        }
    }
}

/// How Graph's notification POSTs are authenticated.
#[derive(Debug, Clone)]
pub enum InboundAuth {
    /// Every POST is trusted: for tests, or behind a proxy that checks tokens itself.
    Off,
    /// Every POST must carry a bearer JWT from Graph's calling platform.
    Jwt(Box<InboundAuthConfig>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuditTarget {
    Stdout,
    File(PathBuf),
}

#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub notification_path: String,
    pub rules: PathBuf,
    pub mode: Mode,
    pub answer_deadline: Duration,
    pub max_body: usize,
    /// Limit for a client's TLS handshake, request headers, and body, each.
    pub read_timeout: Duration,
    /// A `tracing` filter (`info`, `callscreen=debug,warn`…); `RUST_LOG` wins over it.
    pub log_level: String,
    pub audit: AuditTarget,
    /// Graph's API root, e.g. `https://graph.microsoft.com/v1.0`, without a trailing `/`.
    pub graph_base_url: Url,
    pub default_callback_uri: Option<String>,
    pub inbound: InboundAuth,
    /// Native HTTPS; without it the listener speaks plain HTTP (behind a proxy).
    pub tls: Option<TlsFiles>,
    /// With `[audit] redact = true`: the key for hashing personal data in the audit log.
    pub redact_key: Option<Secret>,
    /// Gateway mode: the bot kept notifications are forwarded to.
    pub upstream: Option<UpstreamConfig>,
}

#[derive(Debug, Clone)]
pub struct UpstreamConfig {
    pub url: Url,
    /// For the whole forward, connection included; then Graph gets 502.
    pub timeout: Duration,
}

impl Config {
    /// Reads `path` (when given), applies `overrides` and validates the result.
    pub fn load(path: Option<&Path>, overrides: &Overrides) -> Result<Config, ConfigError> {
        Config::load_with(path, overrides, SecretSources::from_process())
    }

    /// Like [`Config::load`], but a client secret that cannot be read is no error: for
    /// validating a config file without the service's credentials.
    pub fn load_for_check(path: &Path, overrides: &Overrides) -> Result<Config, ConfigError> {
        let secrets = SecretSources {
            may_be_missing: true,
            ..SecretSources::from_process()
        };
        Config::load_with(Some(path), overrides, secrets)
    }

    fn load_with(
        path: Option<&Path>,
        overrides: &Overrides,
        secrets: SecretSources,
    ) -> Result<Config, ConfigError> {
        let (raw, base_dir) = match path {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.to_owned(),
                    source,
                })?;
                let raw =
                    toml::from_str::<RawConfig>(&text).map_err(|error| ConfigError::Parse {
                        path: path.to_owned(),
                        message: one_line(&text, &error),
                    })?;
                let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
                (raw, dir)
            }
            None => (RawConfig::default(), PathBuf::new()),
        };
        Config::from_raw(raw, &base_dir, overrides, &secrets)
    }

    /// Validates `raw`; relative paths resolve against `base_dir` (the config's folder).
    pub fn from_raw(
        raw: RawConfig,
        base_dir: &Path,
        overrides: &Overrides,
        secrets: &SecretSources,
    ) -> Result<Config, ConfigError> {
        let listen_text = overrides
            .listen
            .clone()
            .or(raw.listen)
            .unwrap_or_else(|| "127.0.0.1:8080".to_owned());
        let listen = listen_text
            .parse()
            .map_err(|error: std::net::AddrParseError| {
                invalid("listen", &listen_text, error.to_string())
            })?;

        let notification_path = raw
            .notification_path
            .unwrap_or_else(|| "/api/calls".to_owned());
        if !notification_path.starts_with('/') {
            return Err(invalid(
                "notification_path",
                &notification_path,
                "must start with /",
            ));
        }

        // A --rules flag is relative to the working directory; the file's key to the file.
        let rules = match overrides.rules.clone() {
            Some(rules) => rules,
            None => base_dir.join(raw.rules.unwrap_or_else(|| PathBuf::from("rules"))),
        };

        let deadline_text = raw.answer_deadline.unwrap_or_else(|| "15s".to_owned());
        let answer_deadline = humantime::parse_duration(&deadline_text)
            .map_err(|error| invalid("answer_deadline", &deadline_text, error.to_string()))?;
        if answer_deadline.is_zero() || answer_deadline > Duration::from_secs(60) {
            return Err(invalid(
                "answer_deadline",
                &deadline_text,
                "must be within 1ms..60s",
            ));
        }

        let max_body_text = raw.max_body.unwrap_or_else(|| "1MiB".to_owned());
        let max_body = max_body_text
            .parse::<bytesize::ByteSize>()
            .map_err(|error| invalid("max_body", &max_body_text, error))?
            .as_u64();
        if max_body == 0 || max_body > 64 * 1024 * 1024 {
            return Err(invalid(
                "max_body",
                &max_body_text,
                "must be within 1B..64MiB",
            ));
        }

        let read_timeout_text = raw.read_timeout.unwrap_or_else(|| "10s".to_owned());
        let read_timeout = humantime::parse_duration(&read_timeout_text)
            .map_err(|error| invalid("read_timeout", &read_timeout_text, error.to_string()))?;
        if read_timeout < Duration::from_millis(100) || read_timeout > Duration::from_secs(300) {
            return Err(invalid(
                "read_timeout",
                &read_timeout_text,
                "must be within 100ms..5m",
            ));
        }

        let audit = match raw.audit.path {
            None => AuditTarget::Stdout,
            Some(path) if path.as_os_str() == "-" => AuditTarget::Stdout,
            Some(path) => AuditTarget::File(base_dir.join(path)),
        };
        let redact_key = match (raw.audit.redact, raw.audit.redact_key_file) {
            (false, _) => None,
            (true, Some(file)) => Some(read_key_file(&base_dir.join(file))?),
            (true, None) => {
                return Err(invalid(
                    "audit.redact",
                    "true",
                    "needs audit.redact_key_file",
                ));
            }
        };

        let inbound = inbound_auth(raw.inbound)?;
        let upstream = match raw.upstream {
            None => None,
            Some(upstream) => {
                let url = parse_http_url("upstream.url", &upstream.url)?;
                let timeout_text = upstream.timeout.unwrap_or_else(|| "5s".to_owned());
                let timeout = humantime::parse_duration(&timeout_text)
                    .map_err(|error| invalid("upstream.timeout", &timeout_text, error))?;
                if timeout.is_zero() || timeout > Duration::from_secs(60) {
                    return Err(invalid(
                        "upstream.timeout",
                        &timeout_text,
                        "must be 1ms..60s",
                    ));
                }
                Some(UpstreamConfig { url, timeout })
            }
        };
        let tls = raw.tls.map(|tls| TlsFiles {
            cert: base_dir.join(tls.cert),
            key: base_dir.join(tls.key),
        });

        let graph = raw.graph;
        let base_text = graph
            .base_url
            .unwrap_or_else(|| "https://graph.microsoft.com/v1.0".to_owned());
        let graph_base_url = parse_http_url("graph.base_url", base_text.trim_end_matches('/'))?;

        let default_callback_uri = match graph.default_callback_uri {
            Some(uri) => {
                let parsed = Url::parse(&uri)
                    .map_err(|error| invalid("graph.default_callback_uri", &uri, error))?;
                if parsed.scheme() != "https" || parsed.host_str().is_none() {
                    return Err(invalid("graph.default_callback_uri", &uri, "must be https"));
                }
                Some(uri)
            }
            None => None,
        };

        let mode_text = raw.mode.unwrap_or_else(|| "dry-run".to_owned());
        let mode = match (mode_text.to_ascii_lowercase().as_str(), overrides.dry_run) {
            (_, true) | ("dry-run", _) => Mode::DryRun,
            ("enforce", false) => {
                let tenant_id = require(graph.tenant_id, "graph.tenant_id")?;
                let client_id = require(graph.client_id, "graph.client_id")?;
                let template = graph.token_url.unwrap_or_else(|| {
                    "https://login.microsoftonline.com/{tenant_id}/oauth2/v2.0/token".to_owned()
                });
                let token_url = parse_http_url(
                    "graph.token_url",
                    &template.replace(
                        "{tenant_id}",
                        &utf8_percent_encode(&tenant_id, crate::graph::PATH_SEGMENT).to_string(),
                    ),
                )?;
                let scope = graph
                    .scope
                    .unwrap_or_else(|| format!("{}/.default", origin_of(&graph_base_url)));
                let secret_file = graph.client_secret_file.map(|file| base_dir.join(file));
                let client_secret = secrets.find(secret_file.as_deref())?;
                Mode::Enforce(GraphCredentials {
                    token_url,
                    scope,
                    client_id,
                    client_secret,
                })
            }
            (other, false) => {
                return Err(invalid(
                    "mode",
                    other,
                    "expected \"dry-run\" or \"enforce\"",
                ));
            }
        };

        Ok(Config {
            listen,
            notification_path,
            rules,
            mode,
            answer_deadline,
            max_body: max_body as usize,
            read_timeout,
            log_level: log_level(raw.log_level)?,
            audit,
            graph_base_url,
            default_callback_uri,
            inbound,
            tls,
            redact_key,
            upstream,
        })
    }
}

/// A `tracing` filter: levels, optionally per target (`warn,callscreen=debug`). A bare word
/// that is not a level would silently be read as a target name and switch logging off, so
/// it is refused.
fn log_level(raw: Option<String>) -> Result<String, ConfigError> {
    const LEVELS: &[&str] = &["trace", "debug", "info", "warn", "error", "off"];
    let text = raw.unwrap_or_else(|| "info".to_owned());
    for directive in text.split(',').map(str::trim) {
        let level = directive.rsplit('=').next().unwrap_or("");
        let bare_word = !directive.contains('=') && !directive.contains("::");
        if (bare_word || directive.contains('='))
            && !LEVELS.contains(&level.to_ascii_lowercase().as_str())
        {
            let reason =
                "expected trace, debug, info, warn, error or off, optionally as target=level";
            return Err(invalid("log_level", &text, reason));
        }
    }
    Ok(text)
}

fn inbound_auth(raw: RawInbound) -> Result<InboundAuth, ConfigError> {
    match raw.auth.as_deref().unwrap_or("off") {
        "off" => Ok(InboundAuth::Off),
        "jwt" => {
            let config = InboundAuthConfig::from_parts(
                raw.cloud.as_deref(),
                raw.audience.into_vec(),
                raw.issuers,
                raw.openid_config_url,
                raw.tenant_ids,
            )
            .map_err(|reason| invalid("inbound", "jwt", reason))?;
            Ok(InboundAuth::Jwt(Box::new(config)))
        }
        other => Err(invalid(
            "inbound.auth",
            other,
            "expected \"off\" or \"jwt\"",
        )),
    }
}

/// Reads a key file for keyed hashing; at least 16 bytes so hashes cannot be brute-forced
/// by guessing the key.
fn read_key_file(path: &Path) -> Result<Secret, ConfigError> {
    let key = read_secret_file(path)?;
    if key.expose().len() < 16 {
        let source = std::io::Error::new(std::io::ErrorKind::InvalidData, "shorter than 16 bytes");
        return Err(ConfigError::Secret {
            path: path.to_owned(),
            source,
        });
    }
    Ok(key)
}

/// Where a client secret may come from, in order: the configured file, the systemd
/// credential, the environment. Kept as data so tests need not touch the process env.
#[derive(Debug, Default, Clone)]
pub struct SecretSources {
    pub credentials_directory: Option<PathBuf>,
    pub env_secret: Option<Secret>,
    /// For `check`: a secret that cannot be found is not an error (the service user may
    /// hold it, not the admin checking the file).
    pub may_be_missing: bool,
}

impl SecretSources {
    pub fn from_process() -> SecretSources {
        SecretSources {
            credentials_directory: std::env::var_os("CREDENTIALS_DIRECTORY").map(PathBuf::from),
            may_be_missing: false,
            env_secret: std::env::var(SECRET_ENV)
                .ok()
                .filter(|s| !s.is_empty())
                .map(Secret),
        }
    }

    fn find(&self, configured_file: Option<&Path>) -> Result<Secret, ConfigError> {
        if let Some(path) = configured_file
            && !(self.may_be_missing && std::fs::File::open(path).is_err())
        {
            return read_secret_file(path);
        }
        if let Some(dir) = &self.credentials_directory {
            let path = dir.join(CREDENTIAL_NAME);
            if path.exists() {
                return read_secret_file(&path);
            }
        }
        if self.may_be_missing {
            return Ok(self
                .env_secret
                .clone()
                .unwrap_or_else(|| Secret(String::new())));
        }
        self.env_secret.clone().ok_or_else(|| {
            ConfigError::MissingCredentials(format!(
                "no client secret: set graph.client_secret_file, a systemd credential named \
                 {CREDENTIAL_NAME}, or {SECRET_ENV}"
            ))
        })
    }
}

fn read_secret_file(path: &Path) -> Result<Secret, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Secret {
        path: path.to_owned(),
        source,
    })?;
    let secret = text.trim().to_owned();
    if secret.is_empty() {
        let source = std::io::Error::new(std::io::ErrorKind::InvalidData, "the file is empty");
        return Err(ConfigError::Secret {
            path: path.to_owned(),
            source,
        });
    }
    Ok(Secret(secret))
}

fn require(value: Option<String>, key: &'static str) -> Result<String, ConfigError> {
    match value {
        Some(value) if !value.trim().is_empty() => Ok(value.trim().to_owned()),
        _ => Err(ConfigError::MissingCredentials(format!("{key} is not set"))),
    }
}

fn parse_http_url(key: &'static str, text: &str) -> Result<Url, ConfigError> {
    let url = Url::parse(text).map_err(|error| invalid(key, text, error))?;
    if !matches!(url.scheme(), "https" | "http") || url.host_str().is_none() {
        return Err(invalid(key, text, "must be an http(s) URL with a host"));
    }
    Ok(url)
}

fn origin_of(url: &Url) -> String {
    url.origin().ascii_serialization()
}

fn invalid(key: &'static str, value: &str, reason: impl ToString) -> ConfigError {
    ConfigError::Invalid {
        key,
        value: value.to_owned(),
        reason: reason.to_string(),
    }
}

/// `line:col: message`, as rule diagnostics read.
fn one_line(text: &str, error: &toml::de::Error) -> String {
    let Some(span) = error.span() else {
        return error.message().trim_end().to_owned();
    };
    let before = &text[..span.start.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
    format!("{line}:{col}: {}", error.message().trim_end())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from_text(text: &str, secrets: &SecretSources) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(text).expect("test config parses");
        Config::from_raw(
            raw,
            Path::new("/etc/callscreen"),
            &Overrides::default(),
            secrets,
        )
    }

    #[test]
    fn empty_config_is_loopback_dry_run_to_stdout() {
        let config = from_text("", &SecretSources::default()).unwrap();
        assert_eq!(config.listen, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(config.notification_path, "/api/calls");
        assert_eq!(config.rules, Path::new("/etc/callscreen/rules"));
        assert!(matches!(config.mode, Mode::DryRun));
        assert_eq!(config.answer_deadline, Duration::from_secs(15));
        assert_eq!(config.max_body, 1024 * 1024);
        assert_eq!(config.audit, AuditTarget::Stdout);
        assert_eq!(
            config.graph_base_url.as_str(),
            "https://graph.microsoft.com/v1.0"
        );
    }

    #[test]
    fn enforce_without_credentials_is_an_error() {
        let error = from_text("mode = \"enforce\"", &SecretSources::default()).unwrap_err();
        assert_eq!(
            error.to_string(),
            "enforce mode needs Graph credentials: graph.tenant_id is not set"
        );
        let text = "mode = \"enforce\"\n[graph]\ntenant_id = \"t\"\nclient_id = \"c\"\n";
        let error = from_text(text, &SecretSources::default()).unwrap_err();
        assert!(error.to_string().contains("no client secret"), "{error}");
    }

    #[test]
    fn enforce_takes_the_secret_from_the_environment_and_fills_the_token_url() {
        let secrets = SecretSources {
            env_secret: Some(Secret::new("s3cret".into())),
            ..Default::default()
        };
        let text = "mode = \"enforce\"\n[graph]\ntenant_id = \"contoso\"\nclient_id = \"app\"\n";
        let config = from_text(text, &secrets).unwrap();
        let Mode::Enforce(credentials) = config.mode else {
            panic!("expected enforce")
        };
        assert_eq!(
            credentials.token_url.as_str(),
            "https://login.microsoftonline.com/contoso/oauth2/v2.0/token"
        );
        assert_eq!(credentials.scope, "https://graph.microsoft.com/.default");
        assert_eq!(credentials.client_secret.expose(), "s3cret");
        assert_eq!(format!("{:?}", credentials.client_secret), "[redacted]");
    }

    #[test]
    fn systemd_credential_wins_over_the_environment() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("client-secret"), "from-credential\n").unwrap();
        let secrets = SecretSources {
            credentials_directory: Some(dir.path().to_owned()),
            env_secret: Some(Secret::new("from-env".into())),
            may_be_missing: false,
        };
        let text = "mode = \"enforce\"\n[graph]\ntenant_id = \"t\"\nclient_id = \"c\"\n";
        let Mode::Enforce(credentials) = from_text(text, &secrets).unwrap().mode else {
            panic!("expected enforce")
        };
        assert_eq!(credentials.client_secret.expose(), "from-credential");
    }

    #[test]
    fn a_check_accepts_enforce_mode_without_the_secret() {
        let text = "mode = \"Enforce\"\n[graph]\ntenant_id = \"t\"\nclient_id = \"c\"\n\
                    client_secret_file = \"/nonexistent/secret\"\n";
        let secrets = SecretSources {
            may_be_missing: true,
            ..Default::default()
        };
        assert!(matches!(
            from_text(text, &secrets).unwrap().mode,
            Mode::Enforce(_)
        ));
        assert!(from_text(text, &SecretSources::default()).is_err());
    }

    #[test]
    fn dry_run_flag_overrides_enforce() {
        let raw: RawConfig = toml::from_str("mode = \"enforce\"").unwrap();
        let overrides = Overrides {
            dry_run: true,
            ..Default::default()
        };
        let config =
            Config::from_raw(raw, Path::new(""), &overrides, &SecretSources::default()).unwrap();
        assert!(matches!(config.mode, Mode::DryRun));
    }

    #[test]
    fn bad_values_name_their_key() {
        let cases = [
            ("listen = \"localhost\"", "invalid listen"),
            ("answer_deadline = \"soon\"", "invalid answer_deadline"),
            ("answer_deadline = \"2m\"", "invalid answer_deadline"),
            ("max_body = \"lots\"", "invalid max_body"),
            ("mode = \"enforcing\"", "invalid mode"),
            ("notification_path = \"api\"", "invalid notification_path"),
            ("log_level = \"verbose\"", "invalid log_level"),
            ("log_level = \"callscreen=loud\"", "invalid log_level"),
            (
                "[graph]\ndefault_callback_uri = \"http://bot/x\"",
                "must be https",
            ),
            (
                "[graph]\nbase_url = \"ftp://graph\"",
                "invalid graph.base_url",
            ),
        ];
        for (text, expected) in cases {
            let error = from_text(text, &SecretSources::default())
                .unwrap_err()
                .to_string();
            assert!(error.contains(expected), "{text}: {error}");
        }
    }

    #[test]
    fn jwt_inbound_auth_takes_a_cloud_preset_and_overrides() {
        let text = "[inbound]\nauth = \"jwt\"\naudience = \"app-id\"\ncloud = \"public\"\n";
        let config = from_text(text, &SecretSources::default()).unwrap();
        let InboundAuth::Jwt(auth) = config.inbound else {
            panic!("expected jwt")
        };
        assert_eq!(auth.audiences(), ["app-id"]);
        assert!(
            auth.issuers()
                .iter()
                .any(|issuer| issuer == "https://api.botframework.com")
        );

        let text = "[inbound]\nauth = \"jwt\"\naudience = [\"a\", \"b\"]\n\
                    issuers = [\"https://issuer.test\"]\n\
                    openid_config_url = \"http://127.0.0.1:9/openid\"\n";
        let InboundAuth::Jwt(auth) = from_text(text, &SecretSources::default()).unwrap().inbound
        else {
            panic!("expected jwt")
        };
        assert_eq!(auth.audiences(), ["a", "b"]);
        assert_eq!(auth.issuers(), ["https://issuer.test"]);
        assert_eq!(
            auth.openid_config_url().as_str(),
            "http://127.0.0.1:9/openid"
        );

        let error = from_text("[inbound]\nauth = \"jwt\"\n", &SecretSources::default());
        assert!(error.is_err(), "jwt without an audience must be refused");
        let error = from_text("[inbound]\nauth = \"basic\"\n", &SecretSources::default());
        assert!(
            error
                .unwrap_err()
                .to_string()
                .contains("invalid inbound.auth")
        );
    }

    #[test]
    fn redaction_needs_a_long_enough_key_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("short.key"), "abc").unwrap();
        std::fs::write(dir.path().join("good.key"), "0123456789abcdef0123").unwrap();
        let load = |text: &str| {
            let raw: RawConfig = toml::from_str(text).unwrap();
            Config::from_raw(
                raw,
                dir.path(),
                &Overrides::default(),
                &SecretSources::default(),
            )
        };
        assert!(load("[audit]\nredact = true\n").is_err());
        assert!(load("[audit]\nredact = true\nredact_key_file = \"short.key\"\n").is_err());
        let config = load("[audit]\nredact = true\nredact_key_file = \"good.key\"\n").unwrap();
        assert_eq!(config.redact_key.unwrap().expose(), "0123456789abcdef0123");
    }

    #[test]
    fn log_levels_take_levels_and_per_target_levels() {
        for level in [
            "warn",
            "INFO",
            "warn,callscreen=debug",
            "callscreen::reload=trace",
        ] {
            let config = from_text(
                &format!("log_level = \"{level}\""),
                &SecretSources::default(),
            );
            assert_eq!(config.unwrap().log_level, level);
        }
    }

    #[test]
    fn unknown_keys_are_refused() {
        assert!(toml::from_str::<RawConfig>("listn = \"x\"").is_err());
        assert!(toml::from_str::<RawConfig>("[graph]\nclient_secret = \"x\"").is_err());
    }

    #[test]
    fn relative_audit_path_resolves_against_the_config_folder() {
        let config = from_text("[audit]\npath = \"audit.jsonl\"", &SecretSources::default());
        assert_eq!(
            config.unwrap().audit,
            AuditTarget::File(PathBuf::from("/etc/callscreen/audit.jsonl"))
        );
    }
}
