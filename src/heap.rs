//! Gives the memory the allocator keeps after a burst of work back to the
//! system, once the daemon is idle.
//!
//! glibc's allocator keeps what a thread frees in that thread's arena and
//! returns pages to the system only from the top of a heap. redb's page
//! cache is filled from whichever thread reads (the async workers, the
//! blocking pool, the commit leader), so after a burst of writes its
//! evicted pages lie free across several arenas: 100k secret writes left
//! the daemon at 65–84 MiB of heap with a 32 MiB cache, and there it stayed
//! while idle. `malloc_trim(0)` walks every arena and returns its free
//! pages (in the measurement in docs/performance.md: 68.5 → 38.7 MiB).
//!
//! It locks each arena in turn while it walks it, so it runs only when the
//! daemon has been idle for a whole tick after some work — never under
//! load, and once per burst. Other allocators (musl) have no such call and
//! return memory themselves: there it does nothing.

use std::time::Duration;

use crate::shutdown::Shutdown;

/// How often activity is sampled; memory is given back within one to two
/// ticks of the last request or write.
pub const TICK: Duration = Duration::from_millis(500);

/// Decides, tick by tick, when to give memory back: on the first tick
/// without activity after some.
#[derive(Debug)]
pub struct IdleRelease {
    last: Option<u64>,
    worked: bool,
}

impl Default for IdleRelease {
    /// Starting counts as work: opening the store and checking the audit
    /// chain allocate.
    fn default() -> IdleRelease {
        IdleRelease {
            last: None,
            worked: true,
        }
    }
}

impl IdleRelease {
    /// Takes this tick's activity count (anything that only grows with
    /// work: requests served, writes committed); true when memory should
    /// be given back now.
    pub fn tick(&mut self, activity: u64) -> bool {
        if self.last != Some(activity) {
            self.last = Some(activity);
            self.worked = true;
            return false;
        }
        std::mem::take(&mut self.worked)
    }
}

/// Gives memory back on the first idle tick after work until `shutdown`
/// fires. `activity` is sampled once per [`TICK`].
pub async fn run(activity: impl Fn() -> u64 + Send + 'static, mut shutdown: Shutdown) {
    let mut ticks = tokio::time::interval(TICK);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut idle = IdleRelease::default();
    loop {
        tokio::select! {
            () = shutdown.recv() => return,
            _ = ticks.tick() => {}
        }
        if idle.tick(activity()) {
            let started = std::time::Instant::now();
            // Off the async workers: the walk takes each arena's lock.
            let released = tokio::task::spawn_blocking(release_free_memory)
                .await
                .unwrap_or(false);
            tracing::debug!(
                released,
                took_ms = started.elapsed().as_secs_f64() * 1e3,
                "idle: gave the allocator's free memory back"
            );
        }
    }
}

/// Asks glibc to return the free pages of every arena; whether it returned
/// any. Does nothing (false) with other allocators.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
pub fn release_free_memory() -> bool {
    // SAFETY: `malloc_trim` takes no pointer and touches only glibc's own
    // free lists, under each arena's lock; any thread may call it any time.
    unsafe { libc::malloc_trim(0) == 1 }
}

/// Asks glibc to return the free pages of every arena; whether it returned
/// any. Does nothing (false) with other allocators.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn release_free_memory() -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_goes_back_once_per_burst_on_the_first_idle_tick() {
        let mut idle = IdleRelease::default();
        // The start is work: the first idle tick after it gives back.
        assert!(!idle.tick(0));
        assert!(idle.tick(0));
        assert!(!idle.tick(0), "once per burst");
        // Under load: never.
        for count in 1..=5 {
            assert!(!idle.tick(count));
        }
        assert!(idle.tick(5), "the first idle tick after the burst");
        assert!(!idle.tick(5));
        assert!(!idle.tick(5));
    }

    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[test]
    fn free_memory_below_a_live_allocation_is_given_back() {
        // 4 MiB in blocks under glibc's mmap threshold, then a block after
        // them that stays: freeing the first leaves a hole no `free` returns.
        let blocks: Vec<Vec<u8>> = (0..64u8).map(|i| vec![i; 64 * 1024]).collect();
        let fence = std::hint::black_box(vec![1u8; 256]);
        drop(blocks);
        assert!(release_free_memory(), "the hole is given back");
        drop(fence);
    }
}
