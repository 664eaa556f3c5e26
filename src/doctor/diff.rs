//! A unified diff of two small texts, so `--fix` can show exactly what it wrote.

/// `---`/`+++` headers, then hunks with `context` unchanged lines around changes.
pub fn unified(old: &str, new: &str, old_name: &str, new_name: &str, context: usize) -> String {
    let a: Vec<&str> = old.lines().collect();
    let b: Vec<&str> = new.lines().collect();
    let ops = edit_script(&a, &b);
    if ops.iter().all(|op| matches!(op, Op::Same(..))) {
        return String::new();
    }
    let mut out = format!("--- {old_name}\n+++ {new_name}\n");
    let changed: Vec<usize> = ops
        .iter()
        .enumerate()
        .filter(|(_, op)| !matches!(op, Op::Same(..)))
        .map(|(i, _)| i)
        .collect();
    // Group changes whose context would overlap into one hunk.
    let mut groups: Vec<(usize, usize)> = Vec::new();
    for &i in &changed {
        let lo = i.saturating_sub(context);
        let hi = (i + context + 1).min(ops.len());
        match groups.last_mut() {
            Some(g) if lo <= g.1 => g.1 = hi,
            _ => groups.push((lo, hi)),
        }
    }
    for (lo, hi) in groups {
        let (mut a_start, mut b_start) = (1, 1);
        for op in &ops[..lo] {
            match op {
                Op::Same(..) => {
                    a_start += 1;
                    b_start += 1;
                }
                Op::Del(_) => a_start += 1,
                Op::Add(_) => b_start += 1,
            }
        }
        let a_len = ops[lo..hi]
            .iter()
            .filter(|o| !matches!(o, Op::Add(_)))
            .count();
        let b_len = ops[lo..hi]
            .iter()
            .filter(|o| !matches!(o, Op::Del(_)))
            .count();
        // An empty range starts one line earlier by convention.
        let a_at = if a_len == 0 { a_start - 1 } else { a_start };
        let b_at = if b_len == 0 { b_start - 1 } else { b_start };
        out.push_str(&format!("@@ -{a_at},{a_len} +{b_at},{b_len} @@\n"));
        for op in &ops[lo..hi] {
            match op {
                Op::Same(l) => out.push_str(&format!(" {l}\n")),
                Op::Del(l) => out.push_str(&format!("-{l}\n")),
                Op::Add(l) => out.push_str(&format!("+{l}\n")),
            }
        }
    }
    out
}

#[derive(Debug)]
enum Op<'a> {
    Same(&'a str),
    Del(&'a str),
    Add(&'a str),
}

/// Longest-common-subsequence edit script; ssh configs are small enough for
/// the quadratic table.
fn edit_script<'a>(a: &[&'a str], b: &[&'a str]) -> Vec<Op<'a>> {
    let (n, m) = (a.len(), b.len());
    let mut lcs = vec![vec![0u32; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j) = (0, 0);
    let mut ops = Vec::new();
    while i < n || j < m {
        if i < n && j < m && a[i] == b[j] {
            ops.push(Op::Same(a[i]));
            i += 1;
            j += 1;
        } else if j < m && (i == n || lcs[i][j + 1] > lcs[i + 1][j]) {
            // On a tie the deletion goes first, as diff(1) prints a change.
            ops.push(Op::Add(b[j]));
            j += 1;
        } else {
            ops.push(Op::Del(a[i]));
            i += 1;
        }
    }
    ops
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_texts_have_no_diff() {
        assert_eq!(unified("a\nb\n", "a\nb\n", "x", "y", 3), "");
    }

    #[test]
    fn insertion_and_change_hunks() {
        let old = "1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n";
        let new = "1\n2\n3\nnew\n4\n5\n6\n7\n8\n9\nten\n";
        let d = unified(old, new, "a", "b", 1);
        assert_eq!(
            d,
            "--- a\n+++ b\n@@ -3,2 +3,3 @@\n 3\n+new\n 4\n@@ -9,2 +10,2 @@\n 9\n-10\n+ten\n"
        );
    }

    #[test]
    fn creating_a_file() {
        let d = unified("", "Host x\n", "/dev/null", "c", 3);
        assert_eq!(d, "--- /dev/null\n+++ c\n@@ -0,0 +1,1 @@\n+Host x\n");
    }
}
