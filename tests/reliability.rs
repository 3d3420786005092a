//! Reliability against a misbehaving Graph and token endpoint, and audit-log durability,
//! with the real binary.

mod support;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::*;

const RULES: &str = r#"
[[rule]]
name = "no-anonymous"
action = "reject"
reason = "forbidden"
[rule.when]
caller.kind = "anonymous"
"#;

const ANONYMOUS_ID: &str = "2e012631-9a72-480d-908a-3e291dd257d5";

fn setup(config: &str) -> Workspace {
    Workspace::new(config, &[("50-rules.toml", RULES)])
}

fn enforce(graph_base: &str, token_url: &str, deadline: &str) -> String {
    format!(
        "mode = \"enforce\"\nanswer_deadline = \"{deadline}\"\n\
         [graph]\nbase_url = \"{graph_base}\"\ntoken_url = \"{token_url}\"\n\
         tenant_id = \"t\"\nclient_id = \"c\"\n"
    )
}

fn enforce_with(graph: &FakeGraph, deadline: &str) -> String {
    enforce(&graph.base_url(), &graph.token_url(), deadline)
}

/// The anonymous example under a new call id.
fn anonymous_call(call_id: &str) -> String {
    example("anonymous-caller-no-id.json").replace(ANONYMOUS_ID, call_id)
}

fn only_record(setup: &Workspace) -> Value {
    wait_audit(&setup.audit, 1).remove(0)
}

#[test]
fn transient_graph_faults_are_retried_until_graph_accepts() {
    let graph = FakeGraph::start();
    let setup = setup(&enforce_with(&graph, "15s"));
    let in_a_few_seconds =
        httpdate::fmt_http_date(std::time::SystemTime::now() + Duration::from_secs(4));
    graph.script_rejects([
        Reply::graph_error(429, "throttledRequest").with_header("retry-after", "0"),
        Reply::graph_error(500, "generalException"),
        Reply::graph_error(502, "badGateway"),
        Reply::graph_error(503, "serviceNotAvailable")
            .with_header("retry-after", &in_a_few_seconds),
        Reply::graph_error(504, "gatewayTimeout"),
        Reply::reset(),
        Reply::status(202),
    ]);
    let daemon = Daemon::start(&setup.dir, &setup.config);
    assert_eq!(
        post_json(&daemon.url("/api/calls"), &anonymous_call("call-retried")).0,
        202
    );
    let record = only_record(&setup);
    assert_eq!(record["outcome"], "rejected", "{record}");
    assert_eq!(record["graph_status"], 202);

    let attempts = graph.received_at();
    let attempts: Vec<_> = attempts
        .iter()
        .filter(|(request, _)| request.path.contains("/calls/"))
        .collect();
    assert_eq!(attempts.len(), 7);
    // The HTTP-date Retry-After held the fifth attempt back until that date.
    let waited = attempts[4].1 - attempts[3].1;
    assert!(waited >= Duration::from_millis(1000), "{waited:?}");
    // Every attempt carried the same body to the same single-segment path.
    for (request, _) in &attempts {
        assert_eq!(
            request.path,
            "/v1.0/communications/calls/call-retried/reject"
        );
        assert_eq!(request.json(), serde_json::json!({"reason": "forbidden"}));
    }
}

#[test]
fn client_errors_are_not_retried_and_are_logged_with_graph_details() {
    let graph = FakeGraph::start();
    let setup = setup(&enforce_with(&graph, "15s"));
    graph.script_rejects([
        Reply::graph_error(400, "invalidRequest"),
        Reply::graph_error(403, "accessDenied"),
        Reply::graph_error(404, "itemNotFound"),
    ]);
    let daemon = Daemon::start(&setup.dir, &setup.config);
    for call_id in ["call-400", "call-403", "call-404"] {
        assert_eq!(
            post_json(&daemon.url("/api/calls"), &anonymous_call(call_id)).0,
            202
        );
        // One at a time, so each call meets its scripted answer.
        wait_for(Duration::from_secs(5), || {
            audit_records(&setup.audit)
                .iter()
                .any(|r| r["call_id"] == call_id)
                .then_some(())
        })
        .unwrap();
    }
    let records = audit_records(&setup.audit);
    for (record, status) in records.iter().zip([400, 403, 404]) {
        assert_eq!(record["outcome"], "failed");
        assert_eq!(record["graph_status"], status);
    }
    assert_eq!(graph.calls_requests().len(), 3, "no retries");
    for code in ["invalidRequest", "accessDenied", "itemNotFound"] {
        assert!(daemon.stderr.shows(code), "{code} not logged");
    }
    let logs = daemon.stderr.text();
    assert!(logs.contains("request_id=\"req-1\""), "{logs}");
}

#[test]
fn a_retry_after_beyond_the_deadline_gives_up_at_once() {
    let graph = FakeGraph::start();
    let setup = setup(&enforce_with(&graph, "3s"));
    graph.script_rejects([Reply::graph_error(429, "throttled").with_header("retry-after", "60")]);
    let daemon = Daemon::start(&setup.dir, &setup.config);
    assert_eq!(
        post_json(&daemon.url("/api/calls"), &anonymous_call("call-throttled")).0,
        202
    );
    let record = only_record(&setup);
    assert_eq!(record["outcome"], "expired");
    assert!(record["latency_ms"].as_f64().unwrap() < 1000.0, "{record}");
    assert_eq!(graph.calls_requests().len(), 1);
}

#[test]
fn a_graph_that_refuses_connections_expires_exactly_at_the_deadline() {
    let tokens = FakeGraph::start();
    // A port that was just free: nothing listens there.
    let closed = format!("http://{}/v1.0", free_addr());
    let setup = setup(&enforce(&closed, &tokens.token_url(), "2s"));
    let daemon = Daemon::start(&setup.dir, &setup.config);
    assert_eq!(
        post_json(&daemon.url("/api/calls"), &anonymous_call("call-refused")).0,
        202
    );
    let record = only_record(&setup);
    assert_eq!(record["outcome"], "expired");
    assert_eq!(record["graph_status"], Value::Null);
    let latency = record["latency_ms"].as_f64().unwrap();
    assert!((1950.0..2300.0).contains(&latency), "{latency}");
}

#[test]
fn a_token_endpoint_down_at_start_delays_readiness_not_start_up() {
    let graph = FakeGraph::start();
    graph.script_tokens([
        Reply::status(503),
        Reply::graph_error(500, "temporarily_unavailable"),
    ]);
    let setup = setup(&enforce_with(&graph, "15s"));
    let started = Instant::now();
    let daemon = Daemon::start(&setup.dir, &setup.config);
    assert!(started.elapsed() < Duration::from_secs(5));
    let readiness = || {
        let response = http_client().get(daemon.url("/readyz")).send().unwrap();
        let status = response.status().as_u16();
        (status, response.json::<Value>().unwrap())
    };
    let (status, body) = readiness();
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["graph_token"], false);

    // The daemon keeps trying (after 1 s, then 2 s) and becomes ready.
    wait_for(Duration::from_secs(10), || {
        (readiness().0 == 200).then_some(())
    })
    .expect("ready once a token arrived");
    assert_eq!(graph.token_requests().len(), 3);
    assert_eq!(
        post_json(
            &daemon.url("/api/calls"),
            &anonymous_call("call-after-token")
        )
        .0,
        202
    );
    assert_eq!(only_record(&setup)["outcome"], "rejected");
    assert!(daemon.stderr.shows("no Graph token yet"));
}

#[test]
fn concurrent_rejects_share_one_slow_token_request() {
    let graph = FakeGraph::start();
    graph.script_tokens([Reply::token(ACCESS_TOKEN).delayed(Duration::from_millis(1500))]);
    let setup = setup(&enforce_with(&graph, "15s"));
    let daemon = Daemon::start(&setup.dir, &setup.config);
    // Ten invites arrive while the start-up token request is still on its way.
    let posts: Vec<_> = (0..10)
        .map(|index| {
            let url = daemon.url("/api/calls");
            std::thread::spawn(move || post_json(&url, &anonymous_call(&format!("call-{index}"))).0)
        })
        .collect();
    for post in posts {
        assert_eq!(post.join().unwrap(), 202);
    }
    let records = wait_audit(&setup.audit, 10);
    assert!(
        records.iter().all(|record| record["outcome"] == "rejected"),
        "{records:?}"
    );
    assert_eq!(graph.token_requests().len(), 1);
    assert!(
        graph
            .calls_requests()
            .iter()
            .all(|r| r.header("authorization") == Some(&*format!("Bearer {ACCESS_TOKEN}")))
    );
}

#[test]
fn an_unwritable_audit_log_is_reported_never_a_crash() {
    // /dev/full accepts the open and fails every write with "no space left on device".
    let setup = setup("[audit]\npath = \"/dev/full\"\n");
    let daemon = Daemon::start(&setup.dir, &setup.config);
    assert_eq!(
        post_json(&daemon.url("/api/calls"), &anonymous_call("call-lost")).0,
        202
    );
    let ready = wait_for(Duration::from_secs(5), || {
        let response = http_client().get(daemon.url("/readyz")).send().unwrap();
        (response.status().as_u16() == 503).then(|| response.json::<Value>().unwrap())
    })
    .expect("not ready while the audit log fails");
    assert_eq!(ready["audit_ok"], false);
    assert!(
        daemon
            .stderr
            .text()
            .contains("audit records could not be written")
    );
    let metrics = http_client()
        .get(daemon.url("/metrics"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(
        metrics.contains("callscreen_audit_records_lost_total 1"),
        "{metrics}"
    );
    // Still serving.
    assert_eq!(
        post_json(&daemon.url("/api/calls"), &anonymous_call("call-lost-2")).0,
        202
    );
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
fn logrotate_by_rename_or_copytruncate_loses_no_record() {
    let setup = setup("");
    let daemon = Daemon::start(&setup.dir, &setup.config);
    let url = daemon.url("/api/calls");
    let post = |id: &str| assert_eq!(post_json(&url, &anonymous_call(id)).0, 202);

    post("before-rename-1");
    post("before-rename-2");
    wait_audit(&setup.audit, 2);
    // logrotate's default: rename, then SIGHUP (postrotate).
    let renamed = setup.dir.join("audit.jsonl.1");
    std::fs::rename(&setup.audit, &renamed).unwrap();
    post("between-rename-and-hup");
    daemon.signal("HUP");
    wait_for(Duration::from_secs(5), || {
        daemon
            .stderr
            .text()
            .contains("audit log reopened")
            .then_some(())
    })
    .expect("reopened");
    post("after-hup");
    wait_audit(&setup.audit, 1);

    // copytruncate: copy, then truncate in place; the daemon appends, so new records start
    // at the beginning of the emptied file instead of after a hole.
    let copied = setup.dir.join("audit.jsonl.2");
    std::fs::copy(&setup.audit, &copied).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&setup.audit)
        .unwrap()
        .set_len(0)
        .unwrap();
    post("after-truncate");
    wait_audit(&setup.audit, 1);

    let ids = |path: &PathBuf| -> Vec<String> {
        audit_records(path)
            .iter()
            .map(|r| r["call_id"].as_str().unwrap().to_owned())
            .collect()
    };
    let mut all = [ids(&renamed), ids(&copied), ids(&setup.audit)].concat();
    all.sort();
    assert_eq!(
        all,
        [
            "after-hup",
            "after-truncate",
            "before-rename-1",
            "before-rename-2",
            "between-rename-and-hup"
        ]
    );
    let current = std::fs::read(&setup.audit).unwrap();
    assert!(
        !current.contains(&0),
        "no hole of zero bytes after copytruncate"
    );
}

/// A batch of `count` anonymous invites, call ids `{prefix}-0` and up.
fn anonymous_batch(prefix: &str, count: usize) -> String {
    let invite: Value = serde_json::from_str(&anonymous_call("ID")).unwrap();
    let template = serde_json::to_string(&invite["value"][0]).unwrap();
    let elements: Vec<String> = (0..count)
        .map(|n| {
            let id = format!("{prefix}-{n}");
            template
                .replace("\"ID\"", &format!("\"{id}\""))
                .replace("/ID\"", &format!("/{id}\""))
        })
        .collect();
    format!("{{\"value\":[{}]}}", elements.join(","))
}

/// Starts the daemon with its stdout and stderr as pipes that nobody reads yet.
fn start_unread(setup: &Workspace, log_level: &str) -> (std::process::Child, String) {
    let addr = free_addr();
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_callscreen"))
        .args([
            "run",
            "--config",
            setup.config.to_str().unwrap(),
            "--listen",
            &addr,
        ])
        .current_dir(&setup.dir)
        .env("RUST_LOG", log_level)
        .env("CALLSCREEN_CLIENT_SECRET", CLIENT_SECRET)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start callscreen");
    wait_for(Duration::from_secs(20), || {
        http_client()
            .get(format!("http://{addr}/healthz"))
            .send()
            .ok()
    })
    .expect("daemon listens");
    (child, addr)
}

#[test]
fn a_stalled_audit_reader_holds_records_back_but_loses_none() {
    stalled_audit_reader("", "would_reject");
}

#[test]
fn a_stalled_audit_reader_holds_rejects_back_but_loses_none() {
    let graph = FakeGraph::start();
    stalled_audit_reader(&enforce_with(&graph, "15s"), "rejected");
}

/// Audit records go to stdout, which nobody reads at first: the pipe fills, then the
/// writer's queue (4,096 records), then the screenings allowed to run after their answer,
/// and then the answers wait for room. Every invite accepted is still recorded once.
fn stalled_audit_reader(config: &str, outcome: &str) {
    const BATCHES: usize = 50;
    const PER_BATCH: usize = 100;
    let setup = setup(&format!("{config}\n[audit]\npath = \"-\"\n"));
    let (mut child, addr) = start_unread(&setup, "warn");
    let url = format!("http://{addr}/api/calls");
    // Posted from another thread: once the queue is full the answers wait for room. The
    // thread counts the batches accepted before the daemon stopped taking them.
    let poster = std::thread::spawn(move || {
        let client = http_client();
        (0..BATCHES)
            .take_while(|batch| {
                let body = anonymous_batch(&format!("call-{batch}"), PER_BATCH);
                client
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .is_ok_and(|response| response.status().as_u16() == 202)
            })
            .count()
    });
    std::thread::sleep(Duration::from_secs(2));
    // Stop the daemon while records still wait, and only now read what it wrote.
    signal(&child, "TERM");
    let mut audit = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut audit).unwrap();
    assert!(child.wait().unwrap().success());
    let accepted_batches = poster.join().unwrap();
    let accepted = accepted_batches * PER_BATCH;

    let records: Vec<Value> = audit
        .lines()
        .map(|line| serde_json::from_str::<Value>(line).expect("a whole JSON record"))
        .collect();
    assert!(records.iter().all(|record| record["outcome"] == outcome));
    let mut ids: Vec<String> = records
        .iter()
        .map(|record| record["call_id"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        ids.len() > 4096 + 100,
        "the queue was filled: {}",
        ids.len()
    );
    assert_eq!(ids.len() % PER_BATCH, 0, "whole batches only");
    assert_eq!(ids.len(), accepted);
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), accepted, "no record twice");
}

#[test]
fn a_stalled_log_reader_costs_log_lines_not_calls() {
    // Nobody reads stderr: the pipe and the log queue fill, and lines are dropped and
    // counted while invites are still screened and audited (to stdout, read as it comes).
    const BATCHES: usize = 100;
    const PER_BATCH: usize = 100;
    let setup = setup("[audit]\npath = \"-\"\n");
    let (mut child, addr) = start_unread(&setup, "debug");
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut audit = String::new();
        std::io::Read::read_to_string(&mut stdout, &mut audit).unwrap();
        audit
    });
    let url = format!("http://{addr}/api/calls");
    for batch in 0..BATCHES {
        let body = anonymous_batch(&format!("logged-{batch}"), PER_BATCH);
        assert_eq!(post_json(&url, &body).0, 202, "batch {batch}");
    }
    let metrics = http_client()
        .get(format!("http://{addr}/metrics"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    let dropped: u64 = metrics
        .lines()
        .find_map(|line| line.strip_prefix("callscreen_log_lines_dropped_total "))
        .expect("the counter is exported")
        .parse()
        .unwrap();
    assert!(dropped > 0, "{metrics}");
    signal(&child, "TERM");
    let exited = wait_for(Duration::from_secs(15), || child.try_wait().unwrap());
    assert!(exited.expect("stops with stderr still unread").success());
    // Nothing but whole records reached stdout, one for each invite.
    let audit = reader.join().unwrap();
    let records: Vec<Value> = audit
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|_| panic!("not a record: {line}")))
        .collect();
    assert_eq!(records.len(), BATCHES * PER_BATCH);
}
