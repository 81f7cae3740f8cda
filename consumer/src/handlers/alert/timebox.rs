//! A time box for evidence gathering that runs both in the Worker (the Workers timer, through
//! [`crate::clients::fetch::within`]) and natively (a timer thread), so the alert handler's budgets
//! are exercised by the native handler tests too.

use std::future::Future;

/// `future`'s output, or `None` once `ms` have passed (the future is dropped).
#[cfg(target_arch = "wasm32")]
pub async fn within<T>(ms: u64, future: impl Future<Output = T>) -> Option<T> {
    crate::clients::fetch::within(ms, future).await
}

/// `future`'s output, or `None` once `ms` have passed (the future is dropped).
#[cfg(not(target_arch = "wasm32"))]
pub async fn within<T>(ms: u64, future: impl Future<Output = T>) -> Option<T> {
    use futures_util::future::{Either, select};
    match select(Box::pin(future), native::Sleep::new(ms)).await {
        Either::Left((value, _)) => Some(value),
        Either::Right(((), _)) => None,
    }
}

#[cfg(not(target_arch = "wasm32"))]
mod native {
    use std::future::Future;
    use std::pin::Pin;
    use std::sync::{Arc, Mutex, PoisonError};
    use std::task::{Context, Poll, Waker};
    use std::time::Duration;

    #[derive(Default)]
    struct Shared {
        done: bool,
        waker: Option<Waker>,
    }

    /// Completes after `ms`: a thread sleeps, then wakes the task.
    pub struct Sleep {
        ms: u64,
        shared: Arc<Mutex<Shared>>,
        started: bool,
    }

    impl Sleep {
        pub fn new(ms: u64) -> Self {
            Self { ms, shared: Arc::default(), started: false }
        }
    }

    impl Future for Sleep {
        type Output = ();

        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            let mut shared = self.shared.lock().unwrap_or_else(PoisonError::into_inner);
            if shared.done {
                return Poll::Ready(());
            }
            shared.waker = Some(cx.waker().clone());
            drop(shared);
            if !self.started {
                self.started = true;
                let (ms, shared) = (self.ms, self.shared.clone());
                std::thread::spawn(move || {
                    std::thread::sleep(Duration::from_millis(ms));
                    let mut s = shared.lock().unwrap_or_else(PoisonError::into_inner);
                    s.done = true;
                    if let Some(w) = s.waker.take() {
                        w.wake();
                    }
                });
            }
            Poll::Pending
        }
    }
}

/// Wall-clock milliseconds, for timings: the Workers clock in the Worker, the system clock natively.
pub fn now_ms() -> u64 {
    #[cfg(target_arch = "wasm32")]
    {
        worker::Date::now().as_millis()
    }
    #[cfg(not(target_arch = "wasm32"))]
    #[expect(clippy::disallowed_methods, reason = "native builds only; the Worker uses the Workers clock above")]
    {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }
}
