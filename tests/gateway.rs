//! Gateway mode and routing: callscreen in front of a fake bot, redirect and ignore rules,
//! all against the real binary and a fake Graph on 127.0.0.1.

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::*;

const RULES: &str = r#"
[[rule]]
name = "no-anonymous"
action = "reject"
reason = "forbidden"
[rule.when]
caller.kind = "anonymous"

[[rule]]
name = "phones-to-the-desk"
action = "redirect"
targets = [{ user = "7d7b2b3c-1f66-4f0a-8a53-0d2b6f1c9e11" }, { phone = "+1 (555) 555-0100" }]
timeout = 30
mask_caller = true
callback_uri = "https://bot.contoso.com/api/calls/redirected"
[rule.when]
caller.kind = "phone"

[[rule]]
name = "silence-other-bots"
action = "ignore"
[rule.when]
caller.kind = "application"
"#;

const ANONYMOUS_ID: &str = "2e012631-9a72-480d-908a-3e291dd257d5";
const USER_CALL: &str = "683447c1-0cc8-4f11-9d4e-abbd1fcfb980";

fn setup(graph: &FakeGraph, mode: &str, upstream: Option<&str>) -> Workspace {
    let upstream = upstream
        .map(|url| format!("[upstream]\nurl = \"{url}\"\ntimeout = \"2s\"\n"))
        .unwrap_or_default();
    let config = support::enforce_config(graph, "15s", "").replace("enforce", mode);
    Workspace::new(&format!("{config}{upstream}"), &[("50-rules.toml", RULES)])
}

/// POSTs `body` as Graph would, with its bearer token and correlation header.
fn post_as_graph(url: &str, body: &str) -> (u16, String) {
    let response = http_client()
        .post(url)
        .header("content-type", "application/json")
        .header("authorization", "Bearer graph-signed-token")
        .header("x-microsoft-skype-chain-id", "chain-1")
        .body(body.to_owned())
        .send()
        .unwrap();
    let status = response.status().as_u16();
    (status, response.text().unwrap())
}

fn record<'a>(records: &'a [Value], call_id: &str) -> &'a Value {
    records
        .iter()
        .find(|r| r["call_id"] == call_id)
        .unwrap_or_else(|| panic!("{call_id}"))
}

#[test]
fn kept_calls_reach_the_bot_unchanged_and_the_bot_answers_graph() {
    let graph = FakeGraph::start();
    graph.script_bot([Reply {
        body: "bot says hi".into(),
        ..Reply::status(200)
    }]);
    let setup = setup(&graph, "enforce", Some(&graph.bot_url()));
    let daemon = setup.start();
    let body = example("p2p-aad-user-audio.json");

    let (status, answer) = post_as_graph(&daemon.url("/api/calls"), &body);
    assert_eq!(
        (status, answer.as_str()),
        (200, "bot says hi"),
        "the bot's answer, as it is"
    );

    let forwarded = graph.bot_requests();
    assert_eq!(forwarded.len(), 1);
    let request = &forwarded[0];
    assert_eq!(request.method, "POST");
    assert_eq!(request.path, "/bot/api/calls");
    assert_eq!(
        request.body,
        body.as_bytes(),
        "the body is forwarded byte for byte"
    );
    assert_eq!(
        request.header("authorization"),
        Some("Bearer graph-signed-token")
    );
    assert_eq!(
        request.header("x-microsoft-skype-chain-id"),
        Some("chain-1")
    );
    assert_eq!(request.header("content-type"), Some("application/json"));

    let records = wait_audit(&setup.audit, 1);
    assert_eq!(records[0]["outcome"], "forwarded");
    assert_eq!(records[0]["upstream_status"], 200);
    assert!(graph.calls_requests().is_empty());
}

#[test]
fn rejected_calls_and_their_later_notifications_never_reach_the_bot() {
    let graph = FakeGraph::start();
    let setup = setup(&graph, "enforce", Some(&graph.bot_url()));
    let daemon = setup.start();
    let url = daemon.url("/api/calls");

    let (status, _) = post_as_graph(&url, &example("anonymous-caller-no-id.json"));
    assert_eq!(
        status, 202,
        "nothing left to forward: callscreen answers itself"
    );
    // Graph's later notification about the rejected call stays away from the bot too.
    let deleted = example("call-deleted-terminated.json")
        .replace("31643087-af6f-4ad0-9f20-c770621477ba", ANONYMOUS_ID);
    assert_eq!(post_as_graph(&url, &deleted).0, 202);
    // A notification about a call callscreen never screened goes to the bot.
    assert_eq!(
        post_as_graph(&url, &example("call-updated-established.json")).0,
        202
    );

    let records = wait_audit(&setup.audit, 1);
    assert_eq!(records[0]["outcome"], "rejected");
    let bot = graph.bot_requests();
    assert_eq!(bot.len(), 1, "{bot:?}");
    assert!(String::from_utf8_lossy(&bot[0].body).contains("ba52fff4-2c57-47ba"));
    assert_eq!(graph.calls_requests().len(), 1);
}

#[test]
fn a_mixed_batch_is_split_between_graph_and_the_bot() {
    let graph = FakeGraph::start();
    let setup = setup(&graph, "enforce", Some(&graph.bot_url()));
    let daemon = setup.start();
    // One user (kept) and one phone caller (redirected) in one POST.
    let (status, _) = post_as_graph(
        &daemon.url("/api/calls"),
        &example("batch-two-invites.json"),
    );
    assert_eq!(status, 202);

    let records = wait_audit(&setup.audit, 2);
    assert_eq!(
        record(&records, "765b1f48-d33c-48de-aa68-268ccaf9a1f4")["outcome"],
        "forwarded"
    );
    let redirected = record(&records, "01f752bc-3f10-4ac5-86ad-f2a1be6f3d77");
    assert_eq!(redirected["outcome"], "redirected");
    assert_eq!(redirected["graph_status"], 202);

    let forwarded: Value = graph.bot_requests()[0].json();
    let original: Value = serde_json::from_str(&example("batch-two-invites.json")).unwrap();
    assert_eq!(forwarded["@odata.type"], original["@odata.type"]);
    assert_eq!(
        forwarded["value"],
        json!([original["value"][0]]),
        "only the kept element"
    );
}

#[test]
fn redirect_rules_send_the_documented_request() {
    let graph = FakeGraph::start();
    let setup = setup(&graph, "enforce", None);
    let daemon = setup.start();
    let call = "3a7cfb36-6088-455f-8763-54b65ed08d6b";
    assert_eq!(
        post_json(
            &daemon.url("/api/calls"),
            &example("pstn-caller-with-countrycode.json")
        )
        .0,
        202
    );

    let records = wait_audit(&setup.audit, 1);
    assert_eq!(records[0]["outcome"], "redirected");
    assert_eq!(records[0]["action"], "redirect");
    assert_eq!(records[0]["rule"], "phones-to-the-desk");
    let requests = graph.calls_requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(
        requests[0].path,
        format!("/v1.0/communications/calls/{call}/redirect")
    );
    assert_eq!(
        requests[0].header("authorization"),
        Some(&*format!("Bearer {ACCESS_TOKEN}"))
    );
    let identity = |member: &str, id: &str| {
        json!({
            "@odata.type": "#microsoft.graph.invitationParticipantInfo",
            "identity": {
                "@odata.type": "#microsoft.graph.identitySet",
                member: { "@odata.type": "#microsoft.graph.identity", "id": id },
            },
        })
    };
    assert_eq!(
        requests[0].json(),
        json!({
            "targets": [
                identity("user", "7d7b2b3c-1f66-4f0a-8a53-0d2b6f1c9e11"),
                identity("phone", "+15555550100"),
            ],
                        "timeout": 30,
            "callbackUri": "https://bot.contoso.com/api/calls/redirected",
        })
    );
    // Graph v1.0 refuses the masking options; they are left out, and the log says so.
    assert!(
        daemon
            .stderr
            .text()
            .contains("only Graph's beta endpoint takes them")
    );
}

#[test]
fn in_dry_run_redirects_and_ignores_are_only_recorded_and_the_bot_gets_everything() {
    let graph = FakeGraph::start();
    let setup = setup(&graph, "dry-run", Some(&graph.bot_url()));
    let daemon = setup.start();
    let url = daemon.url("/api/calls");
    for name in [
        "pstn-caller-with-countrycode.json",
        "call-from-other-bot-application.json",
    ] {
        assert_eq!(post_as_graph(&url, &example(name)).0, 202);
    }
    let records = wait_audit(&setup.audit, 2);
    assert_eq!(
        record(&records, "3a7cfb36-6088-455f-8763-54b65ed08d6b")["outcome"],
        "would_redirect"
    );
    assert_eq!(
        record(&records, "12400dfa-cf73-4131-b1b0-b480ac7a0c5d")["outcome"],
        "would_ignore"
    );
    assert_eq!(graph.bot_requests().len(), 2);
    assert!(graph.calls_requests().is_empty() && graph.token_requests().is_empty());
}

#[test]
fn ignored_calls_get_no_answer_from_anyone() {
    let graph = FakeGraph::start();
    let setup = setup(&graph, "enforce", Some(&graph.bot_url()));
    let daemon = setup.start();
    let body = example("call-from-other-bot-application.json");
    assert_eq!(post_as_graph(&daemon.url("/api/calls"), &body).0, 202);
    let records = wait_audit(&setup.audit, 1);
    assert_eq!(records[0]["outcome"], "ignored");
    std::thread::sleep(Duration::from_millis(300));
    assert!(graph.bot_requests().is_empty());
    assert!(graph.calls_requests().is_empty());
}

#[test]
fn an_unreachable_bot_gives_502_and_shows_in_readyz() {
    let graph = FakeGraph::start();
    let nobody = format!("http://{}/api/calls", free_addr());
    let setup = setup(&graph, "enforce", Some(&nobody));
    let daemon = setup.start();
    let body = example("p2p-aad-user-audio.json").replace(USER_CALL, "call-for-nobody");
    let (status, _) = post_as_graph(&daemon.url("/api/calls"), &body);
    assert_eq!(status, 502);
    let records = wait_audit(&setup.audit, 1);
    assert_eq!(records[0]["outcome"], "failed");
    assert!(
        records[0]["error"]
            .as_str()
            .unwrap()
            .contains("unreachable"),
        "{}",
        records[0]
    );
    assert!(daemon.stderr.shows("cannot forward to the bot"));

    let ready = http_client().get(daemon.url("/readyz")).send().unwrap();
    assert_eq!(ready.status().as_u16(), 503);
    let ready: Value = ready.json().unwrap();
    assert_eq!(ready["upstream_reachable"], false);
}

#[test]
fn a_later_notification_in_the_same_batch_as_a_rejected_invite_stays_away() {
    let graph = FakeGraph::start();
    let setup = setup(&graph, "enforce", Some(&graph.bot_url()));
    let daemon = setup.start();
    let mut batch: Value = serde_json::from_str(&example("anonymous-caller-no-id.json")).unwrap();
    let deleted: Value = serde_json::from_str(
        &example("call-deleted-terminated.json")
            .replace("31643087-af6f-4ad0-9f20-c770621477ba", ANONYMOUS_ID),
    )
    .unwrap();
    batch["value"]
        .as_array_mut()
        .unwrap()
        .push(deleted["value"][0].clone());
    assert_eq!(
        post_as_graph(&daemon.url("/api/calls"), &batch.to_string()).0,
        202
    );
    assert_eq!(wait_audit(&setup.audit, 1)[0]["outcome"], "rejected");
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        graph.bot_requests().is_empty(),
        "{:?}",
        graph.bot_requests()
    );
}

#[test]
fn per_call_callback_paths_and_queries_reach_the_bot() {
    let graph = FakeGraph::start();
    let setup = setup(&graph, "enforce", Some(&graph.bot_url()));
    let daemon = setup.start();
    let url = daemon.url("/api/calls/screened?tenant=contoso");
    assert_eq!(
        post_as_graph(&url, &example("call-updated-established.json")).0,
        202
    );
    let bot = graph.bot_requests();
    assert_eq!(bot.len(), 1);
    assert_eq!(bot[0].path, "/bot/api/calls/screened");
    assert_eq!(bot[0].query.as_deref(), Some("tenant=contoso"));
    // Only paths below the notification path are notifications.
    let other = http_client()
        .post(daemon.url("/api/callsX"))
        .body("{}")
        .send()
        .unwrap();
    assert_eq!(other.status().as_u16(), 404);
}

#[test]
fn dry_run_records_carry_the_bots_answer() {
    let graph = FakeGraph::start();
    graph.script_bot([Reply::status(500)]);
    let setup = setup(&graph, "dry-run", Some(&graph.bot_url()));
    let daemon = setup.start();
    let body = example("pstn-caller-with-countrycode.json");
    assert_eq!(post_as_graph(&daemon.url("/api/calls"), &body).0, 500);
    let records = wait_audit(&setup.audit, 1);
    assert_eq!(records[0]["outcome"], "would_redirect");
    assert_eq!(records[0]["upstream_status"], 500);
}

#[test]
fn sigterm_during_a_slow_forward_still_records_the_invite() {
    let graph = FakeGraph::start();
    graph.script_bot([Reply::status(202).delayed(Duration::from_millis(1500))]);
    let setup = setup(&graph, "enforce", Some(&graph.bot_url()));
    let mut daemon = setup.start();
    let url = daemon.url("/api/calls");
    let body = example("p2p-aad-user-audio.json");
    let post = std::thread::spawn(move || post_as_graph(&url, &body).0);
    wait_for(Duration::from_secs(5), || {
        (!graph.bot_requests().is_empty()).then_some(())
    })
    .expect("forward under way");
    daemon.signal("TERM");
    assert_eq!(daemon.wait_exit(Duration::from_secs(20)), Some(0));
    let _ = post.join();
    let records = audit_records(&setup.audit);
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0]["outcome"], "forwarded");
    assert_eq!(records[0]["upstream_status"], 202);
}
