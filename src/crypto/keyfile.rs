//! `exsec keys generate`: writes a new master key file into the key
//! directory, named after the current UTC second so the newest key is the
//! active one.
//!
//! It exists so that creating a key is never done by hand with the wrong
//! mode or owner. It must never overwrite or truncate an existing file,
//! never leave a key readable by anyone but the directory's owner, and never
//! print or log the key.

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use zeroize::Zeroizing;

use super::{CryptoError, MasterKey};
use crate::model::{KeyId, ValidationError};

/// Highest collision suffix (`-01` … `-99`) tried within one second.
const MAX_SUFFIX: u32 = 99;
/// First second humantime cannot format (year 10000).
const YEAR_10000: u64 = 253_402_300_800;

/// A key file that [`generate_key_file`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeneratedKey {
    /// The id, which is also the file stem.
    pub key_id: KeyId,
    /// `<dir>/<key_id>.key`.
    pub path: PathBuf,
}

/// Why a key file could not be generated.
#[derive(Debug, thiserror::Error)]
pub enum KeyfileError {
    /// The key directory path names something else.
    #[error("{path} is not a directory")]
    NotADirectory {
        /// The path given as key directory.
        path: PathBuf,
    },
    /// The key directory cannot be inspected or created.
    #[error("cannot use key directory {path}")]
    Dir {
        /// The key directory.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: io::Error,
    },
    /// The clock is outside what a key id can encode.
    #[error("system clock is before 1970 or after 9999; cannot name the key")]
    Clock,
    /// No random key could be made.
    #[error("cannot generate a master key")]
    Generate {
        /// Why.
        #[source]
        source: CryptoError,
    },
    /// The generated name is not a valid key id (a bug, not an input error).
    #[error("generated key id is invalid")]
    InvalidName {
        /// Which rule it broke.
        #[source]
        source: ValidationError,
    },
    /// The temporary file could not be created, written or synced.
    #[error("cannot write temporary key file {path}")]
    WriteTemp {
        /// The temporary file.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: io::Error,
    },
    /// The file could not be given to the owner of the key directory.
    #[error("cannot give {path} to the key directory's owner (uid {uid}, gid {gid})")]
    Chown {
        /// The temporary file.
        path: PathBuf,
        /// Owner of the key directory.
        uid: u32,
        /// Group of the key directory.
        gid: u32,
        /// What the OS said.
        #[source]
        source: io::Error,
    },
    /// The key file could not be put in place.
    #[error("cannot create key file {path}")]
    Link {
        /// The key file.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: io::Error,
    },
    /// Every name for this second is taken.
    #[error("key files {base}.key through {base}-{MAX_SUFFIX}.key all exist")]
    NamesExhausted {
        /// The timestamp name.
        base: String,
    },
}

/// Writes a new random master key to `dir/<YYYYMMDDTHHMMSSZ>.key`.
///
/// - The name is the UTC second of `now`; if it is taken, `-01`, `-02`, …
///   `-99` is appended, so byte order stays chronological.
/// - An existing file is never overwritten: the key is written to a
///   temporary dotfile (mode 0600, owned by the directory's owner, synced)
///   and hard-linked to its name, which fails if the name exists.
/// - A missing `dir` (and missing parents) is created with mode 0700.
///
/// The content is standard padded base64 and a newline.
pub fn generate_key_file(dir: &Path, now: SystemTime) -> Result<GeneratedKey, KeyfileError> {
    let base = timestamp_name(now)?;
    let dir_metadata = ensure_dir(dir)?;
    let (uid, gid) = (dir_metadata.uid(), dir_metadata.gid());

    let key = MasterKey::generate().map_err(|source| KeyfileError::Generate { source })?;
    // Sized up front so building the text never reallocates.
    let mut contents = Zeroizing::new(String::with_capacity(46));
    STANDARD.encode_string(key.expose_secret(), &mut contents);
    contents.push('\n');

    let temp = TempFile::create(dir, &base)?;
    let write_error = |source| KeyfileError::WriteTemp {
        path: temp.path.clone(),
        source,
    };
    let mut file = &temp.file;
    let temp_metadata = file.metadata().map_err(write_error)?;
    if (temp_metadata.uid(), temp_metadata.gid()) != (uid, gid) {
        std::os::unix::fs::fchown(file, Some(uid), Some(gid)).map_err(|source| {
            KeyfileError::Chown {
                path: temp.path.clone(),
                uid,
                gid,
                source,
            }
        })?;
    }
    file.write_all(contents.as_bytes()).map_err(write_error)?;
    file.sync_all().map_err(write_error)?;

    let generated = link_free_name(&temp.path, dir, &base)?;
    temp.remove();
    // Make the new name durable; the content already is.
    File::open(dir)
        .and_then(|dir| dir.sync_all())
        .map_err(|source| KeyfileError::Dir {
            path: dir.to_path_buf(),
            source,
        })?;
    Ok(generated)
}

/// `YYYYMMDDTHHMMSSZ` for the UTC second of `now`.
fn timestamp_name(now: SystemTime) -> Result<String, KeyfileError> {
    // humantime panics before the epoch and cannot format year 10000.
    let since_epoch = now
        .duration_since(UNIX_EPOCH)
        .map_err(|_| KeyfileError::Clock)?;
    if since_epoch.as_secs() >= YEAR_10000 {
        return Err(KeyfileError::Clock);
    }
    let rfc3339 = humantime::format_rfc3339_seconds(now).to_string();
    Ok(rfc3339
        .chars()
        .filter(|c| !matches!(c, '-' | ':'))
        .collect())
}

/// Metadata of `dir`, creating it (mode 0700) if only it is missing.
fn ensure_dir(dir: &Path) -> Result<fs::Metadata, KeyfileError> {
    let dir_error = |source| KeyfileError::Dir {
        path: dir.to_path_buf(),
        source,
    };
    match fs::metadata(dir) {
        Ok(metadata) if metadata.is_dir() => return Ok(metadata),
        Ok(_) => {
            return Err(KeyfileError::NotADirectory {
                path: dir.to_path_buf(),
            });
        }
        Err(error) if error.kind() == io::ErrorKind::NotFound => {}
        Err(error) => return Err(dir_error(error)),
    }
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(dir_error)?;
    fs::metadata(dir).map_err(dir_error)
}

/// Hard-links `temp` to the first free name `base`, `base-01`, ….
fn link_free_name(temp: &Path, dir: &Path, base: &str) -> Result<GeneratedKey, KeyfileError> {
    for suffix in 0..=MAX_SUFFIX {
        let name = if suffix == 0 {
            base.to_owned()
        } else {
            format!("{base}-{suffix:02}")
        };
        let key_id = KeyId::parse(&name).map_err(|source| KeyfileError::InvalidName { source })?;
        let path = dir.join(format!("{name}.key"));
        match fs::hard_link(temp, &path) {
            Ok(()) => return Ok(GeneratedKey { key_id, path }),
            Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {}
            Err(source) => return Err(KeyfileError::Link { path, source }),
        }
    }
    Err(KeyfileError::NamesExhausted {
        base: base.to_owned(),
    })
}

/// The temporary dotfile a key is written to; removed when dropped.
struct TempFile {
    path: PathBuf,
    file: File,
    /// Set once the file was removed on the success path.
    removed: bool,
}

impl TempFile {
    /// A new dotfile (ignored by key directory scans) with mode 0600.
    fn create(dir: &Path, base: &str) -> Result<Self, KeyfileError> {
        let mut tag = [0u8; 8];
        getrandom::fill(&mut tag).map_err(|source| KeyfileError::Generate {
            source: CryptoError::Random {
                source: super::random_error(source),
            },
        })?;
        let path = dir.join(format!(".{base}.key.{}.tmp", hex::encode(tag)));
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(|source| KeyfileError::WriteTemp {
                path: path.clone(),
                source,
            })?;
        Ok(Self {
            path,
            file,
            removed: false,
        })
    }

    /// Removes the file now that the key has its real name. A failure only
    /// leaves a second copy with the same mode and owner behind: warn.
    fn remove(mut self) {
        self.removed = true;
        if let Err(error) = fs::remove_file(&self.path) {
            tracing::warn!(
                path = %self.path.display(),
                %error,
                "cannot remove temporary key file; delete it by hand"
            );
        }
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        // An error path: the key never got its name, so nothing refers to it.
        if !self.removed {
            let _ = fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;
    use std::time::Duration;

    use super::*;
    use crate::crypto::{parse_key_file, scan_dir};

    /// 2026-11-28T06:15:42Z.
    fn at(offset_secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_795_846_542 + offset_secs)
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn names_are_utc_seconds() {
        assert_eq!(timestamp_name(at(0)).unwrap(), "20261128T061542Z");
        let with_millis = at(0) + Duration::from_millis(999);
        assert_eq!(timestamp_name(with_millis).unwrap(), "20261128T061542Z");
        assert!(matches!(
            timestamp_name(UNIX_EPOCH - Duration::from_secs(1)),
            Err(KeyfileError::Clock)
        ));
        assert!(matches!(
            timestamp_name(UNIX_EPOCH + Duration::from_secs(YEAR_10000)),
            Err(KeyfileError::Clock)
        ));
    }

    #[test]
    fn writes_a_0600_file_that_scans_load() {
        let dir = tempfile::tempdir().unwrap();
        let generated = generate_key_file(dir.path(), at(0)).unwrap();
        assert_eq!(generated.key_id.as_str(), "20261128T061542Z");
        assert_eq!(generated.path, dir.path().join("20261128T061542Z.key"));
        let metadata = fs::metadata(&generated.path).unwrap();
        assert_eq!(metadata.permissions().mode() & 0o777, 0o600);
        assert_eq!(metadata.nlink(), 1, "temporary link left behind");

        let contents = fs::read(&generated.path).unwrap();
        assert_eq!(contents.len(), 45);
        assert_eq!(contents.last(), Some(&b'\n'));
        let parsed = parse_key_file(&contents).unwrap();

        let scan = scan_dir(dir.path(), false).unwrap();
        assert!(scan.problems.is_empty(), "{:?}", scan.problems);
        assert_eq!(
            scan.keys[&generated.key_id].fingerprint(),
            parsed.fingerprint()
        );
        assert_eq!(names(dir.path()), ["20261128T061542Z.key"]);
    }

    #[test]
    fn same_second_gets_chronological_suffixes() {
        let dir = tempfile::tempdir().unwrap();
        let ids: Vec<String> = [at(0), at(0), at(0), at(1)]
            .into_iter()
            .map(|now| {
                generate_key_file(dir.path(), now)
                    .unwrap()
                    .key_id
                    .to_string()
            })
            .collect();
        assert_eq!(
            ids,
            [
                "20261128T061542Z",
                "20261128T061542Z-01",
                "20261128T061542Z-02",
                "20261128T061543Z"
            ]
        );
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(sorted, ids, "byte order must be generation order");
        let scan = scan_dir(dir.path(), false).unwrap();
        assert_eq!(scan.keys.len(), 4);
        assert_eq!(
            crate::crypto::Keyring::from_keys(scan.keys)
                .active()
                .map(KeyId::as_str),
            Some("20261128T061543Z")
        );
    }

    #[test]
    fn never_overwrites() {
        let dir = tempfile::tempdir().unwrap();
        let existing = dir.path().join("20261128T061542Z.key");
        fs::write(&existing, "hand made\n").unwrap();
        let generated = generate_key_file(dir.path(), at(0)).unwrap();
        assert_eq!(generated.key_id.as_str(), "20261128T061542Z-01");
        assert_eq!(fs::read_to_string(&existing).unwrap(), "hand made\n");
        assert_eq!(
            names(dir.path()),
            ["20261128T061542Z-01.key", "20261128T061542Z.key"]
        );
    }

    #[test]
    fn creates_missing_directories_private() {
        let parent = tempfile::tempdir().unwrap();
        let dir = parent.path().join("keys.d");
        generate_key_file(&dir, at(0)).unwrap();
        let mode = fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);

        let nested = parent.path().join("var/keys.d");
        generate_key_file(&nested, at(0)).unwrap();
        for dir in [parent.path().join("var"), nested] {
            assert_eq!(
                fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
                0o700
            );
        }

        let file = parent.path().join("file");
        fs::write(&file, "").unwrap();
        assert!(matches!(
            generate_key_file(&file, at(0)).unwrap_err(),
            KeyfileError::NotADirectory { .. }
        ));
    }

    #[test]
    fn file_belongs_to_the_directory_owner() {
        let dir = tempfile::tempdir().unwrap();
        // Only root can give a directory away; elsewhere this checks the
        // same-owner path only.
        let given_away = std::os::unix::fs::chown(dir.path(), Some(4321), Some(4322)).is_ok();
        let generated = generate_key_file(dir.path(), at(0)).unwrap();
        let metadata = fs::metadata(&generated.path).unwrap();
        let dir_metadata = fs::metadata(dir.path()).unwrap();
        assert_eq!(
            (metadata.uid(), metadata.gid()),
            (dir_metadata.uid(), dir_metadata.gid())
        );
        if given_away {
            assert_eq!((metadata.uid(), metadata.gid()), (4321, 4322));
        }
    }
}
