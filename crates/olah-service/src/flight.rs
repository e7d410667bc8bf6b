//! Single-flight: concurrent identical requests share one execution.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;

use futures::FutureExt;
use futures::future::{BoxFuture, Shared};

/// Coalesces concurrent calls with the same key into one future whose result every caller gets.
/// The shared future is polled by whoever awaits it, so a caller that goes away does not cancel
/// the work for the others.
pub struct Flight<T: Clone> {
    inflight: Mutex<HashMap<String, Shared<BoxFuture<'static, T>>>>,
}

impl<T: Clone + Send + Sync + 'static> Default for Flight<T> {
    fn default() -> Self {
        Self {
            inflight: Mutex::new(HashMap::new()),
        }
    }
}

impl<T: Clone + Send + Sync + 'static> Flight<T> {
    /// Runs `make()` unless a call with the same key is in flight, then awaits the shared result.
    pub async fn run<F, Fut>(&self, key: String, make: F) -> T
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = T> + Send + 'static,
    {
        let fut = {
            let mut m = self.inflight.lock().expect("flight map lock");
            match m.get(&key) {
                Some(f) => f.clone(),
                None => {
                    let f = make().boxed().shared();
                    m.insert(key.clone(), f.clone());
                    f
                }
            }
        };
        let out = fut.clone().await;
        let mut m = self.inflight.lock().expect("flight map lock");
        if m.get(&key).is_some_and(|f| f.ptr_eq(&fut)) {
            m.remove(&key);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn concurrent_calls_run_once() {
        let flight: Arc<Flight<u32>> = Arc::default();
        let runs = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let flight = flight.clone();
            let runs = runs.clone();
            tasks.push(tokio::spawn(async move {
                flight
                    .run("k".into(), move || async move {
                        runs.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        7
                    })
                    .await
            }));
        }
        for t in tasks {
            assert_eq!(t.await.unwrap(), 7);
        }
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        // After completion a new call runs again.
        let r2 = runs.clone();
        flight
            .run("k".into(), move || async move {
                r2.fetch_add(1, Ordering::SeqCst) as u32
            })
            .await;
        assert_eq!(runs.load(Ordering::SeqCst), 2);
    }
}
