//! The bounded write-behind queue both group commits share (SENDs and their claims in
//! [`super::send_batch`], contact updates in [`super::contact_batch`]): operations queue here,
//! one task takes every operation waiting into a group (how a group forms and is written is
//! its [`Group`]'s), writes it, and only then answers whoever waits, flushes last.
//!
//! An operation queued with [`Queue::later`] waits for no answer (written behind); at most
//! [`MAX_BEHIND`] such are queued at once, past it [`Queue::later`] refuses and the caller
//! waits for its commit instead (the store sets the pace when it falls behind). Whoever must
//! see every such operation written calls [`Queue::flush`] first.
//!
//! For [`LINGER`] after each group, and while a group waits for more ([`Group::wait_until`]),
//! the task wakes only for operations someone waits for, flushes, and a backlog behind of
//! [`NUDGE_EVERY`]: one queued behind meanwhile does not wake it, it goes with the next group.
//! Under a SEND load every delivered SEND's claim is queued behind just after its group; waking
//! the task for each (a futex call, a context switch on each side) cost more than writing it
//! (README, "Benchmarks").

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use futures_util::FutureExt;
use tokio::sync::{mpsc, oneshot, Notify};
use tokio::time::{Duration, Instant};

/// Most operations queued without a waiter.
pub(super) const MAX_BEHIND: usize = 65_536;

/// How long after a group only operations someone waits for wake the task.
pub(super) const LINGER: Duration = Duration::from_millis(2);

/// When the operations queued behind and not yet taken reach a multiple of this, the last one
/// wakes the task anyway (a lingering task gathers a bounded backlog, not [`MAX_BEHIND`]).
const NUDGE_EVERY: usize = 256;

/// A group of operations written together, and how it forms.
#[async_trait]
pub(super) trait Group: Default + Send + 'static {
    /// One operation, with whoever waits for its outcome.
    type Op: Send + 'static;
    /// What the group is written through.
    type Writer: Send + Sync + 'static;

    /// Takes `op` into the group; gives it back when it must go in the next group (this one
    /// is full, or cannot hold it).
    fn take(&mut self, op: Self::Op) -> Option<Self::Op>;

    /// Once everything waiting is taken: until when the group waits for more operations
    /// before it is written (None: written at once). Meanwhile only an operation someone waits
    /// for, a flush or a backlog behind wakes the task; the others are taken at the deadline.
    /// Asked again after the operations taken meanwhile; never asked of a group a flush waits
    /// for.
    fn wait_until(&mut self) -> Option<Instant>;

    /// Writes the group and answers whoever waits for its operations.
    async fn write(self, writer: &Self::Writer);
}

/// What the writing task is asked.
enum Op<O> {
    /// An operation; `behind` when nobody waits for it (counted against [`MAX_BEHIND`]).
    Write { op: O, behind: bool },
    /// Answer once everything queued before is written.
    Flush(oneshot::Sender<()>),
}

/// The queue into a writing task; cheap to clone.
pub(super) struct Queue<O> {
    /// Into the writing task.
    tx: mpsc::UnboundedSender<Op<O>>,
    /// How many operations without a waiter are queued and not yet taken by the task.
    behind: Arc<AtomicUsize>,
    /// Wakes the task while it lingers: an operation someone waits for is queued.
    urgent: Arc<Notify>,
}

impl<O> Clone for Queue<O> {
    fn clone(&self) -> Self {
        Self {
            tx: self.tx.clone(),
            behind: self.behind.clone(),
            urgent: self.urgent.clone(),
        }
    }
}

impl<O> std::fmt::Debug for Queue<O> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queue")
            .field("behind", &self.behind.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl<O: Send + 'static> Queue<O> {
    /// Starts the task writing groups `G` through `writer`, on the current runtime.
    pub(super) fn start<G: Group<Op = O>>(writer: G::Writer) -> Self {
        let (queue, rx) = Self::open();
        tokio::spawn(run::<G>(writer, rx));
        queue
    }

    /// Starts the task writing groups `G` through `writer` on a thread of its own, named
    /// `name`, for a writer that blocks (SQLite called directly): the group is written where
    /// it forms, with no hand-off to another thread and back. The thread ends once every
    /// clone of the queue is dropped.
    pub(super) fn start_on_thread<G: Group<Op = O>>(
        name: &str,
        writer: G::Writer,
    ) -> std::io::Result<Self> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()?;
        let (queue, rx) = Self::open();
        std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || runtime.block_on(run::<G>(writer, rx)))?;
        Ok(queue)
    }

    /// A queue and the writing task's end of it.
    fn open() -> (Self, Receiver<O>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let behind = Arc::new(AtomicUsize::new(0));
        let urgent = Arc::new(Notify::new());
        let rx = Receiver {
            rx,
            behind: behind.clone(),
            urgent: urgent.clone(),
        };
        (Self { tx, behind, urgent }, rx)
    }

    /// Queues the operation `op` makes of where its outcome goes, and waits for that outcome;
    /// None when the task is gone (its runtime ended): the caller writes it alone.
    pub(super) async fn ask<R>(&self, op: impl FnOnce(oneshot::Sender<R>) -> O) -> Option<R> {
        let (done, outcome) = oneshot::channel();
        let op = Op::Write {
            op: op(done),
            behind: false,
        };
        self.tx.send(op).ok()?;
        self.urgent.notify_one();
        outcome.await.ok()
    }

    /// Queues `op`, which nobody waits for; false when the task is gone or too far behind.
    pub(super) fn later(&self, op: O) -> bool {
        let before = self.behind.fetch_add(1, Ordering::Relaxed);
        if before >= MAX_BEHIND {
            self.behind.fetch_sub(1, Ordering::Relaxed);
            return false;
        }
        if self.tx.send(Op::Write { op, behind: true }).is_err() {
            self.behind.fetch_sub(1, Ordering::Relaxed);
            return false;
        }
        if (before + 1).is_multiple_of(NUDGE_EVERY) {
            self.urgent.notify_one();
        }
        true
    }

    /// Waits until everything queued before is written (or the task is gone).
    pub(super) async fn flush(&self) {
        let (done, flushed) = oneshot::channel();
        if self.tx.send(Op::Flush(done)).is_ok() {
            self.urgent.notify_one();
            let _ = flushed.await;
        }
    }
}

/// The task's end of the queue: what it takes no longer counts as queued behind.
struct Receiver<O> {
    rx: mpsc::UnboundedReceiver<Op<O>>,
    behind: Arc<AtomicUsize>,
    urgent: Arc<Notify>,
}

impl<O> Receiver<O> {
    /// The next operation, once there is one; None once every queue is dropped.
    async fn recv(&mut self) -> Option<Op<O>> {
        self.rx.recv().await.map(|op| self.taken(op))
    }

    /// The next operation once one someone waits for or a flush is queued (or a backlog of
    /// [`NUDGE_EVERY`] behind), or whatever is queued at `deadline`; None if nothing is by then.
    /// Unlike [`Self::recv`], an operation queued behind does not wake the task.
    async fn recv_urgent(&mut self, deadline: Instant) -> Option<Op<O>> {
        loop {
            let timed_out = tokio::select! {
                () = self.urgent.notified() => false,
                () = tokio::time::sleep_until(deadline) => true,
            };
            // A wake-up left from before (the queue was read meanwhile) finds nothing: wait on.
            if let Some(op) = self.try_recv() {
                return Some(op);
            }
            if timed_out {
                return None;
            }
        }
    }

    /// The next operation if one is waiting.
    fn try_recv(&mut self) -> Option<Op<O>> {
        self.rx.try_recv().ok().map(|op| self.taken(op))
    }

    fn taken(&self, op: Op<O>) -> Op<O> {
        if let Op::Write { behind: true, .. } = op {
            self.behind.fetch_sub(1, Ordering::Relaxed);
        }
        op
    }

    /// Takes `first` and every operation already waiting into `group` (flushes into
    /// `flushes`); the one the group gave back.
    fn fill<G: Group<Op = O>>(
        &mut self,
        group: &mut G,
        flushes: &mut Vec<oneshot::Sender<()>>,
        first: Op<O>,
    ) -> Option<Op<O>> {
        // Every operation whose wake-up is pending is in the queue now and taken below (or
        // carried into the next group, which forms at once): forget the wake-up, or the
        // linger after this group would end at once, on whatever was queued behind meanwhile.
        // Forgotten before the queue is read, so one queued after this is not missed.
        let _ = self.urgent.notified().now_or_never();
        let mut next = Some(first);
        while let Some(op) = next.take() {
            match op {
                Op::Flush(done) => flushes.push(done),
                Op::Write { op, behind } => {
                    if let Some(op) = group.take(op) {
                        // Carried to the next group; already counted as taken.
                        return Some(Op::Write { op, behind });
                    }
                }
            }
            next = self.try_recv();
        }
        None
    }
}

async fn run<G: Group>(writer: G::Writer, mut rx: Receiver<G::Op>) {
    let mut carry: Option<Op<G::Op>> = None;
    // Until when the last group's linger lasts.
    let mut lingering: Option<Instant> = None;
    loop {
        let first = match (carry.take(), lingering.take()) {
            (Some(first), _) => first,
            (None, Some(until)) => match rx.recv_urgent(until).await {
                Some(first) => first,
                None => continue,
            },
            (None, None) => match rx.recv().await {
                Some(first) => first,
                None => return,
            },
        };
        let mut group = G::default();
        let mut flushes = Vec::new();
        carry = rx.fill(&mut group, &mut flushes, first);
        while carry.is_none() && flushes.is_empty() {
            let Some(deadline) = group.wait_until() else {
                break;
            };
            match rx.recv_urgent(deadline).await {
                Some(op) => carry = rx.fill(&mut group, &mut flushes, op),
                None => break,
            }
        }
        group.write(&writer).await;
        for done in flushes {
            let _ = done.send(());
        }
        lingering = Some(Instant::now() + LINGER);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    /// A numbered operation, maybe with a waiter.
    type Numbered = (u32, Option<oneshot::Sender<()>>);

    /// Numbered operations; every group written is recorded.
    #[derive(Default)]
    struct Numbers(Vec<Numbered>);

    /// The groups written, in order.
    type Written = Arc<Mutex<Vec<Vec<u32>>>>;

    /// Where the groups go, and one operation to queue behind while the next group is being
    /// written (as a claim comes in from another thread meanwhile).
    #[derive(Default)]
    struct Sink {
        written: Written,
        during_write: Mutex<Option<(Queue<Numbered>, u32)>>,
    }

    #[async_trait]
    impl Group for Numbers {
        type Op = Numbered;
        type Writer = Arc<Sink>;

        fn take(&mut self, op: Self::Op) -> Option<Self::Op> {
            self.0.push(op);
            None
        }

        fn wait_until(&mut self) -> Option<Instant> {
            None
        }

        async fn write(self, sink: &Arc<Sink>) {
            if let Some((queue, n)) = sink.during_write.lock().expect("lock").take() {
                assert!(queue.later((n, None)));
            }
            let written = &sink.written;
            let mut group = Vec::new();
            for (n, done) in self.0 {
                group.push(n);
                if let Some(done) = done {
                    let _ = done.send(());
                }
            }
            written.lock().expect("lock").push(group);
        }
    }

    fn start() -> (Queue<Numbered>, Written) {
        let (queue, sink) = start_with_sink();
        (queue, sink.written.clone())
    }

    fn start_with_sink() -> (Queue<Numbered>, Arc<Sink>) {
        let sink = Arc::new(Sink::default());
        (Queue::start::<Numbers>(sink.clone()), sink)
    }

    fn groups(written: &Written) -> Vec<Vec<u32>> {
        written.lock().expect("lock").clone()
    }

    // Paused time: the linger ends only when nothing else can run.
    #[tokio::test(start_paused = true)]
    async fn one_queued_behind_just_after_a_group_waits_for_the_next_one() {
        let (queue, written) = start();
        queue.ask(|done| (1, Some(done))).await.expect("written");
        // Lingering: this one does not wake the task, which stays idle while we yield...
        assert!(queue.later((2, None)));
        tokio::task::yield_now().await;
        tokio::task::yield_now().await;
        assert_eq!(groups(&written), [vec![1]]);
        // ...and goes with the next one someone waits for.
        queue.ask(|done| (3, Some(done))).await.expect("written");
        assert_eq!(groups(&written), [vec![1], vec![2, 3]]);
    }

    #[tokio::test(start_paused = true)]
    async fn one_queued_behind_while_a_group_is_written_waits_for_the_next_one() {
        let (queue, sink) = start_with_sink();
        *sink.during_write.lock().expect("lock") = Some((queue.clone(), 2));
        // The wake-up of 1 must not end the linger after its group at once, on 2.
        queue.ask(|done| (1, Some(done))).await.expect("written");
        tokio::task::yield_now().await;
        tokio::task::yield_now().await;
        assert_eq!(groups(&sink.written), [vec![1]]);
        queue.ask(|done| (3, Some(done))).await.expect("written");
        assert_eq!(groups(&sink.written), [vec![1], vec![2, 3]]);
    }

    #[tokio::test(start_paused = true)]
    async fn one_queued_behind_alone_is_written_when_the_linger_ends_or_at_once_when_idle() {
        let (queue, written) = start();
        queue.ask(|done| (1, Some(done))).await.expect("written");
        assert!(queue.later((2, None)));
        let started = Instant::now();
        while groups(&written).len() < 2 {
            tokio::time::sleep(Duration::from_micros(100)).await;
        }
        assert_eq!(groups(&written), [vec![1], vec![2]]);
        let waited = started.elapsed();
        assert!(waited <= LINGER + Duration::from_millis(1), "{waited:?}");
        // Long after: the task is idle, and one behind wakes it.
        tokio::time::sleep(LINGER * 10).await;
        assert!(queue.later((3, None)));
        tokio::task::yield_now().await;
        tokio::task::yield_now().await;
        assert_eq!(groups(&written), [vec![1], vec![2], vec![3]]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_backlog_behind_wakes_a_lingering_task_and_a_flush_sees_everything_before_it() {
        let (queue, written) = start();
        queue.ask(|done| (0, Some(done))).await.expect("written");
        let nudge = u32::try_from(NUDGE_EVERY).expect("fits");
        for n in 1..=nudge {
            assert!(queue.later((n, None)));
        }
        tokio::task::yield_now().await;
        tokio::task::yield_now().await;
        let all: Vec<u32> = (1..=nudge).collect();
        assert_eq!(
            groups(&written),
            [vec![0], all.clone()],
            "the last one woke it"
        );
        assert!(queue.later((1000, None)));
        queue.flush().await;
        assert_eq!(groups(&written), [vec![0], all, vec![1000]]);
        assert_eq!(queue.behind.load(Ordering::Relaxed), 0);
    }
}
