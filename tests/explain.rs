//! `abide explain` through the real binary: every knowledge-base entry is
//! exercised by at least one real message, plus the matching rules (noise,
//! prefixes, CRLF, ranking, unknown input) and the exit codes.

use std::collections::BTreeSet;
use std::io::Write;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

fn abide(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_abide"))
        .args(args)
        .env("NO_COLOR", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run abide");
    {
        let mut pipe = child.stdin.take().unwrap();
        if let Some(text) = stdin {
            pipe.write_all(text.as_bytes()).unwrap();
        }
    }
    child.wait_with_output().unwrap()
}

fn explain_json(text: &str) -> (i32, Value) {
    let out = abide(&["explain", "--json", "-"], Some(text));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "bad json for {text:?}: {e}: {}",
            String::from_utf8_lossy(&out.stdout)
        )
    });
    (out.status.code().unwrap(), v)
}

fn ids(v: &Value) -> Vec<String> {
    v["matches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_string())
        .collect()
}

/// Real messages, as printed by the programs (some with the syslog or shell
/// prefixes they come with), and the entry each must be explained by.
const REAL_MESSAGES: &[(&str, &str)] = &[
    ("client_loop: send disconnect: Broken pipe", "ssh-broken-pipe"),
    ("Write failed: Broken pipe", "ssh-broken-pipe"),
    ("packet_write_wait: Connection to 192.168.1.20 port 22: Broken pipe", "ssh-packet-write-wait"),
    ("Connection reset by 203.0.113.7 port 22", "ssh-connection-reset"),
    ("client_loop: send disconnect: Connection reset by peer", "ssh-connection-reset"),
    ("Read from remote host example.com: Connection reset by peer", "ssh-connection-reset"),
    ("Read from remote host 10.0.0.5: Operation timed out", "ssh-read-timed-out"),
    ("Timeout, server 198.51.100.23 not responding.", "ssh-server-not-responding"),
    ("Connection to build.example.org closed by remote host.", "ssh-closed-by-remote-host"),
    ("Connection to 10.0.0.5 closed.", "ssh-connection-closed-normal"),
    ("ssh: connect to host 198.51.100.4 port 22: Connection timed out", "ssh-connect-timed-out"),
    ("ssh: connect to host example.com port 22: Operation timed out", "ssh-connect-timed-out"),
    ("ssh: connect to host localhost port 2222: Connection refused", "ssh-connection-refused"),
    ("ssh: connect to host 192.168.0.99 port 22: No route to host", "ssh-no-route"),
    ("ssh: connect to host 2001:db8::10 port 22: Network is unreachable", "ssh-network-unreachable"),
    ("ssh: Could not resolve hostname myserver: Name or service not known", "ssh-resolve-unknown"),
    (
        "ssh: Could not resolve hostname myserver: nodename nor servname provided, or not known",
        "ssh-resolve-unknown",
    ),
    (
        "ssh: Could not resolve hostname github.com: Temporary failure in name resolution",
        "ssh-resolve-temporary",
    ),
    ("kex_exchange_identification: read: Connection reset by peer", "ssh-kex-reset"),
    ("ssh_exchange_identification: read: Connection reset by peer", "ssh-kex-reset"),
    ("kex_exchange_identification: Connection closed by remote host", "ssh-kex-closed"),
    ("Connection timed out during banner exchange", "ssh-banner-timeout"),
    ("Connection closed by 192.0.2.44 port 22", "ssh-closed-by"),
    ("Connection closed by UNKNOWN port 65535", "ssh-closed-unknown-port"),
    ("git@github.com: Permission denied (publickey).", "ssh-permission-denied"),
    ("alice@10.0.0.3: Permission denied (publickey,password).", "ssh-permission-denied"),
    (
        "Received disconnect from 192.0.2.10 port 22:2: Too many authentication failures",
        "ssh-too-many-auth",
    ),
    ("Host key verification failed.", "ssh-host-key-verification-failed"),
    ("@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @", "ssh-host-key-changed"),
    (
        "The authenticity of host 'example.com (93.184.216.34)' can't be established.",
        "ssh-host-key-unknown",
    ),
    (
        "sign_and_send_pubkey: signing failed for ED25519 \"/home/me/.ssh/id_ed25519\" from agent: agent refused operation",
        "ssh-agent-refused",
    ),
    ("Could not open a connection to your authentication agent.", "ssh-agent-no-connection"),
    ("Error connecting to agent: No such file or directory", "ssh-agent-no-connection"),
    ("Bad owner or permissions on /home/me/.ssh/config", "ssh-bad-permissions-config"),
    ("Permissions 0644 for '/home/me/.ssh/id_rsa' are too open.", "ssh-unprotected-key"),
    ("@         WARNING: UNPROTECTED PRIVATE KEY FILE!          @", "ssh-unprotected-key"),
    ("Load key \"/home/me/.ssh/id_rsa\": invalid format", "ssh-key-invalid-format"),
    (
        "Unable to negotiate with 192.168.1.1 port 22: no matching host key type found. Their offer: ssh-rsa,ssh-dss",
        "ssh-no-hostkey-type",
    ),
    (
        "Unable to negotiate with 10.0.0.1 port 22: no matching key exchange method found. Their offer: diffie-hellman-group1-sha1",
        "ssh-no-kex",
    ),
    (
        "Unable to negotiate with 10.0.0.1 port 22: no matching cipher found. Their offer: aes128-cbc,3des-cbc",
        "ssh-no-cipher",
    ),
    ("Corrupted MAC on input.", "ssh-corrupted-mac"),
    (
        "ssh_dispatch_run_fatal: Connection to 10.0.0.2 port 22: message authentication code incorrect",
        "ssh-corrupted-mac",
    ),
    ("channel 3: open failed: administratively prohibited: open failed", "ssh-admin-prohibited"),
    ("channel 2: open failed: connect failed: Connection refused", "ssh-channel-connect-failed"),
    ("Warning: remote port forwarding failed for listen port 8080", "ssh-remote-forward-failed"),
    ("bind [127.0.0.1]:8080: Address already in use", "ssh-local-forward-bind"),
    ("channel_setup_fwd_listener_tcpip: cannot listen to port: 8080", "ssh-local-forward-bind"),
    (
        "mux_client_request_session: session request failed: Session open refused by peer",
        "ssh-mux-failed",
    ),
    (
        "unix_listener: path \"/home/someone-with-a-long-name/.ssh/cm-someone@very-long-host-name.internal.example.com:22.XXXXXXXXXXXXXXXX\" too long for Unix domain socket",
        "ssh-controlpath-too-long",
    ),
    (
        "ControlSocket /home/me/.ssh/cm-me@host:22 already exists, disabling multiplexing",
        "ssh-controlsocket-exists",
    ),
    ("Pseudo-terminal will not be allocated because stdin is not a terminal.", "ssh-pty-not-allocated"),
    ("Killed by signal 1.", "ssh-killed-by-signal"),
    (
        "Mar  3 10:00:00 web1 sshd[1234]: Timeout, client not responding from user alice 203.0.113.9 port 50122",
        "sshd-client-not-responding",
    ),
    (
        "sshd[2210]: Disconnected from user alice 203.0.113.9 port 50122",
        "sshd-disconnected-from-user",
    ),
    (
        "sshd[2210]: Received disconnect from 203.0.113.9 port 50122:11: disconnected by user",
        "sshd-received-disconnect-by-user",
    ),
    ("sshd[991]: Connection closed by 45.33.12.8 port 41234 [preauth]", "sshd-preauth-closed"),
    (
        "Connection closed by authenticating user root 45.33.12.8 port 41234 [preauth]",
        "sshd-preauth-closed",
    ),
    ("sshd[812]: error: beginning MaxStartups throttling", "sshd-maxstartups"),
    (
        "sshd[812]: drop connection #10 from [203.0.113.5]:51234 on [192.0.2.1]:22 past MaxStartups",
        "sshd-maxstartups",
    ),
    (
        "sshd[331]: Authentication refused: bad ownership or modes for directory /home/alice",
        "sshd-bad-ownership",
    ),
    (
        "sshd[331]: User bob from 203.0.113.9 not allowed because not listed in AllowUsers",
        "sshd-user-not-allowed",
    ),
    ("mosh: Nothing received from server on UDP port 60001. [To quit: Ctrl-^ .]", "mosh-nothing-received"),
    ("bash: mosh-server: command not found", "mosh-server-not-found"),
    ("zsh:1: command not found: mosh-server", "mosh-server-not-found"),
    (
        "/usr/bin/mosh: Did not find mosh server startup message. (Have you installed mosh on your server?)",
        "mosh-no-startup-message",
    ),
    ("The locale requested by LANG=en_US.UTF-8 isn't available here.", "mosh-locale"),
    ("mosh-server needs a UTF-8 native locale to run.", "mosh-locale"),
    ("mosh: Last contact 12 seconds ago. [To quit: Ctrl-^ .]", "mosh-last-contact"),
    ("Last contact 2:07 ago.", "mosh-last-contact"),
    ("no sessions", "tmux-no-sessions"),
    ("no server running on /tmp/tmux-1000/default", "tmux-no-server"),
    ("error connecting to /tmp/tmux-1000/default (No such file or directory)", "tmux-no-server"),
    ("can't find session: work", "tmux-cant-find-session"),
    ("sessions should be nested with care, unset $TMUX to force", "tmux-nested"),
    ("open terminal failed: not a terminal", "tmux-not-a-terminal"),
    ("open terminal failed: missing or unsuitable terminal: xterm-kitty", "tmux-missing-terminal"),
    ("[lost server]", "tmux-lost-server"),
    ("server exited unexpectedly", "tmux-lost-server"),
    ("protocol version mismatch (client 8, server 7)", "tmux-protocol-mismatch"),
    ("duplicate session: main", "tmux-duplicate-session"),
    ("There is no screen to be resumed matching work.", "screen-no-screen"),
    ("There is no screen to be resumed.", "screen-no-screen"),
    ("Must be connected to a terminal.", "screen-must-be-connected"),
    ("Cannot open your terminal '/dev/pts/3' - please check.", "screen-cannot-open-terminal"),
    ("abide: no session named 'work'", "abide-no-session"),
    ("abide: a session named 'work' already exists", "abide-session-exists"),
    ("abide: the abide daemon is not answering", "abide-daemon-not-answering"),
    (
        "abide: not a terminal: attach needs a TTY (use 'abide new -d' to start a session without one)",
        "abide-not-a-terminal",
    ),
    ("abide: abide is not installed on the remote host", "abide-not-installed-remote"),
    ("abide: no UDP reply from 203.0.113.5:4433", "abide-no-udp-reply"),
    ("abide: server certificate fingerprint mismatch", "abide-fingerprint-mismatch"),
    ("abide: protocol version mismatch", "abide-protocol-mismatch"),
    (
        "abide: ssh could not reconnect: authentication needs a password",
        "abide-ssh-password",
    ),
    // The same errors as abide's code prints them, with details and context.
    ("abide: no session named 'work' (the abide daemon is not running)", "abide-no-session"),
    ("abide: attaching to 'work': the abide daemon is not answering (no reply in 5 s)", "abide-daemon-not-answering"),
    (
        "abide: abide is not installed on the remote host (ran 'abide server' on web)",
        "abide-not-installed-remote",
    ),
    ("abide: no UDP reply from 192.0.2.7:4433 within 1.5 s; carrying on over ssh", "abide-no-udp-reply"),
    ("abide: no UDP reply; carrying on over ssh", "abide-no-udp-reply"),
    (
        "abide: connecting: server certificate fingerprint mismatch: 192.0.2.7:4433 is not the server the ssh bootstrap described; refusing to connect",
        "abide-fingerprint-mismatch",
    ),
    (
        "abide: protocol version mismatch: the remote abide speaks 2, this one speaks 3; install the same abide version on both ends",
        "abide-protocol-mismatch",
    ),
    (
        "abide: reconnecting: ssh could not reconnect: authentication needs a password, and nobody can answer a prompt in the background.",
        "abide-ssh-password",
    ),
];

#[test]
fn every_real_message_is_explained_by_its_entry() {
    let mut failures = Vec::new();
    for (message, want) in REAL_MESSAGES {
        let (code, v) = explain_json(message);
        let got = ids(&v);
        if code != 0 || got.first().map(String::as_str) != Some(*want) || got.len() != 1 {
            failures.push(format!(
                "{message:?}: want [{want}], got {got:?} (exit {code})"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "misexplained:\n{}",
        failures.join("\n")
    );
}

#[test]
fn every_knowledge_base_entry_has_a_real_message_here() {
    let out = abide(&["explain", "--list", "--json"], None);
    assert_eq!(out.status.code(), Some(0));
    let list: Value = serde_json::from_slice(&out.stdout).unwrap();
    let kb_ids: BTreeSet<String> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_string())
        .collect();
    assert!(kb_ids.len() >= 40, "only {} entries", kb_ids.len());
    let tested: BTreeSet<String> = REAL_MESSAGES.iter().map(|(_, id)| id.to_string()).collect();
    let untested: Vec<_> = kb_ids.difference(&tested).collect();
    assert!(
        untested.is_empty(),
        "entries without a test message: {untested:?}"
    );
    let unknown: Vec<_> = tested.difference(&kb_ids).collect();
    assert!(
        unknown.is_empty(),
        "test table names unknown entries: {unknown:?}"
    );
}

#[test]
fn finds_the_line_that_matters_in_a_pasted_block_with_crlf_and_colours() {
    let block = "me@laptop:~$ ssh build\r\n\
                 Welcome to Ubuntu 24.04 LTS\r\n\
                 build:~$ make -j8\r\n\
                 \x1b[1;31m\x1b[0mclient_loop: send disconnect: Broken pipe\r\n\
                 me@laptop:~$ ";
    let (code, v) = explain_json(block);
    assert_eq!(code, 0);
    assert_eq!(ids(&v), ["ssh-broken-pipe"]);
    assert_eq!(v["matches"][0]["lines"][0]["line"], 4);
    assert_eq!(
        v["matches"][0]["lines"][0]["text"],
        "client_loop: send disconnect: Broken pipe"
    );
}

#[test]
fn old_mac_line_endings_are_lines_too() {
    let (code, v) = explain_json("noise\rHost key verification failed.\rmore noise");
    assert_eq!(code, 0);
    assert_eq!(ids(&v), ["ssh-host-key-verification-failed"]);
    assert_eq!(v["matches"][0]["lines"][0]["line"], 2);
}

#[test]
fn a_cause_hides_its_consequences_but_keeps_their_lines() {
    let block = "@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@\n\
        @    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @\n\
        @@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@\n\
        IT IS POSSIBLE THAT SOMEONE IS DOING SOMETHING NASTY!\n\
        Offending ECDSA key in /home/me/.ssh/known_hosts:12\n\
        Host key verification failed.\n";
    let (code, v) = explain_json(block);
    assert_eq!(code, 0);
    assert_eq!(ids(&v), ["ssh-host-key-changed"]);
    let related = v["matches"][0]["related"].as_array().unwrap();
    assert_eq!(related.len(), 1);
    assert_eq!(related[0]["id"], "ssh-host-key-verification-failed");
    assert_eq!(related[0]["line"], 6);
}

#[test]
fn mosh_bootstrap_noise_is_attributed_to_the_cause() {
    let block = "me@laptop:~$ mosh build\n\
                 bash: mosh-server: command not found\n\
                 Connection to build.example.org closed.\n\
                 /usr/bin/mosh: Did not find mosh server startup message. (Have you installed mosh on your server?)\n";
    let (code, v) = explain_json(block);
    assert_eq!(code, 0);
    assert_eq!(ids(&v), ["mosh-server-not-found"]);
    let related: Vec<&str> = v["matches"][0]["related"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        related,
        ["ssh-connection-closed-normal", "mosh-no-startup-message"]
    );
}

#[test]
fn independent_problems_in_one_paste_are_all_explained_in_order() {
    let block = "Warning: remote port forwarding failed for listen port 8080\n\
                 ... later ...\n\
                 Timeout, server example.com not responding.\n";
    let (code, v) = explain_json(block);
    assert_eq!(code, 0);
    assert_eq!(
        ids(&v),
        ["ssh-remote-forward-failed", "ssh-server-not-responding"]
    );
}

#[test]
fn the_more_specific_message_wins_a_line() {
    // "Connection reset by peer" is inside this line, but the kex entry says more.
    let (_, v) = explain_json("kex_exchange_identification: read: Connection reset by peer");
    assert_eq!(ids(&v), ["ssh-kex-reset"]);
    // tmux's and abide's version mismatch must not be confused.
    let (_, v) = explain_json("abide: protocol version mismatch");
    assert_eq!(ids(&v), ["abide-protocol-mismatch"]);
}

#[test]
fn a_message_wrapped_over_two_lines_is_still_found() {
    let (code, v) = explain_json("ssh: connect to host example.com port 22:\nConnection refused");
    assert_eq!(code, 0);
    assert_eq!(ids(&v), ["ssh-connection-refused"]);
    assert_eq!(v["matches"][0]["lines"][0]["line"], 0);
}

#[test]
fn unknown_text_is_not_guessed() {
    let (code, v) = explain_json("The quick brown fox jumps over the lazy dog");
    assert_eq!(code, 1);
    assert_eq!(v["recognised"], false);
    assert!(v["matches"].as_array().unwrap().is_empty());
    assert!(v["candidates"].as_array().unwrap().is_empty());

    let out = abide(&["explain", "The", "quick", "brown", "fox"], None);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("not in abide's knowledge base"), "{text}");
    assert!(text.contains("will not guess"), "{text}");
}

#[test]
fn near_misses_are_offered_ranked_but_not_claimed() {
    // The message's words, not its text (a fragment of the text would match):
    // not a match, but the right entry should rank first.
    let (code, v) = explain_json("connection was reset by the peer");
    assert_eq!(code, 1);
    assert!(v["matches"].as_array().unwrap().is_empty());
    let c = v["candidates"].as_array().unwrap();
    assert!(!c.is_empty());
    assert_eq!(c[0]["id"], "ssh-connection-reset");
    let scores: Vec<f64> = c.iter().map(|x| x["score"].as_f64().unwrap()).collect();
    assert!(scores.windows(2).all(|w| w[0] >= w[1]), "{scores:?}");

    let out = abide(
        &["explain", "connection", "was", "reset", "by", "the", "peer"],
        None,
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("nearest known ones"), "{text}");
    assert!(text.contains("ssh-connection-reset"), "{text}");
}

#[test]
fn text_output_has_all_parts_and_no_colour_when_piped() {
    let out = Command::new(env!("CARGO_BIN_EXE_abide"))
        .args(["explain", "Timeout, server example.com not responding."])
        .env_remove("NO_COLOR")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8(out.stdout).unwrap();
    for part in [
        "What happened",
        "Why",
        "Fix",
        "Does abide avoid it?",
        "ServerAliveCountMax",
    ] {
        assert!(text.contains(part), "missing {part:?} in:\n{text}");
    }
    assert!(!text.contains('\x1b'), "escape codes in piped output");
}

#[test]
fn empty_input_is_bad_usage() {
    let out = abide(&["explain", "-"], Some("  \n\r\n "));
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nothing to explain"));
    let out = abide(&["explain", ""], None);
    assert_eq!(out.status.code(), Some(2));
    let out = abide(&["explain", "--no-such-flag"], None);
    assert_eq!(out.status.code(), Some(2));
}
