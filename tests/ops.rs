//! Operations: systemd notifications, Prometheus metrics, status, and JSON logs, checked
//! against the real binary.

mod support;

use std::os::unix::net::UnixDatagram;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use support::*;

const RULES: &str = r#"
[[rule]]
name = "no-anonymous"
action = "reject"
reason = "forbidden"
[rule.when]
caller.kind = "anonymous"

[[rule]]
name = "shadow-guests"
action = "reject"
mode = "audit"
[rule.when]
caller.kind = "guest"
"#;

fn setup(extra_config: &str) -> Workspace {
    Workspace::new(extra_config, &[("50-rules.toml", RULES)])
}

fn enforce(graph: &FakeGraph) -> String {
    support::enforce_config(graph, "15s", "")
}

fn receive_all(socket: &UnixDatagram, until: &str, timeout: Duration) -> Vec<String> {
    let mut messages = Vec::new();
    let deadline = std::time::Instant::now() + timeout;
    let mut buffer = [0u8; 4096];
    while std::time::Instant::now() < deadline {
        if let Ok(read) = socket.recv(&mut buffer) {
            let message = String::from_utf8_lossy(&buffer[..read]).into_owned();
            let done = message.contains(until);
            messages.push(message);
            if done {
                break;
            }
        }
    }
    messages
}

#[test]
fn systemd_hears_ready_reloading_watchdog_and_stopping_in_order() {
    let setup = setup("");
    let socket_path = setup.dir.join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut daemon = Daemon::start_env(
        &setup.dir,
        &["run", "--config", setup.config.to_str().unwrap()],
        &[
            ("NOTIFY_SOCKET", socket_path.to_str().unwrap()),
            ("WATCHDOG_USEC", "300000"),
        ],
    );

    let mut messages = receive_all(&socket, "READY=1", Duration::from_secs(5));
    // A few watchdog pings at half of WatchdogSec.
    messages.extend(receive_all(&socket, "never", Duration::from_millis(800)));
    std::fs::write(
        setup.dir.join("rules/60-more.toml"),
        RULES.replace("no-anon", "no-anon2"),
    )
    .unwrap();
    daemon.signal("HUP");
    messages.extend(receive_all(&socket, "READY=1", Duration::from_secs(5)));
    daemon.signal("TERM");
    messages.extend(receive_all(&socket, "STOPPING=1", Duration::from_secs(5)));
    assert_eq!(daemon.wait_exit(Duration::from_secs(10)), Some(0));

    let messages: Vec<&str> = messages.iter().map(|m| m.trim_end()).collect();
    let watchdog_pings = messages.iter().filter(|m| **m == "WATCHDOG=1").count();
    assert!(watchdog_pings >= 2, "{messages:?}");
    // READY, then (RELOADING + MONOTONIC_USEC, READY) for each reload, then STOPPING.
    let lifecycle: Vec<&str> = messages
        .into_iter()
        .filter(|m| *m != "WATCHDOG=1")
        .collect();
    assert_eq!(lifecycle.first(), Some(&"READY=1"), "{lifecycle:?}");
    assert_eq!(lifecycle.last(), Some(&"STOPPING=1"), "{lifecycle:?}");
    let reloads = &lifecycle[1..lifecycle.len() - 1];
    assert!(
        !reloads.is_empty() && reloads.len().is_multiple_of(2),
        "{lifecycle:?}"
    );
    for pair in reloads.chunks(2) {
        let reloading: Vec<&str> = pair[0].lines().collect();
        assert_eq!(reloading[0], "RELOADING=1", "{lifecycle:?}");
        let usec = reloading[1]
            .strip_prefix("MONOTONIC_USEC=")
            .expect("monotonic time");
        assert!(usec.parse::<u64>().unwrap() > 0);
        assert_eq!(pair[1], "READY=1", "{lifecycle:?}");
    }
}

#[test]
fn metrics_count_what_happened() {
    let graph = FakeGraph::start();
    let setup = setup(&enforce(&graph));
    let daemon = Daemon::start(&setup.dir, &setup.config);
    let url = daemon.url("/api/calls");
    let anonymous = example("anonymous-caller-no-id.json");
    for body in [
        &anonymous,
        &anonymous,
        &example("guest-caller.json"),
        &example("p2p-aad-user-audio.json"),
    ] {
        assert_eq!(post_json(&url, body).0, 202);
    }
    assert_eq!(post_json(&url, "{broken").0, 400);
    wait_audit(&setup.audit, 4);
    std::fs::write(setup.dir.join("rules/60-broken.toml"), "[[rule]\n").unwrap();
    wait_for(Duration::from_secs(10), || {
        daemon
            .stderr
            .text()
            .contains("the last good rules stay")
            .then_some(())
    })
    .expect("failed reload");

    let text = http_client()
        .get(daemon.url("/metrics"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    let version = audit_records(&setup.audit)[0]["rules_version"]
        .as_str()
        .unwrap()
        .to_owned();
    for expected in [
        "callscreen_invites_total 4".to_owned(),
        "callscreen_notifications_total{status=\"202\"} 4".to_owned(),
        "callscreen_notifications_total{status=\"400\"} 1".to_owned(),
        "callscreen_decisions_total{action=\"reject\",outcome=\"rejected\",mode=\"enforce\"} 1"
            .to_owned(),
        "callscreen_decisions_total{action=\"reject\",outcome=\"duplicate\",mode=\"enforce\"} 1"
            .to_owned(),
        "callscreen_decisions_total{action=\"reject\",outcome=\"would_reject\",mode=\"audit\"} 1"
            .to_owned(),
        "callscreen_decisions_total{action=\"allow\",outcome=\"allowed\",mode=\"enforce\"} 1"
            .to_owned(),
        "callscreen_rule_hits_total{rule=\"no-anonymous\"} 2".to_owned(),
        "callscreen_rule_shadow_hits_total{rule=\"shadow-guests\"} 1".to_owned(),
        "callscreen_graph_responses_total{status=\"202\"} 1".to_owned(),
        "callscreen_graph_request_duration_seconds_count 1".to_owned(),
        "callscreen_token_refreshes_total{result=\"ok\"} 1".to_owned(),
        "callscreen_rule_reloads_total{result=\"failed\"} 1".to_owned(),
        format!("callscreen_rules_info{{version=\"{version}\"}} 1"),
        "callscreen_rules 2".to_owned(),
    ] {
        assert!(text.contains(&expected), "{expected} missing from\n{text}");
    }
}

#[test]
fn status_reports_rules_hits_shadow_evidence_and_reload_errors() {
    let setup = setup("");
    let daemon = Daemon::start(&setup.dir, &setup.config);
    let url = daemon.url("/api/calls");
    let guest = example("guest-caller.json");
    let guest_id = "02c89680-e98c-4884-857c-e06bf9a21be1";
    assert_eq!(post_json(&url, &guest).0, 202);
    assert_eq!(
        post_json(&url, &guest.replace(guest_id, "second-guest-call")).0,
        202
    );
    assert_eq!(
        post_json(&url, &example("anonymous-caller-no-id.json")).0,
        202
    );
    wait_audit(&setup.audit, 3);
    std::fs::write(
        setup.dir.join("rules/60-broken.toml"),
        "[[rule]]\nname = 1\n",
    )
    .unwrap();
    wait_for(Duration::from_secs(10), || {
        daemon
            .stderr
            .text()
            .contains("the last good rules stay")
            .then_some(())
    })
    .expect("failed reload");

    let status: Value = http_client()
        .get(daemon.url("/status"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(status["mode"], "dry-run");
    assert_eq!(status["rule_count"], 2);
    assert!(status["uptime_seconds"].as_u64().is_some());
    let error = status["last_reload_error"]["message"].as_str().unwrap();
    assert!(
        error.contains("60-broken.toml:1:1: rule is missing \"action\""),
        "{error}"
    );
    assert!(error.ends_with("(and 1 more problem)"), "{error}");
    let rules = status["rules"].as_array().unwrap();
    assert_eq!(rules[0]["name"], "no-anonymous");
    assert_eq!(rules[0]["hits"], 1);
    assert_eq!(rules[1]["name"], "shadow-guests");
    assert_eq!(rules[1]["shadow_hits"], 2);
    assert_eq!(rules[1]["shadow_distinct_callers"], 1);
    assert_eq!(rules[1]["since_rules_version"], status["rules_version"]);

    // The CLI asks the running daemon.
    let output = Command::new(env!("CARGO_BIN_EXE_callscreen"))
        .args(["status", "--url", &format!("http://{}", daemon.addr)])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("mode dry-run"), "{text}");
    assert!(text.contains("last reload error at"), "{text}");
    let shadow_line = text
        .lines()
        .find(|line| line.starts_with("shadow-guests"))
        .unwrap();
    let columns: Vec<&str> = shadow_line.split_whitespace().collect();
    assert_eq!(&columns[1..4], ["0", "2", "1"], "{shadow_line}");

    // Undoing the broken edit leaves the rules unchanged and the error behind.
    std::fs::remove_file(setup.dir.join("rules/60-broken.toml")).unwrap();
    wait_for(Duration::from_secs(10), || {
        let status: Value = http_client()
            .get(daemon.url("/status"))
            .send()
            .ok()?
            .json()
            .ok()?;
        status["last_reload_error"].is_null().then_some(())
    })
    .expect("the reload error is cleared");
    assert!(daemon.stderr.shows("rules unchanged"));

    let unreachable = Command::new(env!("CARGO_BIN_EXE_callscreen"))
        .args(["status", "--url", "http://127.0.0.1:9"])
        .output()
        .unwrap();
    assert_eq!(unreachable.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&unreachable.stderr).contains("cannot reach"));
}

#[test]
fn json_logs_carry_one_structured_line_per_decision() {
    let setup = setup("");
    let daemon = Daemon::start_env(
        &setup.dir,
        &[
            "--log-format",
            "json",
            "run",
            "--config",
            setup.config.to_str().unwrap(),
        ],
        &[("RUST_LOG", "info")],
    );
    assert_eq!(
        post_json(
            &daemon.url("/api/calls"),
            &example("anonymous-caller-no-id.json")
        )
        .0,
        202
    );
    wait_audit(&setup.audit, 1);
    let line = wait_for(Duration::from_secs(5), || {
        daemon
            .stderr
            .text()
            .lines()
            .find(|line| line.contains("\"decision\""))
            .map(str::to_owned)
    })
    .expect("decision line");
    let event: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(event["level"], "INFO");
    assert_eq!(event["call_id"], "2e012631-9a72-480d-908a-3e291dd257d5");
    assert_eq!(event["action"], "reject");
    assert_eq!(event["rule"], "no-anonymous");
    assert_eq!(event["outcome"], "would_reject");
    assert!(event["latency_ms"].as_f64().is_some());
    for line in daemon.stderr.text().lines() {
        assert!(
            serde_json::from_str::<Value>(line).is_ok(),
            "not JSON: {line}"
        );
    }
}

#[test]
fn log_level_comes_from_the_config_unless_rust_log_is_set() {
    let setup = setup("log_level = \"warn\"");
    let addr = free_addr();
    let daemon = Daemon::start_env(
        &setup.dir,
        &[
            "run",
            "--config",
            setup.config.to_str().unwrap(),
            "--listen",
            &addr,
        ],
        &[("RUST_LOG", "")],
    );
    // At warn, the start-up warning about inbound auth shows and the info lines do not.
    wait_for(Duration::from_secs(5), || {
        daemon
            .stderr
            .text()
            .contains("inbound.auth is off")
            .then_some(())
    })
    .expect("warning logged");
    assert_eq!(
        post_json(
            &daemon.url("/api/calls"),
            &example("anonymous-caller-no-id.json")
        )
        .0,
        202
    );
    wait_audit(&setup.audit, 1);
    // Log lines trail the audit record by a moment: give a wrong one time to show up.
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        !daemon.stderr.text().contains(" INFO "),
        "{}",
        daemon.stderr.text()
    );
}
