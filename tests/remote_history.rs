//! `abide history HOST:NAME [--tail N]` prints a remote session's history the
//! way `abide history NAME` prints a local one: through a stand-in `ssh` that
//! runs the remote command here, once with `--server` (plain ssh) and once
//! through the deploy script, which finds a compatible abide on the host's
//! PATH.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use common::{Rt, BIN};

/// `ssh [options] DEST COMMAND`: runs COMMAND here with `sh -c`, with a PATH
/// whose first folder holds `abide` (the host's own install).
fn fake_ssh(rt: &Rt) -> String {
    let bin = rt.scratch().join("hostbin");
    std::fs::create_dir_all(&bin).unwrap();
    std::os::unix::fs::symlink(BIN, bin.join("abide")).unwrap();
    let path = rt.scratch().join("ssh");
    std::fs::write(
        &path,
        format!(
            "#!/bin/sh\nfor last; do :; done\nexport PATH='{}':\"$PATH\"\nexec sh -c \"$last\"\n",
            bin.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path.display().to_string()
}

#[test]
fn history_of_a_remote_session_is_the_hosts_history() {
    let rt = Rt::new();
    rt.ok(&[
        "new",
        "-d",
        "-s",
        "h",
        "--",
        "sh",
        "-c",
        "seq 1 30000; echo END; sleep 1000",
    ]);
    common::eventually("END logged", Duration::from_secs(20), || {
        rt.ok(&["history", "h", "--tail", "1"])
            .contains("29978")
            .then_some(())
    });
    let ssh = fake_ssh(&rt);
    let local = rt.ok(&["history", "h"]);
    let tail = rt.ok(&["history", "h", "--tail", "3"]);
    assert_eq!(tail, "29976\x1b[0m\n29977\x1b[0m\n29978\x1b[0m\n");
    // Plain ssh running the named server, and the deploy path.
    for server in [&["--server", BIN][..], &[][..]] {
        let remote = |args: &[&str]| {
            let mut all = args.to_vec();
            all.extend(["--ssh", &ssh]);
            all.extend(server);
            rt.run(&all)
        };
        let out = remote(&["history", "me@127.0.0.1:h"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{server:?}: {err}");
        assert!(
            out.stdout == local.as_bytes(),
            "{server:?}: not the local history"
        );
        let out = remote(&["history", "me@127.0.0.1:h", "--tail", "3"]);
        assert_eq!(String::from_utf8_lossy(&out.stdout), tail, "{server:?}");
        // A session the host does not have: the host's own message.
        let out = remote(&["history", "me@127.0.0.1:nope"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success());
        assert!(
            err.contains("no session named 'nope'") && err.contains("(on me@127.0.0.1)"),
            "{server:?}: {err}"
        );
    }
    let out = rt.run(&["history", "me@127.0.0.1:", "--ssh", &ssh]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("abide history me@127.0.0.1:NAME"));
    rt.ok(&["kill", "h"]);
}
