//! How a watch retries after an error: at once when the API server said 410 Gone (its
//! history no longer reaches the watch's resourceVersion: the watcher relists, and a healthy
//! API server should get that relist now), else after a short delay that grows and is
//! capped low, with jitter.
//!
//! kube's `default_backoff` (800 ms doubling to 30 s, reset after 2 minutes without an
//! error) protects a failing API server, and costs a healthy one its clients: measured
//! against a real kube-apiserver killed for 30 s, the backoff had grown to about 35 s
//! between reconnects, the first reconnect got 410, and the 410 was backed off again before
//! the relist; a scale-up made just after the control plane returned was served 30 s later.
//! Here: 100 ms doubling to [`CAP`] (500 ms), each delay drawn between half and all of it so
//! replicas do not retry in step, and none after a 410 unless the previous error was one
//! too (a relist that is itself refused backs off as any error does). A watch then retries
//! about twice a second while the API server is away, three watches per namespace watched
//! per replica: a few requests per second, which a recovering API server answers with a
//! refused connection or a 429 until it is ready.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::Stream;
use kube::runtime::watcher;
use tokio::time::Sleep;

/// The first delay after an error.
pub const FIRST: Duration = Duration::from_millis(100);
/// The longest delay between two tries.
pub const CAP: Duration = Duration::from_millis(500);

/// Whether `error` is the API server's 410 Gone, after which the watcher relists.
pub fn is_gone(error: &watcher::Error) -> bool {
    match error {
        watcher::Error::WatchError(status) => status.code == 410,
        watcher::Error::WatchStartFailed(kube::Error::Api(status))
        | watcher::Error::WatchFailed(kube::Error::Api(status))
        | watcher::Error::InitialListFailed(kube::Error::Api(status)) => status.code == 410,
        _ => false,
    }
}

/// The delays of one run of errors: [`FIRST`] doubling to [`CAP`], each drawn in its upper
/// half.
#[derive(Debug, Clone)]
pub struct Delays {
    next: Duration,
    /// xorshift state for the jitter: not cryptographic, only decorrelating.
    seed: u64,
}

impl Delays {
    pub fn new(seed: u64) -> Self {
        Self {
            next: FIRST,
            seed: seed | 1,
        }
    }

    /// The next delay, between half and all of the current step.
    pub fn next_delay(&mut self) -> Duration {
        self.seed ^= self.seed << 13;
        self.seed ^= self.seed >> 7;
        self.seed ^= self.seed << 17;
        let step = self.next;
        self.next = (step * 2).min(CAP);
        let half = step / 2;
        let nanos = u64::try_from(half.as_nanos()).unwrap_or(u64::MAX).max(1);
        half + Duration::from_nanos(self.seed % nanos)
    }

    pub fn reset(&mut self) {
        self.next = FIRST;
    }
}

/// A watch stream that waits between errors as the module doc says.
pub struct WatchBackoff<S> {
    stream: S,
    delays: Delays,
    sleeping: Option<Pin<Box<Sleep>>>,
    /// The last item was a 410: another one in a row backs off.
    after_gone: bool,
}

impl<S> WatchBackoff<S> {
    pub fn new(stream: S, seed: u64) -> Self {
        Self {
            stream,
            delays: Delays::new(seed),
            sleeping: None,
            after_gone: false,
        }
    }
}

impl<S, T> Stream for WatchBackoff<S>
where
    S: Stream<Item = Result<T, watcher::Error>> + Unpin,
{
    type Item = Result<T, watcher::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if let Some(sleep) = &mut this.sleeping {
            futures::ready!(sleep.as_mut().poll(cx));
            this.sleeping = None;
        }
        let item = futures::ready!(Pin::new(&mut this.stream).poll_next(cx));
        match &item {
            Some(Ok(_)) => {
                this.delays.reset();
                this.after_gone = false;
            }
            Some(Err(error)) if is_gone(error) && !this.after_gone => {
                // The watcher relists on its next poll: at once.
                this.after_gone = true;
            }
            Some(Err(_)) => {
                this.after_gone = false;
                this.sleeping = Some(Box::pin(tokio::time::sleep(this.delays.next_delay())));
            }
            None => {}
        }
        Poll::Ready(item)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_from_the_first_to_the_cap_each_in_its_upper_half() {
        let mut delays = Delays::new(42);
        let mut step = FIRST;
        for _ in 0..10 {
            let delay = delays.next_delay();
            assert!(delay >= step / 2 && delay <= step, "{delay:?} in {step:?}");
            step = (step * 2).min(CAP);
        }
        assert_eq!(step, CAP);
        delays.reset();
        assert!(delays.next_delay() <= FIRST);
        // Two replicas seeded differently do not retry in step.
        let (mut a, mut b) = (Delays::new(1), Delays::new(2));
        let same = (0..8).filter(|_| a.next_delay() == b.next_delay()).count();
        assert!(same < 8);
    }

    #[tokio::test]
    async fn a_410_is_retried_at_once_other_errors_after_a_delay() {
        use futures::StreamExt;
        let gone = || {
            let status = kube::core::Status::failure("too old", "Expired").with_code(410);
            watcher::Error::WatchError(Box::new(status))
        };
        let items: Vec<Result<u32, watcher::Error>> = vec![
            Err(gone()),
            Ok(1),
            Err(watcher::Error::NoResourceVersion),
            Ok(2),
            Err(gone()),
            Err(gone()),
            Ok(3),
        ];
        let mut stream = WatchBackoff::new(futures::stream::iter(items), 7);
        // After each item: whether the next poll waits first.
        let mut waits = Vec::new();
        while stream.next().await.is_some() {
            waits.push(stream.sleeping.is_some());
        }
        // None after a lone 410 or a success; a delay after another error or a second 410
        // in a row.
        assert_eq!(waits, vec![false, false, true, false, false, true, false]);
    }
}
