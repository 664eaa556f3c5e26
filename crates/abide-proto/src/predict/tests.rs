//! The predictor against a simulated server and link, in simulated time.

use super::sim::*;
use super::*;

const RTT_300: Duration = Duration::from_millis(150);
const KEY_GAP: Duration = Duration::from_millis(120);

/// A shell at a prompt on a 300 ms link, with the link measured and echo seen.
fn warmed_shell() -> Sim {
    let mut sim = Sim::new(Mode::Auto, RTT_300, prompt_screen(10, 40), shell());
    for k in b"ls" {
        sim.type_keys(&[*k]);
        sim.advance(KEY_GAP);
    }
    sim.type_keys(b"\r");
    sim.settle();
    assert_eq!(sim.p.trust, Trust::Echoing);
    sim
}

#[test]
fn keys_show_at_once_on_a_fresh_prompt_and_are_confirmed() {
    let mut sim = warmed_shell();
    assert_eq!(sim.row(1), "$");
    for (i, k) in b"echo hi".iter().enumerate() {
        sim.type_keys(&[*k]);
        // Shown at once, before the server has answered.
        assert_eq!(sim.row(1), format!("$ {}", &"echo hi"[..=i]).trim_end());
        assert_eq!(sim.visible().cursor, (1, 3 + i as u16));
        sim.advance(KEY_GAP);
    }
    assert!(
        sim.p.overlay().underline,
        "300 ms RTT: underlined while unconfirmed"
    );
    sim.settle();
    assert!(sim.p.overlay().is_empty());
    assert_eq!(sim.client.row_text(1), "$ echo hi");
}

#[test]
fn fast_link_shows_nothing_in_auto_mode() {
    let mut sim = Sim::new(
        Mode::Auto,
        Duration::from_millis(2),
        prompt_screen(5, 20),
        shell(),
    );
    for k in b"abc" {
        sim.type_keys(&[*k]);
        assert!(sim.p.overlay().is_empty());
        sim.advance(KEY_GAP);
    }
    assert_eq!(sim.row(0), "$ abc");
}

#[test]
fn password_prompt_never_echoes() {
    let mut sim = warmed_shell();
    // `read -s -p Password:`: the program turns echo off and prints its prompt.
    sim.p.set_tty_modes(TtyModes {
        echo: false,
        canonical: true,
    });
    sim.server_draws(|s| s.text("Password: "));
    sim.behaviour = Box::new(|_: &mut Screen, _: &[u8]| {});
    sim.advance(Duration::from_millis(400));
    for k in b"hunter2" {
        sim.type_keys(&[*k]);
        assert!(sim.p.overlay().is_empty(), "a password key was shown");
        sim.advance(KEY_GAP);
        assert!(sim.p.overlay().is_empty(), "a password key was shown");
    }
    sim.settle();
    assert_eq!(sim.row(1), "$ Password:");
    // Echo back on: prediction resumes after the next confirmation.
    sim.p.set_tty_modes(TtyModes {
        echo: false,
        canonical: false,
    });
}

#[test]
fn password_keys_typed_before_the_mode_arrives_are_taken_away() {
    let mut sim = warmed_shell();
    sim.behaviour = Box::new(|_: &mut Screen, _: &[u8]| {});
    sim.type_keys(b"p");
    // The mode change overtakes the judgement: gone at once.
    sim.p.set_tty_modes(TtyModes {
        echo: false,
        canonical: true,
    });
    assert!(sim.p.overlay().is_empty());
}

#[test]
fn right_prompt_is_overwritten_not_pushed() {
    let mut server = prompt_screen(5, 30);
    // zsh RPROMPT at the right margin.
    server.cursor = (0, 24);
    server.text("[main]");
    server.cursor = (0, 2);
    let mut sim = Sim::new(Mode::Always, RTT_300, server, shell());
    sim.p.trust = Trust::Echoing;
    sim.p.srtt = Some(Duration::from_millis(300));
    for k in b"git st" {
        sim.type_keys(&[*k]);
        sim.advance(KEY_GAP);
    }
    // The typed text is shown, and the right prompt stays where it is.
    assert_eq!(sim.row(0), "$ git st                [main]");
    sim.settle();
    assert_eq!(sim.row(0), "$ git st                [main]");
    assert!(sim.p.overlay().is_empty());
}

#[test]
fn autosuggestion_is_overwritten_not_pushed() {
    const GREY: u32 = 8;
    let mut server = prompt_screen(5, 30);
    server.text("ec");
    for ch in "ho hello".chars() {
        server.put_styled(ch, GREY);
    }
    server.cursor = (0, 4);
    // fish: the typed key replaces the suggestion's cell, a divergent key drops it.
    let fish: Behaviour = Box::new(|s: &mut Screen, data: &[u8]| {
        for &b in data {
            let (r, c) = s.cursor;
            let suggested = s.cell(r, c);
            s.put_styled(b as char, 0);
            if suggested.ch != b as char {
                for k in c + 1..s.cols {
                    s.set(r, k, Cell::BLANK);
                }
            }
        }
    });
    let mut sim = Sim::new(Mode::Always, RTT_300, server, fish);
    sim.p.trust = Trust::Echoing;
    sim.p.srtt = Some(Duration::from_millis(300));
    sim.type_keys(b"h");
    assert_eq!(sim.row(0), "$ echo hello", "overwritten, not pushed");
    sim.advance(KEY_GAP);
    sim.type_keys(b"x");
    assert_eq!(sim.row(0), "$ echx hello");
    sim.settle();
    assert_eq!(sim.row(0), "$ echx");
    assert!(sim.p.overlay().is_empty());
}

#[test]
fn enter_at_the_bottom_row() {
    let mut sim = warmed_shell();
    // Fill the screen so the prompt sits on the last row.
    sim.server_draws(|s| {
        for _ in 0..12 {
            s.newline();
        }
        s.text("$ ");
    });
    sim.settle();
    assert_eq!(sim.client.cursor, (9, 2));
    sim.type_keys(b"l");
    sim.advance(KEY_GAP);
    sim.type_keys(b"s");
    sim.advance(KEY_GAP);
    sim.type_keys(b"\r");
    // Typed before the server has answered the Enter: where it lands is
    // unknown (the screen scrolls), so it is not shown anywhere.
    sim.type_keys(b"p");
    sim.type_keys(b"w");
    let before = sim.visible();
    for r in 0..10 {
        let row = before.row_text(r);
        assert!(
            !row.contains("pw") && !row.ends_with('p'),
            "row {r}: {row:?}"
        );
    }
    sim.settle();
    assert!(sim.p.overlay().is_empty());
    assert_eq!(sim.row(8), "$ ls");
    assert_eq!(sim.row(9), "$ pw");
    // Now settled on the new bottom row: the next key shows at once.
    sim.type_keys(b"d");
    assert_eq!(sim.row(9), "$ pwd");
    sim.settle();
    assert_eq!(sim.client.row_text(9), "$ pwd");
}

#[test]
fn wide_characters() {
    let mut sim = warmed_shell();
    sim.type_keys("日".as_bytes());
    assert_eq!(sim.row(1), "$ 日");
    assert_eq!(sim.visible().cursor, (1, 4));
    sim.advance(KEY_GAP);
    sim.type_keys("本".as_bytes());
    assert_eq!(sim.visible().cursor, (1, 6));
    sim.advance(KEY_GAP);
    sim.type_keys(b"x");
    assert_eq!(sim.row(1), "$ 日本x");
    sim.settle();
    assert!(sim.p.overlay().is_empty());
    // Backspace over a confirmed wide character moves back two cells.
    sim.type_keys(b"\x7f");
    sim.advance(KEY_GAP);
    sim.type_keys(b"\x7f");
    assert_eq!(sim.row(1), "$ 日");
    assert_eq!(sim.visible().cursor, (1, 4));
    sim.settle();
    assert_eq!(sim.client.row_text(1), "$ 日");
    assert!(sim.p.overlay().is_empty());
    // A wide character never goes past the margin.
    sim.server_draws(|s| s.cursor = (1, 39));
    sim.settle();
    sim.type_keys("本".as_bytes());
    assert!(sim.p.overlay().is_empty());
}

#[test]
fn wrong_prediction_is_corrected_within_one_round_trip() {
    let mut sim = warmed_shell();
    sim.type_keys(b"a");
    sim.advance(KEY_GAP);
    // The program starts upper-casing.
    sim.behaviour = Box::new(|s: &mut Screen, data: &[u8]| {
        for &b in data {
            s.put_styled(b.to_ascii_uppercase() as char, 0);
        }
    });
    let t0 = sim.now;
    sim.type_keys(b"b");
    sim.advance(KEY_GAP);
    sim.type_keys(b"c");
    assert_eq!(sim.row(1), "$ abc");
    // Exactly one round trip after 'b' the server's 'B' is there and the
    // predictions built on 'b' are gone.
    let rtt = sim.owd * 2;
    sim.advance(t0 + rtt - sim.now);
    assert_eq!(sim.row(1), "$ aB");
    assert!(sim.p.overlay().is_empty());
    sim.settle();
    assert_eq!(sim.row(1), "$ aBC");
    // Then no more guessing until the program echoes as predicted again.
    sim.type_keys(b"d");
    assert!(sim.p.overlay().is_empty());
}

#[test]
fn first_key_after_a_mode_change_in_a_full_screen_editor() {
    let mut sim = warmed_shell();
    // `vim` + Enter: the alternate screen, cursor at the top left; `i`
    // draws nothing, then keys echo.
    let mut insert = false;
    sim.behaviour = Box::new(move |s: &mut Screen, data: &[u8]| {
        if data == b"\r" {
            s.clear();
            s.alt = true;
            for r in 1..s.rows {
                s.cursor = (r, 0);
                s.text("~");
            }
            s.cursor = (0, 0);
        } else if !insert && data == b"i" {
            insert = true;
        } else if insert {
            for ch in String::from_utf8_lossy(data).chars() {
                s.put_styled(ch, 0);
            }
        }
    });
    sim.type_keys(b"\r");
    sim.settle();
    sim.type_keys(b"i");
    assert!(sim.p.overlay().is_empty(), "no evidence that 'i' echoes");
    sim.settle();
    assert_eq!(sim.row(0), "");
    sim.type_keys(b"e");
    assert_eq!(sim.row(0), "e", "shown at once after the mode change");
    sim.advance(KEY_GAP);
    sim.type_keys(b"c");
    assert_eq!(sim.row(0), "ec");
    sim.settle();
    assert!(sim.p.overlay().is_empty());
    assert_eq!(sim.client.row_text(0), "ec");
}

#[test]
fn pastes_are_not_predicted() {
    let mut sim = warmed_shell();
    sim.type_keys(&[b'x'; PASTE_BYTES + 1]);
    assert!(sim.p.overlay().is_empty());
    sim.type_keys(b"y");
    assert!(sim.p.overlay().is_empty());
    sim.settle();
    assert!(sim.p.overlay().is_empty());
}

#[test]
fn left_right_and_backspace_within_typed_text() {
    let mut sim = warmed_shell();
    for k in b"abc" {
        sim.type_keys(&[*k]);
        sim.advance(KEY_GAP);
    }
    sim.type_keys(b"\x1b[D");
    assert_eq!(sim.visible().cursor, (1, 4));
    sim.advance(KEY_GAP);
    // Typing in the middle would push text right: not predicted.
    sim.type_keys(b"Z");
    assert_eq!(sim.row(1), "$ abc");
    sim.settle();
    assert!(sim.p.overlay().is_empty());
    assert_eq!(sim.client.row_text(1), "$ abZ");
}

#[test]
fn never_mode_predicts_nothing() {
    let mut sim = Sim::new(Mode::Never, RTT_300, prompt_screen(5, 20), shell());
    sim.type_keys(b"a");
    assert!(sim.p.overlay().is_empty());
}

#[test]
fn random_keys_and_servers_leave_nothing_behind() {
    for seed in 0..300u64 {
        run_random(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15), 60);
    }
}

#[test]
fn the_fuzz_entry_takes_any_bytes() {
    let mut rng = Rng(0x5eed);
    for len in 0..400usize {
        let data: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        run_bytes(&data);
    }
}
