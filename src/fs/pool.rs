//! The prefetch pool: a fixed set of threads running queued jobs in order.
//!
//! Idle threads sleep on a condition variable and a job wakes exactly one of
//! them: no thread spins or yields looking for work (a work-stealing pool
//! such as rayon's does, which cost 15–20 % of the daemon's CPU on the read
//! path in `sched_yield` alone). The pool owns no job's outcome: a job that
//! must not take a thread down catches its own panics.

use std::collections::VecDeque;
use std::io;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;

type Job = Box<dyn FnOnce() + Send + 'static>;

struct State {
    jobs: VecDeque<Job>,
    /// Threads waiting for a job.
    idle: usize,
    stop: bool,
}

struct Shared {
    state: Mutex<State>,
    work: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A job runs outside the lock, so a poisoned lock can only come from
        // a panic in this module's few lines; the queue is still consistent.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A fixed-size pool of named threads.
pub struct Pool {
    shared: Arc<Shared>,
    threads: usize,
}

impl Pool {
    /// Starts `threads` threads named `name-0`, `name-1`, …
    pub fn new(threads: usize, name: &str) -> io::Result<Pool> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                jobs: VecDeque::new(),
                idle: 0,
                stop: false,
            }),
            work: Condvar::new(),
        });
        let threads = threads.max(1);
        for i in 0..threads {
            let s = Arc::clone(&shared);
            let started = thread::Builder::new()
                .name(format!("{name}-{i}"))
                .spawn(move || worker(&s));
            if let Err(e) = started {
                shared.lock().stop = true;
                shared.work.notify_all();
                return Err(e);
            }
        }
        Ok(Pool { shared, threads })
    }

    /// Threads in the pool.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Queues `job`; an idle thread (if any) is woken to run it.
    pub fn spawn(&self, job: impl FnOnce() + Send + 'static) {
        let wake = {
            let mut st = self.shared.lock();
            st.jobs.push_back(Box::new(job));
            st.idle > 0
        };
        if wake {
            self.shared.work.notify_one();
        }
    }
}

impl Drop for Pool {
    /// Queued jobs are dropped unrun; threads end after their current job
    /// (they are not joined: the last owner of the pool may be one of them).
    fn drop(&mut self) {
        let jobs = {
            let mut st = self.shared.lock();
            st.stop = true;
            std::mem::take(&mut st.jobs)
        };
        drop(jobs);
        self.shared.work.notify_all();
    }
}

fn worker(s: &Shared) {
    let mut st = s.lock();
    loop {
        if st.stop {
            return;
        }
        if let Some(job) = st.jobs.pop_front() {
            drop(st);
            job();
            st = s.lock();
            continue;
        }
        st.idle += 1;
        st = s.work.wait(st).unwrap_or_else(|p| p.into_inner());
        st.idle -= 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::mpsc::channel;
    use std::time::Duration;

    #[test]
    fn runs_every_job_on_its_threads() {
        let pool = Pool::new(3, "t").unwrap();
        let done = Arc::new(AtomicUsize::new(0));
        let (tx, rx) = channel();
        for _ in 0..100 {
            let (d, tx) = (Arc::clone(&done), tx.clone());
            pool.spawn(move || {
                d.fetch_add(1, Ordering::SeqCst);
                let name = thread::current().name().unwrap_or("").to_string();
                tx.send(name).unwrap();
            });
        }
        let names: Vec<String> = (0..100)
            .map(|_| rx.recv_timeout(Duration::from_secs(10)).unwrap())
            .collect();
        assert_eq!(done.load(Ordering::SeqCst), 100);
        assert!(names
            .iter()
            .all(|n| ["t-0", "t-1", "t-2"].contains(&n.as_str())));
    }

    #[test]
    fn jobs_run_side_by_side() {
        // Two jobs that each wait for the other finish only if two threads
        // run them at once.
        let pool = Pool::new(2, "t");
        let pool = pool.unwrap();
        let (a_tx, a_rx) = channel::<()>();
        let (b_tx, b_rx) = channel::<()>();
        let (done_tx, done_rx) = channel();
        let d1 = done_tx.clone();
        pool.spawn(move || {
            a_tx.send(()).unwrap();
            b_rx.recv_timeout(Duration::from_secs(10)).unwrap();
            d1.send(1).unwrap();
        });
        pool.spawn(move || {
            b_tx.send(()).unwrap();
            a_rx.recv_timeout(Duration::from_secs(10)).unwrap();
            done_tx.send(2).unwrap();
        });
        let mut got = [
            done_rx.recv_timeout(Duration::from_secs(10)).unwrap(),
            done_rx.recv_timeout(Duration::from_secs(10)).unwrap(),
        ];
        got.sort();
        assert_eq!(got, [1, 2]);
    }

    #[test]
    fn dropping_the_pool_inside_a_job_does_not_hang() {
        let pool = Arc::new(Mutex::new(Some(Pool::new(1, "t").unwrap())));
        let (tx, rx) = channel();
        let p2 = Arc::clone(&pool);
        pool.lock().unwrap().as_ref().unwrap().spawn(move || {
            // The job drops the last owner of the pool from its own thread.
            drop(p2.lock().unwrap().take());
            tx.send(()).unwrap();
        });
        rx.recv_timeout(Duration::from_secs(10)).unwrap();
    }
}
