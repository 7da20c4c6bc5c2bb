//! Files and process (SPEC §11.1): `exsec serve` creates its files private
//! whatever umask it was started with, cannot dump core, and refuses to
//! start on an admin token file that is readable by others or too short.

use std::os::unix::fs::PermissionsExt;

use crate::daemon::{Daemon, write_config};

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn the_daemon_creates_private_files_and_cannot_dump_core() {
    // What a shell usually has; the child inherits it.
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o022));
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path());
    let daemon = Daemon::start(&config, &[]);
    daemon.listen_addr();

    assert_eq!(mode(&dir.path().join("exsec.redb")), 0o600);
    assert_eq!(mode(&dir.path().join("admin.token")), 0o600);
    assert_eq!(mode(&dir.path().join("manifests")), 0o700);
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", daemon.pid())).unwrap();
    let core = limits
        .lines()
        .find(|line| line.starts_with("Max core file size"))
        .unwrap();
    let fields: Vec<&str> = core.split_whitespace().collect();
    assert_eq!(&fields[4..6], ["0", "0"], "{core}");
    daemon.terminate();
}

#[test]
fn a_readable_or_short_admin_token_file_stops_the_start() {
    for (content, file_mode, expected) in [
        ("a-long-enough-admin-token-of-forty-chars\n", 0o644, "0644"),
        ("tiny-tok\n", 0o600, "at least 32"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let config = write_config(dir.path());
        let token = dir.path().join("admin.token");
        std::fs::write(&token, content).unwrap();
        std::fs::set_permissions(&token, std::fs::Permissions::from_mode(file_mode)).unwrap();
        let mut daemon = Daemon::start(&config, &[]);
        let status = daemon.wait();
        assert!(!status.success(), "started on a token file {file_mode:o}");
        let log = daemon.log_tail();
        assert!(
            log.contains("admin token file") && log.contains(expected),
            "{log}"
        );
        assert!(!log.contains(content.trim()), "the token was logged: {log}");
        assert!(
            !dir.path().join("exsec.redb").exists(),
            "nothing is opened before the token is accepted"
        );
    }
}
