//! The key directory scan (SPEC §3): which entries count as key files,
//! which modes are refused, links followed and checked again after opening,
//! bounded reads. A bad file becomes a [`KeyFileProblem`]; only the
//! directory itself failing is an error. Nothing here logs.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::{
    KeyFileError, KeyFileProblem, KeyringError, MAX_KEY_FILE_BYTES, MasterKey, parse_key_file,
};
use crate::model::{KeyId, ValidationError};
use crate::private_file;

/// Read buffer: one byte more than the limit, to notice a file that grew.
const READ_BUFFER_LEN: usize = MAX_KEY_FILE_BYTES as usize + 1;

/// What one scan of the key directory found.
pub struct KeyDirScan {
    /// The directory scanned.
    pub dir: PathBuf,
    /// Every key file that loaded.
    pub keys: BTreeMap<KeyId, MasterKey>,
    /// Every `*.key` entry that did not, in file name order.
    pub problems: Vec<KeyFileProblem>,
}
/// Scans the key directory: every `<key_id>.key` entry, links followed.
///
/// Dotfiles (including Kubernetes' `..data` links) and names not ending in
/// `.key` are ignored silently. A `.key` entry that is not a loadable key
/// becomes a [`KeyFileProblem`]; only the directory itself failing is an
/// error. A file whose mode has any group or other bits (`0o077`, as ssh)
/// is refused; with `allow_group_readable` only other bits (`0o007`) are.
pub fn scan_dir(dir: &Path, allow_group_readable: bool) -> Result<KeyDirScan, KeyringError> {
    let read_dir_error = |source: io::Error| {
        if source.kind() == io::ErrorKind::NotFound {
            KeyringError::DirNotFound {
                path: dir.to_path_buf(),
            }
        } else {
            KeyringError::ReadDir {
                path: dir.to_path_buf(),
                source,
            }
        }
    };
    let mut names = Vec::new();
    for entry in fs::read_dir(dir).map_err(read_dir_error)? {
        names.push(entry.map_err(read_dir_error)?.file_name());
    }
    names.sort();

    let mut scan = KeyDirScan {
        dir: dir.to_path_buf(),
        keys: BTreeMap::new(),
        problems: Vec::new(),
    };
    for name in names {
        let bytes = name.as_bytes();
        if bytes.starts_with(b".") {
            continue;
        }
        let Some(stem) = bytes.strip_suffix(b".key") else {
            continue;
        };
        let path = dir.join(&name);
        let key_id = match std::str::from_utf8(stem) {
            Ok(stem) => KeyId::parse(stem),
            Err(_) => Err(ValidationError {
                field: "key_id",
                reason: "is not valid UTF-8".to_owned(),
            }),
        };
        let key_id = match key_id {
            Ok(key_id) => key_id,
            Err(source) => {
                scan.problems.push(KeyFileProblem {
                    path,
                    key_id: None,
                    error: KeyFileError::InvalidKeyId { source },
                    content_digest: None,
                });
                continue;
            }
        };
        match load_key_file(&path, allow_group_readable) {
            Ok(key) => {
                scan.keys.insert(key_id, key);
            }
            Err((error, content_digest)) => scan.problems.push(KeyFileProblem {
                path,
                key_id: Some(key_id),
                error,
                content_digest,
            }),
        }
    }
    Ok(scan)
}

/// Reads and parses one key file, returning the digest of its content when
/// it was read but did not parse.
fn load_key_file(
    path: &Path,
    allow_group_readable: bool,
) -> Result<MasterKey, (KeyFileError, Option<[u8; 32]>)> {
    let io_error = |source| (KeyFileError::Io { source }, None);
    // Check the target before opening it: opening a FIFO would block.
    let metadata = fs::metadata(path).map_err(io_error)?;
    check_metadata(&metadata, allow_group_readable).map_err(|error| (error, None))?;
    let mut file = File::open(path).map_err(io_error)?;
    // The link may have been swapped between the check and the open (a
    // Kubernetes `..data` flip): check again what was actually opened.
    let opened = file.metadata().map_err(io_error)?;
    check_metadata(&opened, allow_group_readable).map_err(|error| (error, None))?;

    let mut buffer = Zeroizing::new([0u8; READ_BUFFER_LEN]);
    let mut filled = 0;
    while filled < buffer.len() {
        match file.read(&mut buffer[filled..]) {
            Ok(0) => break,
            Ok(read) => filled += read,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(io_error(error)),
        }
    }
    if filled == READ_BUFFER_LEN {
        // It grew past the limit after the size check.
        return Err((KeyFileError::TooLarge { len: opened.len() }, None));
    }
    let contents = &buffer[..filled];
    parse_key_file(contents).map_err(|error| (error, Some(Sha256::digest(contents).into())))
}

/// Type, mode and size rules for a key file, on metadata after links.
fn check_metadata(metadata: &fs::Metadata, allow_group_readable: bool) -> Result<(), KeyFileError> {
    private_file::check(metadata, allow_group_readable)?;
    if metadata.len() > MAX_KEY_FILE_BYTES {
        return Err(KeyFileError::TooLarge {
            len: metadata.len(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::{PermissionsExt, symlink};

    use super::*;
    use crate::crypto::key_testing::{
        KEY_BYTES, assert_no_key_material, b64, hex_key, key_id, write_mode,
    };
    use crate::private_file::PrivateFileError;

    #[test]
    fn missing_directory_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope");
        let error = scan_dir(&missing, false).err().unwrap();
        assert!(matches!(error, KeyringError::DirNotFound { .. }));
        assert!(error.to_string().contains("nope"));
        let file = dir.path().join("file");
        fs::write(&file, "x").unwrap();
        assert!(matches!(
            scan_dir(&file, false).err().unwrap(),
            KeyringError::ReadDir { .. }
        ));
    }

    #[test]
    fn loads_keys_and_ignores_other_names() {
        let dir = tempfile::tempdir().unwrap();
        let contents = format!("{}\n", b64(&KEY_BYTES));
        write_mode(&dir.path().join("prod.key"), contents.as_bytes(), 0o600);
        write_mode(
            &dir.path().join("20261128T061542Z.key"),
            hex_key().as_bytes(),
            0o400,
        );
        // Ignored silently, even though their content is bad.
        write_mode(&dir.path().join(".hidden.key"), b"junk", 0o644);
        write_mode(&dir.path().join("notes.txt"), b"junk", 0o644);
        write_mode(&dir.path().join("prod.key.bak"), b"junk", 0o644);
        write_mode(&dir.path().join(".key"), b"junk", 0o644);

        let scan = scan_dir(dir.path(), false).unwrap();
        assert!(scan.problems.is_empty(), "{:?}", scan.problems);
        let ids: Vec<_> = scan.keys.keys().map(KeyId::as_str).collect();
        assert_eq!(ids, ["20261128T061542Z", "prod"]);
        assert_eq!(scan.keys[&key_id("prod")].expose_secret(), &KEY_BYTES);
        assert_eq!(scan.dir, dir.path());
    }

    #[test]
    fn bad_names_and_non_files_are_problems() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("x.key")).unwrap();
        write_mode(
            &dir.path().join("bad name.key"),
            hex_key().as_bytes(),
            0o600,
        );
        symlink("nowhere.key", dir.path().join("dangling.key")).unwrap();

        let scan = scan_dir(dir.path(), false).unwrap();
        assert!(scan.keys.is_empty());
        let [bad_name, dangling, directory] = scan.problems.as_slice() else {
            panic!("{:?}", scan.problems);
        };
        assert!(bad_name.key_id.is_none());
        assert!(matches!(bad_name.error, KeyFileError::InvalidKeyId { .. }));
        assert_eq!(dangling.key_id, Some(key_id("dangling")));
        assert!(matches!(dangling.error, KeyFileError::Io { .. }));
        assert_eq!(directory.path, dir.path().join("x.key"));
        assert!(matches!(
            directory.error,
            KeyFileError::Access(PrivateFileError::NotRegularFile { kind: "directory" })
        ));
        assert!(directory.content_digest.is_none());
        assert!(
            directory
                .to_string()
                .contains("x.key: key file is a directory")
        );
    }

    #[test]
    fn mode_rules() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.key");
        let contents = hex_key();
        // The problem a file of `mode` raises, or `None` when it loads.
        let problem_with = |mode: u32, allow_group_readable: bool| {
            write_mode(&path, contents.as_bytes(), mode);
            let mut scan = scan_dir(dir.path(), allow_group_readable).unwrap();
            assert_eq!(scan.keys.len() + scan.problems.len(), 1);
            scan.problems.pop()
        };
        for mode in [0o600, 0o400, 0o700] {
            assert!(problem_with(mode, false).is_none(), "{mode:o}");
        }
        // Running as root, reads would succeed anyway: the rule is on the mode.
        for mode in [0o640, 0o604, 0o620, 0o601, 0o644, 0o660] {
            let problem = problem_with(mode, false).unwrap();
            let shown = problem.to_string();
            assert!(matches!(
                problem.error,
                KeyFileError::Access(PrivateFileError::TooOpen { .. })
            ));
            assert!(shown.contains(&format!("mode 0{mode:o}")), "{shown}");
            assert!(shown.contains("chmod 600"), "{shown}");
            assert!(
                shown.contains("keys.allow_group_readable = true"),
                "{shown}"
            );
            assert!(problem.content_digest.is_none());
        }
        for mode in [0o640, 0o440, 0o660] {
            assert!(problem_with(mode, true).is_none(), "{mode:o}");
        }
        for mode in [0o644, 0o604, 0o642, 0o641] {
            let problem = problem_with(mode, true).unwrap();
            assert!(matches!(
                problem.error,
                KeyFileError::Access(PrivateFileError::TooOpen { .. })
            ));
            assert!(problem.to_string().contains("lets others access it"));
        }
    }

    #[test]
    fn symlinks_are_followed_and_the_target_mode_counts() {
        let outside = tempfile::tempdir().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let target = outside.path().join("real");
        write_mode(&target, hex_key().as_bytes(), 0o600);
        symlink(&target, dir.path().join("linked.key")).unwrap();
        let scan = scan_dir(dir.path(), false).unwrap();
        assert!(scan.problems.is_empty(), "{:?}", scan.problems);
        assert!(scan.keys.contains_key(&key_id("linked")));

        fs::set_permissions(&target, fs::Permissions::from_mode(0o644)).unwrap();
        let scan = scan_dir(dir.path(), false).unwrap();
        assert!(scan.keys.is_empty());
        assert!(matches!(
            scan.problems[0].error,
            KeyFileError::Access(PrivateFileError::TooOpen { mode: 0o644, .. })
        ));
    }

    #[test]
    fn kubernetes_secret_volume_layout() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("..2026_11_28_06_15_42.123456789");
        fs::create_dir(&data).unwrap();
        write_mode(&data.join("foo.key"), b64(&KEY_BYTES).as_bytes(), 0o440);
        symlink("..2026_11_28_06_15_42.123456789", dir.path().join("..data")).unwrap();
        symlink("..data/foo.key", dir.path().join("foo.key")).unwrap();

        let scan = scan_dir(dir.path(), true).unwrap();
        assert!(scan.problems.is_empty(), "{:?}", scan.problems);
        let ids: Vec<_> = scan.keys.keys().map(KeyId::as_str).collect();
        assert_eq!(ids, ["foo"]);

        // fsGroup's 0440 is refused unless group access is allowed.
        let scan = scan_dir(dir.path(), false).unwrap();
        assert!(scan.keys.is_empty());
        assert_eq!(scan.problems.len(), 1);
    }

    #[test]
    fn large_files_are_refused_unread() {
        let dir = tempfile::tempdir().unwrap();
        write_mode(&dir.path().join("big.key"), &[b'a'; 2048], 0o600);
        let scan = scan_dir(dir.path(), false).unwrap();
        let problem = &scan.problems[0];
        assert!(matches!(
            problem.error,
            KeyFileError::TooLarge { len: 2048 }
        ));
        assert!(problem.content_digest.is_none());
    }

    #[test]
    fn problems_carry_a_content_digest_and_never_key_material() {
        let dir = tempfile::tempdir().unwrap();
        let contents = format!(" {}\n", b64(&KEY_BYTES));
        write_mode(&dir.path().join("k.key"), contents.as_bytes(), 0o600);
        let hex_contents = format!("{}\n{}\n", hex_key(), hex_key());
        write_mode(&dir.path().join("l.key"), hex_contents.as_bytes(), 0o600);

        let scan = scan_dir(dir.path(), false).unwrap();
        assert_eq!(scan.problems.len(), 2);
        let digest: [u8; 32] = Sha256::digest(contents.as_bytes()).into();
        assert_eq!(scan.problems[0].content_digest, Some(digest));
        for problem in &scan.problems {
            assert!(problem.content_digest.is_some());
            assert_no_key_material(&problem.to_string());
            let debug = format!("{problem:?}");
            assert_no_key_material(&debug);
            assert!(debug.contains("<redacted>"));
        }
    }
}
