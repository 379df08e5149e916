//! ferritectl: the admin CLI of ferrite. The `ferritectl` binary parses the command line
//! and calls [`run`]; everything it does lives here.
//!
//! ```text
//!  argv ─► cli (clap) ─► config: --host/--token/env ▸ profile in config.toml ▸ defaults
//!                          │
//!          ┌───────────────┼──────────────────────┬─────────────────────────┐
//!          ▼               ▼                      ▼                         ▼
//!   database/table/token  write                  query                completions,
//!   manage ─► api         write: batches ─►      query: Flight SQL    config, markdown-help
//!   (/api/v0, JSON)       /api/v3/write_lp       GetFlightInfo+DoGet  (no server)
//! ```
//!
//! Every request carries `Authorization: Bearer <token>`. Listings print as aligned
//! columns or, with `--format json`, as the API's own objects (camelCase fields, unknown
//! fields passed through). Errors name the request, the status and the server's message;
//! the exit status is 0 on success, 1 on failure (a write that had lines rejected
//! included), 2 on a usage error.

pub mod api;
pub mod cli;
pub mod config;
pub mod duration;
pub mod manage;
pub mod output;
pub mod query;
pub mod reference;
mod tls;
pub mod write;

use std::io::{self, Write as _};
use std::process::ExitCode;
use std::time::Duration;

use clap::CommandFactory;

use crate::api::{ApiError, Http, Management};
use crate::cli::{Cli, Command, ConfigCommand, Language};
use crate::config::{ConfigError, Dirs, Overrides, Settings};
use crate::output::{NotConfirmed, print};
use crate::query::{QueryError, QueryText};
use crate::write::{Input, Sender, WriteError, WriteOptions};

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Settings: config file, profile, token, database.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// An HTTP request.
    #[error(transparent)]
    Api(#[from] ApiError),
    /// A query.
    #[error(transparent)]
    Query(#[from] QueryError),
    /// A write that could not start.
    #[error(transparent)]
    Write(#[from] WriteError),
    /// A delete without confirmation.
    #[error(transparent)]
    NotConfirmed(#[from] NotConfirmed),
    /// Arguments that parse but do not make sense together.
    #[error("{0}")]
    Invalid(String),
    /// Standard output or a file.
    #[error("{0}")]
    Io(#[from] io::Error),
}

/// Run a parsed command line.
pub async fn run(cli: Cli) -> Result<ExitCode, Error> {
    let overrides = Overrides {
        config: cli.global.config.clone(),
        profile: cli.global.profile.clone(),
        host: cli.global.host.clone(),
        token: cli.global.token.clone(),
    };
    let timeout = cli.global.timeout;
    match cli.command {
        Command::Completions { shell } => {
            let mut out = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "ferritectl", &mut out);
            print(&String::from_utf8_lossy(&out))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::MarkdownHelp => {
            print(&reference::markdown())?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Config(command) => config_command(command, &overrides),
        Command::Database(command) => {
            let api = management(&overrides, timeout)?;
            manage::database(&api, command).await
        }
        Command::Table(command) => {
            let api = management(&overrides, timeout)?;
            manage::table_command(&api, command).await
        }
        Command::Token(command) => {
            let api = management(&overrides, timeout)?;
            manage::token(&api, command).await
        }
        Command::Cache(command) => {
            let api = management(&overrides, timeout)?;
            manage::cache(&api, command).await
        }
        Command::Partition(command) => {
            let api = management(&overrides, timeout)?;
            manage::partition(&api, command).await
        }
        Command::Query(args) => {
            let settings = Settings::resolve(&overrides, &Dirs::of_user())?;
            let token = settings.token()?.to_string();
            let database = settings.database(args.database.as_deref())?;
            let text = match (&args.file, args.query.as_deref()) {
                (Some(path), _) => QueryText::File(path.clone()),
                (None, Some("-")) => QueryText::Stdin,
                (None, Some(q)) => QueryText::Text(q.to_string()),
                (None, None) => return Err(Error::Invalid("no query given".to_string())),
            };
            let sql = text.read()?;
            let channel = query::channel(&settings, timeout).await?;
            match args.language {
                Language::Sql => query::run(channel, &token, &database, sql, args.format).await?,
                Language::Influxql => {
                    query::run_influxql(channel, &token, &database, sql, args.format).await?
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Write(args) => {
            let settings = Settings::resolve(&overrides, &Dirs::of_user())?;
            let token = settings.token()?.to_string();
            let database = settings.database(args.database.as_deref())?;
            let input = match (&args.file, args.line_protocol) {
                (Some(path), _) if path.as_os_str() == "-" => Input::Stdin,
                (Some(path), _) => Input::File(path.clone()),
                (None, Some(lp)) if lp == "-" => Input::Stdin,
                (None, Some(lp)) => Input::Text(lp),
                (None, None) => return Err(Error::Invalid("no line protocol given".to_string())),
            };
            let http = Http::new(&settings, &token, timeout)?;
            let sender = Sender::new(http, &database, args.precision, !args.no_gzip);
            let options = WriteOptions {
                batch_size: args.batch_size,
                concurrency: usize::try_from(args.concurrency).unwrap_or(1),
            };
            let summary = write::write(sender, input, options).await?;
            print(&summary.describe())?;
            Ok(if summary.is_clean() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
    }
}

fn management(overrides: &Overrides, timeout: Duration) -> Result<Management, Error> {
    let settings = Settings::resolve(overrides, &Dirs::of_user())?;
    let token = settings.token()?;
    Ok(Management::new(Http::new(&settings, token, timeout)?))
}

fn config_command(command: ConfigCommand, overrides: &Overrides) -> Result<ExitCode, Error> {
    let dirs = Dirs::of_user();
    match command {
        ConfigCommand::Show => {
            let settings = Settings::resolve(overrides, &dirs)?;
            print(&settings.describe())?;
        }
        ConfigCommand::Init {
            token_file,
            database,
        } => {
            let path = overrides
                .config
                .clone()
                .or_else(|| {
                    dirs.config
                        .as_ref()
                        .map(|d| d.join("ferrite").join("config.toml"))
                })
                .ok_or_else(|| {
                    Error::Invalid("no config directory: name the file with --config".to_string())
                })?;
            let name = overrides
                .profile
                .clone()
                .unwrap_or_else(|| config::DEFAULT_PROFILE.to_string());
            let host =
                config::parse_host(overrides.host.as_deref().unwrap_or(config::DEFAULT_HOST))?;
            if path.exists() {
                // Parse what is there: a broken file or a profile of the same name stops us.
                let existing = Settings::resolve(
                    &Overrides {
                        config: Some(path.clone()),
                        profile: Some(name.clone()),
                        ..Overrides::default()
                    },
                    &dirs,
                );
                match existing {
                    Ok(s) if s.profile_found => {
                        return Err(Error::Invalid(format!(
                            "{} already has a profile '{name}': edit it there, or pick another \
                             name with --profile",
                            path.display()
                        )));
                    }
                    Ok(_)
                    | Err(ConfigError::NoSuchProfile { .. } | ConfigError::TokenFile { .. }) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            let mut text = format!(
                "\n[[profile]]\nname = {}\nhost = {}\n",
                toml_string(&name),
                toml_string(host.as_str().trim_end_matches('/'))
            );
            if let Some(file) = &token_file {
                // In the file a relative path would start at the file's directory.
                let file = std::path::absolute(file)?;
                text.push_str(&format!(
                    "token_file = {}\n",
                    toml_string(&file.display().to_string())
                ));
            }
            if let Some(db) = &database {
                text.push_str(&format!("database = {}\n", toml_string(db)));
            }
            let written = path
                .parent()
                .map_or(Ok(()), std::fs::create_dir_all)
                .and_then(|()| {
                    std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(&path)
                })
                .and_then(|mut file| file.write_all(text.as_bytes()));
            written.map_err(|e| Error::Invalid(format!("cannot write {}: {e}", path.display())))?;
            print(&format!("profile '{name}' added to {}\n", path.display()))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A TOML basic string.
fn toml_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_strings_escape_quotes_and_backslashes() {
        assert_eq!(toml_string(r#"a"b\c"#), r#""a\"b\\c""#);
        let parsed: toml::Table =
            toml::from_str(&format!("x = {}", toml_string("tab\there"))).unwrap();
        assert_eq!(parsed["x"].as_str(), Some("tab\there"));
    }
}
