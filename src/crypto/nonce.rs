//! Nonces for sealing: a per-thread ChaCha20 keystream keyed from the
//! operating system, instead of one `getrandom(2)` call per seal.
//!
//! Why this is safe: XChaCha20-Poly1305 needs each (key, nonce) pair to be
//! unique, and its 192-bit nonce is long enough that nonces drawn uniformly
//! at random never collide in practice (2^-96 after 2^48 seals under one
//! key). ChaCha20's keystream under a secret random key is indistinguishable
//! from uniform random bytes (that is the cipher's security claim), so its
//! output serves exactly as well as the OS's, whose own generator is a
//! ChaCha20 keystream too. Each thread keys its own stream from the OS
//! (key and 96-bit stream nonce, both random, so no two streams overlap),
//! and re-keys after [`RESEED_AFTER`] draws, long before the 32-bit block
//! counter (256 GiB of keystream) could wrap.
//!
//! Why it is worth it: the system call was ~0.55 µs of a ~1 µs seal of a
//! 64-byte value; a draw from the stream is a slice of one ChaCha20 block
//! (a block yields 2⅔ nonces), and the seal bench fell from 0.94 to
//! 0.59 µs (docs/performance.md).
//!
//! exsec never forks without exec (child processes are spawned through
//! `std::process::Command`), so a stream is never copied into a second
//! process that could repeat it.

use std::cell::RefCell;

use chacha20::ChaCha20;
use chacha20::cipher::{KeyIvInit, StreamCipher};
use zeroize::Zeroizing;

use super::CryptoError;
use super::seal::NONCE_LEN;

/// Draws from one stream before it is keyed again from the OS.
const RESEED_AFTER: u32 = 1 << 20;

/// One thread's stream and how many nonces it has given.
struct Stream {
    cipher: ChaCha20,
    drawn: u32,
}

impl Stream {
    fn from_os() -> Result<Self, CryptoError> {
        // Key and stream nonce side by side: 32 + 12 bytes, one system call.
        let mut seed = Zeroizing::new([0u8; 44]);
        getrandom::fill(seed.as_mut()).map_err(|source| CryptoError::Random {
            source: super::random_error(source),
        })?;
        let (key, iv) = seed.split_at(32);
        let cipher = ChaCha20::new_from_slices(key, iv)
            .unwrap_or_else(|_| unreachable!("ChaCha20 takes a 32-byte key and a 12-byte nonce"));
        Ok(Self { cipher, drawn: 0 })
    }
}

thread_local! {
    static STREAM: RefCell<Option<Stream>> = const { RefCell::new(None) };
}

/// A fresh nonce for one seal.
pub(super) fn fresh() -> Result<[u8; NONCE_LEN], CryptoError> {
    STREAM.with(|slot| {
        let mut slot = slot.borrow_mut();
        let stream = match slot.as_mut() {
            Some(stream) if stream.drawn < RESEED_AFTER => stream,
            _ => slot.insert(Stream::from_os()?),
        };
        stream.drawn += 1;
        let mut nonce = [0u8; NONCE_LEN];
        stream.cipher.apply_keystream(&mut nonce);
        Ok(nonce)
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn nonces_do_not_repeat_within_or_across_threads() {
        let draw = || (0..10_000).map(|_| fresh().unwrap()).collect::<Vec<_>>();
        let other = std::thread::spawn(draw).join().unwrap();
        let mut seen = HashSet::new();
        for nonce in draw().into_iter().chain(other) {
            assert!(seen.insert(nonce), "a nonce repeated");
        }
    }

    #[test]
    fn a_stream_is_keyed_again_after_its_quota() {
        fresh().unwrap();
        let before = STREAM.with(|slot| slot.borrow().as_ref().map(|s| s.drawn));
        STREAM.with(|slot| slot.borrow_mut().as_mut().unwrap().drawn = RESEED_AFTER);
        fresh().unwrap();
        let after = STREAM.with(|slot| slot.borrow().as_ref().map(|s| s.drawn));
        assert!(before >= Some(1));
        assert_eq!(
            after,
            Some(1),
            "the exhausted stream was replaced by a new one"
        );
    }
}
