//! The `exsec` binary driven as a user would.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use exsec::crypto::scan_dir;

fn exsec() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_exsec"));
    for (name, _) in std::env::vars() {
        if name.starts_with("EXSEC_") {
            command.env_remove(name);
        }
    }
    command
}

#[test]
fn keys_generate_writes_a_private_loadable_key_and_prints_its_id() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys.d");
    let first = exsec()
        .args(["keys", "generate", "--dir"])
        .arg(&keys)
        .output()
        .unwrap();
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let second = exsec()
        .args(["keys", "generate", "--dir"])
        .arg(&keys)
        .output()
        .unwrap();
    assert!(second.status.success());
    let first_id = String::from_utf8(first.stdout).unwrap().trim().to_owned();
    let second_id = String::from_utf8(second.stdout).unwrap().trim().to_owned();
    assert_eq!(first_id.len(), "20261128T061542Z".len(), "{first_id}");
    assert!(
        second_id > first_id,
        "{second_id} must sort after {first_id}"
    );

    let mode = std::fs::metadata(keys.join(format!("{first_id}.key")))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let scan = scan_dir(&keys, false).unwrap();
    assert!(scan.problems.is_empty(), "{:?}", scan.problems);
    let ids: Vec<String> = scan.keys.keys().map(ToString::to_string).collect();
    assert_eq!(ids, [first_id, second_id]);
}

#[test]
fn keys_generate_explains_a_bad_directory() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, "").unwrap();
    let out = exsec()
        .args(["keys", "generate", "--dir"])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.starts_with("error: cannot generate a master key"),
        "{stderr}"
    );
}
