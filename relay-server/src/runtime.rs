//! The relay's tokio runtime, its worker threads optionally pinned one to a CPU
//! (`--pin-workers`).
//!
//! Why pin: on this project's 2-core KVM guests a fan-out to 10,000 streams kept both of
//! tokio's workers on one CPU for tens of milliseconds at a time while the other CPU idled
//! (`perf sched` trace, README "Fan-out"). A worker that parks and is woken by the other one
//! is placed on the waker's CPU, because the guest's kernel sees a halted vCPU as preempted
//! and so not idle; once there, the two take turns every 4 ms tick and neither is moved,
//! both being cache-hot. Pinned, each worker runs on its own CPU. The price: a pinned worker
//! cannot move away from a CPU that another busy process holds, so it is for a host the
//! relay has to itself, and off by default.
//!
//! Only the workers are pinned. A thread starts with the CPUs of the thread that made it, so
//! the threads the workers start (tokio's blocking pool, sqlx's SQLite threads) would inherit
//! one worker's CPU: the blocking pool's threads are given every CPU back as they start, and
//! every few seconds any other thread of the process is (sqlx's SQLite threads, started as the
//! read pool grows).

use std::collections::HashSet;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sched::{sched_getaffinity, sched_setaffinity, CpuSet};
use nix::unistd::{gettid, Pid};
use tokio::runtime::{Builder, Runtime};

/// Longest wait, after the runtime is built, for its workers to have started.
const WORKERS_START_IN: Duration = Duration::from_secs(5);

/// How often the process's other threads are given every CPU back.
#[cfg(not(test))]
const SWEEP_EVERY: Duration = Duration::from_secs(5);
/// Soon, in tests.
#[cfg(test)]
const SWEEP_EVERY: Duration = Duration::from_millis(100);

/// Where the worker threads run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placement {
    /// Wherever the kernel puts them (the default).
    Free,
    /// Worker `i` on CPU `cpus[i]`.
    Pinned(Vec<usize>),
    /// Asked to pin, but not done: why (the workers run free).
    NotPinned(String),
}

/// How many worker threads tokio would start: `TOKIO_WORKER_THREADS`, or one per CPU this
/// process may use.
fn worker_count() -> usize {
    std::env::var("TOKIO_WORKER_THREADS")
        .ok()
        .and_then(|n| n.trim().parse::<usize>().ok())
        .filter(|&n| n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, NonZeroUsize::get))
}

/// The CPUs in `set`, in order.
fn cpus_in(set: &CpuSet) -> Vec<usize> {
    (0..CpuSet::count())
        .filter(|&cpu| set.is_set(cpu).unwrap_or(false))
        .collect()
}

/// The threads of this process (`/proc/self/task`).
fn threads() -> Vec<Pid> {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return Vec::new();
    };
    tasks
        .filter_map(|t| t.ok()?.file_name().to_str()?.parse().ok())
        .map(Pid::from_raw)
        .collect()
}

/// The workers' thread ids and every CPU the process may use: what the sweep needs.
struct Pins {
    /// The CPUs the process may use (the calling thread's when the runtime was built).
    everywhere: CpuSet,
    /// The pinned workers' thread ids, as each starts.
    workers: Mutex<HashSet<Pid>>,
}

impl Pins {
    /// Gives every thread, the workers too, all of the process's CPUs again: pinning failed
    /// for some of them, and the rest run free too.
    fn release(&self) {
        if let Ok(mut workers) = self.workers.lock() {
            workers.clear();
        }
        self.sweep();
    }

    /// Gives every thread that is not a worker all of the process's CPUs again.
    fn sweep(&self) {
        let workers = self.workers.lock().map(|w| w.clone()).unwrap_or_default();
        for thread in threads() {
            if !workers.contains(&thread) {
                // A thread that has just ended is no error worth telling.
                let _ = sched_setaffinity(thread, &self.everywhere);
            }
        }
    }
}

/// The multi-threaded runtime (I/O and time enabled), with each worker thread on a CPU of
/// its own among those the calling thread may use when `pin` is set (round robin if there
/// are more workers than CPUs).
pub fn build(pin: bool) -> std::io::Result<(Runtime, Placement)> {
    let workers = worker_count();
    let mut builder = Builder::new_multi_thread();
    builder.enable_all().worker_threads(workers);
    if !pin {
        return Ok((builder.build()?, Placement::Free));
    }
    let everywhere = match sched_getaffinity(Pid::from_raw(0)) {
        Ok(set) if !cpus_in(&set).is_empty() => set,
        _ => {
            let why = "the CPUs this process may use are unknown".to_owned();
            return Ok((builder.build()?, Placement::NotPinned(why)));
        }
    };
    let cpus = cpus_in(&everywhere);
    let pins = Arc::new(Pins {
        everywhere,
        workers: Mutex::default(),
    });
    // The runtime starts its workers while it is built, before anything can be spawned on
    // its blocking pool: the first `workers` threads to start are the workers.
    let started = Arc::new(AtomicUsize::new(0));
    let placed = Arc::new(Mutex::new(vec![None; workers]));
    let placed_all = Arc::new(AtomicUsize::new(0));
    let (count, place, done, on_start) = (
        Arc::clone(&started),
        Arc::clone(&placed),
        Arc::clone(&placed_all),
        Arc::clone(&pins),
    );
    builder.on_thread_start(move || {
        let index = count.fetch_add(1, Ordering::SeqCst);
        if index >= workers {
            // A blocking thread, started by a worker: every CPU again.
            let _ = sched_setaffinity(Pid::from_raw(0), &on_start.everywhere);
            return;
        }
        let cpu = cpus[index % cpus.len()];
        let mut one = CpuSet::new();
        let on_it = one.set(cpu).is_ok() && sched_setaffinity(Pid::from_raw(0), &one).is_ok();
        if let Ok(mut workers) = on_start.workers.lock() {
            workers.insert(gettid());
        }
        if let Ok(mut place) = place.lock() {
            place[index] = on_it.then_some(cpu);
        }
        done.fetch_add(1, Ordering::SeqCst);
    });
    let runtime = builder.build()?;
    let since = Instant::now();
    while placed_all.load(Ordering::SeqCst) < workers {
        if since.elapsed() > WORKERS_START_IN {
            pins.release();
            let why = "the workers did not start".to_owned();
            return Ok((runtime, Placement::NotPinned(why)));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let placed = placed.lock().map(|p| p.clone()).unwrap_or_default();
    let Some(cpus) = placed.into_iter().collect::<Option<Vec<usize>>>() else {
        pins.release();
        let why = "the kernel refused a worker's CPU affinity".to_owned();
        return Ok((runtime, Placement::NotPinned(why)));
    };
    runtime.spawn(async move {
        let mut every = tokio::time::interval(SWEEP_EVERY);
        loop {
            every.tick().await;
            pins.sweep();
        }
    });
    Ok((runtime, Placement::Pinned(cpus)))
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use super::*;

    /// The CPUs the calling thread may run on.
    fn allowed() -> Vec<usize> {
        cpus_in(&sched_getaffinity(Pid::from_raw(0)).expect("affinity"))
    }

    /// The CPUs allowed to every thread that ran one of many tasks, by thread.
    fn workers_seen(runtime: &Runtime) -> BTreeMap<String, Vec<usize>> {
        runtime.block_on(async {
            let tasks: Vec<_> = (0..200)
                .map(|_| {
                    tokio::spawn(async {
                        // Spread over the workers: each task yields a few times.
                        for _ in 0..5 {
                            tokio::task::yield_now().await;
                        }
                        (format!("{:?}", std::thread::current().id()), allowed())
                    })
                })
                .collect();
            let mut seen = BTreeMap::new();
            for task in tasks {
                let (thread, cpus) = task.await.expect("task");
                seen.insert(thread, cpus);
            }
            seen
        })
    }

    #[test]
    fn pinned_workers_each_run_on_one_cpu_and_the_threads_they_start_run_free() {
        let everywhere = allowed();
        let (runtime, placement) = build(true).expect("runtime");
        let Placement::Pinned(cpus) = placement else {
            panic!("not pinned: {placement:?}");
        };
        assert_eq!(cpus.len(), worker_count());
        // One CPU each, all different while there are CPUs enough.
        let distinct: BTreeSet<usize> = cpus.iter().copied().collect();
        assert_eq!(distinct.len(), cpus.len().min(everywhere.len()), "{cpus:?}");
        for (thread, allowed) in workers_seen(&runtime) {
            assert_eq!(allowed.len(), 1, "worker {thread} may run on {allowed:?}");
            assert!(cpus.contains(&allowed[0]), "{allowed:?} not in {cpus:?}");
        }
        // A blocking thread started by a worker does not keep the worker's CPU.
        let blocking = runtime
            .block_on(runtime.spawn(async { tokio::task::spawn_blocking(allowed).await }))
            .expect("task")
            .expect("blocking");
        assert_eq!(blocking, everywhere, "a blocking thread is not pinned");
        // Nor does a thread of its own a worker starts, once swept.
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let thread = runtime.block_on(runtime.spawn(async move {
            let thread = std::thread::spawn(move || {
                let _ = rx.recv();
                allowed()
            });
            (allowed(), thread)
        }));
        let (worker_cpus, thread) = thread.expect("task");
        assert_eq!(worker_cpus.len(), 1);
        runtime.block_on(async { tokio::time::sleep(SWEEP_EVERY * 3).await });
        tx.send(()).expect("send");
        assert_eq!(thread.join().expect("thread"), everywhere, "swept");
        // Pinning that fails for a worker is given up for all of them.
        let pins = Pins {
            everywhere: sched_getaffinity(Pid::from_raw(0)).expect("affinity"),
            workers: Mutex::default(),
        };
        pins.release();
        for (thread, allowed) in workers_seen(&runtime) {
            assert_eq!(allowed, everywhere, "worker {thread} after the release");
        }
    }

    #[test]
    fn without_pinning_the_workers_run_anywhere() {
        let everywhere = allowed();
        let (runtime, placement) = build(false).expect("runtime");
        assert_eq!(placement, Placement::Free);
        for (thread, allowed) in workers_seen(&runtime) {
            assert_eq!(allowed, everywhere, "worker {thread}");
        }
    }
}
