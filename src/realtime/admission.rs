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

    /// Builds and runs `work` once fewer than the bound are running, as a task of the worker's
    /// own: its turn is given back when the work is done, whether or not its answer is read.
    /// Run inside a socket's actor instead, it would move only while the actor does, and an
    /// actor is not polled while its client leaves its frames unread: a client that stopped
    /// reading would keep its turns, and the turns it waits for, from every socket of the node.
    pub fn run<F>(self, work: impl FnOnce() -> F + 'static) -> impl Future<Output = F::Output> + 'static
    where
        F: Future + 'static,
        F::Output: 'static,
    {
        let task = actix_web::rt::spawn(async move {
            // The semaphore is never closed, so acquiring only waits.
            let _permit = self.0.acquire().await;
            Box::pin(work()).await
        });
        async move {
            match task.await {
                Ok(output) => output,
                Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
                // Cancelled: the worker's runtime is shutting down, and the socket with it.
                Err(_) => std::future::pending().await,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;

    #[actix_web::test]
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
                actix_web::rt::spawn(admission.clone().run(move || async move {
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

    /// Work whose answer is awaited once, then never again (its socket's actor stalled) still
    /// runs to its end and gives its turn to the next.
    #[actix_web::test]
    async fn a_turn_comes_back_when_the_work_is_done_though_its_answer_is_never_read() {
        let admission = Admission::new(1);
        let mut stalled = Box::pin(admission.clone().run(|| tokio::time::sleep(Duration::from_millis(20))));
        assert!(
            futures_util::poll!(&mut stalled).is_pending(),
            "the first work is under way"
        );
        let next = admission.run(|| async { "done" });
        let answer = tokio::time::timeout(Duration::from_secs(5), next).await;
        assert_eq!(answer, Ok("done"));
        drop(stalled);
    }
}
