//! Escape keys, as in mosh: Ctrl-^ then `.` quits, `d` detaches, `^` (or
//! Ctrl-^ again) sends a literal Ctrl-^. Anything else after Ctrl-^ is sent
//! as typed, both bytes.

pub const ESCAPE: u8 = 0x1e; // Ctrl-^

#[derive(Debug, PartialEq, Eq)]
pub enum Action {
    Send(Vec<u8>),
    Detach,
    Quit,
}

#[derive(Debug, Default)]
pub struct EscapeReader {
    armed: bool,
}

impl EscapeReader {
    pub fn feed(&mut self, input: &[u8]) -> Vec<Action> {
        let mut actions = Vec::new();
        let mut plain = Vec::new();
        for &b in input {
            if self.armed {
                self.armed = false;
                match b {
                    b'.' => {
                        flush(&mut plain, &mut actions);
                        actions.push(Action::Quit);
                        return actions;
                    }
                    b'd' => {
                        flush(&mut plain, &mut actions);
                        actions.push(Action::Detach);
                        return actions;
                    }
                    b'^' | ESCAPE => plain.push(ESCAPE),
                    other => plain.extend([ESCAPE, other]),
                }
            } else if b == ESCAPE {
                self.armed = true;
            } else {
                plain.push(b);
            }
        }
        flush(&mut plain, &mut actions);
        actions
    }
}

fn flush(plain: &mut Vec<u8>, actions: &mut Vec<Action>) {
    if !plain.is_empty() {
        actions.push(Action::Send(std::mem::take(plain)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys() {
        let mut e = EscapeReader::default();
        assert_eq!(e.feed(b"ls\r"), vec![Action::Send(b"ls\r".to_vec())]);
        assert_eq!(e.feed(b"a\x1e"), vec![Action::Send(b"a".to_vec())]);
        assert_eq!(e.feed(b"d"), vec![Action::Detach]);
        assert_eq!(e.feed(b"\x1e."), vec![Action::Quit]);
        assert_eq!(e.feed(b"\x1e^x"), vec![Action::Send(b"\x1ex".to_vec())]);
        assert_eq!(e.feed(b"\x1e\x1e"), vec![Action::Send(vec![ESCAPE])]);
        assert_eq!(e.feed(b"\x1eq"), vec![Action::Send(b"\x1eq".to_vec())]);
    }
}
