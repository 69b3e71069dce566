//! Plain-text output of `coremq ctl`: an aligned-column [`Table`] and a
//! key/value block ([`kv_block`]).
//!
//! Columns are as wide as their widest cell (counted in `char`s), separated
//! by two spaces; nothing is truncated and no line ends in padding. Numeric
//! columns can be right-aligned. A table without rows prints `(none)`.
//! Callers pass cells through [`clean`] so that text from the broker (client
//! ids, topics) cannot put control characters on the terminal.

/// How a column's cells line up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Align {
    Left,
    Right,
}

/// Rows under a header line, rendered by [`Table::render`].
#[derive(Debug)]
pub struct Table {
    headers: Vec<String>,
    align: Vec<Align>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column headers, every column left-aligned.
    pub fn new(headers: &[&str]) -> Table {
        Table {
            headers: headers.iter().map(|h| h.to_string()).collect(),
            align: vec![Align::Left; headers.len()],
            rows: Vec::new(),
        }
    }

    /// Right-align the columns at these indices (numbers).
    pub fn right(mut self, columns: &[usize]) -> Table {
        for &c in columns {
            if let Some(a) = self.align.get_mut(c) {
                *a = Align::Right;
            }
        }
        self
    }

    /// Add a row; missing cells are empty, extra cells are dropped.
    pub fn row(&mut self, cells: Vec<String>) {
        let mut cells = cells;
        cells.resize(self.headers.len(), String::new());
        self.rows.push(cells);
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether the table has no rows.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The header line and the rows, each line ending in `\n`; `(none)\n`
    /// when there are no rows.
    pub fn render(&self) -> String {
        if self.rows.is_empty() {
            return "(none)\n".to_string();
        }
        let widths: Vec<usize> = (0..self.headers.len())
            .map(|c| {
                std::iter::once(&self.headers[c])
                    .chain(self.rows.iter().map(|r| &r[c]))
                    .map(|s| s.chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let mut out = String::new();
        for line in std::iter::once(&self.headers).chain(&self.rows) {
            let mut text = String::new();
            for (c, cell) in line.iter().enumerate() {
                if c > 0 {
                    text.push_str("  ");
                }
                let pad = widths[c] - cell.chars().count();
                match self.align[c] {
                    Align::Left => {
                        text.push_str(cell);
                        text.extend(std::iter::repeat_n(' ', pad));
                    }
                    Align::Right => {
                        text.extend(std::iter::repeat_n(' ', pad));
                        text.push_str(cell);
                    }
                }
            }
            out.push_str(text.trim_end());
            out.push('\n');
        }
        out
    }
}

/// `key  value` lines, the values aligned after the longest key. Values
/// span one line each (pass them through [`clean`]).
pub fn kv_block(pairs: &[(&str, String)]) -> String {
    let width = pairs
        .iter()
        .map(|(k, _)| k.chars().count())
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    for (k, v) in pairs {
        let line = format!("{k:<width$}  {v}");
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// `s` with control characters (newline, escape, ...) written as Rust
/// escapes (`\n`, `\u{1b}`), so one value stays on one line and cannot
/// drive the terminal.
pub fn clean(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        if ch.is_control() {
            out.extend(ch.escape_default());
        } else {
            out.push(ch);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cells(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn columns_are_as_wide_as_their_widest_cell() {
        let mut t = Table::new(&["ID", "N", "NAME"]).right(&[1]);
        t.row(cells(&["a", "1", "x"]));
        t.row(cells(&["long-id", "1234", "y"]));
        assert_eq!(
            t.render(),
            "ID          N  NAME\n\
             a           1  x\n\
             long-id  1234  y\n"
        );
        assert_eq!(t.len(), 2);
    }

    #[test]
    fn empty_table_prints_none() {
        let t = Table::new(&["A", "B"]);
        assert!(t.is_empty());
        assert_eq!(t.render(), "(none)\n");
    }

    #[test]
    fn long_values_are_not_truncated_and_lines_have_no_trailing_blanks() {
        let long = "x".repeat(300);
        let mut t = Table::new(&["A", "B"]);
        t.row(cells(&[&long, ""]));
        t.row(cells(&["short", "b"]));
        let out = t.render();
        assert!(out.contains(&long), "{out}");
        assert!(out.lines().all(|l| !l.ends_with(' ')), "{out:?}");
        // The second column starts after the long value for every line.
        let col = out.lines().next().unwrap().find('B').unwrap();
        assert_eq!(col, 302);
        assert_eq!(out.lines().nth(2).unwrap().find('b'), Some(302));
    }

    #[test]
    fn widths_count_characters_not_bytes_and_short_rows_are_padded() {
        let mut t = Table::new(&["T", "Q"]);
        t.row(cells(&["é/ü", "1"]));
        t.row(cells(&["ab"]));
        assert_eq!(t.render(), "T    Q\né/ü  1\nab\n");
    }

    #[test]
    fn kv_block_aligns_values() {
        let out = kv_block(&[("node", "1".into()), ("connections", "2".into())]);
        assert_eq!(out, "node         1\nconnections  2\n");
        assert_eq!(kv_block(&[]), "");
    }

    #[test]
    fn clean_escapes_control_characters() {
        assert_eq!(clean("a\nb\x1b[2J\t"), "a\\nb\\u{1b}[2J\\t");
        assert_eq!(clean("plain/ü"), "plain/ü");
    }
}
