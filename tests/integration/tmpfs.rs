//! A size-limited tmpfs for the disk-fault tests (`full_disk`,
//! `campaign::disk_faults`): mounted on a fresh directory, filled to the
//! last byte, remounted read-only, unmounted on drop.
//!
//! Mounting needs root (CI runs as root). Where it is refused the tests say
//! so loudly and skip.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A tmpfs mounted on a fresh directory, unmounted on drop (lazily, so a
/// file still open cannot keep it mounted).
pub struct Tmpfs {
    /// Keeps the mount point alive until unmounted.
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// Mounts one of `size` (`"8m"`), or says loudly why not and returns
    /// `None`.
    pub fn mount(test: &str, size: &str) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().unwrap();
        let mounted = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(dir.path())
            .output();
        match mounted {
            Ok(output) if output.status.success() => Some(Tmpfs { dir }),
            Ok(output) => {
                skip(test, &String::from_utf8_lossy(&output.stderr));
                None
            }
            Err(error) => {
                skip(test, &error.to_string());
                None
            }
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes a filler file until the file system is full; returns it.
    pub fn fill(&self) -> PathBuf {
        let path = self.path().join("filler");
        let mut file = std::fs::File::create(&path).unwrap();
        let chunk = vec![0x5a_u8; 64 * 1024];
        loop {
            match file.write_all(&chunk).and_then(|()| file.sync_data()) {
                Ok(()) => {}
                Err(error) if error.kind() == std::io::ErrorKind::StorageFull => break,
                Err(error) => panic!("filling the tmpfs: {error}"),
            }
        }
        // The last partial chunk too: not one byte left.
        let _ = file.write_all(&[0x5a]);
        path
    }

    /// `mount -o remount,ro` (or `rw`); the error is `mount`'s message
    /// (Linux refuses `ro` while a file is open for writing: "busy").
    pub fn remount(&self, read_only: bool) -> Result<(), String> {
        let mode = if read_only {
            "remount,ro"
        } else {
            "remount,rw"
        };
        let output = Command::new("mount")
            .args(["-o", mode])
            .arg(self.path())
            .output()
            .map_err(|error| error.to_string())?;
        if output.status.success() {
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&output.stderr).trim().to_owned())
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

fn skip(test: &str, why: &str) {
    eprintln!(
        "\n!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n\
         SKIPPED {test}: cannot mount a tmpfs ({}); run the tests as root to \
         exercise a full disk\n\
         !!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n",
        why.trim()
    );
}
