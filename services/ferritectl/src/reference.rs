//! The reference page `docs/ferritectl.md`, rendered from the CLI's own help so the two
//! cannot disagree. `ferritectl markdown-help` prints it; the test
//! `reference_page_is_current` fails when the committed page is stale and rewrites it with
//! `FERRITECTL_BLESS=1`.

use clap::{Command, CommandFactory};

use crate::cli::Cli;

/// The width help is rendered at, whatever the terminal.
const WIDTH: usize = 100;

/// How to regenerate the page (shown in it and by the staleness test).
pub const REGENERATE: &str =
    "FERRITECTL_BLESS=1 cargo test -p ferritectl --test ferritectl reference_page_is_current";

/// The whole page.
pub fn markdown() -> String {
    let mut cli = Cli::command();
    cli.build();
    let mut commands = Vec::new();
    collect(&cli, &mut commands);

    let mut out = String::new();
    out.push_str("# ferritectl reference\n\n");
    out.push_str(&format!(
        "<!-- Generated from ferritectl's own help; do not edit. Regenerate with:\n     \
         {REGENERATE}\n     (or: ferritectl markdown-help > docs/ferritectl.md) -->\n\n"
    ));
    out.push_str(
        "`ferritectl` is ferrite's admin CLI: databases, tables and tokens through the \
         management API (`/api/v0`), line protocol writes (`/api/v3/write_lp`) and SQL queries \
         (Flight SQL). Each section below is the output of `ferritectl <command> --help`, \
         without the global options after the first (every command accepts them).\n\n",
    );
    out.push_str("## Commands\n\n");
    for cmd in &commands {
        let name = full_name(cmd);
        let about = cmd.get_about().map(ToString::to_string).unwrap_or_default();
        out.push_str(&format!("- [`{name}`](#{}): {about}\n", anchor(&name)));
    }
    out.push('\n');
    for cmd in &commands {
        let name = full_name(cmd);
        let mut cmd = cmd.clone().term_width(WIDTH);
        if cmd.get_bin_name() != Some("ferritectl") {
            // The global options are documented once, under `ferritectl`.
            cmd = cmd.mut_args(|a| if a.is_global_set() { a.hide(true) } else { a });
        }
        let help = cmd.render_long_help().to_string();
        let help: Vec<&str> = help.lines().map(str::trim_end).collect();
        out.push_str(&format!(
            "## {name}\n\n```text\n{}\n```\n\n",
            help.join("\n").trim_end()
        ));
    }
    out.truncate(out.trim_end().len());
    out.push('\n');
    out
}

fn collect(cmd: &Command, out: &mut Vec<Command>) {
    out.push(cmd.clone());
    for sub in cmd.get_subcommands() {
        if sub.is_hide_set() || sub.get_name() == "help" {
            continue;
        }
        collect(sub, out);
    }
}

fn full_name(cmd: &Command) -> String {
    cmd.get_bin_name().unwrap_or(cmd.get_name()).to_string()
}

/// The anchor GitHub gives a heading.
fn anchor(heading: &str) -> String {
    heading
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_visible_command_has_a_section_with_an_example() {
        let page = markdown();
        for name in [
            "## ferritectl database create",
            "## ferritectl token revoke",
            "## ferritectl write",
            "## ferritectl completions",
        ] {
            assert!(page.contains(name), "missing {name}");
        }
        assert!(!page.contains("## ferritectl markdown-help"));
        let sections = page.split("\n## ").skip(2);
        for section in sections {
            assert!(
                section.contains("Example"),
                "no example in: {}",
                section.lines().next().unwrap_or_default()
            );
        }
    }
}
