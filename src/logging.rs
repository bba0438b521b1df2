//! Log lines, rate-limited: at most [`PER_WINDOW`] lines per message (per place in the code
//! that logs it) in each [`WINDOW`], and one line per window saying how many were left out.
//! Debug and trace lines, which an operator turns on to see everything, are not limited.
//!
//! Why: some lines are written once per misbehaving connection, and a flood writes them
//! once per connection: h2 warns for every connection it ends for resetting streams too
//! fast (954 lines in one rapid-reset run). The log must still show the first of them, and
//! that there were more, without a line per attacker connection.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tracing::Metadata;
use tracing::callsite::Identifier;
use tracing::subscriber::Interest;
use tracing_subscriber::layer::{Context, Filter};

/// Lines one message may write per window.
pub const PER_WINDOW: u32 = 5;
/// The window.
pub const WINDOW: Duration = Duration::from_secs(10);

/// What one message wrote in the current window.
#[derive(Debug)]
struct Window {
    started: Instant,
    written: u32,
    /// Lines left out since the last report.
    suppressed: u64,
    /// Where it comes from, for the report (copied once per message).
    target: String,
    message: String,
}

/// The rate limit, as a per-layer filter of a tracing subscriber's output.
#[derive(Debug, Clone, Default)]
pub struct RateLimit {
    windows: Arc<Mutex<HashMap<Identifier, Window>>>,
}

impl RateLimit {
    pub fn new() -> Self {
        Self::default()
    }

    fn allow(&self, meta: &Metadata<'_>, now: Instant) -> bool {
        let mut windows = self.windows.lock().unwrap_or_else(PoisonError::into_inner);
        let window = windows.entry(meta.callsite()).or_insert_with(|| Window {
            started: now,
            written: 0,
            suppressed: 0,
            target: meta.target().to_owned(),
            message: meta.name().to_owned(),
        });
        if now.duration_since(window.started) >= WINDOW {
            window.started = now;
            window.written = 0;
        }
        if window.written < PER_WINDOW {
            window.written += 1;
            true
        } else {
            window.suppressed += 1;
            false
        }
    }

    /// The lines left out since the last call, by where they come from; the counts start
    /// again.
    pub fn take_suppressed(&self) -> Vec<(String, String, u64)> {
        let mut windows = self.windows.lock().unwrap_or_else(PoisonError::into_inner);
        let mut out: Vec<_> = windows
            .values_mut()
            .filter(|w| w.suppressed > 0)
            .map(|w| {
                let suppressed = std::mem::take(&mut w.suppressed);
                (w.target.clone(), w.message.clone(), suppressed)
            })
            .collect();
        out.sort_unstable();
        out
    }

    /// Logs, for each message that had lines left out since the last report, how many.
    /// Called every [`WINDOW`] by the binary.
    pub fn report(&self) {
        for (target, message, suppressed) in self.take_suppressed() {
            tracing::warn!(
                from = %target,
                at = %message,
                suppressed,
                "log lines left out: at most {PER_WINDOW} per message every {}s",
                WINDOW.as_secs()
            );
        }
    }
}

impl<S> Filter<S> for RateLimit {
    fn enabled(&self, meta: &Metadata<'_>, _: &Context<'_, S>) -> bool {
        // Spans are not lines: only events are counted; and only those written by default
        // (info and above): debug and trace are asked for, to see everything.
        if !meta.is_event() || *meta.level() > tracing::Level::INFO {
            return true;
        }
        self.allow(meta, Instant::now())
    }

    fn callsite_enabled(&self, meta: &'static Metadata<'static>) -> Interest {
        if meta.is_event() {
            // Asked per event: the answer changes with time.
            Interest::sometimes()
        } else {
            Interest::always()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_message_writes_its_share_per_window_and_the_rest_is_counted() {
        let limit = RateLimit::new();
        let start = Instant::now();
        fn meta_a() -> &'static Metadata<'static> {
            struct Site;
            static META: Metadata<'static> = tracing::metadata! {
                name: "a",
                target: "h2::proto",
                level: tracing::Level::WARN,
                fields: &[],
                callsite: &Site,
                kind: tracing::metadata::Kind::EVENT,
            };
            impl tracing::Callsite for Site {
                fn set_interest(&self, _: Interest) {}
                fn metadata(&self) -> &Metadata<'_> {
                    &META
                }
            }
            &META
        }
        let a = meta_a();
        let allowed = (0..12).filter(|_| limit.allow(a, start)).count();
        assert_eq!(allowed, PER_WINDOW as usize);
        assert_eq!(
            limit.take_suppressed(),
            vec![("h2::proto".to_owned(), "a".to_owned(), 7)]
        );
        assert!(limit.take_suppressed().is_empty(), "counts start again");
        // A new window writes again.
        assert!(limit.allow(a, start + WINDOW));
    }
}
