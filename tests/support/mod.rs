//! Test support: a fake Microsoft Graph (token endpoint + calls API) on 127.0.0.1, and a
//! handle on the real `callscreen` binary with its output captured.

#![allow(dead_code)]

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

pub const CLIENT_SECRET: &str = "test-client-secret-5f1e9a";
pub const ACCESS_TOKEN: &str = "fake-access-token-7c2d";

/// One request as the fake Graph received it.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("request body is JSON")
    }
}

/// How the fake answers one request.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
    pub delay: Duration,
    /// Drop the connection without answering.
    pub reset: bool,
}

impl Reply {
    pub fn status(status: u16) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: String::new(),
            delay: Duration::ZERO,
            reset: false,
        }
    }

    /// The connection is closed without an answer (seen by the client as a reset).
    pub fn reset() -> Reply {
        Reply {
            reset: true,
            ..Reply::status(500)
        }
    }

    /// A successful token response.
    pub fn token(token: &str) -> Reply {
        let body = serde_json::json!({
            "token_type": "Bearer", "expires_in": 3599, "access_token": token
        });
        Reply {
            body: body.to_string(),
            ..Reply::status(200)
        }
    }

    pub fn graph_error(status: u16, code: &str) -> Reply {
        let body = serde_json::json!({
            "error": { "code": code, "message": "fake", "innerError": { "request-id": "req-1" } }
        });
        Reply {
            headers: vec![("request-id", "req-1".into())],
            body: body.to_string(),
            ..Reply::status(status)
        }
    }

    pub fn with_header(mut self, name: &'static str, value: &str) -> Reply {
        self.headers.push((name, value.to_owned()));
        self
    }

    pub fn delayed(mut self, delay: Duration) -> Reply {
        self.delay = delay;
        self
    }
}

#[derive(Default)]
struct FakeState {
    addr: Option<SocketAddr>,
    received: Vec<Received>,
    /// Replies for reject requests, used in order; 202 once empty.
    reject_script: VecDeque<Reply>,
    /// Replies for token requests, used in order; a fresh token once empty.
    token_script: VecDeque<Reply>,
    token_counter: u32,
    /// When each request arrived, in arrival order (parallel to `received`).
    arrivals: Vec<Instant>,
    /// Reject answers are delayed by a random time up to this.
    random_delay: Duration,
    /// Replies of the fake bot at `/bot/…`, used in order; 202 once empty.
    bot_script: VecDeque<Reply>,
    /// The key set served at `/keys` (OpenID metadata at `/openid` points there).
    jwks: Option<String>,
}

/// A fake Graph: `POST /token` hands out tokens, `POST /v1.0/communications/calls/{id}/…`
/// answers from a script (202 by default). Every request is recorded.
pub struct FakeGraph {
    pub addr: SocketAddr,
    state: Arc<Mutex<FakeState>>,
    runtime: tokio::runtime::Runtime,
}

impl FakeGraph {
    pub fn start() -> FakeGraph {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let state = Arc::new(Mutex::new(FakeState::default()));
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind fake graph");
        let addr = listener.local_addr().unwrap();
        state.lock().unwrap().addr = Some(addr);
        let shared = state.clone();
        runtime.spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let shared = shared.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |request| {
                        let shared = shared.clone();
                        async move {
                            match answer(shared, request).await {
                                Some(response) => Ok(response),
                                None => Err(std::io::Error::other("scripted reset")),
                            }
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        FakeGraph {
            addr,
            state,
            runtime,
        }
    }

    pub fn base_url(&self) -> String {
        format!("http://{}/v1.0", self.addr)
    }

    pub fn token_url(&self) -> String {
        format!("http://{}/{{tenant_id}}/oauth2/v2.0/token", self.addr)
    }

    pub fn script_rejects(&self, replies: impl IntoIterator<Item = Reply>) {
        self.state.lock().unwrap().reject_script.extend(replies);
    }

    /// Delays every unscripted reject answer by a random time up to `max`.
    pub fn random_reject_delay(&self, max: Duration) {
        self.state.lock().unwrap().random_delay = max;
    }

    pub fn script_tokens(&self, replies: impl IntoIterator<Item = Reply>) {
        self.state.lock().unwrap().token_script.extend(replies);
    }

    /// Every request with the instant it arrived.
    pub fn received_at(&self) -> Vec<(Received, Instant)> {
        let state = self.state.lock().unwrap();
        state
            .received
            .iter()
            .cloned()
            .zip(state.arrivals.iter().copied())
            .collect()
    }

    pub fn serve_jwks(&self, jwks: serde_json::Value) {
        self.state.lock().unwrap().jwks = Some(jwks.to_string());
    }

    /// The fake calling bot's webhook, for gateway mode.
    pub fn bot_url(&self) -> String {
        format!("http://{}/bot/api/calls", self.addr)
    }

    pub fn script_bot(&self, replies: impl IntoIterator<Item = Reply>) {
        self.state.lock().unwrap().bot_script.extend(replies);
    }

    pub fn bot_requests(&self) -> Vec<Received> {
        self.received()
            .into_iter()
            .filter(|r| r.path.starts_with("/bot/"))
            .collect()
    }

    pub fn openid_url(&self) -> String {
        format!("http://{}/openid", self.addr)
    }

    pub fn received(&self) -> Vec<Received> {
        self.state.lock().unwrap().received.clone()
    }

    pub fn calls_requests(&self) -> Vec<Received> {
        self.received()
            .into_iter()
            .filter(|r| r.path.contains("/communications/"))
            .collect()
    }

    pub fn token_requests(&self) -> Vec<Received> {
        self.received()
            .into_iter()
            .filter(|r| r.path.ends_with("/token"))
            .collect()
    }
}

async fn answer(
    state: Arc<Mutex<FakeState>>,
    request: Request<Incoming>,
) -> Option<Response<Full<Bytes>>> {
    let method = request.method().to_string();
    let path = request.uri().path().to_owned();
    let query = request.uri().query().map(str::to_owned);
    let headers = request
        .headers()
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_owned()))
        .collect();
    let body = request
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes().to_vec())
        .unwrap_or_default();
    let received = Received {
        method,
        path: path.clone(),
        query,
        headers,
        body,
    };

    let reply = {
        let mut state = state.lock().unwrap();
        state.received.push(received);
        state.arrivals.push(Instant::now());
        if path.ends_with("/oauth2/v2.0/token") && !state.token_script.is_empty() {
            state.token_script.pop_front().unwrap()
        } else if path.ends_with("/oauth2/v2.0/token") {
            state.token_counter += 1;
            let token = if state.token_counter == 1 {
                ACCESS_TOKEN.to_owned()
            } else {
                format!("{ACCESS_TOKEN}-{}", state.token_counter)
            };
            Reply::token(&token)
        } else if path.starts_with("/bot/") {
            state.bot_script.pop_front().unwrap_or_else(|| Reply {
                headers: vec![("content-type", "application/json".into())],
                body: r#"{"handled":true}"#.into(),
                ..Reply::status(202)
            })
        } else if path == "/openid" {
            let body = serde_json::json!({
                "issuer": "https://api.botframework.com",
                "jwks_uri": format!("http://{}/keys", addr_of(&state)),
            });
            Reply {
                body: body.to_string(),
                ..Reply::status(200)
            }
        } else if path == "/keys" {
            match &state.jwks {
                Some(jwks) => Reply {
                    body: jwks.clone(),
                    ..Reply::status(200)
                },
                None => Reply::status(503),
            }
        } else if path.contains("/communications/calls/") {
            state
                .reject_script
                .pop_front()
                .unwrap_or_else(|| Reply::status(202).delayed(random_delay(state.random_delay)))
        } else {
            Reply::status(404)
        }
    };
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }
    if reply.reset {
        return None;
    }
    let mut builder = Response::builder().status(reply.status);
    for (name, value) in &reply.headers {
        builder = builder.header(*name, value);
    }
    Some(builder.body(Full::new(Bytes::from(reply.body))).unwrap())
}

fn random_delay(max: Duration) -> Duration {
    max.mul_f64(rand::random::<f64>())
}

fn addr_of(state: &FakeState) -> SocketAddr {
    state.addr.expect("fake graph address is set at start")
}

/// Output captured from the daemon, appended to as it runs.
#[derive(Clone, Default)]
pub struct Captured(Arc<Mutex<String>>);

impl Captured {
    pub fn text(&self) -> String {
        self.0.lock().unwrap().clone()
    }

    /// Whether `needle` shows up within 10 s. The daemon writes its logs from a thread of
    /// their own, so a line can reach the pipe a moment after the answer that followed it.
    pub fn shows(&self, needle: &str) -> bool {
        wait_for(Duration::from_secs(10), || {
            self.text().contains(needle).then_some(())
        })
        .is_some()
    }

    fn drain(&self, stream: impl Read + Send + 'static) {
        let captured = self.0.clone();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stream);
            let mut line = String::new();
            while reader.read_line(&mut line).unwrap_or(0) > 0 {
                captured.lock().unwrap().push_str(&line);
                line.clear();
            }
        });
    }
}

/// A running `callscreen run`; killed on drop.
pub struct Daemon {
    pub child: Child,
    pub addr: SocketAddr,
    pub stdout: Captured,
    pub stderr: Captured,
    pub dir: PathBuf,
}

impl Daemon {
    /// Starts the binary with `config` (a file inside `dir`) and waits until it listens.
    pub fn start(dir: &Path, config: &Path) -> Daemon {
        Daemon::start_with(dir, &["run", "--config", config.to_str().unwrap()])
    }

    pub fn start_with(dir: &Path, args: &[&str]) -> Daemon {
        Daemon::start_env(dir, args, &[])
    }

    /// Starts the binary with extra environment variables.
    pub fn start_env(dir: &Path, args: &[&str], envs: &[(&str, &str)]) -> Daemon {
        let mut child = Command::new(env!("CARGO_BIN_EXE_callscreen"))
            .args(args)
            .current_dir(dir)
            .env("CALLSCREEN_CLIENT_SECRET", CLIENT_SECRET)
            .env("RUST_LOG", "debug")
            .env_remove("CREDENTIALS_DIRECTORY")
            .envs(envs.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start callscreen");
        let stdout = Captured::default();
        let stderr = Captured::default();
        stdout.drain(child.stdout.take().unwrap());
        stderr.drain(child.stderr.take().unwrap());
        // With --listen the address is known; otherwise it is read from the start-up log.
        let listen_flag = args.iter().position(|arg| *arg == "--listen");
        let known: Option<SocketAddr> = listen_flag.and_then(|i| args.get(i + 1)?.parse().ok());
        let addr = wait_for(Duration::from_secs(20), || {
            if let Some(addr) = known {
                let url = format!("http://{addr}/healthz");
                return http_client().get(url).send().ok().map(|_| addr);
            }
            let text = stderr.text();
            if let Some(start) = text.find("listen=") {
                let start = start + "listen=".len();
                let end = text[start..].find(char::is_whitespace)? + start;
                return text[start..end].parse().ok();
            }
            // JSON logs: {"listen":"127.0.0.1:port",...}
            let start = text.find("\"listen\":\"")? + "\"listen\":\"".len();
            let end = text[start..].find('"')? + start;
            text[start..end].parse().ok()
        })
        .unwrap_or_else(|| panic!("daemon did not start; stderr:\n{}", stderr.text()));
        Daemon {
            child,
            addr,
            stdout,
            stderr,
            dir: dir.to_owned(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn signal(&self, name: &str) {
        signal(&self.child, name);
    }

    /// Waits for the process to exit and returns its exit code.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let start = Instant::now();
        while start.elapsed() < timeout {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends signal `name` (`TERM`, `HUP`, ...) to a process started by a test.
pub fn signal(child: &Child, name: &str) {
    let status = Command::new("kill")
        .args([format!("-{name}"), child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success());
}

/// A loopback address with a port that was free a moment ago.
pub fn free_addr() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().to_string()
}

/// Polls `probe` every 20 ms until it returns `Some` or `timeout` passes.
pub fn wait_for<T>(timeout: Duration, mut probe: impl FnMut() -> Option<T>) -> Option<T> {
    let start = Instant::now();
    loop {
        if let Some(value) = probe() {
            return Some(value);
        }
        if start.elapsed() > timeout {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Reads a JSON-lines audit file (missing file = no records).
pub fn audit_records(path: &Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    // A line still being written has no newline yet; it is read on the next poll.
    let complete = &text[..text.rfind('\n').map_or(0, |end| end + 1)];
    complete
        .lines()
        .map(|line| serde_json::from_str(line).expect("audit line is JSON"))
        .collect()
}

/// Waits until the audit file holds `count` records, and returns them.
pub fn wait_audit(path: &Path, count: usize) -> Vec<serde_json::Value> {
    wait_for(Duration::from_secs(20), || {
        let records = audit_records(path);
        (records.len() >= count).then_some(records)
    })
    .unwrap_or_else(|| {
        panic!(
            "expected {count} audit records, got {:?}",
            audit_records(path)
        )
    })
}

/// The example notification `name` from `examples/notifications/`.
pub fn example(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples/notifications")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

pub fn example_names() -> Vec<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/notifications");
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".json"))
        .collect();
    names.sort();
    names
}

/// A blocking HTTP client for talking to the daemon.
pub fn post_json(url: &str, body: &str) -> (u16, String) {
    let response = http_client()
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .expect("POST to daemon");
    let status = response.status().as_u16();
    (status, response.text().unwrap_or_default())
}

pub fn http_client() -> reqwest::blocking::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

/// A temp folder for one daemon: `rules/` with the given files, a config file, and the
/// audit log path (`audit.jsonl`, unless the config names its own `[audit]` table).
pub struct Workspace {
    _temp: tempfile::TempDir,
    pub dir: PathBuf,
    pub config: PathBuf,
    pub audit: PathBuf,
    pub rules: PathBuf,
}

impl Workspace {
    /// `config` is written after `listen = "127.0.0.1:0"`; it may hold tables.
    pub fn new(config: &str, rule_files: &[(&str, &str)]) -> Workspace {
        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path().to_owned();
        let rules = dir.join("rules");
        std::fs::create_dir(&rules).unwrap();
        for (name, text) in rule_files {
            std::fs::write(rules.join(name), text).unwrap();
        }
        let audit_table = if config.contains("[audit]") {
            ""
        } else {
            "[audit]\npath = \"audit.jsonl\"\n"
        };
        let path = dir.join("callscreen.toml");
        let text = format!("listen = \"127.0.0.1:0\"\n{config}\n{audit_table}");
        std::fs::write(&path, text).unwrap();
        Workspace {
            _temp: temp,
            audit: dir.join("audit.jsonl"),
            config: path,
            dir,
            rules,
        }
    }

    /// Starts the daemon on this workspace's config.
    pub fn start(&self) -> Daemon {
        Daemon::start(&self.dir, &self.config)
    }
}

/// Enforce-mode settings against `graph`; `extra_graph` lines go into its `[graph]` table.
pub fn enforce_config(graph: &FakeGraph, deadline: &str, extra_graph: &str) -> String {
    format!(
        "mode = \"enforce\"\nanswer_deadline = \"{deadline}\"\n[graph]\nbase_url = \"{}\"\n\
         token_url = \"{}\"\ntenant_id = \"5e6a0a2e-dd70-434d-81d7-7cffb7decc0c\"\n\
         client_id = \"566bf9d7-c55a-45f8-91a6-e55e9b9b1325\"\n{extra_graph}\n",
        graph.base_url(),
        graph.token_url()
    )
}

/// A path inside the repository.
pub fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// Runs a `callscreen` command from the repository folder and waits for it.
pub fn callscreen(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_callscreen"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("RUST_LOG")
        .output()
        .expect("run callscreen")
}

pub fn stdout(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}
