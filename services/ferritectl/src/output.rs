//! Printing: aligned tables for people, JSON for scripts, and the yes/no question before a
//! delete.

use std::io::{self, BufRead, IsTerminal, Write};

use serde::Serialize;

/// Columns of text, left-aligned, two spaces apart, headers first.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut text = String::new();
        for (i, (cell, w)) in cells.zip(&widths).enumerate() {
            if i > 0 {
                text.push_str("  ");
            }
            text.push_str(cell);
            text.extend(std::iter::repeat_n(' ', w - cell.chars().count()));
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(&mut headers.iter().copied());
    for row in rows {
        line(&mut row.iter().map(String::as_str));
    }
    out
}

/// Pretty JSON and a newline.
pub fn json(value: &impl Serialize) -> io::Result<String> {
    let mut text = serde_json::to_string_pretty(value).map_err(io::Error::other)?;
    text.push('\n');
    Ok(text)
}

/// Write `text` to standard output. A closed pipe (`| head`) is not an error.
pub fn print(text: &str) -> io::Result<()> {
    let mut out = io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}

/// Ask before a destructive change. `Ok(true)` to go on: `--force`, or "y"/"yes" typed on
/// a terminal. Without a terminal there is nobody to ask: an error saying to pass --force.
pub fn confirm(question: &str, force: bool) -> Result<bool, NotConfirmed> {
    if force {
        return Ok(true);
    }
    let stdin = io::stdin();
    if !stdin.is_terminal() {
        return Err(NotConfirmed);
    }
    eprint!("{question} [y/N] ");
    let _ = io::stderr().flush();
    let mut answer = String::new();
    stdin
        .lock()
        .read_line(&mut answer)
        .map_err(|_| NotConfirmed)?;
    Ok(matches!(
        answer.trim().to_ascii_lowercase().as_str(),
        "y" | "yes"
    ))
}

/// A destructive command ran without a terminal to ask on and without `--force`.
#[derive(Debug, thiserror::Error)]
#[error(
    "refusing to go on without confirmation: standard input is not a terminal, so there is \
     nobody to ask; pass --force to proceed"
)]
pub struct NotConfirmed;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_columns_and_trim_line_ends() {
        let t = table(
            &["ID", "NAME", "NOTE"],
            &[
                vec!["1".into(), "sensors".into(), "".into()],
                vec!["10".into(), "é".into(), "x".into()],
            ],
        );
        assert_eq!(t, "ID  NAME     NOTE\n1   sensors\n10  é        x\n");
    }
}
