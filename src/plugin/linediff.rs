//! A small line diff (Myers' O((N+M)D) algorithm) and its unified rendering, for
//! `kubectl qlik diff`: no diff crate is in the dependency tree, and a workspace diff needs
//! only lines, hunks and three lines of context.

/// What happens to one line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// In both.
    Equal,
    /// Only in the old text.
    Delete,
    /// Only in the new text.
    Insert,
}

/// Above this many differing lines the middle part is shown as removed and added as a whole
/// instead of searched for a minimal diff (which costs memory quadratic in the differences).
const MAX_EDITS: usize = 2000;

/// The edit script that turns `old` into `new`, line by line: every line of both, in order,
/// each with what happens to it.
pub fn diff<'a>(old: &[&'a str], new: &[&'a str]) -> Vec<(Op, &'a str)> {
    let prefix = old
        .iter()
        .zip(new.iter())
        .take_while(|(a, b)| a == b)
        .count();
    let suffix = old[prefix..]
        .iter()
        .rev()
        .zip(new[prefix..].iter().rev())
        .take_while(|(a, b)| a == b)
        .count();
    let a = &old[prefix..old.len() - suffix];
    let b = &new[prefix..new.len() - suffix];
    let middle = myers(a, b).unwrap_or_else(|| {
        let mut ops = vec![Op::Delete; a.len()];
        ops.extend(std::iter::repeat_n(Op::Insert, b.len()));
        ops
    });

    let mut out: Vec<(Op, &'a str)> = old[..prefix].iter().map(|l| (Op::Equal, *l)).collect();
    let (mut i, mut j) = (0, 0);
    for op in middle {
        match op {
            Op::Equal => {
                out.push((Op::Equal, a[i]));
                i += 1;
                j += 1;
            }
            Op::Delete => {
                out.push((Op::Delete, a[i]));
                i += 1;
            }
            Op::Insert => {
                out.push((Op::Insert, b[j]));
                j += 1;
            }
        }
    }
    out.extend(old[old.len() - suffix..].iter().map(|l| (Op::Equal, *l)));
    out
}

/// Myers' greedy shortest edit script, keeping for each step d only the diagonals it can
/// reach (O(D²) memory). `None` when more than [`MAX_EDITS`] edits are needed.
fn myers(a: &[&str], b: &[&str]) -> Option<Vec<Op>> {
    let n = a.len() as isize;
    let m = b.len() as isize;
    let max = (n + m) as usize;
    let offset = max as isize + 1;
    let mut v = vec![0isize; 2 * max + 3];
    // trace[d][(k + d) / 2] is the furthest x on diagonal k (k = -d, -d + 2, ..., d) after
    // d edits.
    let mut trace: Vec<Vec<isize>> = Vec::new();
    for d in 0..=(max.min(MAX_EDITS) as isize) {
        let mut row = Vec::with_capacity(d as usize + 1);
        let mut k = -d;
        while k <= d {
            let idx = (k + offset) as usize;
            let mut x = if k == -d || (k != d && v[idx - 1] < v[idx + 1]) {
                v[idx + 1]
            } else {
                v[idx - 1] + 1
            };
            let mut y = x - k;
            while x < n && y < m && a[x as usize] == b[y as usize] {
                x += 1;
                y += 1;
            }
            v[idx] = x;
            row.push(x);
            if x >= n && y >= m {
                trace.push(row);
                return Some(backtrack(&trace, n, m));
            }
            k += 2;
        }
        trace.push(row);
    }
    None
}

fn backtrack(trace: &[Vec<isize>], n: isize, m: isize) -> Vec<Op> {
    let (mut x, mut y) = (n, m);
    let mut ops = Vec::new();
    for d in (1..trace.len() as isize).rev() {
        let k = x - y;
        let prev = &trace[(d - 1) as usize];
        let at = |kk: isize| prev[((kk + d - 1) / 2) as usize];
        let prev_k = if k == -d || (k != d && at(k - 1) < at(k + 1)) {
            k + 1
        } else {
            k - 1
        };
        let prev_x = at(prev_k);
        let prev_y = prev_x - prev_k;
        while x > prev_x && y > prev_y {
            ops.push(Op::Equal);
            x -= 1;
            y -= 1;
        }
        ops.push(if x == prev_x { Op::Insert } else { Op::Delete });
        x = prev_x;
        y = prev_y;
    }
    // d = 0: the common start.
    ops.extend(std::iter::repeat_n(Op::Equal, x.max(0) as usize));
    ops.reverse();
    ops
}

/// A unified diff of two texts (`--- old_label`, `+++ new_label`, `@@` hunks with
/// `context` lines around each change), or an empty string when they are equal.
pub fn unified(old: &str, new: &str, old_label: &str, new_label: &str, context: usize) -> String {
    let old_lines: Vec<&str> = old.lines().collect();
    let new_lines: Vec<&str> = new.lines().collect();
    let script = diff(&old_lines, &new_lines);
    let changes: Vec<usize> = script
        .iter()
        .enumerate()
        .filter(|(_, (op, _))| *op != Op::Equal)
        .map(|(i, _)| i)
        .collect();
    let Some(&first) = changes.first() else {
        return String::new();
    };

    // Hunks: runs of changes whose gaps are at most 2 × context, with context around them.
    let mut hunks: Vec<(usize, usize)> = Vec::new();
    let (mut start, mut end) = (first, first);
    for &c in &changes[1..] {
        if c - end > 2 * context + 1 {
            hunks.push((start, end));
            start = c;
        }
        end = c;
    }
    hunks.push((start, end));

    // Line numbers (0-based) of both sides before each script entry.
    let mut positions = Vec::with_capacity(script.len() + 1);
    let (mut o, mut n) = (0usize, 0usize);
    for (op, _) in &script {
        positions.push((o, n));
        match op {
            Op::Equal => {
                o += 1;
                n += 1;
            }
            Op::Delete => o += 1,
            Op::Insert => n += 1,
        }
    }
    positions.push((o, n));

    let mut out = format!("--- {old_label}\n+++ {new_label}\n");
    for (start, end) in hunks {
        let from = start.saturating_sub(context);
        let to = (end + context + 1).min(script.len());
        let (o0, n0) = positions[from];
        let (o1, n1) = positions[to];
        let range = |at: usize, count: usize| {
            // GNU diff: an empty range names the line before it.
            let first = if count == 0 { at } else { at + 1 };
            if count == 1 {
                format!("{first}")
            } else {
                format!("{first},{count}")
            }
        };
        out.push_str(&format!(
            "@@ -{} +{} @@\n",
            range(o0, o1 - o0),
            range(n0, n1 - n0)
        ));
        for (op, line) in &script[from..to] {
            let sign = match op {
                Op::Equal => ' ',
                Op::Delete => '-',
                Op::Insert => '+',
            };
            out.push(sign);
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apply(script: &[(Op, &str)]) -> (Vec<String>, Vec<String>) {
        let old = script
            .iter()
            .filter(|(op, _)| *op != Op::Insert)
            .map(|(_, l)| l.to_string())
            .collect();
        let new = script
            .iter()
            .filter(|(op, _)| *op != Op::Delete)
            .map(|(_, l)| l.to_string())
            .collect();
        (old, new)
    }

    fn edits(script: &[(Op, &str)]) -> usize {
        script.iter().filter(|(op, _)| *op != Op::Equal).count()
    }

    #[test]
    fn the_script_rebuilds_both_sides_with_few_edits() {
        let cases: &[(&str, &str, usize)] = &[
            ("", "", 0),
            ("a", "", 1),
            ("", "a\nb", 2),
            ("a\nb\nc", "a\nb\nc", 0),
            ("a\nb\nc", "a\nx\nc", 2),
            ("a\nb\nc\nd", "b\nc\nd\ne", 2),
            ("x\na\nb\nc", "a\nb\nc\nx", 2),
            ("a\nb\na\nb\na", "b\na\nb\na\nb", 2),
        ];
        for (old, new, expected) in cases {
            let o: Vec<&str> = old.lines().collect();
            let n: Vec<&str> = new.lines().collect();
            let script = diff(&o, &n);
            let (ro, rn) = apply(&script);
            assert_eq!(
                (ro, rn),
                (
                    o.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
                    n.iter().map(|s| s.to_string()).collect::<Vec<_>>()
                )
            );
            assert_eq!(edits(&script), *expected, "{old:?} → {new:?}: {script:?}");
        }
    }

    #[test]
    fn pseudo_random_texts_round_trip_minimally() {
        // A fixed LCG: the same cases every run.
        let mut seed: u64 = 0x5eed;
        let mut next = move || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) as usize
        };
        let words = ["a", "b", "c", "d"];
        for _ in 0..200 {
            let o: Vec<&str> = (0..next() % 12).map(|_| words[next() % 4]).collect();
            let n: Vec<&str> = (0..next() % 12).map(|_| words[next() % 4]).collect();
            let script = diff(&o, &n);
            let (ro, rn) = apply(&script);
            assert_eq!(ro, o.iter().map(|s| s.to_string()).collect::<Vec<_>>());
            assert_eq!(rn, n.iter().map(|s| s.to_string()).collect::<Vec<_>>());
            // Minimal: edits = |o| + |n| - 2·LCS.
            let mut lcs = vec![vec![0usize; n.len() + 1]; o.len() + 1];
            for i in (0..o.len()).rev() {
                for j in (0..n.len()).rev() {
                    lcs[i][j] = if o[i] == n[j] {
                        lcs[i + 1][j + 1] + 1
                    } else {
                        lcs[i + 1][j].max(lcs[i][j + 1])
                    };
                }
            }
            assert_eq!(edits(&script), o.len() + n.len() - 2 * lcs[0][0]);
        }
    }

    #[test]
    fn unified_output_has_hunks_with_context() {
        let old: String = (1..=20).map(|i| format!("line {i}\n")).collect();
        let new = old
            .replace("line 3\n", "line three\n")
            .replace("line 17\n", "");
        let text = unified(&old, &new, "tenant", "manifest", 2);
        assert_eq!(
            text,
            "--- tenant\n+++ manifest\n\
             @@ -1,5 +1,5 @@\n line 1\n line 2\n-line 3\n+line three\n line 4\n line 5\n\
             @@ -15,5 +15,4 @@\n line 15\n line 16\n-line 17\n line 18\n line 19\n"
        );
        assert_eq!(unified(&old, &old, "a", "b", 3), "");
        assert_eq!(
            unified("", "x\n", "a", "b", 3),
            "--- a\n+++ b\n@@ -0,0 +1 @@\n+x\n"
        );
    }

    #[test]
    fn close_changes_share_a_hunk() {
        let old = "a\nb\nc\nd\ne\nf\n";
        let new = "A\nb\nc\nd\ne\nF\n";
        let text = unified(old, new, "o", "n", 2);
        assert_eq!(text.matches("@@ -").count(), 1, "{text}");
    }
}
