//! The audit log: one JSON line per screened invite, in every mode, written by one thread
//! so lines never interleave. Senders wait when the queue is full (backpressure) rather
//! than drop a record.

use std::os::unix::fs::MetadataExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use serde::Serialize;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;

use tokio::sync::{mpsc, oneshot};

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::config::{AuditTarget, Secret};
use crate::facts::Facts;
use crate::rules::{Action, Reason};

/// Records waiting to be written; a burst larger than this makes screening wait.
const QUEUE_CAPACITY: usize = 4096;

/// What happened to an invite.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Graph accepted the reject.
    Rejected,
    /// A reject decision that was only recorded (dry-run or a rule in audit mode).
    WouldReject,
    Allowed,
    /// Graph refused the reject, or it could not be sent.
    Failed,
    /// The answer deadline passed before Graph accepted the reject.
    Expired,
    /// The call was already screened; nothing was sent again.
    Duplicate,
    /// Graph accepted the redirect.
    Redirected,
    /// A redirect decision that was only recorded.
    WouldRedirect,
    /// An enforced ignore rule matched: nothing was sent, the bot was not told.
    Ignored,
    /// An ignore decision that was only recorded.
    WouldIgnore,
    /// Kept and passed on to the bot behind callscreen (see `upstream_status`).
    Forwarded,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Rejected => "rejected",
            Outcome::WouldReject => "would_reject",
            Outcome::Allowed => "allowed",
            Outcome::Failed => "failed",
            Outcome::Expired => "expired",
            Outcome::Duplicate => "duplicate",
            Outcome::Redirected => "redirected",
            Outcome::WouldRedirect => "would_redirect",
            Outcome::Ignored => "ignored",
            Outcome::WouldIgnore => "would_ignore",
            Outcome::Forwarded => "forwarded",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditCaller {
    pub kind: String,
    pub id: Option<String>,
    pub name: Option<String>,
    pub phone: Option<String>,
    pub tenant: Option<String>,
}

/// One line of the audit log. Field names are part of the public contract.
#[derive(Debug, Clone, Serialize)]
pub struct AuditRecord {
    /// RFC 3339, UTC.
    pub ts: String,
    pub call_id: String,
    pub action: Action,
    pub rule: Option<String>,
    pub reason: Option<Reason>,
    pub callback_uri: Option<String>,
    /// `enforce`, `dry-run` or `audit` (a rule in audit mode decided).
    pub mode: &'static str,
    pub outcome: Outcome,
    pub graph_status: Option<u16>,
    /// The status the bot behind callscreen answered a forwarded invite with.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream_status: Option<u16>,
    /// An audit-mode rule that matched before the deciding rule, and what it would have
    /// done; only present then.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shadow_rule: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shadow_action: Option<Action>,
    pub caller: AuditCaller,
    pub region: Option<String>,
    pub modalities: Vec<String>,
    pub rules_version: String,
    /// Milliseconds from receipt of the notification to the final outcome.
    pub latency_ms: f64,
    /// Why a reject failed or expired; absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub tenant: Option<String>,
    pub call_chain_id: Option<String>,
    /// Every fact the rules saw, so `replay` can decide the invite again.
    pub facts: Facts,
}

impl AuditCaller {
    pub fn from_facts(facts: &Facts) -> AuditCaller {
        AuditCaller {
            kind: facts.caller.kind.clone(),
            id: facts.caller.id.clone(),
            name: facts.caller.name.clone(),
            phone: facts.caller.phone.clone(),
            tenant: facts.caller.tenant.clone(),
        }
    }
}

/// Health of the writer, read by `/readyz`.
#[derive(Debug, Default)]
pub struct AuditHealth {
    failing: AtomicBool,
    write_errors: AtomicU64,
    written: AtomicU64,
}

impl AuditHealth {
    pub fn is_failing(&self) -> bool {
        self.failing.load(Ordering::Relaxed)
    }

    pub fn write_errors(&self) -> u64 {
        self.write_errors.load(Ordering::Relaxed)
    }

    pub fn written(&self) -> u64 {
        self.written.load(Ordering::Relaxed)
    }
}

/// The sending side of the audit log; cheap to clone.
#[derive(Clone)]
pub struct AuditLog {
    sender: mpsc::Sender<Message>,
    reopen_requested: Arc<AtomicBool>,
    health: Arc<AuditHealth>,
}

/// Resolves once the writer has written out its queue and stopped.
pub type WriterFinished = oneshot::Receiver<()>;

enum Message {
    Record(Box<AuditRecord>),
    /// Wakes the writer so a requested reopen happens now, not at the next record.
    Wake,
}

impl AuditLog {
    /// Opens the target and starts the writer thread. The writer stops once every
    /// [`AuditLog`] clone is dropped and the queue is written out. With a `redactor`,
    /// personal data is replaced by keyed hashes before anything is written.
    ///
    /// The writer is a thread of its own, not a task: file writes block, and a task would
    /// hand every one of them to tokio's blocking pool and back, which costs more than the
    /// write itself under load.
    pub fn start(
        target: AuditTarget,
        redactor: Option<Redactor>,
    ) -> std::io::Result<(AuditLog, WriterFinished)> {
        let output = Output::open(&target)?;
        let (sender, receiver) = mpsc::channel(QUEUE_CAPACITY);
        let reopen_requested = Arc::new(AtomicBool::new(false));
        let health = Arc::new(AuditHealth::default());
        let (finished_sender, finished) = oneshot::channel();
        let writer = Writer {
            target,
            output,
            receiver,
            reopen_requested: reopen_requested.clone(),
            health: health.clone(),
            redactor,
        };
        std::thread::Builder::new()
            .name("audit-writer".into())
            .spawn(move || {
                writer.run();
                let _ = finished_sender.send(());
            })?;
        Ok((
            AuditLog {
                sender,
                reopen_requested,
                health,
            },
            finished,
        ))
    }

    /// Queues a record, waiting while the queue is full.
    pub async fn record(&self, record: AuditRecord) {
        if let Err(error) = self.sender.send(Message::Record(Box::new(record))).await {
            // Only possible if the writer died; say so loudly with the record itself.
            if let Message::Record(record) = error.0 {
                tracing::error!(
                    call_id = %crate::screen::loggable(&record.call_id),
                    "audit writer is gone, record lost"
                );
            }
        }
    }

    /// Queues a record if the queue has room; hands it back when the queue is full.
    pub fn try_record(&self, record: AuditRecord) -> Result<(), Box<AuditRecord>> {
        match self.sender.try_send(Message::Record(Box::new(record))) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Full(Message::Record(record))) => Err(record),
            Err(refused) => {
                // Closed: only possible if the writer died.
                if let Message::Record(record) = refused.into_inner() {
                    tracing::error!(
                        call_id = %crate::screen::loggable(&record.call_id),
                        "audit writer is gone, record lost"
                    );
                }
                Ok(())
            }
        }
    }

    /// Reopens the file before the next write: logrotate renamed it and sent SIGHUP.
    pub fn reopen(&self) {
        self.reopen_requested.store(true, Ordering::Relaxed);
        // A full queue means the writer is busy and sees the request before its next write.
        let _ = self.sender.try_send(Message::Wake);
    }

    pub fn health(&self) -> &AuditHealth {
        &self.health
    }
}

enum Output {
    Stdout(std::io::Stdout),
    File(std::fs::File),
}

impl Output {
    fn open(target: &AuditTarget) -> std::io::Result<Output> {
        match target {
            AuditTarget::Stdout => Ok(Output::Stdout(std::io::stdout())),
            AuditTarget::File(path) => {
                // The log holds personal data: readable by the service and its group only.
                let file = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .mode(0o640)
                    .open(path)?;
                Ok(Output::File(file))
            }
        }
    }

    fn write_all(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        match self {
            Output::Stdout(stdout) => {
                let mut stdout = stdout.lock();
                stdout.write_all(bytes)?;
                stdout.flush()
            }
            Output::File(file) => file.write_all(bytes),
        }
    }
}

struct Writer {
    target: AuditTarget,
    output: Output,
    receiver: mpsc::Receiver<Message>,
    reopen_requested: Arc<AtomicBool>,
    health: Arc<AuditHealth>,
    redactor: Option<Redactor>,
}

/// The pause after each write, in which further records gather.
const GATHER: std::time::Duration = std::time::Duration::from_millis(1);
/// A batch is written once it holds this much, even if more records are queued.
const BATCH_BYTES: usize = 256 * 1024;

impl Writer {
    fn run(mut self) {
        let mut buffer = Vec::with_capacity(64 * 1024);
        while let Some(first) = self.receiver.blocking_recv() {
            if self.reopen_requested.swap(false, Ordering::Relaxed) {
                self.reopen_output();
            }
            // Write whatever else is already queued in the same write.
            let mut count = 0u64;
            let mut next = Some(first);
            while let Some(message) = next {
                if let Message::Record(mut record) = message {
                    if let Some(redactor) = &self.redactor {
                        redactor.redact_record(&mut record);
                    }
                    serde_json::to_writer(&mut buffer, &record).expect("audit records serialise");
                    buffer.push(b'\n');
                    count += 1;
                }
                next = if buffer.len() < BATCH_BYTES {
                    self.receiver.try_recv().ok()
                } else {
                    None
                };
            }
            if count > 0 {
                self.write(&buffer, count);
            }
            buffer.clear();
            // Let records gather: under load one wake-up and one write then carry dozens
            // of records, not one each. A quiet daemon's next record still goes out at once.
            std::thread::sleep(GATHER);
        }
        tracing::debug!("audit writer finished");
    }

    fn write(&mut self, bytes: &[u8], count: u64) {
        // Writes to a deleted file succeed and vanish: if the file was unlinked (its folder
        // removed, say), open a new one at the path first, or fail loudly if that is gone.
        if let Output::File(file) = &self.output
            && file.metadata().is_ok_and(|metadata| metadata.nlink() == 0)
        {
            tracing::warn!("the audit file was deleted; opening a new one");
            if !self.reopen_output() {
                self.health.failing.store(true, Ordering::Relaxed);
                self.health.write_errors.fetch_add(count, Ordering::Relaxed);
                tracing::error!(records = count, "audit records could not be written");
                return;
            }
        }
        // One retry after reopening covers a file removed or rotated under us.
        for attempt in 0..2 {
            match self.output.write_all(bytes) {
                Ok(()) => {
                    self.health.written.fetch_add(count, Ordering::Relaxed);
                    if self.health.failing.swap(false, Ordering::Relaxed) {
                        tracing::info!("audit log writable again");
                    }
                    return;
                }
                Err(error) if attempt == 0 => {
                    tracing::warn!(%error, "audit write failed, reopening");
                    self.reopen_output();
                }
                Err(error) => {
                    self.health.failing.store(true, Ordering::Relaxed);
                    self.health.write_errors.fetch_add(count, Ordering::Relaxed);
                    tracing::error!(%error, records = count, "audit records could not be written");
                }
            }
        }
    }

    /// Opens the audit file anew; false when that failed (logged, and shown in `/readyz`).
    fn reopen_output(&mut self) -> bool {
        let AuditTarget::File(path) = &self.target else {
            return true;
        };
        match Output::open(&self.target) {
            Ok(output) => {
                self.output = output;
                tracing::info!(path = %path.display(), "audit log reopened");
                true
            }
            Err(error) => {
                self.health.failing.store(true, Ordering::Relaxed);
                tracing::error!(path = %path.display(), %error, "cannot reopen the audit log");
                false
            }
        }
    }
}

/// Replaces caller ids, names and phone numbers with keyed hashes (HMAC-SHA-256, first 16
/// hex digits, prefixed `h:`). The same value and key always give the same hash, so
/// records stay joinable; without the key the values cannot be recovered by guessing.
#[derive(Clone)]
pub struct Redactor {
    /// Keyed once: setting up the key costs as much as hashing a short value.
    keyed: Hmac<Sha256>,
}

impl Redactor {
    pub fn new(key: Secret) -> Redactor {
        let keyed = <Hmac<Sha256> as KeyInit>::new_from_slice(key.expose().as_bytes())
            .expect("HMAC takes keys of any length");
        Redactor { keyed }
    }

    pub fn hash(&self, value: &str) -> String {
        let mut mac = self.keyed.clone();
        mac.update(value.as_bytes());
        let digest = mac.finalize().into_bytes();
        format!("h:{}", &hex::encode(digest)[..16])
    }

    fn redact(&self, value: &mut Option<String>) {
        if let Some(text) = value.as_mut() {
            *text = self.hash(text);
        }
    }

    fn redact_record(&self, record: &mut AuditRecord) {
        self.redact(&mut record.caller.id);
        self.redact(&mut record.caller.name);
        self.redact(&mut record.caller.phone);
        let facts = &mut record.facts;
        self.redact(&mut facts.caller.id);
        self.redact(&mut facts.caller.name);
        self.redact(&mut facts.caller.phone);
        self.redact(&mut facts.caller.asserted);
        self.redact(&mut facts.on_behalf_of_id);
        self.redact(&mut facts.meeting.organizer_id);
    }
}

/// The current time in RFC 3339 (UTC, millisecond precision).
pub fn now_rfc3339() -> String {
    let now = jiff::Timestamp::now();
    format!("{:.3}", now)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(call_id: &str) -> AuditRecord {
        AuditRecord {
            ts: now_rfc3339(),
            call_id: call_id.into(),
            action: Action::Reject,
            rule: Some("no-anonymous".into()),
            reason: Some(Reason::Busy),
            callback_uri: None,
            mode: "dry-run",
            outcome: Outcome::WouldReject,
            graph_status: None,
            upstream_status: None,
            shadow_rule: None,
            shadow_action: None,
            caller: AuditCaller {
                kind: "anonymous".into(),
                id: None,
                name: Some("Anonymous".into()),
                phone: None,
                tenant: None,
            },
            region: Some("amer".into()),
            modalities: vec!["audio".into()],
            rules_version: "0123456789ab".into(),
            latency_ms: 3.25,
            error: None,
            tenant: None,
            call_chain_id: None,
            facts: Facts::default(),
        }
    }

    #[tokio::test]
    async fn records_are_written_as_json_lines_and_survive_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let (log, task) = AuditLog::start(AuditTarget::File(path.clone()), None).unwrap();
        log.record(record("call-1")).await;
        // Wait for the first line, then rotate the file away as logrotate would.
        for _ in 0..100 {
            if log.health().written() == 1 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        std::fs::rename(&path, dir.path().join("audit.jsonl.1")).unwrap();
        log.reopen();
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        log.record(record("call-2")).await;
        drop(log);
        task.await.unwrap();

        let rotated = std::fs::read_to_string(dir.path().join("audit.jsonl.1")).unwrap();
        let current = std::fs::read_to_string(&path).unwrap();
        let first: serde_json::Value = serde_json::from_str(rotated.trim()).unwrap();
        let second: serde_json::Value = serde_json::from_str(current.trim()).unwrap();
        assert_eq!(first["call_id"], "call-1");
        assert_eq!(first["outcome"], "would_reject");
        assert_eq!(first["reason"], "busy");
        assert_eq!(first["caller"]["kind"], "anonymous");
        assert!(first.get("error").is_none());
        assert_eq!(second["call_id"], "call-2");
    }

    #[tokio::test]
    async fn redaction_hashes_personal_data_stably() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let redactor = Redactor::new(Secret::new("0123456789abcdef".into()));
        let expected_name = redactor.hash("Anonymous");
        let (log, task) = AuditLog::start(AuditTarget::File(path.clone()), Some(redactor)).unwrap();
        let mut first = record("call-1");
        first.caller.id = Some("+15555550123".into());
        first.caller.phone = Some("+15555550123".into());
        first.facts.caller.phone = Some("+15555550123".into());
        let mut second = first.clone();
        second.call_id = "call-2".into();
        log.record(first).await;
        log.record(second).await;
        drop(log);
        task.await.unwrap();

        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            !text.contains("5555550123") && !text.contains("Anonymous"),
            "{text}"
        );
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect();
        assert_eq!(lines[0]["caller"]["name"], expected_name.as_str());
        assert!(
            lines[0]["caller"]["phone"]
                .as_str()
                .unwrap()
                .starts_with("h:")
        );
        assert_eq!(lines[0]["caller"]["phone"], lines[1]["caller"]["phone"]);
        assert_eq!(
            lines[0]["caller"]["phone"],
            lines[0]["facts"]["caller"]["phone"]
        );
        // A different key gives different hashes.
        let other = Redactor::new(Secret::new("another-key-0123456".into()));
        assert_ne!(other.hash("Anonymous"), expected_name);
    }

    #[tokio::test]
    async fn records_queued_without_waiting_are_written_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let (log, finished) = AuditLog::start(AuditTarget::File(path.clone()), None).unwrap();
        for n in 0..100 {
            // A full queue hands the record back; it must then be sent the waiting way.
            if let Err(record) = log.try_record(record(&format!("call-{n}"))) {
                log.record(*record).await;
            }
        }
        drop(log);
        finished.await.unwrap();
        let ids: Vec<String> = std::fs::read_to_string(&path)
            .unwrap()
            .lines()
            .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap())
            .map(|record| record["call_id"].as_str().unwrap().to_owned())
            .collect();
        let expected: Vec<String> = (0..100).map(|n| format!("call-{n}")).collect();
        assert_eq!(ids, expected);
    }

    #[test]
    fn timestamps_are_rfc3339_utc() {
        let ts = now_rfc3339();
        assert!(ts.ends_with('Z'), "{ts}");
        assert!(ts.parse::<jiff::Timestamp>().is_ok(), "{ts}");
    }
}
