//! Sockets' database work (authenticating, checking and replaying a subscribe, a recheck) runs a
//! bounded number at a time. After a node restarts or the bus between nodes comes back,
//! thousands of sockets ask at once; unbounded, each would hold its queries' futures and buffers
//! (about 13 KiB) while waiting for one of a few pooled connections: a peak of memory that the
//! allocator partly keeps. Waiting here holds only a small future: the work is built once
//! admitted.

use std::future::Future;
use std::sync::Arc;

use tokio::sync::Semaphore;

#[derive(Clone)]
pub struct Admission(Arc<Semaphore>);

impl Admission {
    pub fn new(at_once: usize) -> Self {
        Self(Arc::new(Semaphore::new(at_once.max(1))))
    }

    /// Builds and runs `work` once fewer than the bound are running.
    pub async fn run<F: Future>(self, work: impl FnOnce() -> F) -> F::Output {
        // The semaphore is never closed, so acquiring only waits.
        let _permit = self.0.acquire().await;
        Box::pin(work()).await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn runs_no_more_than_the_bound_at_once_and_every_one_in_the_end() {
        let admission = Admission::new(3);
        let (running, most, done) = (
            Arc::new(AtomicUsize::new(0)),
            Arc::new(AtomicUsize::new(0)),
            Arc::new(AtomicUsize::new(0)),
        );
        let tasks: Vec<_> = (0..20)
            .map(|_| {
                let (running, most, done) = (running.clone(), most.clone(), done.clone());
                tokio::spawn(admission.clone().run(move || async move {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    running.fetch_sub(1, Ordering::SeqCst);
                    done.fetch_add(1, Ordering::SeqCst);
                }))
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        assert_eq!(done.load(Ordering::SeqCst), 20);
        assert_eq!(most.load(Ordering::SeqCst), 3);
    }
}
