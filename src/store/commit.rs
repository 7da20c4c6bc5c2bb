//! Group commit: writes that arrive while a commit is in flight share the
//! next durable commit.
//!
//! A durable redb commit (two-phase, immediate durability) costs one or two
//! `fsync`s whatever it holds, so one commit per request caps durable
//! writes at a few thousand a second however many clients wait. Here the
//! caller that finds no commit running becomes the *leader*: it takes every
//! queued write (its own and those queued behind it, up to [`MAX_BATCH`]),
//! runs them in order in one write transaction, commits once, and hands
//! each caller its own result. Callers that arrive meanwhile queue and wait;
//! when the leader is done, one of them leads the next batch. With no
//! contention a write runs on its caller's thread exactly as before.
//!
//! The contract each caller sees is unchanged:
//! - **Durable before acknowledged**: a result is handed out only after the
//!   commit that holds the write returned.
//! - **Fails alone**: redb savepoints cannot be taken inside a transaction
//!   that already holds writes, so a write that fails cannot be undone on
//!   its own. The leader instead aborts the transaction, answers that write
//!   with its error, and runs the rest again in a fresh transaction (write
//!   closures are `Fn` for this reason). A failed write is rare (a
//!   conflict, a missing tenant), so the re-run is cheap on average.
//! - **Never a false success**: if the commit itself fails, the file is
//!   reopened (redb refuses every transaction of a failed handle, reads
//!   included) and every write in the batch is answered with the storage
//!   error.
//! - **Ordered audit chain**: writes run one after another in queue order
//!   in the same transaction, each appending to the chain after the last.
//!
//! Async callers ([`Store::write_async`]) queue the same way but hold no
//! thread while they wait: they await their answer, and when a batch needs
//! a leader one of them hands it to a blocking-pool thread. 32 clients
//! writing at once then cost one blocking thread per commit instead of one
//! parked thread each (a wake-up, a context switch and, with glibc, a
//! malloc arena per thread that ever led a batch).

use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, Thread};

use redb::Database;
use tokio::sync::{Notify, oneshot};

use super::{StorageFault, StorageHealth, Store, StoreError, Writer, log_audit_event};

/// Most writes one commit holds. Bounds how long the last caller of a
/// batch waits behind the others and the work lost to a re-run.
pub const MAX_BATCH: usize = 128;

/// One queued write, type-erased so writes returning different types share
/// a batch.
trait Pending: Send {
    /// Runs the write in `writer`, keeping its value until the commit
    /// decides. May run more than once if a neighbour fails.
    fn run(&mut self, writer: &mut Writer) -> Result<(), StoreError>;
    /// Hands the caller its value: the commit holding it is durable.
    fn succeed(self: Box<Self>);
    /// Hands the caller an error; nothing it wrote was kept.
    fn fail(self: Box<Self>, error: StoreError);
    /// Whether the caller has a thread to lead the next batch on (an
    /// async caller has not).
    fn can_lead(&self) -> bool;
    /// Wakes a caller that can lead, to lead the next batch.
    fn wake(&self);
}

/// Where a parked caller's result is left by whoever commits its write.
type Reply<T> = Arc<Mutex<Option<Result<T, StoreError>>>>;

/// How the caller of a job waits for its answer.
enum Waiter<T> {
    /// A thread in [`Store::commit_grouped`], parked until answered or
    /// asked to lead.
    Parked { reply: Reply<T>, thread: Thread },
    /// A task in [`Store::commit_grouped_async`], awaiting its answer.
    Task(oneshot::Sender<Result<T, StoreError>>),
}

struct Job<T, F> {
    work: F,
    value: Option<T>,
    /// Taken when the job is answered; a job dropped unanswered (a panic
    /// in the leader) answers `Interrupted` so its caller never hangs.
    waiter: Option<Waiter<T>>,
}

impl<T, F> Job<T, F> {
    fn answer(&mut self, result: Result<T, StoreError>) {
        match self.waiter.take() {
            Some(Waiter::Parked { reply, thread }) => {
                *lock(&reply) = Some(result);
                thread.unpark();
            }
            // A task that gave up waiting (it is spawned, so only at
            // shutdown) needs no answer.
            Some(Waiter::Task(sender)) => drop(sender.send(result)),
            None => {}
        }
    }
}

impl<T, F> Drop for Job<T, F> {
    fn drop(&mut self) {
        self.answer(Err(StoreError::Interrupted));
    }
}

impl<T, F> Pending for Job<T, F>
where
    T: Send,
    F: Fn(&mut Writer) -> Result<T, StoreError> + Send,
{
    fn run(&mut self, writer: &mut Writer) -> Result<(), StoreError> {
        self.value = Some((self.work)(writer)?);
        Ok(())
    }

    fn succeed(mut self: Box<Self>) {
        let result = self.value.take().ok_or(StoreError::Interrupted);
        self.answer(result);
    }

    fn fail(mut self: Box<Self>, error: StoreError) {
        self.answer(Err(error));
    }

    fn can_lead(&self) -> bool {
        matches!(self.waiter, Some(Waiter::Parked { .. }))
    }

    fn wake(&self) {
        if let Some(Waiter::Parked { thread, .. }) = &self.waiter {
            thread.unpark();
        }
    }
}

/// The queue of writes waiting for a commit, and whether one is running.
///
/// Blocking callers park their threads, async callers await: a leader
/// wakes exactly the callers it answered, and the caller at the front of
/// the queue to lead next (or, for an async write there, one waiting task
/// to start a leader) — not every waiter at every commit.
#[derive(Default)]
pub(super) struct GroupCommit {
    queue: Mutex<Queue>,
    /// Signalled when a batch ends with an async caller's write at the
    /// front of the queue: one waiting task then starts the next leader.
    leader_wanted: Notify,
    /// Durable commits made, and the writes they held.
    commits: AtomicU64,
    writes: AtomicU64,
}

/// How well writes are being grouped (`GET /metrics`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CommitStats {
    /// Durable commits of writes since the store was opened.
    pub commits: u64,
    /// Successful writes those commits held.
    pub writes: u64,
}

#[derive(Default)]
struct Queue {
    waiting: VecDeque<Box<dyn Pending>>,
    leading: bool,
}

impl Store {
    /// Commits made and the writes they held, since the store was opened.
    pub fn commit_stats(&self) -> CommitStats {
        CommitStats {
            commits: self.commits.commits.load(Ordering::Relaxed),
            writes: self.commits.writes.load(Ordering::Relaxed),
        }
    }

    /// Queues `work` and returns once a durable commit holds it (or it
    /// failed). The calling thread may lead batches of other callers' writes
    /// meanwhile.
    pub(super) fn commit_grouped<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: Fn(&mut Writer) -> Result<T, StoreError> + Send + 'static,
    {
        let (job, reply) = queued(work);
        let group = &self.commits;
        let mut queue = lock(&group.queue);
        queue.waiting.push_back(job);
        loop {
            if let Some(result) = lock(&reply).take() {
                return result;
            }
            if queue.leading {
                // An unpark that comes before the park is not lost: park
                // returns at once. Spurious wake-ups just loop.
                drop(queue);
                thread::park();
                queue = lock(&group.queue);
                continue;
            }
            queue.leading = true;
            let batch = self.next_batch(&mut queue);
            drop(queue);
            let lead = Lead(group);
            self.commit_batch(batch);
            drop(lead);
            queue = lock(&group.queue);
        }
    }

    /// [`Store::commit_grouped`] for async callers: queues `work` and awaits
    /// its answer without holding a thread. When no batch is running, or
    /// one ends with a task's write at the front, a task starts a leader
    /// on the blocking pool.
    pub(super) async fn commit_grouped_async<T, F>(
        self: &Arc<Self>,
        work: F,
    ) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: Fn(&mut Writer) -> Result<T, StoreError> + Send + 'static,
    {
        let (sender, mut answer) = oneshot::channel();
        let job: Box<dyn Pending> = Box::new(Job {
            work,
            value: None,
            waiter: Some(Waiter::Task(sender)),
        });
        lock(&self.commits.queue).waiting.push_back(job);
        loop {
            self.start_leader_if_needed();
            tokio::select! {
                answered = &mut answer => return answered.unwrap_or(Err(StoreError::Interrupted)),
                () = self.commits.leader_wanted.notified() => {}
            }
        }
    }

    /// Starts a leader on the blocking pool, unless a batch is running or
    /// nothing waits. It commits batch after batch while async writes are
    /// at the front of the queue — one thread for a stream of commits, not
    /// a new one per batch — and hands over to a parked caller otherwise.
    fn start_leader_if_needed(self: &Arc<Self>) {
        let mut queue = lock(&self.commits.queue);
        if queue.leading || queue.waiting.is_empty() {
            return;
        }
        queue.leading = true;
        let batch = self.next_batch(&mut queue);
        drop(queue);
        let leader = Leader {
            store: Some(self.clone()),
            batch,
        };
        // Should the pool refuse the closure (the runtime is shutting
        // down), dropping it drops `leader`: every write of the batch is
        // answered `Interrupted` and the lead is handed over.
        tokio::task::spawn_blocking(move || leader.run());
    }

    /// Takes the next batch from the front of the queue.
    fn next_batch(&self, queue: &mut Queue) -> Vec<Box<dyn Pending>> {
        let take = queue.waiting.len().min(self.options.max_batch.max(1));
        queue.waiting.drain(..take).collect()
    }

    /// Runs `batch` in one write transaction and answers every write in it.
    fn commit_batch(&self, batch: Vec<Box<dyn Pending>>) {
        deliver(self.settle_batch(batch));
    }

    /// Runs `batch` in one write transaction and returns each write with
    /// its outcome, to be answered by [`deliver`].
    fn settle_batch(&self, mut batch: Vec<Box<dyn Pending>>) -> Settled {
        let mut settled = Settled::new();
        while !batch.is_empty() {
            if let Err(error) = self.reopen_if_needed() {
                settled.extend(fail_all(batch, error));
                return settled;
            }
            match self.attempt(&mut batch) {
                Attempt::Committed => {
                    self.commits.commits.fetch_add(1, Ordering::Relaxed);
                    self.commits
                        .writes
                        .fetch_add(batch.len() as u64, Ordering::Relaxed);
                    self.health.set(StorageHealth::Healthy, &self.path);
                    settled.extend(batch.into_iter().map(|job| (job, None)));
                    return settled;
                }
                // After a storage failure, reopen before answering: a caller
                // that reads next finds a working handle. A failed reopen is
                // logged and retried by the next read, write or probe.
                Attempt::OneFailed(index, error) => {
                    let _ = self.reopen_if_needed();
                    settled.push((batch.remove(index), Some(error)));
                }
                Attempt::AllFailed(error) => {
                    let _ = self.reopen_if_needed();
                    settled.extend(fail_all(batch, error));
                    return settled;
                }
            }
        }
        settled
    }

    /// One transaction over the whole batch. A failing write aborts it, so
    /// the caller can answer that write and run the others again.
    ///
    /// While the store is healthy, the transaction runs beside reads (the
    /// shared side of the handle's lock). While it is degraded — the next
    /// commit is likely to fail again, and a failed commit spoils every read
    /// running on that handle — it takes the exclusive side and reopens the
    /// file before letting go: reads wait a commit's time instead of failing.
    fn attempt(&self, batch: &mut [Box<dyn Pending>]) -> Attempt {
        if self.health() == StorageHealth::Healthy {
            let guard = self
                .db
                .read()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            return self.attempt_on(guard.as_ref(), batch);
        }
        let mut guard = self
            .db
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let attempt = self.attempt_on(guard.as_ref(), batch);
        if !matches!(attempt, Attempt::Committed) {
            let _ = self.reopen_locked(&mut guard);
        }
        attempt
    }

    fn attempt_on(&self, db: Option<&Database>, batch: &mut [Box<dyn Pending>]) -> Attempt {
        let Some(db) = db else {
            return Attempt::AllFailed(StoreError::Unavailable {
                fault: self.health.fault(),
            });
        };
        // Writes to a read-only handle would land in memory only.
        if self.read_only.load(Ordering::Acquire) {
            return Attempt::AllFailed(StoreError::Unavailable {
                fault: StorageFault::ReadOnly,
            });
        }
        let generation = self.generation();
        let failed = |error: StoreError| {
            self.note_failure(&error, generation);
            error
        };
        let mut writer = match Writer::begin(db) {
            Ok(mut writer) => {
                writer.history_limit = self.options.secret_history;
                writer
            }
            Err(error) => return Attempt::AllFailed(failed(error)),
        };
        for (index, job) in batch.iter_mut().enumerate() {
            let ran = catch_unwind(AssertUnwindSafe(|| job.run(&mut writer)));
            let error = match ran {
                Ok(Ok(())) => continue,
                Ok(Err(error)) => error,
                Err(_) => {
                    tracing::error!("a storage write panicked; it was rolled back");
                    StoreError::Interrupted
                }
            };
            writer.abort();
            return Attempt::OneFailed(index, failed(error));
        }
        match writer.finish() {
            Ok(appended) => {
                for event in &appended {
                    log_audit_event(event);
                }
                Attempt::Committed
            }
            Err(error) => Attempt::AllFailed(failed(error)),
        }
    }
}

/// A write ready to queue, and where its result will be left.
fn queued<T, F>(work: F) -> (Box<dyn Pending>, Reply<T>)
where
    T: Send + 'static,
    F: Fn(&mut Writer) -> Result<T, StoreError> + Send + 'static,
{
    let reply: Reply<T> = Arc::new(Mutex::new(None));
    let job = Box::new(Job {
        work,
        value: None,
        waiter: Some(Waiter::Parked {
            reply: reply.clone(),
            thread: thread::current(),
        }),
    });
    (job, reply)
}

/// The leader's turn: ends (and wakes the caller at the front of the
/// queue to lead next, or has a waiting task start a leader for it)
/// however the batch ends, a panic included.
struct Lead<'a>(&'a GroupCommit);

impl Drop for Lead<'_> {
    fn drop(&mut self) {
        hand_over(self.0);
    }
}

/// A leader started on the blocking pool for async writes. However it
/// ends — batches done, a panic, or dropped unrun by a runtime shutting
/// down — its unanswered writes are answered and the lead handed over.
struct Leader {
    /// Taken when the leader stops, so that it lets go of the store before
    /// answering its last batch: a caller that drops the store next really
    /// closes it, as when its write ran on its own pool thread.
    store: Option<Arc<Store>>,
    batch: Vec<Box<dyn Pending>>,
}

impl Leader {
    /// Commits its batch, then the next while an async write (which has no
    /// thread to lead on) is at the front of the queue.
    fn run(mut self) {
        loop {
            let Some(store) = self.store.as_ref() else {
                return;
            };
            let settled = store.settle_batch(std::mem::take(&mut self.batch));
            let mut queue = lock(&store.commits.queue);
            if queue.waiting.front().is_some_and(|next| !next.can_lead()) {
                self.batch = store.next_batch(&mut queue);
                drop(queue);
                deliver(settled);
                continue;
            }
            drop(queue);
            if let Some(store) = self.store.take() {
                hand_over(&store.commits);
            }
            deliver(settled);
            return;
        }
    }
}

impl Drop for Leader {
    fn drop(&mut self) {
        drop(std::mem::take(&mut self.batch));
        if let Some(store) = self.store.take() {
            hand_over(&store.commits);
        }
    }
}

/// Ends a leader's turn: wakes the caller at the front of the queue to
/// lead next, or has a waiting task start a leader for an async write.
fn hand_over(group: &GroupCommit) {
    let mut queue = lock(&group.queue);
    queue.leading = false;
    if let Some(next) = queue.waiting.front() {
        if next.can_lead() {
            next.wake();
        } else {
            // A permit is kept if no task waits yet: the next to wait
            // starts the leader.
            group.leader_wanted.notify_one();
        }
    }
}

/// How one transaction over a batch ended.
enum Attempt {
    /// Durable; every write in the batch succeeded.
    Committed,
    /// The write at this index failed; the transaction was aborted.
    OneFailed(usize, StoreError),
    /// The transaction could not begin or commit; nothing was kept.
    AllFailed(StoreError),
}

/// Writes of a batch with their outcome (`None`: committed), not yet
/// answered.
type Settled = Vec<(Box<dyn Pending>, Option<StoreError>)>;

/// Answers each settled write.
fn deliver(settled: Settled) {
    for (job, error) in settled {
        match error {
            None => job.succeed(),
            Some(error) => job.fail(error),
        }
    }
}

/// Every write of `batch` with `error` (shared when there are several, as
/// a storage error cannot be copied).
fn fail_all(mut batch: Vec<Box<dyn Pending>>, error: StoreError) -> Settled {
    if batch.len() == 1 {
        return batch
            .pop()
            .map(|job| (job, Some(error)))
            .into_iter()
            .collect();
    }
    let shared = Arc::new(error);
    batch
        .into_iter()
        .map(|job| (job, Some(StoreError::Batch(shared.clone()))))
        .collect()
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;
    use std::thread;

    use super::*;
    use crate::model::TenantId;
    use crate::store::error::{Missing, Rejected, not_found};
    use crate::store::tests::{Failure, flaky_store, options};

    fn tenant(id: &str) -> TenantId {
        TenantId::parse(id).unwrap()
    }

    fn put_tenant(id: &'static str) -> (Box<dyn Pending>, Reply<()>) {
        queued(move |w| w.put_tenant(&tenant(id), "admin").map(drop))
    }

    fn answer<T>(reply: &Reply<T>) -> Result<T, StoreError> {
        lock(reply)
            .take()
            .expect("every write of a batch is answered")
    }

    fn tenant_ids(store: &Store) -> Vec<String> {
        store
            .read(|r| r.tenants())
            .unwrap()
            .into_iter()
            .map(|(id, _)| id.to_string())
            .collect()
    }

    fn open_store(dir: &tempfile::TempDir) -> Store {
        Store::open(&dir.path().join("exsec.redb"), options()).unwrap()
    }

    /// The write in the middle writes, then fails: it is rolled back alone,
    /// its neighbours commit, and the audit chain has exactly their events
    /// in queue order.
    #[test]
    fn a_failing_write_fails_alone_and_its_neighbours_commit() {
        let dir = tempfile::tempdir().unwrap();
        let store = open_store(&dir);
        let (first, first_reply) = put_tenant("first");
        let (bad, bad_reply) = queued(|w: &mut Writer| -> Result<(), StoreError> {
            w.put_tenant(&tenant("half"), "admin")?;
            Err(not_found(Missing::App, "refused-after-writing"))
        });
        let (panics, panic_reply) =
            queued(|_: &mut Writer| -> Result<(), StoreError> { panic!("a bug in a write") });
        let (last, last_reply) = put_tenant("last");

        store.commit_batch(vec![first, bad, panics, last]);

        answer(&first_reply).unwrap();
        assert!(matches!(
            answer(&bad_reply),
            Err(StoreError::Rejected(Rejected::NotFound {
                kind: Missing::App,
                ..
            }))
        ));
        assert!(matches!(answer(&panic_reply), Err(StoreError::Interrupted)));
        answer(&last_reply).unwrap();
        assert_eq!(tenant_ids(&store), ["first", "last"]);
        let check = store.read(|r| r.verify_audit_chain(None)).unwrap();
        let head = check.outcome.expect("the chain verifies");
        assert_eq!((check.events, head.seq), (2, 2));
        assert_eq!(
            store.commit_stats(),
            CommitStats {
                commits: 1,
                writes: 2
            }
        );
    }

    /// A commit that fails (the disk returns EIO) answers every write of
    /// the batch with a storage error, never a success, and the next write
    /// reopens the file and succeeds.
    #[test]
    fn a_failed_commit_answers_every_write_with_the_storage_error() {
        let dir = tempfile::tempdir().unwrap();
        let (store, disk) = flaky_store(&dir.path().join("exsec.redb"));
        let (a, a_reply) = put_tenant("a");
        let (b, b_reply) = put_tenant("b");
        disk.set(Failure::Eio);
        store.commit_batch(vec![a, b]);
        for reply in [&a_reply, &b_reply] {
            let error = answer(reply).unwrap_err();
            assert!(error.needs_reopen(), "{error:?}");
        }
        disk.set(Failure::None);
        store
            .write(|w| w.put_tenant(&tenant("c"), "admin").map(drop))
            .unwrap();
        assert_eq!(tenant_ids(&store), ["c"]);
    }

    /// A blocking caller's write whose closure holds its commit open until
    /// released: (entered, release, the caller's thread).
    fn held_blocking_write(
        store: &Arc<Store>,
        id: &'static str,
    ) -> (
        mpsc::Receiver<()>,
        mpsc::Sender<()>,
        thread::JoinHandle<Result<(), StoreError>>,
    ) {
        let (entered, release, work) = holding(id);
        let store = store.clone();
        let caller = thread::spawn(move || store.write(work));
        (entered, release, caller)
    }

    /// A write of tenant `id` that says when it runs and then holds its
    /// commit open until released: (entered, release, the write).
    fn holding(
        id: &'static str,
    ) -> (
        mpsc::Receiver<()>,
        mpsc::Sender<()>,
        impl Fn(&mut Writer) -> Result<(), StoreError> + Send + 'static,
    ) {
        let (entered_tx, entered) = mpsc::channel();
        let (release, released) = mpsc::channel::<()>();
        let released = Mutex::new(released);
        let work = move |w: &mut Writer| {
            entered_tx.send(()).unwrap();
            lock(&released).recv().unwrap();
            w.put_tenant(&tenant(id), "admin").map(drop)
        };
        (entered, release, work)
    }

    /// Writes queued while a commit is in flight share the next commit,
    /// and each caller gets its own answer.
    #[test]
    fn writes_queued_behind_a_commit_share_the_next_one() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(open_store(&dir));
        let (entered, release, leader) = held_blocking_write(&store, "leader");
        entered.recv().unwrap();
        let followers: Vec<_> = ["f1", "f2", "f3", "f4"]
            .into_iter()
            .map(|id| {
                let store = store.clone();
                thread::spawn(move || store.write(move |w| w.put_tenant(&tenant(id), "admin")))
            })
            .collect();
        // Readiness: all four are queued behind the leader's open commit.
        while lock(&store.commits.queue).waiting.len() < 4 {
            thread::yield_now();
        }
        release.send(()).unwrap();
        leader.join().unwrap().unwrap();
        for follower in followers {
            let (record, created) = follower.join().unwrap().unwrap();
            assert!(created, "{record:?}");
        }
        assert_eq!(
            store.commit_stats(),
            CommitStats {
                commits: 2,
                writes: 5
            }
        );
        assert_eq!(tenant_ids(&store), ["f1", "f2", "f3", "f4", "leader"]);
        let head = store.read(|r| r.audit_head()).unwrap();
        assert_eq!(head.seq, 5);
    }

    /// A runtime whose blocking pool has one thread: a design that parks
    /// a thread per waiting async writer cannot queue a second write
    /// behind an open commit there.
    fn one_blocking_thread() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .max_blocking_threads(1)
            .enable_all()
            .build()
            .unwrap()
    }

    /// Waits (with a deadline, never forever) until `n` writes are queued.
    fn until_queued(store: &Store, n: usize) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while lock(&store.commits.queue).waiting.len() < n {
            assert!(
                std::time::Instant::now() < deadline,
                "only {} of {n} writes queued",
                lock(&store.commits.queue).waiting.len()
            );
            thread::yield_now();
        }
    }

    /// A write whose closure holds its commit open until released.
    fn held_write(
        store: &Arc<Store>,
        id: &'static str,
    ) -> (
        mpsc::Receiver<()>,
        mpsc::Sender<()>,
        tokio::task::JoinHandle<Result<(), StoreError>>,
    ) {
        let (entered, release, work) = holding(id);
        let store = store.clone();
        let task = tokio::spawn(async move { store.write_async(work).await });
        (entered, release, task)
    }

    /// A store whose first write ("first") holds its commit open until
    /// `release`, on a runtime whose blocking pool has one thread.
    struct HeldFirst {
        store: Arc<Store>,
        runtime: tokio::runtime::Runtime,
        release: mpsc::Sender<()>,
        first: tokio::task::JoinHandle<Result<(), StoreError>>,
        _dir: tempfile::TempDir,
    }

    fn first_commit_held() -> HeldFirst {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(open_store(&dir));
        let runtime = one_blocking_thread();
        let (entered, release, first) = {
            let _guard = runtime.enter();
            held_write(&store, "first")
        };
        entered.recv().unwrap();
        HeldFirst {
            store,
            runtime,
            release,
            first,
            _dir: dir,
        }
    }

    /// An async write of tenant `id`, spawned on `runtime`.
    fn spawn_put_tenant(
        runtime: &tokio::runtime::Runtime,
        store: &Arc<Store>,
        id: String,
    ) -> tokio::task::JoinHandle<Result<(), StoreError>> {
        let store = store.clone();
        runtime.spawn(async move {
            store
                .write_async(move |w| w.put_tenant(&tenant(&id), "admin").map(drop))
                .await
        })
    }

    /// Async writers wait without a thread each: 64 of them queue behind
    /// an open commit though the blocking pool has a single thread (busy
    /// with that commit), and share the next commit.
    #[test]
    fn async_writers_queue_without_holding_a_thread_each() {
        let held = first_commit_held();
        let _guard = held.runtime.enter();
        let writers: Vec<_> = (0..64)
            .map(|i| spawn_put_tenant(&held.runtime, &held.store, format!("w{i:02}")))
            .collect();
        until_queued(&held.store, 64);
        held.release.send(()).unwrap();
        held.runtime.block_on(async {
            held.first.await.unwrap().unwrap();
            for writer in writers {
                writer.await.unwrap().unwrap();
            }
        });
        assert_eq!(
            held.store.commit_stats(),
            CommitStats {
                commits: 2,
                writes: 65
            }
        );
        assert_eq!(tenant_ids(&held.store).len(), 65);
        let check = held.store.read(|r| r.verify_audit_chain(None)).unwrap();
        assert_eq!(check.outcome.unwrap().seq, 65);
    }

    /// Leadership passes between the two kinds of caller: an async write's
    /// batch ends with a blocking caller parked behind it, whose batch ends
    /// with async writes behind it; every write is answered.
    #[test]
    fn async_and_blocking_writers_hand_the_lead_to_each_other() {
        let held = first_commit_held();
        let _guard = held.runtime.enter();
        // Behind the open commit: a blocking caller holding its own commit
        // open once it leads, then two async writes.
        let (blocking_entered, blocking_release, blocking) =
            held_blocking_write(&held.store, "blocking");
        until_queued(&held.store, 1);
        let later: Vec<_> = ["a1", "a2"]
            .into_iter()
            .map(|id| spawn_put_tenant(&held.runtime, &held.store, id.to_owned()))
            .collect();
        until_queued(&held.store, 3);
        // The first batch holds only "first"; the blocking caller leads
        // the next one (all three queued writes).
        held.release.send(()).unwrap();
        blocking_entered.recv().unwrap();
        // Queued behind the blocking leader's open commit: when it ends,
        // the async write at the front has its task start a leader.
        let (third_entered, third_release, third) = held_write(&held.store, "third");
        until_queued(&held.store, 1);
        blocking_release.send(()).unwrap();
        third_entered.recv().unwrap();
        third_release.send(()).unwrap();
        blocking.join().unwrap().unwrap();
        held.runtime.block_on(async {
            held.first.await.unwrap().unwrap();
            for writer in later {
                writer.await.unwrap().unwrap();
            }
            third.await.unwrap().unwrap();
        });
        assert_eq!(
            held.store.commit_stats(),
            CommitStats {
                commits: 3,
                writes: 5
            }
        );
        assert_eq!(
            tenant_ids(&held.store),
            ["a1", "a2", "blocking", "first", "third"]
        );
    }

    /// A leader the blocking pool never runs (its runtime shutting down)
    /// answers its writes `Interrupted` and gives the lead up: the next
    /// write does not wait forever.
    #[test]
    fn a_leader_dropped_unrun_answers_its_writes_and_hands_over() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(open_store(&dir));
        let (job, reply) = put_tenant("never");
        lock(&store.commits.queue).leading = true;
        drop(Leader {
            store: Some(store.clone()),
            batch: vec![job],
        });
        assert!(matches!(answer(&reply), Err(StoreError::Interrupted)));
        store
            .write(|w| w.put_tenant(&tenant("after"), "admin").map(drop))
            .unwrap();
        assert_eq!(tenant_ids(&store), ["after"]);
    }

    /// Many writers at once: every write lands once and the chain is
    /// whole.
    #[test]
    fn concurrent_writers_all_land_in_an_unbroken_chain() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(open_store(&dir));
        let writers: Vec<_> = (0..16)
            .map(|t| {
                let store = store.clone();
                thread::spawn(move || {
                    for i in 0..20 {
                        let id = format!("t{t:02}-{i:02}");
                        store
                            .write(move |w| w.put_tenant(&tenant(&id), "admin"))
                            .unwrap();
                    }
                })
            })
            .collect();
        for writer in writers {
            writer.join().unwrap();
        }
        assert_eq!(tenant_ids(&store).len(), 320);
        let check = store.read(|r| r.verify_audit_chain(None)).unwrap();
        assert_eq!(check.outcome.unwrap().seq, 320);
        assert_eq!(store.commit_stats().writes, 320);
    }
}
