//! End to end: the real `callscreen` binary against a fake Graph on 127.0.0.1.

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::*;

const SCREENING_RULES: &str = r#"
[[rule]]
name = "no-anonymous"
description = "Callers who hide who they are"
action = "reject"
reason = "Forbidden"
callback_uri = "https://bot.contoso.com/api/calls/screened"
[rule.when]
caller.kind = "anonymous"

[[rule]]
name = "busy-for-555-numbers"
action = "reject"
reason = "busy"
[rule.when]
caller.phone = { prefix = "+1 555 555" }
"#;

const GUEST_RULES: &str = r#"
[[rule]]
name = "guests-video"
action = "reject"
reason = "none"
[rule.when]
caller.kind = "guest"
modalities = { any = ["video"] }
"#;

/// A temp folder with `rules/` holding `files`, an audit path and a config file.
fn setup(extra_config: &str, files: &[(&str, &str)]) -> Workspace {
    Workspace::new(extra_config, files)
}

fn enforce_config(graph: &FakeGraph, extra_graph: &str) -> String {
    support::enforce_config(graph, "3s", extra_graph)
}

fn notify(daemon: &Daemon, body: &str) -> u16 {
    post_json(&daemon.url("/api/calls"), body).0
}

fn record_for<'a>(records: &'a [Value], call_id: &str) -> &'a Value {
    records
        .iter()
        .find(|record| record["call_id"] == call_id)
        .unwrap_or_else(|| panic!("no audit record for {call_id}: {records:?}"))
}

/// Replaces every occurrence of `old` (a call id) so the same example becomes a new call.
fn renamed(body: &str, old: &str, new: &str) -> String {
    body.replace(old, new)
}

#[test]
fn enforce_rejects_matching_invites_with_the_exact_graph_requests() {
    let graph = FakeGraph::start();
    let setup = setup(
        &enforce_config(&graph, ""),
        &[("50-screening.toml", SCREENING_RULES)],
    );
    let daemon = Daemon::start(&setup.dir, &setup.config);

    for name in example_names() {
        assert_eq!(notify(&daemon, &example(&name)), 202, "{name}");
    }
    // 15 example files hold 13 invites; the other notifications are not screened.
    let records = wait_audit(&setup.audit, 13);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        audit_records(&setup.audit).len(),
        13,
        "one record per invite, no more"
    );

    let anonymous = record_for(&records, "2e012631-9a72-480d-908a-3e291dd257d5");
    assert_eq!(anonymous["outcome"], "rejected");
    assert_eq!(anonymous["rule"], "no-anonymous");
    assert_eq!(anonymous["reason"], "forbidden");
    assert_eq!(anonymous["graph_status"], 202);
    assert_eq!(anonymous["mode"], "enforce");
    assert_eq!(anonymous["caller"]["kind"], "anonymous");

    let rejected_phones = [
        "3a7cfb36-6088-455f-8763-54b65ed08d6b",
        "f585675f-d177-4781-9438-a5b507bda21c",
    ];
    for call_id in rejected_phones {
        let record = record_for(&records, call_id);
        assert_eq!(record["outcome"], "rejected", "{record}");
        assert_eq!(record["rule"], "busy-for-555-numbers");
    }
    let allowed = record_for(&records, "683447c1-0cc8-4f11-9d4e-abbd1fcfb980");
    assert_eq!(allowed["outcome"], "allowed");
    assert_eq!(allowed["rule"], Value::Null);
    assert_eq!(allowed["graph_status"], Value::Null);

    // Graph saw one token request and exactly the rejects, nothing for allowed calls.
    let tokens = graph.token_requests();
    assert_eq!(tokens.len(), 1, "{tokens:?}");
    let token = &tokens[0];
    assert_eq!(token.method, "POST");
    assert_eq!(
        token.path,
        "/5e6a0a2e-dd70-434d-81d7-7cffb7decc0c/oauth2/v2.0/token"
    );
    let form: Vec<(String, String)> = url::form_urlencoded::parse(&token.body)
        .into_owned()
        .collect();
    let expected_form = [
        (
            "client_id",
            "566bf9d7-c55a-45f8-91a6-e55e9b9b1325".to_owned(),
        ),
        ("scope", format!("http://{}/.default", graph.addr)),
        ("client_secret", CLIENT_SECRET.to_owned()),
        ("grant_type", "client_credentials".to_owned()),
    ];
    for (key, value) in expected_form {
        assert!(
            form.contains(&(key.to_owned(), value.clone())),
            "{key}={value} in {form:?}"
        );
    }

    let mut rejects = graph.calls_requests();
    rejects.sort_by(|a, b| a.path.cmp(&b.path));
    let paths: Vec<&str> = rejects.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "/v1.0/communications/calls/01f752bc-3f10-4ac5-86ad-f2a1be6f3d77/reject",
            "/v1.0/communications/calls/2e012631-9a72-480d-908a-3e291dd257d5/reject",
            "/v1.0/communications/calls/3a7cfb36-6088-455f-8763-54b65ed08d6b/reject",
            "/v1.0/communications/calls/f585675f-d177-4781-9438-a5b507bda21c/reject",
        ]
    );
    for reject in &rejects {
        assert_eq!(reject.method, "POST");
        assert_eq!(
            reject.header("authorization"),
            Some(&*format!("Bearer {ACCESS_TOKEN}"))
        );
        assert_eq!(reject.header("content-type"), Some("application/json"));
        let expected = if reject.path.contains("2e012631") {
            json!({"reason": "forbidden",
                   "callbackUri": "https://bot.contoso.com/api/calls/screened"})
        } else {
            json!({"reason": "busy"})
        };
        assert_eq!(reject.json(), expected, "{}", reject.path);
    }
}

#[test]
fn a_repeated_notification_is_rejected_once() {
    let graph = FakeGraph::start();
    let setup = setup(
        &enforce_config(&graph, ""),
        &[("50-screening.toml", SCREENING_RULES)],
    );
    let daemon = Daemon::start(&setup.dir, &setup.config);
    let body = example("anonymous-caller-no-id.json");

    // Two at once, then a third a moment later.
    let handles: Vec<_> = (0..2)
        .map(|_| {
            let url = daemon.url("/api/calls");
            let body = body.clone();
            std::thread::spawn(move || post_json(&url, &body).0)
        })
        .collect();
    for handle in handles {
        assert_eq!(handle.join().unwrap(), 202);
    }
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(notify(&daemon, &body), 202);

    let records = wait_audit(&setup.audit, 3);
    let outcomes: Vec<&str> = records
        .iter()
        .map(|r| r["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(
        outcomes.iter().filter(|o| **o == "rejected").count(),
        1,
        "{outcomes:?}"
    );
    assert_eq!(
        outcomes.iter().filter(|o| **o == "duplicate").count(),
        2,
        "{outcomes:?}"
    );
    assert_eq!(graph.calls_requests().len(), 1);
}

#[test]
fn the_default_callback_uri_is_sent_when_the_rule_has_none() {
    let graph = FakeGraph::start();
    let extra = "default_callback_uri = \"https://bot.contoso.com/api/calls/after-reject\"";
    let setup = setup(
        &enforce_config(&graph, extra),
        &[("50-screening.toml", SCREENING_RULES)],
    );
    let daemon = Daemon::start(&setup.dir, &setup.config);
    assert_eq!(
        notify(&daemon, &example("pstn-caller-with-countrycode.json")),
        202
    );
    let records = wait_audit(&setup.audit, 1);
    assert_eq!(
        records[0]["callback_uri"],
        "https://bot.contoso.com/api/calls/after-reject"
    );
    let rejects = graph.calls_requests();
    assert_eq!(
        rejects[0].json(),
        json!({"reason": "busy", "callbackUri": "https://bot.contoso.com/api/calls/after-reject"})
    );
}

#[test]
fn dry_run_records_decisions_and_never_contacts_graph() {
    let graph = FakeGraph::start();
    // Full credentials and a reachable Graph, but dry-run: nothing may be sent.
    let config = enforce_config(&graph, "").replace("mode = \"enforce\"", "mode = \"dry-run\"");
    let setup = setup(&config, &[("50-screening.toml", SCREENING_RULES)]);
    let daemon = Daemon::start(&setup.dir, &setup.config);
    assert_eq!(
        notify(&daemon, &example("anonymous-caller-no-id.json")),
        202
    );
    assert_eq!(notify(&daemon, &example("p2p-aad-user-audio.json")), 202);
    let records = wait_audit(&setup.audit, 2);
    let anonymous = record_for(&records, "2e012631-9a72-480d-908a-3e291dd257d5");
    assert_eq!(anonymous["outcome"], "would_reject");
    assert_eq!(anonymous["mode"], "dry-run");
    assert_eq!(anonymous["reason"], "forbidden");
    std::thread::sleep(Duration::from_millis(300));
    assert!(graph.received().is_empty(), "{:?}", graph.received());
}

#[test]
fn a_rule_in_audit_mode_only_records_its_rejects() {
    let graph = FakeGraph::start();
    let rules = SCREENING_RULES.replacen(
        "name = \"no-anonymous\"",
        "name = \"no-anonymous\"\nmode = \"audit\"",
        1,
    );
    let setup = setup(
        &enforce_config(&graph, ""),
        &[("50-screening.toml", &rules)],
    );
    let daemon = Daemon::start(&setup.dir, &setup.config);
    assert_eq!(
        notify(&daemon, &example("anonymous-caller-no-id.json")),
        202
    );
    let records = wait_audit(&setup.audit, 1);
    assert_eq!(records[0]["outcome"], "would_reject");
    assert_eq!(records[0]["mode"], "audit");
    std::thread::sleep(Duration::from_millis(300));
    assert!(graph.calls_requests().is_empty());
}

#[test]
fn editing_a_rule_file_changes_the_next_decision_and_a_broken_edit_changes_nothing() {
    let setup = setup("", &[("50-screening.toml", SCREENING_RULES)]);
    let daemon = Daemon::start(&setup.dir, &setup.config);
    let guest = example("guest-caller.json");
    let guest_id = "02c89680-e98c-4884-857c-e06bf9a21be1";

    assert_eq!(notify(&daemon, &guest), 202);
    let records = wait_audit(&setup.audit, 1);
    assert_eq!(records[0]["outcome"], "allowed");
    let first_version = records[0]["rules_version"].as_str().unwrap().to_owned();

    std::fs::write(setup.rules.join("40-guests.toml"), GUEST_RULES).unwrap();
    wait_for(Duration::from_secs(10), || {
        daemon
            .stderr
            .text()
            .contains("rules reloaded")
            .then_some(())
    })
    .expect("reload logged");
    assert_eq!(
        notify(&daemon, &renamed(&guest, guest_id, "guest-call-2")),
        202
    );
    let records = wait_audit(&setup.audit, 2);
    let second = record_for(&records, "guest-call-2");
    assert_eq!(second["outcome"], "would_reject");
    assert_eq!(second["rule"], "guests-video");
    let second_version = second["rules_version"].as_str().unwrap().to_owned();
    assert_ne!(first_version, second_version);

    // A broken edit is reported with its location and the last good rules stay.
    std::fs::write(
        setup.rules.join("40-guests.toml"),
        "[[rule]]\nname = \"guests-video\"\nactoin = 1\n",
    )
    .unwrap();
    wait_for(Duration::from_secs(10), || {
        daemon
            .stderr
            .text()
            .contains("the last good rules stay in force")
            .then_some(())
    })
    .unwrap_or_else(|| panic!("reload failure logged:\n{}", daemon.stderr.text()));
    assert!(
        daemon.stderr.shows("40-guests.toml:3:1"),
        "{}",
        daemon.stderr.text()
    );
    assert_eq!(
        notify(&daemon, &renamed(&guest, guest_id, "guest-call-3")),
        202
    );
    let records = wait_audit(&setup.audit, 3);
    let third = record_for(&records, "guest-call-3");
    assert_eq!(third["outcome"], "would_reject");
    assert_eq!(third["rules_version"], second_version.as_str());
}

#[test]
fn sighup_reloads_the_rules() {
    let setup = setup("", &[("50-screening.toml", SCREENING_RULES)]);
    let daemon = Daemon::start(&setup.dir, &setup.config);
    std::fs::write(setup.rules.join("40-guests.toml"), GUEST_RULES).unwrap();
    daemon.signal("HUP");
    wait_for(Duration::from_secs(10), || {
        let text = daemon.stderr.text();
        (text.contains("rules reloaded") || text.contains("rules unchanged")).then_some(())
    })
    .expect("reload after SIGHUP");
    assert_eq!(notify(&daemon, &example("guest-caller.json")), 202);
    let records = wait_audit(&setup.audit, 1);
    assert_eq!(records[0]["rule"], "guests-video");
}

#[test]
fn http_statuses_follow_the_contract() {
    let setup = setup(
        "max_body = \"64KiB\"",
        &[("50-screening.toml", SCREENING_RULES)],
    );
    let daemon = Daemon::start(&setup.dir, &setup.config);
    let client = http_client();
    let url = daemon.url("/api/calls");

    let status = |response: reqwest::blocking::Response| response.status().as_u16();
    assert_eq!(post_json(&url, "{not json").0, 400);
    assert_eq!(post_json(&url, "[1,2]").0, 400);
    assert_eq!(post_json(&url, "{\"value\": 3}").0, 400);
    let legacy = r#"{"subscriptionId":"x","resource":"/app/calls/1","changeType":"Updated"}"#;
    assert_eq!(post_json(&url, legacy).0, 204);
    let plain = client
        .post(&url)
        .header("content-type", "text/plain")
        .body("{}")
        .send()
        .unwrap();
    assert_eq!(status(plain), 415);
    assert_eq!(status(client.post(&url).body("{}").send().unwrap()), 415);
    assert_eq!(status(client.get(&url).send().unwrap()), 405);
    assert_eq!(status(client.get(daemon.url("/nope")).send().unwrap()), 404);
    assert_eq!(
        status(client.get(daemon.url("/healthz")).send().unwrap()),
        200
    );
    let ready = client.get(daemon.url("/readyz")).send().unwrap();
    assert_eq!(ready.status().as_u16(), 200);
    let ready: Value = ready.json().unwrap();
    assert_eq!(ready["mode"], "dry-run");
    assert_eq!(ready["rules"], 2);

    // Over the limit: declared up front, and streamed without a length.
    let huge = format!("{{\"value\":[],\"pad\":\"{}\"}}", "x".repeat(100 * 1024));
    assert_eq!(post_json(&url, &huge).0, 413);
    let mut chunked = String::from(
        "POST /api/calls HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
         transfer-encoding: chunked\r\n\r\n",
    );
    for _ in 0..66 {
        chunked.push_str(&format!("400\r\n{}\r\n", " ".repeat(1024)));
    }
    chunked.push_str("0\r\n\r\n");
    let answer = raw_request(daemon.addr, chunked.as_bytes());
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");

    // Non-invites are accepted and not screened.
    assert_eq!(
        post_json(&url, &example("call-deleted-terminated.json")).0,
        202
    );
    assert_eq!(
        post_json(&url, &example("participants-roster-updated.json")).0,
        202
    );
    assert_eq!(post_json(&url, &example("p2p-aad-user-audio.json")).0, 202);
    let records = wait_audit(&setup.audit, 1);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(audit_records(&setup.audit).len(), 1, "{records:?}");
    assert!(daemon.child.id() > 0);
}

/// Sends raw bytes and returns what the daemon answered before closing.
fn raw_request(addr: std::net::SocketAddr, request: &[u8]) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    let _ = stream.write_all(request);
    let mut answer = Vec::new();
    let mut buffer = [0u8; 4096];
    while let Ok(read) = stream.read(&mut buffer) {
        if read == 0 {
            break;
        }
        answer.extend_from_slice(&buffer[..read]);
    }
    String::from_utf8_lossy(&answer).into_owned()
}

#[test]
fn graph_errors_are_audited_with_their_status() {
    let graph = FakeGraph::start();
    let setup = setup(
        &enforce_config(&graph, ""),
        &[("50-screening.toml", SCREENING_RULES)],
    );
    // First call: 404 (not retried). Second: 503 then 202 (retried). Third: 401 then 202
    // (one token refresh, one retry).
    graph.script_rejects([
        Reply::graph_error(404, "itemNotFound"),
        Reply::graph_error(503, "serviceNotAvailable").with_header("retry-after", "0"),
        Reply::status(202),
        Reply::graph_error(401, "unauthenticated"),
        Reply::status(202),
    ]);
    let daemon = Daemon::start(&setup.dir, &setup.config);
    let anonymous = example("anonymous-caller-no-id.json");
    let anonymous_id = "2e012631-9a72-480d-908a-3e291dd257d5";

    assert_eq!(
        notify(&daemon, &renamed(&anonymous, anonymous_id, "call-gone")),
        202
    );
    let records = wait_audit(&setup.audit, 1);
    assert_eq!(records[0]["outcome"], "failed");
    assert_eq!(records[0]["graph_status"], 404);
    assert!(
        records[0]["error"]
            .as_str()
            .unwrap()
            .contains("itemNotFound"),
        "{}",
        records[0]
    );

    assert_eq!(
        notify(&daemon, &renamed(&anonymous, anonymous_id, "call-retried")),
        202
    );
    let records = wait_audit(&setup.audit, 2);
    assert_eq!(record_for(&records, "call-retried")["outcome"], "rejected");

    assert_eq!(
        notify(&daemon, &renamed(&anonymous, anonymous_id, "call-reauth")),
        202
    );
    let records = wait_audit(&setup.audit, 3);
    assert_eq!(record_for(&records, "call-reauth")["outcome"], "rejected");

    let requests = graph.calls_requests();
    assert_eq!(requests.len(), 5, "{requests:?}");
    let last = requests.last().unwrap();
    assert_eq!(
        last.header("authorization"),
        Some(&*format!("Bearer {ACCESS_TOKEN}-2"))
    );
    assert_eq!(graph.token_requests().len(), 2);
}

#[test]
fn a_graph_that_never_answers_expires_at_the_deadline() {
    let graph = FakeGraph::start();
    let config =
        enforce_config(&graph, "").replace("answer_deadline = \"3s\"", "answer_deadline = \"1s\"");
    let setup = setup(&config, &[("50-screening.toml", SCREENING_RULES)]);
    graph.script_rejects([Reply::status(202).delayed(Duration::from_secs(30))]);
    let daemon = Daemon::start(&setup.dir, &setup.config);
    let started = std::time::Instant::now();
    assert_eq!(
        notify(&daemon, &example("anonymous-caller-no-id.json")),
        202
    );
    // The POST itself is answered at once, before Graph has answered anything.
    assert!(
        started.elapsed() < Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );
    let records = wait_audit(&setup.audit, 1);
    assert_eq!(records[0]["outcome"], "expired");
    assert_eq!(records[0]["graph_status"], Value::Null);
    let latency = records[0]["latency_ms"].as_f64().unwrap();
    assert!((900.0..2500.0).contains(&latency), "{latency}");
}

#[test]
fn hostile_call_ids_stay_one_encoded_segment() {
    let graph = FakeGraph::start();
    let setup = setup(
        &enforce_config(&graph, ""),
        &[("50-screening.toml", SCREENING_RULES)],
    );
    let daemon = Daemon::start(&setup.dir, &setup.config);
    let body = example("anonymous-caller-no-id.json");
    let hostile = [
        ("../../users/x?y=1#z", "..%2F..%2Fusers%2Fx%3Fy%3D1%23z"),
        ("100%25done", "100%2525done"),
        ("appel é", "appel%20%C3%A9"),
    ];
    for (id, _) in hostile {
        let escaped = serde_json::to_string(id).unwrap();
        let escaped = escaped.trim_matches('"');
        let text = body.replace(
            "\"id\": \"2e012631-9a72-480d-908a-3e291dd257d5\"",
            &format!("\"id\": \"{escaped}\""),
        );
        assert_ne!(text, body);
        assert_eq!(notify(&daemon, &text), 202);
    }
    // A dot segment would be normalised away by any URL parser: refused, and audited.
    let dots = body.replace(
        "\"id\": \"2e012631-9a72-480d-908a-3e291dd257d5\"",
        "\"id\": \"..\"",
    );
    assert_eq!(notify(&daemon, &dots), 202);
    let records = wait_audit(&setup.audit, 4);
    let dot_record = record_for(&records, "..");
    assert_eq!(dot_record["outcome"], "failed");
    assert!(
        dot_record["error"]
            .as_str()
            .unwrap()
            .contains("cannot name a Graph resource")
    );

    let mut paths: Vec<String> = graph.calls_requests().into_iter().map(|r| r.path).collect();
    paths.sort();
    let mut expected: Vec<String> = hostile
        .iter()
        .map(|(_, segment)| format!("/v1.0/communications/calls/{segment}/reject"))
        .collect();
    expected.sort();
    assert_eq!(paths, expected);
}

#[test]
fn sigterm_finishes_rejects_already_under_way() {
    let graph = FakeGraph::start();
    let setup = setup(
        &enforce_config(&graph, ""),
        &[("50-screening.toml", SCREENING_RULES)],
    );
    graph.script_rejects([Reply::status(202).delayed(Duration::from_millis(1200))]);
    let mut daemon = Daemon::start(&setup.dir, &setup.config);
    assert_eq!(
        notify(&daemon, &example("anonymous-caller-no-id.json")),
        202
    );
    wait_for(Duration::from_secs(5), || {
        (!graph.calls_requests().is_empty()).then_some(())
    })
    .expect("reject under way");
    daemon.signal("TERM");
    assert_eq!(daemon.wait_exit(Duration::from_secs(10)), Some(0));
    let records = audit_records(&setup.audit);
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0]["outcome"], "rejected");
}

#[test]
fn broken_rules_at_start_are_a_clear_error() {
    let setup = setup("", &[("50-screening.toml", "[[rule]]\nname = 3\n")]);
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_callscreen"))
        .args(["run", "--config", setup.config.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("50-screening.toml:2:"), "{stderr}");
    assert!(stderr.contains("do not compile"), "{stderr}");
}

#[test]
fn secrets_never_reach_the_output() {
    let graph = FakeGraph::start();
    let setup = setup(
        &enforce_config(&graph, ""),
        &[("50-screening.toml", SCREENING_RULES)],
    );
    graph.script_rejects([
        Reply::graph_error(401, "unauthenticated"),
        Reply::status(202),
    ]);
    let mut daemon = Daemon::start(&setup.dir, &setup.config);
    for name in example_names() {
        notify(&daemon, &example(&name));
    }
    wait_audit(&setup.audit, 13);
    daemon.signal("TERM");
    daemon.wait_exit(Duration::from_secs(10));
    let everything = format!(
        "{}{}{}",
        daemon.stdout.text(),
        daemon.stderr.text(),
        std::fs::read_to_string(&setup.audit).unwrap()
    );
    for secret in [CLIENT_SECRET, ACCESS_TOKEN] {
        assert!(!everything.contains(secret), "{secret} leaked");
    }
}

#[test]
fn a_rule_on_trial_in_audit_mode_never_stops_a_later_enforced_reject() {
    let graph = FakeGraph::start();
    let trial = "[[rule]]\nname = \"trial-amer\"\naction = \"reject\"\nreason = \"busy\"\n\
                 mode = \"audit\"\n[rule.when]\ncaller.region = \"amer\"\n";
    let setup = setup(
        &enforce_config(&graph, ""),
        &[
            ("05-trial.toml", trial),
            ("50-screening.toml", SCREENING_RULES),
        ],
    );
    let daemon = setup.start();
    assert_eq!(
        notify(&daemon, &example("anonymous-caller-no-id.json")),
        202
    );
    assert_eq!(notify(&daemon, &example("p2p-aad-user-audio.json")), 202);
    let records = wait_audit(&setup.audit, 2);

    let anonymous = record_for(&records, "2e012631-9a72-480d-908a-3e291dd257d5");
    assert_eq!(anonymous["rule"], "no-anonymous");
    assert_eq!(anonymous["outcome"], "rejected");
    assert_eq!(anonymous["shadow_rule"], "trial-amer");
    assert_eq!(anonymous["shadow_action"], "reject");
    // Where no enforced rule matches, the trial rule's would-be decision is recorded.
    let user = record_for(&records, "683447c1-0cc8-4f11-9d4e-abbd1fcfb980");
    assert_eq!(user["rule"], "trial-amer");
    assert_eq!(user["outcome"], "would_reject");
    assert_eq!(graph.calls_requests().len(), 1);

    let status: Value = http_client()
        .get(daemon.url("/status"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let trial = status["rules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "trial-amer");
    assert_eq!(trial.unwrap()["shadow_hits"], 2);
}
