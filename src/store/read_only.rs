//! Opening the store on a file system that refuses writes (mounted
//! read-only, or remounted so by the kernel after an error), so that exsec
//! still starts and answers reads instead of refusing to run.
//!
//! redb's own read-only handle cannot open a file that was not closed
//! cleanly (after a SIGKILL or a power cut it needs a repair, which writes)
//! nor one whose schema must be migrated first. So the file is opened
//! through [`Overlay`]: reads come from the file, writes land in memory
//! and are never written back. redb then repairs and migrates as usual, in
//! memory; the store refuses every write of its own while such a handle is
//! open (`Store::read_only`) and tries the file for writing again at the
//! next write or probe, healing once the file system takes writes.
//!
//! The overlay holds a shared lock on the file for as long as it is open,
//! so an `exsec` opening the file for writing meanwhile is refused, as it
//! would be by a writer.

use std::collections::BTreeMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use redb::{Database, StorageBackend};

/// What redb's backend methods fail with.
type BackendIoError = std::io::Error;

/// The unit of the in-memory copy: written blocks are kept whole.
const BLOCK: u64 = 4096;

/// A storage backend reading the file and keeping writes in memory.
#[derive(Debug)]
pub(super) struct Overlay {
    file: File,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    /// Blocks written since the open, by block number.
    blocks: BTreeMap<u64, Box<[u8]>>,
    /// The length redb was last told (the file's length at first).
    len: u64,
    /// The file's own length: bytes past it read as zeros.
    file_len: u64,
}

impl Overlay {
    /// Opens `path` for reading and takes a shared lock on it; `Ok(None)`
    /// when a writer holds the file.
    pub(super) fn open(path: &Path) -> std::io::Result<Option<Overlay>> {
        let file = File::open(path)?;
        match file.try_lock_shared() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => return Ok(None),
            Err(std::fs::TryLockError::Error(error)) => return Err(error),
        }
        let file_len = file.metadata()?.len();
        Ok(Some(Overlay {
            file,
            state: Mutex::new(State {
                blocks: BTreeMap::new(),
                len: file_len,
                file_len,
            }),
        }))
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Fills `out` with the file's bytes at `offset` (zeros past its end).
    fn read_file(&self, state: &State, offset: u64, out: &mut [u8]) -> std::io::Result<()> {
        out.fill(0);
        if offset >= state.file_len {
            return Ok(());
        }
        let available = usize::try_from(state.file_len - offset).unwrap_or(usize::MAX);
        let wanted = out.len().min(available);
        self.file.read_exact_at(&mut out[..wanted], offset)
    }
}

impl StorageBackend for Overlay {
    fn len(&self) -> Result<u64, BackendIoError> {
        Ok(self.state().len)
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), BackendIoError> {
        let state = self.state();
        let mut done = 0;
        while done < out.len() {
            let at = offset + done as u64;
            let (block, within) = (at / BLOCK, (at % BLOCK) as usize);
            let take = (out.len() - done).min(BLOCK as usize - within);
            let piece = &mut out[done..done + take];
            match state.blocks.get(&block) {
                Some(bytes) => piece.copy_from_slice(&bytes[within..within + take]),
                None => self.read_file(&state, at, piece)?,
            }
            done += take;
        }
        Ok(())
    }

    fn set_len(&self, len: u64) -> Result<(), BackendIoError> {
        let mut state = self.state();
        if len < state.len {
            // Bytes cut off read as zeros if the file grows again.
            let first_gone = len.div_ceil(BLOCK);
            state.blocks.split_off(&first_gone);
            if !len.is_multiple_of(BLOCK)
                && let Some(last) = state.blocks.get_mut(&(len / BLOCK))
            {
                last[(len % BLOCK) as usize..].fill(0);
            }
            state.file_len = state.file_len.min(len);
        }
        state.len = len;
        Ok(())
    }

    fn sync_data(&self) -> Result<(), BackendIoError> {
        Ok(())
    }

    fn write(&self, offset: u64, data: &[u8]) -> Result<(), BackendIoError> {
        let mut state = self.state();
        let mut done = 0;
        while done < data.len() {
            let at = offset + done as u64;
            let (block, within) = (at / BLOCK, (at % BLOCK) as usize);
            let take = (data.len() - done).min(BLOCK as usize - within);
            if !state.blocks.contains_key(&block) {
                let mut bytes = vec![0; BLOCK as usize].into_boxed_slice();
                self.read_file(&state, block * BLOCK, &mut bytes)?;
                state.blocks.insert(block, bytes);
            }
            if let Some(bytes) = state.blocks.get_mut(&block) {
                bytes[within..within + take].copy_from_slice(&data[done..done + take]);
            }
            done += take;
        }
        state.len = state.len.max(offset + data.len() as u64);
        Ok(())
    }
}

/// What opening the file for reading only found.
pub(super) enum Opened {
    /// The file, repaired and migrated in memory if it needed it.
    Database(Database),
    /// Another process holds the file for writing.
    InUse,
}

/// Whether `error` (opening the file for writing) means the file system or
/// the file refuses writes, so a read-only open is worth trying.
pub(super) fn refuses_writes(error: &redb::DatabaseError) -> bool {
    match error {
        redb::DatabaseError::Storage(redb::StorageError::Io(error)) => matches!(
            error.kind(),
            std::io::ErrorKind::ReadOnlyFilesystem | std::io::ErrorKind::PermissionDenied
        ),
        _ => false,
    }
}

/// Whether `path` can be opened for writing now (cheap: no redb open, no
/// repair), with the OS's answer when not.
pub(super) fn writable(path: &Path) -> std::io::Result<()> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map(drop)
}

/// Opens `path` read-only through an [`Overlay`].
pub(super) fn open(builder: &redb::Builder, path: &Path) -> Result<Opened, redb::DatabaseError> {
    let Some(overlay) = Overlay::open(path)? else {
        return Ok(Opened::InUse);
    };
    builder.create_with_backend(overlay).map(Opened::Database)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file_with(bytes: &[u8]) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("file");
        std::fs::write(&path, bytes).unwrap();
        (dir, path)
    }

    #[test]
    fn writes_are_read_back_and_never_reach_the_file() {
        let original: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        let (_dir, path) = file_with(&original);
        let overlay = Overlay::open(&path).unwrap().unwrap();
        // Across a block boundary, and past the end of the file.
        overlay.write(4090, b"0123456789").unwrap();
        overlay.write(12_000, b"tail").unwrap();
        assert_eq!(overlay.len().unwrap(), 12_004);

        let mut out = vec![0; 20];
        overlay.read(4085, &mut out).unwrap();
        let mut expected = original[4085..4090].to_vec();
        expected.extend_from_slice(b"0123456789");
        expected.extend_from_slice(&original[4100..4105]);
        assert_eq!(out, expected);
        let mut gap = vec![1; 8];
        overlay.read(10_100, &mut gap).unwrap();
        assert_eq!(gap, vec![0; 8], "past the file's end and unwritten");
        let mut tail = vec![0; 4];
        overlay.read(12_000, &mut tail).unwrap();
        assert_eq!(&tail, b"tail");

        assert_eq!(std::fs::read(&path).unwrap(), original);
    }

    #[test]
    fn a_truncation_forgets_what_it_cut_off() {
        let (_dir, path) = file_with(&[7; 9000]);
        let overlay = Overlay::open(&path).unwrap().unwrap();
        overlay.write(8000, &[1; 10]).unwrap();
        overlay.set_len(5000).unwrap();
        overlay.set_len(9000).unwrap();
        let mut out = vec![9; 4000];
        overlay.read(5000, &mut out).unwrap();
        assert_eq!(out, vec![0; 4000]);
        let mut kept = vec![0; 10];
        overlay.read(4990, &mut kept).unwrap();
        assert_eq!(kept, vec![7; 10]);
    }

    #[test]
    fn a_writer_holding_the_file_keeps_the_overlay_out() {
        let (_dir, path) = file_with(b"x");
        let writer = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        writer.lock().unwrap();
        assert!(Overlay::open(&path).unwrap().is_none());
        writer.unlock().unwrap();
        let overlay = Overlay::open(&path).unwrap().unwrap();
        assert!(
            writer.try_lock().is_err(),
            "the overlay holds a shared lock"
        );
        drop(overlay);
    }
}
