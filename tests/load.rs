//! Load: thousands of invites from many concurrent clients against a slow fake Graph, with
//! rule files rewritten underneath and a SIGTERM in the middle. Figures are printed (run
//! with `--nocapture`, or `bench/load.sh`); assertions are about correctness only.

mod support;

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::*;

const CLIENTS: usize = 64;
const INVITES: usize = 2000;
const ANONYMOUS_ID: &str = "2e012631-9a72-480d-908a-3e291dd257d5";
const USER_ID: &str = "683447c1-0cc8-4f11-9d4e-abbd1fcfb980";

/// Rejects anonymous callers only.
const RULES_A: &str = r#"
[[rule]]
name = "no-anonymous"
action = "reject"
reason = "forbidden"
[rule.when]
caller.kind = "anonymous"
"#;

/// Rejects anonymous callers and users: a decision on a user tells which set decided.
const RULES_B: &str = r#"
[[rule]]
name = "no-anonymous"
action = "reject"
reason = "forbidden"
[rule.when]
caller.kind = "anonymous"

[[rule]]
name = "no-users"
action = "reject"
reason = "busy"
[rule.when]
caller.kind = "user"
"#;

const BROKEN: &str = "[[rule]]\nname = \"no-anonymous\"\naction = \"reject\"\nreason = \"maybe\"\n";

fn setup(graph: &FakeGraph) -> Workspace {
    let config = support::enforce_config(graph, "15s", "");
    Workspace::new(&config, &[("50-rules.toml", RULES_A)])
}

/// The rules version `check` reports for `text`.
fn version_of(text: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("50-rules.toml"), text).unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_callscreen"))
        .args(["check", "--rules", dir.path().to_str().unwrap()])
        .output()
        .unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    stdout
        .trim_end()
        .trim_end_matches(')')
        .rsplit(' ')
        .next()
        .unwrap()
        .to_owned()
}

/// The invite numbered `index`: two in three are anonymous, the rest are users.
fn invite(index: usize) -> (String, String) {
    let call_id = format!("load-{index:05}");
    let body = if index % 3 == 2 {
        example("p2p-aad-user-audio.json").replace(USER_ID, &call_id)
    } else {
        example("anonymous-caller-no-id.json").replace(ANONYMOUS_ID, &call_id)
    };
    (call_id, body)
}

fn percentile(sorted: &[Duration], fraction: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * fraction).round() as usize]
}

/// Sends invites from `CLIENTS` threads until `total` were sent or `stop` is set; returns,
/// per call id, when its POST started and whether the daemon accepted it (202).
fn drive(
    url: &str,
    total: usize,
    stop: &Arc<AtomicBool>,
    accepted: &Arc<AtomicUsize>,
) -> HashMap<String, (Instant, Option<u16>)> {
    let next = Arc::new(AtomicUsize::new(0));
    let sent = Arc::new(Mutex::new(HashMap::new()));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (next, sent, stop, url) =
                (next.clone(), sent.clone(), stop.clone(), url.to_owned());
            let accepted = Arc::clone(accepted);
            std::thread::spawn(move || {
                let client = http_client();
                loop {
                    let index = next.fetch_add(1, Ordering::SeqCst);
                    if index >= total || stop.load(Ordering::SeqCst) {
                        return;
                    }
                    let (call_id, body) = invite(index);
                    let started = Instant::now();
                    let status = client
                        .post(&url)
                        .header("content-type", "application/json")
                        .body(body)
                        .send()
                        .ok()
                        .map(|response| response.status().as_u16());
                    if status == Some(202) {
                        accepted.fetch_add(1, Ordering::SeqCst);
                    }
                    sent.lock().unwrap().insert(call_id, (started, status));
                }
            })
        })
        .collect();
    for client in clients {
        client.join().unwrap();
    }
    Arc::try_unwrap(sent).unwrap().into_inner().unwrap()
}

/// Reload outcomes the daemon has logged so far (swapped, refused or unchanged).
fn reload_outcomes(logs: &Captured) -> usize {
    let text = logs.text();
    [
        "rules reloaded",
        "the last good rules stay",
        "rules unchanged",
    ]
    .iter()
    .map(|marker| text.matches(marker).count())
    .sum()
}

/// Rewrites the rule file `times` times (B, broken, A, broken, …), each time waiting until
/// the daemon has acted on the change, so every version really meets the load.
fn rewrite_rules_repeatedly(rules: &Path, times: usize, logs: &Captured) -> usize {
    for round in 0..times {
        let text = match round % 4 {
            0 => RULES_B,
            2 => RULES_A,
            _ => BROKEN,
        };
        let before = reload_outcomes(logs);
        // Editors replace files by rename; do the same so a reader never sees half a file.
        let staging = rules.join(".50-rules.toml.tmp");
        std::fs::write(&staging, text).unwrap();
        std::fs::rename(&staging, rules.join("50-rules.toml")).unwrap();
        wait_for(Duration::from_secs(10), || {
            (reload_outcomes(logs) > before).then_some(())
        })
        .expect("the daemon acted on the rewrite");
    }
    times
}

#[test]
fn two_thousand_invites_with_rule_rewrites_each_get_one_record_and_one_request() {
    let graph = FakeGraph::start();
    graph.random_reject_delay(Duration::from_millis(500));
    let setup = setup(&graph);
    let daemon = Daemon::start(&setup.dir, &setup.config);
    let (version_a, version_b) = (version_of(RULES_A), version_of(RULES_B));
    let valid_versions: HashSet<&str> = [version_a.as_str(), version_b.as_str()].into();
    let url = daemon.url("/api/calls");

    // The load runs until both 2,000 invites were sent and the 50 rewrites are done.
    let rewrites_done = Arc::new(AtomicBool::new(false));
    let rules_dir = setup.dir.join("rules");
    let rewriter = {
        let done = rewrites_done.clone();
        let logs = daemon.stderr.clone();
        std::thread::spawn(move || {
            let written = rewrite_rules_repeatedly(&rules_dir, 50, &logs);
            done.store(true, Ordering::SeqCst);
            written
        })
    };
    let stop_load = Arc::new(AtomicBool::new(false));
    let accepted = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let driver = {
        let (stop, accepted) = (stop_load.clone(), accepted.clone());
        std::thread::spawn(move || drive(&url, usize::MAX, &stop, &accepted))
    };
    wait_for(Duration::from_secs(120), || {
        let enough = accepted.load(Ordering::SeqCst) >= INVITES;
        (enough && rewrites_done.load(Ordering::SeqCst)).then_some(())
    })
    .expect("load and rewrites finished");
    stop_load.store(true, Ordering::SeqCst);
    let sent = driver.join().unwrap();
    let sending = started.elapsed();
    let rewrites = rewriter.join().unwrap();
    let total = sent.len();

    assert!(total >= INVITES);
    assert!(
        sent.values().all(|(_, status)| *status == Some(202)),
        "every POST got 202"
    );
    let records = wait_audit(&setup.audit, total);
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(
        audit_records(&setup.audit).len(),
        total,
        "exactly one record per invite"
    );

    let mut seen = HashSet::new();
    let mut rejected = HashSet::new();
    for record in &records {
        let call_id = record["call_id"].as_str().unwrap().to_owned();
        assert!(seen.insert(call_id.clone()), "two records for {call_id}");
        let version = record["rules_version"].as_str().unwrap();
        assert!(
            valid_versions.contains(version),
            "decided by unknown version {version}"
        );
        // The decision is the one its own rule set makes: users are rejected only by B.
        let is_user = record["caller"]["kind"] == "user";
        let expected_reject = !is_user || version == version_b;
        assert_eq!(record["action"] == "reject", expected_reject, "{record}");
        if record["action"] == "reject" {
            assert_eq!(record["outcome"], "rejected", "{record}");
            rejected.insert(call_id);
        }
    }

    let requests = graph.received_at();
    let mut per_call: HashMap<String, Instant> = HashMap::new();
    for (request, arrived) in requests.iter().filter(|(r, _)| r.path.contains("/calls/")) {
        let call_id = request.path.split('/').nth(4).unwrap().to_owned();
        assert!(
            per_call.insert(call_id.clone(), *arrived).is_none(),
            "{call_id} twice"
        );
    }
    let requested: HashSet<String> = per_call.keys().cloned().collect();
    assert_eq!(
        requested, rejected,
        "one Graph request per reject decision, no other"
    );

    // Every reload attempt under load ended one of two ways: a valid version swapped in, or
    // a broken one refused while the last good set stayed. Both happened.
    let logs = daemon.stderr.text();
    let swapped: HashSet<&str> = logs
        .lines()
        .filter(|line| line.contains("rules reloaded"))
        .filter_map(|line| line.split("new_version=\"").nth(1)?.split('"').next())
        .collect();
    let refused = logs
        .lines()
        .filter(|line| line.contains("the last good rules stay"))
        .count();
    assert_eq!(rewrites, 50);
    assert_eq!(refused, 25, "every broken version was refused");
    assert_eq!(
        swapped.len(),
        2,
        "both valid versions were swapped in: {swapped:?}"
    );
    assert!(swapped.is_subset(&valid_versions), "{swapped:?}");

    let mut latencies: Vec<Duration> = per_call
        .iter()
        .map(|(call_id, arrived)| *arrived - sent[call_id].0)
        .collect();
    latencies.sort();
    let versions: HashSet<&str> = records
        .iter()
        .map(|r| r["rules_version"].as_str().unwrap())
        .collect();
    println!(
        "load: {total} invites from {CLIENTS} clients in {:.2} s = {:.0} invites/s; \
         {} rejects; POST-to-Graph-request latency p50 {:.1} ms, p99 {:.1} ms; \
         {rewrites} rule rewrites (half broken): {} reloads swapped in, {refused} refused; \
         {} rules versions decided",
        sending.as_secs_f64(),
        total as f64 / sending.as_secs_f64(),
        rejected.len(),
        percentile(&latencies, 0.50).as_secs_f64() * 1e3,
        percentile(&latencies, 0.99).as_secs_f64() * 1e3,
        logs.lines()
            .filter(|line| line.contains("rules reloaded"))
            .count(),
        versions.len(),
    );
}

#[test]
fn sigterm_under_load_leaves_no_accepted_invite_without_its_record() {
    let graph = FakeGraph::start();
    graph.random_reject_delay(Duration::from_millis(500));
    let setup = setup(&graph);
    let mut daemon = Daemon::start(&setup.dir, &setup.config);
    let url = daemon.url("/api/calls");

    let stop = Arc::new(AtomicBool::new(false));
    let accepted_so_far = Arc::new(AtomicUsize::new(0));
    let driver = {
        let (stop, accepted) = (stop.clone(), accepted_so_far.clone());
        std::thread::spawn(move || drive(&url, usize::MAX, &stop, &accepted))
    };
    // Terminate in the middle of the run, with rejects waiting on the slow Graph.
    wait_for(Duration::from_secs(30), || {
        (accepted_so_far.load(Ordering::SeqCst) >= 500).then_some(())
    })
    .expect("load flowing");
    daemon.signal("TERM");
    let exit = daemon.wait_exit(Duration::from_secs(20));
    stop.store(true, Ordering::SeqCst);
    let sent = driver.join().unwrap();
    assert_eq!(exit, Some(0));

    let accepted: HashSet<&String> = sent
        .iter()
        .filter(|(_, (_, status))| *status == Some(202))
        .map(|(id, _)| id)
        .collect();
    let records = audit_records(&setup.audit);
    let recorded: HashSet<&str> = records
        .iter()
        .map(|r| r["call_id"].as_str().unwrap())
        .collect();
    assert_eq!(records.len(), recorded.len(), "one record per invite");
    for call_id in &accepted {
        assert!(
            recorded.contains(call_id.as_str()),
            "{call_id} accepted but not recorded"
        );
    }
    // Rejects under way at SIGTERM were finished, not abandoned.
    let unfinished = records.iter().filter(|r| r["outcome"] == "expired").count();
    assert_eq!(unfinished, 0);
    println!(
        "shutdown under load: {} invites accepted before SIGTERM, all {} recorded",
        accepted.len(),
        records.len()
    );
    assert!(
        accepted.len() > 100,
        "the load was running ({})",
        accepted.len()
    );
}
