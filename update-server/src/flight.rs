//! Single flight: concurrent misses for the same key share one load. Without it, a cold cache
//! and a burst of clients (a new database announced to every agent at once) means one storage
//! read per client, each buffering the whole object: 200 clients and a 7 MiB database were
//! 200 reads and over 200 MiB of memory. With it they are one read and one buffer.
//!
//! The first caller of a key runs the load; callers that arrive while it runs wait for its
//! result. If that first caller goes away mid-load (its client disconnected), one of the
//! waiters runs the load instead, so nobody waits for a future that no one polls. A key is
//! forgotten as soon as its load has finished, so a result is shared only by requests that
//! overlapped it; later ones go to the caches, which the load fills.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::OnceCell;

type Slots<T> = HashMap<Box<str>, Arc<OnceCell<T>>>;

#[derive(Debug)]
pub struct Flights<T> {
    // Keys come from clients: std's SipHash with a random key. The map holds one entry per
    // key being loaded right now, so its size is bounded by the requests in flight.
    slots: Mutex<Slots<T>>,
}

impl<T> Default for Flights<T> {
    fn default() -> Self {
        Self {
            slots: Mutex::new(HashMap::new()),
        }
    }
}

impl<T: Clone> Flights<T> {
    /// `load`'s result, from this call's own run of it or from a concurrent one for `key`.
    pub async fn run<F, Fut>(&self, key: &str, load: F) -> T
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = T>,
    {
        let ticket = self.join(key);
        // Borrowed, not cloned: every reference to a cell is taken and released under the
        // lock, which is what makes the count in `Ticket::drop` exact.
        match &ticket.cell {
            Some(cell) => cell.get_or_init(load).await.clone(),
            // Not reached: a ticket holds its cell until dropped.
            None => load().await,
        }
    }

    /// Keys with a load in progress.
    #[cfg(test)]
    pub fn in_flight(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> MutexGuard<'_, Slots<T>> {
        match self.slots.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    fn join(&self, key: &str) -> Ticket<'_, T> {
        let mut slots = self.lock();
        let cell = match slots.get(key) {
            Some(cell) => Arc::clone(cell),
            None => {
                let cell = Arc::new(OnceCell::new());
                slots.insert(key.into(), Arc::clone(&cell));
                cell
            }
        };
        Ticket {
            flights: self,
            key: key.into(),
            cell: Some(cell),
        }
    }
}

/// One caller's share of a flight. Dropping it (after the load, or on cancellation) removes
/// the key once the load is done or nobody else is waiting for it.
struct Ticket<'a, T> {
    flights: &'a Flights<T>,
    key: Box<str>,
    cell: Option<Arc<OnceCell<T>>>,
}

impl<T> Drop for Ticket<'_, T> {
    fn drop(&mut self) {
        let mut slots = match self.flights.slots.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        let Some(mine) = self.cell.take() else {
            return;
        };
        let current = slots.get(&*self.key).filter(|c| Arc::ptr_eq(c, &mine));
        // Every clone and drop of a cell happens under this lock, so the count is exact: the
        // map's reference and `mine` make 2 when no one else waits.
        let finished = current.is_some_and(|c| c.initialized() || Arc::strong_count(c) == 2);
        drop(mine);
        if finished {
            slots.remove(&*self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_callers_share_one_load() {
        let flights = Arc::new(Flights::<u64>::default());
        let loads = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..50 {
            let (flights, loads) = (flights.clone(), loads.clone());
            tasks.push(tokio::spawn(async move {
                flights
                    .run("k", || async {
                        loads.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        7
                    })
                    .await
            }));
        }
        for t in tasks {
            assert_eq!(t.await.unwrap(), 7);
        }
        assert_eq!(loads.load(Ordering::SeqCst), 1);
        assert_eq!(flights.in_flight(), 0, "a finished key is forgotten");
        // The next call loads again: results are shared only by overlapping callers.
        assert_eq!(flights.run("k", || async { 8 }).await, 8);
        assert_eq!(flights.run("other", || async { 9 }).await, 9);
        assert_eq!(flights.in_flight(), 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_waiter_takes_over_from_a_cancelled_caller() {
        let flights = Arc::new(Flights::<u64>::default());
        let first = {
            let flights = flights.clone();
            tokio::spawn(async move {
                flights
                    .run("k", || async {
                        tokio::time::sleep(Duration::from_secs(3600)).await;
                        1
                    })
                    .await
            })
        };
        while flights.in_flight() == 0 {
            tokio::task::yield_now().await;
        }
        let second = {
            let flights = flights.clone();
            tokio::spawn(async move { flights.run("k", || async { 2 }).await })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        first.abort();
        let got = tokio::time::timeout(Duration::from_secs(5), second).await;
        assert_eq!(got.unwrap().unwrap(), 2);
        assert_eq!(flights.in_flight(), 0);

        // A lone caller cancelled mid-load leaves nothing behind.
        let lone = {
            let flights = flights.clone();
            tokio::spawn(async move {
                flights
                    .run("gone", || async {
                        tokio::time::sleep(Duration::from_secs(3600)).await;
                        1
                    })
                    .await
            })
        };
        while flights.in_flight() == 0 {
            tokio::task::yield_now().await;
        }
        lone.abort();
        let _ = lone.await;
        assert_eq!(flights.in_flight(), 0);
    }
}
