//! The front door, end to end: bearer tokens on notifications, native TLS, hostile input,
//! and personal data kept out of logs.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use support::*;

const SIGNER: &[u8] = include_bytes!("../src/inbound/testdata/signer.key.der");
const ATTACKER: &[u8] = include_bytes!("../src/inbound/testdata/attacker.key.der");
const BOT_APP_ID: &str = "566bf9d7-c55a-45f8-91a6-e55e9b9b1325";
const TENANT: &str = "5e6a0a2e-dd70-434d-81d7-7cffb7decc0c";

const RULES: &str = r#"
[[rule]]
name = "no-anonymous"
action = "reject"
reason = "forbidden"
[rule.when]
caller.kind = "anonymous"

[[rule]]
name = "no-phones"
action = "reject"
reason = "busy"
[rule.when]
caller.kind = "phone"
"#;

fn setup(extra_config: &str) -> Workspace {
    Workspace::new(extra_config, &[("50-rules.toml", RULES)])
}

fn jwks(private_der: &[u8], kid: &str) -> Value {
    let key = EncodingKey::from_rsa_der(private_der);
    let mut jwk = Jwk::from_encoding_key(&key, Algorithm::RS256).unwrap();
    jwk.common.key_id = Some(kid.to_owned());
    json!({ "keys": [jwk] })
}

fn token(private_der: &[u8], kid: &str, claims: Value) -> String {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(kid.to_owned());
    jsonwebtoken::encode(&header, &claims, &EncodingKey::from_rsa_der(private_der)).unwrap()
}

fn claims() -> Value {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    json!({
        "iss": "https://api.botframework.com", "aud": BOT_APP_ID, "tid": TENANT,
        "iat": now, "nbf": now - 10, "exp": now + 3600,
    })
}

fn post_with_auth(url: &str, body: &str, authorization: Option<&str>) -> u16 {
    let mut request = http_client()
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_owned());
    if let Some(value) = authorization {
        request = request.header("authorization", value);
    }
    request.send().unwrap().status().as_u16()
}

fn jwt_config(idp: &FakeGraph) -> String {
    format!(
        "[inbound]\nauth = \"jwt\"\naudience = \"{BOT_APP_ID}\"\nopenid_config_url = \"{}\"\n\
         tenant_ids = [\"{TENANT}\"]\n",
        idp.openid_url()
    )
}

#[test]
fn notifications_need_a_valid_token_from_graph() {
    let idp = FakeGraph::start();
    idp.serve_jwks(jwks(SIGNER, "key-1"));
    let setup = setup(&jwt_config(&idp));
    let daemon = Daemon::start(&setup.dir, &setup.config);
    let url = daemon.url("/api/calls");
    let body = example("anonymous-caller-no-id.json");

    let good = token(SIGNER, "key-1", claims());
    let forged = token(ATTACKER, "key-1", claims());
    let mut other_tenant = claims();
    other_tenant["tid"] = json!("b37523a5-3b4a-4ee2-8463-513755ac0ecd");
    let mut expired = claims();
    expired["exp"] = json!(1_000_000);
    expired["nbf"] = json!(999_000);
    let mut wrong_audience = claims();
    wrong_audience["aud"] = json!("someone-else");
    let none_alg = format!(
        "{}.{}.",
        b64(r#"{"alg":"none","typ":"JWT","kid":"key-1"}"#),
        b64(&claims().to_string())
    );
    let refused = [
        None,
        Some("Basic dXNlcjpwYXNz".to_owned()),
        Some("Bearer not-a-jwt".to_owned()),
        Some(format!("Bearer {forged}")),
        Some(format!("Bearer {}", token(SIGNER, "key-1", other_tenant))),
        Some(format!("Bearer {}", token(SIGNER, "key-1", expired))),
        Some(format!("Bearer {}", token(SIGNER, "key-1", wrong_audience))),
        Some(format!("Bearer {}", token(SIGNER, "unknown-kid", claims()))),
        Some(format!("Bearer {none_alg}")),
    ];
    for authorization in &refused {
        assert_eq!(
            post_with_auth(&url, &body, authorization.as_deref()),
            401,
            "{authorization:?}"
        );
    }
    assert_eq!(
        post_with_auth(&url, &body, Some(&format!("Bearer {good}"))),
        202
    );

    let records = wait_audit(&setup.audit, 1);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        audit_records(&setup.audit).len(),
        1,
        "refused POSTs are never screened"
    );
    assert_eq!(records[0]["rule"], "no-anonymous");

    for reason in [
        "missing_header",
        "not_bearer",
        "bad_signature",
        "tenant_not_allowed",
    ] {
        assert!(daemon.stderr.shows(reason), "{reason} not logged");
    }
    let logs = daemon.stderr.text();
    assert!(
        !logs.contains(&good) && !logs.contains(&forged),
        "a token was logged"
    );

    let ready: Value = http_client()
        .get(daemon.url("/readyz"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(ready["inbound_auth"], "jwt");
    assert_eq!(ready["inbound_keys_loaded"], true);
}

#[test]
fn without_keys_the_door_stays_shut_and_the_daemon_is_not_ready() {
    let idp = FakeGraph::start(); // serves no key set: /keys answers 503
    let setup = setup(&jwt_config(&idp));
    let daemon = Daemon::start(&setup.dir, &setup.config);
    let good = token(SIGNER, "key-1", claims());
    let status = post_with_auth(
        &daemon.url("/api/calls"),
        &example("anonymous-caller-no-id.json"),
        Some(&format!("Bearer {good}")),
    );
    assert_eq!(status, 401);
    let ready = http_client().get(daemon.url("/readyz")).send().unwrap();
    assert_eq!(ready.status().as_u16(), 503);
}

#[test]
fn auth_off_is_announced_at_start_and_in_readyz() {
    let setup = setup("");
    let daemon = Daemon::start(&setup.dir, &setup.config);
    assert!(
        daemon.stderr.shows("inbound.auth is off"),
        "{}",
        daemon.stderr.text()
    );
    let ready: Value = http_client()
        .get(daemon.url("/readyz"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(ready["inbound_auth"], "off");
}

#[test]
fn native_https_serves_notifications() {
    let certified = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into()]).unwrap();
    let setup = setup("[tls]\ncert = \"cert.pem\"\nkey = \"key.pem\"\n");
    std::fs::write(setup.dir.join("cert.pem"), certified.cert.pem()).unwrap();
    std::fs::write(
        setup.dir.join("key.pem"),
        certified.signing_key.serialize_pem(),
    )
    .unwrap();
    let daemon = Daemon::start(&setup.dir, &setup.config);

    let _ = rustls::crypto::ring::default_provider().install_default();
    let trusted = reqwest::Certificate::from_pem(certified.cert.pem().as_bytes()).unwrap();
    let client = reqwest::blocking::Client::builder()
        .tls_certs_only([trusted])
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let url = format!("https://{}/api/calls", daemon.addr);
    let response = client
        .post(&url)
        .header("content-type", "application/json")
        .body(example("pstn-caller-with-countrycode.json"))
        .send()
        .unwrap();
    assert_eq!(response.status().as_u16(), 202);
    let records = wait_audit(&setup.audit, 1);
    assert_eq!(records[0]["rule"], "no-phones");

    // Plain HTTP on the TLS port gets nowhere.
    assert!(http_client().get(daemon.url("/healthz")).send().is_err());
}

#[test]
fn slow_clients_time_out_without_blocking_others() {
    let setup = setup("read_timeout = \"1s\"");
    let daemon = Daemon::start(&setup.dir, &setup.config);

    // One client sends half its headers and stalls; another sends half its body.
    let mut stalled_headers = TcpStream::connect(daemon.addr).unwrap();
    stalled_headers
        .write_all(b"POST /api/calls HTTP/1.1\r\nhost: x\r\n")
        .unwrap();
    let mut stalled_body = TcpStream::connect(daemon.addr).unwrap();
    stalled_body
        .write_all(
            b"POST /api/calls HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
              content-length: 1000\r\n\r\n{\"value\":[",
        )
        .unwrap();

    // Meanwhile a well-behaved client is served at once.
    let started = Instant::now();
    assert_eq!(
        post_json(&daemon.url("/api/calls"), &example("guest-caller.json")).0,
        202
    );
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "{:?}",
        started.elapsed()
    );

    let body_answer = read_all(&mut stalled_body);
    assert!(body_answer.starts_with("HTTP/1.1 408"), "{body_answer}");
    let header_answer = read_all(&mut stalled_headers);
    assert!(!header_answer.starts_with("HTTP/1.1 2"), "{header_answer}");
}

fn read_all(stream: &mut TcpStream) -> String {
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

#[test]
fn hostile_bodies_get_clear_statuses_and_the_daemon_carries_on() {
    let setup = setup("max_body = \"2MiB\"");
    let daemon = Daemon::start(&setup.dir, &setup.config);
    let url = daemon.url("/api/calls");

    let deeply_nested = format!(
        "{{\"value\":{}{}}}",
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    assert_eq!(post_json(&url, &deeply_nested).0, 400);
    assert_eq!(post_json(&url, "\u{0}\u{1}binary").0, 400);
    assert_eq!(post_json(&url, "").0, 400);

    // A 1.5 MB display name and unknown fields everywhere: screened like any other invite.
    let mut huge: Value =
        serde_json::from_str(&example("pstn-caller-with-countrycode.json")).unwrap();
    let invite = &mut huge["value"][0];
    invite["resourceData"]["source"]["identity"]["phone"]["displayName"] =
        json!("x".repeat(1_500_000));
    invite["resourceData"]["somethingNew"] = json!({"deep": [1, 2, {"x": null}]});
    invite["resourceData"]["requestedModalities"] = json!(["audio", 7, null, "hologram"]);
    assert_eq!(post_json(&url, &huge.to_string()).0, 202);
    let records = wait_audit(&setup.audit, 1);
    assert_eq!(records[0]["rule"], "no-phones");
    assert_eq!(records[0]["modalities"], json!(["audio", "hologram"]));

    // A batch with one broken element still screens the good one.
    let mut batch: Value = serde_json::from_str(&example("anonymous-caller-no-id.json")).unwrap();
    let good = batch["value"][0].clone();
    batch["value"] = json!([42, {"changeType": ["created"]}, good]);
    assert_eq!(post_json(&url, &batch.to_string()).0, 202);
    let records = wait_audit(&setup.audit, 2);
    assert_eq!(records[1]["rule"], "no-anonymous");

    assert_eq!(
        http_client()
            .get(daemon.url("/healthz"))
            .send()
            .unwrap()
            .status()
            .as_u16(),
        200
    );
}

#[test]
fn redacted_audit_and_info_logs_carry_no_names_or_numbers() {
    let setup = setup("[audit]\nredact = true\nredact_key_file = \"redact.key\"\n");
    // The [audit] table above replaces the default one; keep the path in it.
    let text = std::fs::read_to_string(&setup.config).unwrap();
    let text = text.replace("\n[audit]\npath = \"audit.jsonl\"\n", "\n");
    let text = text.replace("redact = true\n", "redact = true\npath = \"audit.jsonl\"\n");
    std::fs::write(&setup.config, text).unwrap();
    std::fs::write(
        setup.dir.join("redact.key"),
        "k3y-for-hashing-personal-data",
    )
    .unwrap();

    let mut daemon = Daemon::start_with(
        &setup.dir,
        &["run", "--config", setup.config.to_str().unwrap()],
    );
    for name in ["pstn-caller-with-countrycode.json", "guest-caller.json"] {
        assert_eq!(post_json(&daemon.url("/api/calls"), &example(name)).0, 202);
    }
    let records = wait_audit(&setup.audit, 2);
    daemon.signal("TERM");
    daemon.wait_exit(Duration::from_secs(10));

    let audit = std::fs::read_to_string(&setup.audit).unwrap();
    for personal in [
        "5555550123",
        "Caller F",
        "0473b824-8ac0-4649-9644-2260559d7e79",
    ] {
        assert!(!audit.contains(personal), "{personal} in the audit log");
    }
    let phone = records
        .iter()
        .find(|r| r["caller"]["kind"] == "phone")
        .unwrap();
    assert!(phone["caller"]["phone"].as_str().unwrap().starts_with("h:"));

    let info_lines: String = daemon
        .stderr
        .text()
        .lines()
        .filter(|line| !line.contains("DEBUG"))
        .collect();
    for personal in ["5555550123", "Caller F", "Caller D"] {
        assert!(!info_lines.contains(personal), "{personal} in the logs");
    }
}

fn b64(text: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text)
}
