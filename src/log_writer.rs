//! The daemon's log writer: formatted lines are queued to a thread that writes whatever has
//! piled up to stderr in one go, so a decision costs no `write` of its own.
//!
//! Screening never waits on whoever reads stderr: when the queue is full, the line is
//! dropped and counted (`callscreen_log_lines_dropped_total`). At exit the thread gets a
//! bounded time to write out the queue, and nothing is ever printed elsewhere: with the
//! audit log on stdout, a stray line there would corrupt it. (tracing-appender's writer
//! prints to stdout when it cannot stop its worker in time, hence this one.)

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::time::{Duration, Instant};

use tracing_subscriber::fmt::MakeWriter;

/// Lines the queue holds; also bounds what is left to write at exit.
pub const QUEUED_LINES: usize = 8192;
/// The pause after each write, in which further lines gather.
const GATHER: Duration = Duration::from_millis(1);

enum Message {
    Line(Vec<u8>),
    /// Answered once every line queued before it is written.
    Flush(SyncSender<()>),
}

/// The [`MakeWriter`] handed to the subscriber; cheap to clone.
#[derive(Clone)]
pub struct BatchedStderr {
    sender: SyncSender<Message>,
    dropped: Arc<AtomicU64>,
}

/// Counts the lines dropped because the queue was full.
#[derive(Clone, Debug, Default)]
pub struct DroppedLines(Arc<AtomicU64>);

impl DroppedLines {
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

impl BatchedStderr {
    /// Starts the writer thread.
    pub fn start() -> std::io::Result<BatchedStderr> {
        let (sender, receiver) = sync_channel(QUEUED_LINES);
        std::thread::Builder::new()
            .name("log-writer".into())
            .spawn(move || write_lines(receiver, std::io::stderr()))?;
        Ok(BatchedStderr {
            sender,
            dropped: Arc::default(),
        })
    }

    pub fn dropped(&self) -> DroppedLines {
        DroppedLines(self.dropped.clone())
    }

    /// Waits up to `limit` for the lines queued so far to be written; false when they were
    /// not (stderr is stalled). Prints nothing either way.
    pub fn drain(&self, limit: Duration) -> bool {
        let started = Instant::now();
        let (done_sender, done) = sync_channel(1);
        let mut message = Message::Flush(done_sender);
        loop {
            match self.sender.try_send(message) {
                Ok(()) => break,
                Err(TrySendError::Disconnected(_)) => return false,
                Err(TrySendError::Full(returned)) => {
                    if started.elapsed() >= limit {
                        return false;
                    }
                    message = returned;
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
        }
        done.recv_timeout(limit.saturating_sub(started.elapsed()))
            .is_ok()
    }
}

impl<'a> MakeWriter<'a> for BatchedStderr {
    type Writer = BatchedStderr;

    fn make_writer(&'a self) -> BatchedStderr {
        self.clone()
    }
}

impl Write for BatchedStderr {
    /// The subscriber writes each formatted event with one call: one call, one message.
    fn write(&mut self, line: &[u8]) -> std::io::Result<usize> {
        if let Err(TrySendError::Full(_)) = self.sender.try_send(Message::Line(line.to_vec())) {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
        Ok(line.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn write_lines(receiver: Receiver<Message>, stderr: impl Write) {
    let mut output = std::io::BufWriter::with_capacity(64 * 1024, stderr);
    while let Ok(first) = receiver.recv() {
        let mut flushed = Vec::new();
        let mut next = Some(first);
        while let Some(message) = next {
            match message {
                // Nowhere to report a failed write to stderr; the line is gone either way.
                Message::Line(line) => drop(output.write_all(&line)),
                Message::Flush(done) => flushed.push(done),
            }
            next = receiver.try_recv().ok();
        }
        let _ = output.flush();
        for done in flushed {
            let _ = done.send(());
        }
        // Let lines gather: under load one wake-up and one write then carry dozens of
        // lines, not one each. A quiet daemon's next line still goes out at once.
        std::thread::sleep(GATHER);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// A stderr stand-in that records what reaches it and can be held shut.
    #[derive(Clone, Default)]
    struct Sink {
        written: Arc<Mutex<Vec<u8>>>,
        gate: Arc<Mutex<()>>,
    }

    impl Write for Sink {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            let _open = self.gate.lock().unwrap();
            self.written.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn start(sink: Sink) -> BatchedStderr {
        let (sender, receiver) = sync_channel(QUEUED_LINES);
        std::thread::spawn(move || write_lines(receiver, sink));
        BatchedStderr {
            sender,
            dropped: Arc::default(),
        }
    }

    #[test]
    fn lines_are_written_in_order_and_flushed_on_request() {
        let sink = Sink::default();
        let mut writer = start(sink.clone());
        for n in 0..1000 {
            writer.write_all(format!("line {n}\n").as_bytes()).unwrap();
        }
        assert!(writer.drain(Duration::from_secs(5)));
        let text = String::from_utf8(sink.written.lock().unwrap().clone()).unwrap();
        let expected: String = (0..1000).map(|n| format!("line {n}\n")).collect();
        assert_eq!(text, expected);
        assert_eq!(writer.dropped().get(), 0);
    }

    #[test]
    fn a_stalled_stderr_costs_lines_not_time() {
        let sink = Sink::default();
        let shut = sink.gate.lock().unwrap();
        let mut writer = start(sink.clone());
        let started = Instant::now();
        // Lines of a realistic length: the writer's own 64 KiB buffer holds a few hundred.
        let padding = "x".repeat(200);
        for n in 0..QUEUED_LINES * 2 {
            writer
                .write_all(format!("line {n} {padding}\n").as_bytes())
                .unwrap();
        }
        assert!(started.elapsed() < Duration::from_secs(5));
        let dropped = writer.dropped().get();
        assert!(dropped >= QUEUED_LINES as u64 / 2, "{dropped}");
        assert!(!writer.drain(Duration::from_millis(200)));
        drop(shut);
        assert!(writer.drain(Duration::from_secs(5)));
    }
}
