//! One way to tell the long-running tasks to stop.
//!
//! Why a module: the daemon stops in two phases (the API first, so that
//! in-flight requests drain; then the background tasks — key watcher,
//! re-sealing, audit upkeep, cleanups), and every task needs the same two
//! questions answered: "should I stop now?" (checked between batches of a
//! long pass) and "wake me when I should" (in a `select!`). One
//! [`Shutdown`] type answers both, like mini-redis's `shutdown.rs`, instead
//! of a oneshot for one task, a `watch<bool>` for some and a bare future
//! for others.
//!
//! Imports nothing else of exsec.

use tokio::sync::watch;

/// The sending side: [`Trigger::fire`] tells every [`Shutdown`] made from
/// it to stop. Dropping the trigger does the same, so a task can never be
/// left waiting for a signal nobody can send.
#[derive(Debug)]
pub struct Trigger {
    sender: watch::Sender<bool>,
}

impl Trigger {
    /// A trigger that has not fired.
    pub fn new() -> Trigger {
        Trigger {
            sender: watch::Sender::new(false),
        }
    }

    /// A receiving side for one task.
    pub fn subscribe(&self) -> Shutdown {
        Shutdown {
            receiver: self.sender.subscribe(),
        }
    }

    /// Tells every subscriber to stop (idempotent).
    pub fn fire(&self) {
        self.sender.send_replace(true);
    }
}

impl Default for Trigger {
    fn default() -> Self {
        Trigger::new()
    }
}

/// The receiving side, one clone per task.
#[derive(Debug, Clone)]
pub struct Shutdown {
    receiver: watch::Receiver<bool>,
}

impl Shutdown {
    /// True once the trigger fired (or was dropped).
    pub fn is_shutdown(&self) -> bool {
        *self.receiver.borrow() || self.receiver.has_changed().is_err()
    }

    /// Resolves once the trigger fired (or was dropped); at once if it
    /// already has. Cancel-safe: use it in `select!`.
    pub async fn recv(&mut self) {
        // An error means the trigger is gone: that is a stop as well.
        let _ = self.receiver.wait_for(|stop| *stop).await;
    }

    /// The same as [`Shutdown::recv`], owning its receiver: for APIs that
    /// take a future (`hyper`'s graceful shutdown, `select!` on a pinned
    /// future).
    pub async fn into_future(mut self) {
        self.recv().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_subscriber_wakes_when_the_trigger_fires() {
        let trigger = Trigger::new();
        let mut first = trigger.subscribe();
        let second = trigger.subscribe();
        assert!(!first.is_shutdown());
        let waiting = tokio::spawn(second.into_future());
        trigger.fire();
        first.recv().await;
        waiting.await.unwrap();
        assert!(first.is_shutdown());
        // Subscribing after the fact still sees the stop.
        let mut late = trigger.subscribe();
        assert!(late.is_shutdown());
        late.recv().await;
    }

    #[tokio::test]
    async fn a_dropped_trigger_means_stop() {
        let trigger = Trigger::new();
        let mut shutdown = trigger.subscribe();
        drop(trigger);
        assert!(shutdown.is_shutdown());
        shutdown.recv().await;
    }
}
