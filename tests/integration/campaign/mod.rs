//! Long campaigns that try hard to break exsec, each also run small in CI:
//!
//! - `kill_cycles`: `exsec serve` under concurrent writes, deploys and key
//!   rotations, SIGKILLed at a random moment and restarted, checked after
//!   every cycle (SPEC §2 durable before acknowledged, §7 audit chain).
//! - `kube_faults`: deploys against a Kubernetes API failing a fifth of its
//!   requests (SPEC §4 best-effort injection, no false success).
//! - `disk_faults`: `exsec serve` with its store on a small tmpfs that is
//!   filled and remounted read-only under load (SPEC §11.1 storage faults).
//!
//! Each prints its seed; `EXSEC_CAMPAIGN_SEED=N` replays a run (the
//! random choices, not the scheduling of threads). Sizes come from
//! `EXSEC_CAMPAIGN_CYCLES` and `EXSEC_CAMPAIGN_DEPLOYS`; the scripts
//! `scripts/kill-cycles.sh`, `scripts/kube-faults.sh` and
//! `scripts/disk-faults.sh` set them for the
//! full-size runs documented in docs/reliability.md.

mod disk_faults;
mod kill_cycles;
mod kube_faults;

/// The seed of this run: `EXSEC_CAMPAIGN_SEED`, else the clock. Printed,
/// so that a failure names the seed that replays it.
fn seed(campaign: &str) -> u64 {
    let seed = match std::env::var("EXSEC_CAMPAIGN_SEED") {
        Ok(text) => text
            .parse()
            .unwrap_or_else(|_| panic!("EXSEC_CAMPAIGN_SEED={text} is not a number")),
        Err(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64,
    };
    println!("{campaign}: seed {seed} (replay with EXSEC_CAMPAIGN_SEED={seed})");
    seed
}

/// A size from the environment variable `name`, else `ci` (the CI size).
fn size(name: &str, ci: u64) -> u64 {
    std::env::var(name).map_or(ci, |text| {
        text.parse()
            .unwrap_or_else(|_| panic!("{name}={text} is not a number"))
    })
}

/// A small seeded generator (splitmix64): the campaign's random choices.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `range`.
    fn between(&mut self, range: std::ops::Range<u64>) -> u64 {
        range.start + self.next() % (range.end - range.start)
    }
}

/// `exsec audit verify --db` on a closed store file: the whole chain.
async fn verify_audit_chain(database: &std::path::Path) {
    crate::operator::exsec(
        None,
        None,
        &["audit", "verify", "--db", database.to_str().unwrap()],
        None,
    )
    .await
    .expect(0);
}
