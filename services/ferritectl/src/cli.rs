//! The command line: every command, flag and help text. `docs/ferritectl.md` is rendered
//! from these definitions (see [`crate::reference`]), so the help is the reference.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::duration::parse_duration;

/// Help lines are wrapped to this width (clap wraps only with its `wrap_help` feature,
/// which this workspace does not build).
const WIDTH: usize = 100;

/// Wrap each line of `text` longer than [`WIDTH`] at spaces; indented lines (examples,
/// config snippets) stay as written.
pub fn wrap(text: &str) -> String {
    let mut out = String::new();
    for (i, line) in text.split('\n').enumerate() {
        if i > 0 {
            out.push('\n');
        }
        if line.chars().count() <= WIDTH || line.starts_with(' ') {
            out.push_str(line);
            continue;
        }
        let mut width = 0;
        for word in line.split(' ') {
            let n = word.chars().count();
            if width > 0 && width + 1 + n > WIDTH {
                out.push('\n');
                width = 0;
            } else if width > 0 {
                out.push(' ');
                width += 1;
            }
            out.push_str(word);
            width += n;
        }
    }
    out
}

const ABOUT: &str = "Manage a ferrite server: databases, tables, tokens, writes and queries";

const LONG_ABOUT: &str = "\
Manage a ferrite server (or cluster router): databases, tables and tokens through the
management API, line protocol writes, and SQL queries over Flight SQL.

Where ferritectl connects, and with which token, comes from (first match wins):
  1. --host / --token, or the environment variables FERRITE_HOST / FERRITE_TOKEN;
  2. the profile chosen with --profile (FERRITECTL_PROFILE, else \"default\") in the config
     file (--config, else ~/.config/ferrite/config.toml): its host, token or token_file;
  3. the host http://127.0.0.1:8181 and, for a local host (127.0.0.1, localhost, ::1), the
     admin token `ferrite serve` keeps in ~/.ferrite/admin-token.

A config file holds one [[profile]] table per server:

  [[profile]]
  name = \"default\"
  host = \"http://127.0.0.1:8181\"
  token_file = \"~/.ferrite/admin-token\"   # or: token = \"apiv1_...\"
  database = \"sensors\"                    # the default for query and write
  [profile.tls]
  ca = \"/path/ca.pem\"                     # trust this CA too for an https:// host
  insecure = false                        # true skips certificate checks

Management commands (database, table, token) need the admin token; write and query
need a token with write or read permission on the database.

Exit status: 0 on success, 1 when something failed (or a write rejected lines), 2 for a
usage error.";

const AFTER_HELP: &str = "\
Examples:
  ferritectl --token \"$(cat ~/.ferrite/admin-token)\" database list
  ferritectl database create --retention-period 30d sensors
  ferritectl write --database sensors 'cpu,host=a usage=0.5'
  ferritectl query --database sensors 'SELECT * FROM cpu LIMIT 10'
  ferritectl --profile prod token list --format json";

/// The whole command line.
#[derive(Debug, Parser)]
#[command(
    name = "ferritectl",
    version,
    about = ABOUT,
    long_about = wrap(LONG_ABOUT),
    after_help = AFTER_HELP,
    max_term_width = 100
)]
pub struct Cli {
    /// Connection settings, accepted by every command.
    #[command(flatten, next_help_heading = "Global options")]
    pub global: GlobalArgs,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Flags every command accepts.
#[derive(Debug, Clone, Args)]
pub struct GlobalArgs {
    /// The config file [default: ~/.config/ferrite/config.toml]
    #[arg(
        long,
        global = true,
        value_name = "PATH",
        env = "FERRITECTL_CONFIG",
        hide_env_values = true
    )]
    pub config: Option<PathBuf>,

    /// The profile of the config file to use [default: default]
    #[arg(
        long,
        global = true,
        value_name = "NAME",
        env = "FERRITECTL_PROFILE",
        hide_env_values = true
    )]
    pub profile: Option<String>,

    /// The server's URL, overriding the profile's [default: http://127.0.0.1:8181]
    #[arg(
        long,
        global = true,
        value_name = "URL",
        env = "FERRITE_HOST",
        hide_env_values = true
    )]
    pub host: Option<String>,

    /// The token to send, overriding the profile's
    #[arg(
        long,
        global = true,
        value_name = "TOKEN",
        env = "FERRITE_TOKEN",
        hide_env_values = true
    )]
    pub token: Option<String>,

    /// How long to wait for each HTTP answer and for a query's first answer (30s, 1m, 2h)
    #[arg(long, global = true, value_name = "DURATION", default_value = "1m", value_parser = parse_timeout)]
    pub timeout: Duration,
}

fn parse_timeout(text: &str) -> Result<Duration, String> {
    match parse_duration(text) {
        Ok(d) if d.is_zero() => Err("the timeout must be longer than 0".to_string()),
        Ok(d) => Ok(d),
        Err(e) => Err(e.to_string()),
    }
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create, list, update, delete, rename and undelete databases
    #[command(
        subcommand,
        long_about = wrap("Create, list, update, delete, rename and undelete databases. Every \
                      database command needs the admin token."),
        after_help = "Examples:\n  ferritectl database create --retention-period 30d sensors\n  \
                      ferritectl database list --format json"
    )]
    Database(DatabaseCommand),

    /// Create, list, delete, rename and undelete the tables of a database
    #[command(
        subcommand,
        long_about = wrap("Create, list, delete, rename and undelete the tables of a database. Writes \
                      create tables too; these commands manage them explicitly. Every table \
                      command needs the admin token."),
        after_help = "Examples:\n  ferritectl table list sensors\n  ferritectl table delete --force \
                      sensors cpu_old"
    )]
    Table(TableCommand),

    /// Show partitions' files by compaction level; clear the compactor's skips
    #[command(
        subcommand,
        long_about = wrap("Show the partitions that hold files: how many files, rows and bytes at \
                      each compaction level (0: as persisted by the ingesters; 1 and 2: \
                      compacted), and the partitions the compactor skips with the reason. \
                      Every partition command needs the admin token."),
        after_help = "Examples:\n  ferritectl partition list --database sensors\n  ferritectl \
                      partition list --skipped\n  ferritectl partition unskip 42"
    )]
    Partition(PartitionCommand),

    /// Create, list and delete last-value and distinct-value caches
    #[command(
        subcommand,
        long_about = wrap("Create, list and delete the last-value and distinct-value caches of a \
                      database's tables. A last-value cache keeps the newest rows of every key \
                      (a combination of tag values); a distinct-value cache keeps every distinct \
                      combination of some tags. Queries read them with the last_cache() and \
                      distinct_cache() table functions. Every cache command needs the admin \
                      token."),
        after_help = "Examples:\n  ferritectl cache create-last --key-columns host --count 1 sensors \
                      cpu\n  ferritectl cache create-distinct --columns region,host sensors cpu\n  \
                      ferritectl query --database sensors \"SELECT * FROM last_cache('cpu')\""
    )]
    Cache(CacheCommand),

    /// Create, list, inspect, update and revoke database tokens
    #[command(
        subcommand,
        long_about = wrap("Create, list, inspect, update and revoke database tokens. A database token \
                      holds read and/or write permissions, each on a named database or on `*` \
                      (every database, present and future). Every token command needs the \
                      admin token."),
        after_help = "Examples:\n  ferritectl token create --read-database sensors --write-database \
                      sensors 'telegraf on host a'\n  ferritectl token list --format json"
    )]
    Token(TokenCommand),

    /// Run a SQL query and print the result
    #[command(
        long_about = wrap("Run a SQL query over Arrow Flight SQL and print the result as a table, \
                      JSON, JSON lines or CSV.\n\nThe query is the QUERY argument; `-` reads it \
                      from standard input and --file reads it from a file. The token needs \
                      read permission on the database."),
        after_help = "Examples:\n  ferritectl query --database sensors 'SELECT count(*) FROM cpu'\n  \
                      ferritectl query --database sensors --format csv --file report.sql > out.csv\n  \
                      echo 'SHOW TABLES' | ferritectl query --database sensors -"
    )]
    Query(QueryArgs),

    /// Write line protocol from an argument, a file or standard input
    #[command(
        long_about = wrap("Write line protocol to a database through /api/v3/write_lp.\n\nThe data is \
                      the LINE_PROTOCOL argument; `-` reads it from standard input and --file \
                      reads it from a file (--file - is standard input too). It is sent in \
                      batches of at most --batch-size lines (and at most 4 MiB), gzipped unless \
                      --no-gzip, several batches at a time. Busy answers (429, 503) are retried \
                      as Retry-After asks; a batch the server finds too large is split.\n\nLines \
                      the server rejects are listed on standard error with their line number in \
                      the input, the line and the reason; the good lines of the same batch are \
                      stored. The server itemizes at most 100 rejected lines per request: when \
                      a batch reaches that, the summary says \"at least\" and names the input \
                      lines concerned. Lines that are not UTF-8 are rejected without being sent. \
                      A summary ends the run; the exit status is 1 if any line was rejected or \
                      a batch failed.\n\nA progress bar shows on a terminal for files over 5 MB."),
        after_help = "Examples:\n  ferritectl write --database sensors 'cpu,host=a usage=0.5 \
                      1700000000000000000'\n  ferritectl write --database sensors --precision s \
                      --file metrics.lp\n  gzip -dc metrics.lp.gz | ferritectl write --database \
                      sensors -"
    )]
    Write(WriteArgs),

    /// Create a config file profile, or show the settings in effect
    #[command(
        subcommand,
        long_about = wrap("Create a config file profile, or show which host, token source and database \
                      ferritectl would use and where it found them."),
        after_help = "Examples:\n  ferritectl config init --host http://127.0.0.1:8181 --token-file \
                      ~/.ferrite/admin-token --database sensors\n  ferritectl --profile prod \
                      config show"
    )]
    Config(ConfigCommand),

    /// Print a shell completion script
    #[command(
        long_about = wrap("Print a completion script for bash, zsh, fish, elvish or PowerShell on \
                      standard output."),
        after_help = "Examples:\n  ferritectl completions bash > ~/.local/share/bash-completion/\
                      completions/ferritectl\n  ferritectl completions zsh > \
                      \"${fpath[1]}/_ferritectl\"\n  ferritectl completions fish > \
                      ~/.config/fish/completions/ferritectl.fish"
    )]
    Completions {
        /// The shell
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },

    /// Print this CLI's reference page (docs/ferritectl.md) as Markdown
    #[command(hide = true)]
    MarkdownHelp,
}

/// How a listing is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ListFormat {
    /// Aligned columns for people
    Table,
    /// A JSON array of the API's objects (camelCase fields), for scripts
    Json,
}

/// Which databases or tables a listing shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StatusFilter {
    /// Not deleted
    Active,
    /// Soft-deleted (can be undeleted)
    Deleted,
    /// Both
    All,
}

impl StatusFilter {
    /// The API's `status` query parameter value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Deleted => "deleted",
            Self::All => "all",
        }
    }
}

/// `ferritectl database …`
#[derive(Debug, Subcommand)]
pub enum DatabaseCommand {
    /// Create a database
    #[command(
        long_about = wrap("Create a database. Writes with a token that may write to `*` create \
                      databases too; this command sets their limits up front.\n\nDurations \
                      are a number and a unit (s, m, h, d, w), combinable (1d12h); 0 or \
                      `infinite` keeps data forever."),
        after_help = "Examples:\n  ferritectl database create sensors\n  ferritectl database create \
                      --retention-period 30d --max-tables 1000 sensors\n  ferritectl database \
                      create --template-tag region --template-tag-bucket host,16 \
                      --template-timeformat %Y-%m fleet"
    )]
    Create {
        #[command(flatten)]
        limits: DatabaseLimits,
        #[command(flatten)]
        template: TemplateArgs,
        /// The database's name
        name: String,
    },

    /// List databases
    #[command(
        long_about = wrap("List databases with their id, retention period and limits. \
                      --filter-status deleted shows soft-deleted databases, which `database \
                      undelete` can bring back."),
        after_help = "Examples:\n  ferritectl database list\n  ferritectl database list \
                      --filter-status deleted --format json"
    )]
    List {
        /// Output format
        #[arg(long, value_enum, default_value_t = ListFormat::Table)]
        format: ListFormat,
        /// Which databases to show
        #[arg(long, value_enum, default_value_t = StatusFilter::Active)]
        filter_status: StatusFilter,
    },

    /// Change a database's retention period or limits
    #[command(
        long_about = wrap("Change a database's retention period, table limit or column limit. Only \
                      the flags given change."),
        after_help = "Examples:\n  ferritectl database update --retention-period 90d sensors\n  \
                      ferritectl database update --retention-period infinite sensors"
    )]
    Update {
        #[command(flatten)]
        limits: DatabaseLimits,
        /// The database's name
        name: String,
    },

    /// Delete databases (soft delete: `database undelete` brings one back)
    #[command(
        long_about = wrap("Delete one or more databases. The delete is soft: queries and writes no \
                      longer see the database, and `database undelete` brings it back. Without \
                      --force ferritectl asks for confirmation on a terminal, and refuses when \
                      standard input is not a terminal."),
        after_help = "Examples:\n  ferritectl database delete sensors\n  ferritectl database \
                      delete --force scratch1 scratch2"
    )]
    Delete {
        /// Delete without asking
        #[arg(long)]
        force: bool,
        /// The databases' names
        #[arg(required = true)]
        names: Vec<String>,
    },

    /// Rename a database
    #[command(
        long_about = wrap("Rename a database. Tokens keep their permissions: they hold the database's \
                      id, not its name."),
        after_help = "Example:\n  ferritectl database rename sensors sensors_v1"
    )]
    Rename {
        /// The current name
        old: String,
        /// The new name
        new: String,
    },

    /// Bring back a deleted database
    #[command(
        long_about = wrap("Bring back a soft-deleted database. When several deleted databases share \
                      the name, the most recently deleted one comes back; --id picks another \
                      (`database list --filter-status deleted` shows the ids)."),
        after_help = "Examples:\n  ferritectl database undelete sensors\n  ferritectl database \
                      undelete --id 7 sensors"
    )]
    Undelete {
        /// The id of the deleted database to bring back
        #[arg(long)]
        id: Option<i64>,
        /// The database's name
        name: String,
    },
}

/// Limits of a database, for create and update.
#[derive(Debug, Clone, Args)]
pub struct DatabaseLimits {
    /// How long data is kept (30d, 12h, 1w, 0 or infinite for ever)
    #[arg(long, value_name = "DURATION")]
    pub retention_period: Option<String>,
    /// The most tables the database may hold
    #[arg(long, value_name = "N")]
    pub max_tables: Option<u64>,
    /// The most columns a table may hold
    #[arg(long = "max-columns", value_name = "N")]
    pub max_columns: Option<u64>,
}

/// A custom partition template, for `database create` (its tables' default) and `table
/// create`. Fixed at creation. The key is the tags' values, then the buckets, then the time.
#[derive(Debug, Clone, Default, Args)]
pub struct TemplateArgs {
    /// Partition by this tag's value (repeatable; up to 7 tags and buckets)
    #[arg(long = "template-tag", value_name = "TAG")]
    pub tags: Vec<String>,
    /// Partition by the bucket (of N, 1 to 1000) this tag's value hashes into (repeatable)
    #[arg(long = "template-tag-bucket", value_name = "TAG,N", value_parser = parse_tag_bucket)]
    pub buckets: Vec<(String, u32)>,
    /// Partition by time: %Y-%m-%d (day, the default), %Y-%W (week), %Y-%m (month) or %Y
    #[arg(long = "template-timeformat", value_name = "FORMAT")]
    pub time_format: Option<String>,
}

impl TemplateArgs {
    /// The template as the API takes it (`partitionTemplate`); `None` when no flag is given.
    pub fn to_json(&self) -> Option<serde_json::Value> {
        if self.tags.is_empty() && self.buckets.is_empty() && self.time_format.is_none() {
            return None;
        }
        let mut parts: Vec<serde_json::Value> = self
            .tags
            .iter()
            .map(|t| serde_json::json!({ "tagValue": t }))
            .collect();
        parts.extend(
            self.buckets
                .iter()
                .map(|(t, n)| serde_json::json!({ "tagBucket": { "tag": t, "buckets": n } })),
        );
        if let Some(f) = &self.time_format {
            parts.push(serde_json::json!({ "timeFormat": f }));
        }
        Some(serde_json::Value::Array(parts))
    }
}

fn parse_tag_bucket(s: &str) -> Result<(String, u32), String> {
    let (tag, n) = s
        .rsplit_once(',')
        .ok_or_else(|| format!("'{s}' is not TAG,N (a tag and a number of buckets)"))?;
    let n: u32 = n
        .trim()
        .parse()
        .map_err(|_| format!("'{n}' in '{s}' is not a number of buckets (1 to 1000)"))?;
    if tag.is_empty() {
        return Err(format!("'{s}' names no tag"));
    }
    Ok((tag.to_string(), n))
}

/// `ferritectl partition …`
#[derive(Debug, Subcommand)]
pub enum PartitionCommand {
    /// List partitions with their files per compaction level
    #[command(
        long_about = wrap("List the partitions that hold files, with files, rows and bytes per \
                      compaction level, and the compactor's reason for any it skips. A \
                      partition with many level-0 files is waiting for the compactor; a \
                      skipped one needs an operator (see `partition unskip`)."),
        after_help = "Examples:\n  ferritectl partition list --database sensors --table cpu\n  \
                      ferritectl partition list --skipped --format json"
    )]
    List {
        /// Output format
        #[arg(long, value_enum, default_value_t = ListFormat::Table)]
        format: ListFormat,
        /// Only this database's partitions
        #[arg(long)]
        database: Option<String>,
        /// Only this table's partitions (needs --database)
        #[arg(long, requires = "database")]
        table: Option<String>,
        /// Only partitions the compactor skips
        #[arg(long)]
        skipped: bool,
    },

    /// Let the compactor try a skipped partition again
    #[command(
        long_about = wrap("Clear the compactor's skip record of a partition, once what stopped it \
                      is resolved (a file restored, a larger --compaction-memory-bytes): the \
                      compactor tries it again in its next cycle."),
        after_help = "Example:\n  ferritectl partition unskip 42"
    )]
    Unskip {
        /// The partition id (from `partition list`)
        id: i64,
    },
}

#[derive(Debug, Subcommand)]
pub enum TableCommand {
    /// Create a table
    #[command(
        long_about = wrap("Create an empty table in a database. Its columns come with the first \
                      writes."),
        after_help = "Examples:\n  ferritectl table create sensors cpu\n  ferritectl table create \
                      --template-tag-bucket device,64 sensors readings"
    )]
    Create {
        #[command(flatten)]
        template: TemplateArgs,
        /// The database
        database: String,
        /// The table's name
        table: String,
    },

    /// List the tables of a database
    #[command(
        long_about = wrap("List the tables of a database. --filter-status deleted shows soft-deleted \
                      tables, which `table undelete` can bring back."),
        after_help = "Examples:\n  ferritectl table list sensors\n  ferritectl table list \
                      --filter-status all --format json sensors"
    )]
    List {
        /// Output format
        #[arg(long, value_enum, default_value_t = ListFormat::Table)]
        format: ListFormat,
        /// Which tables to show
        #[arg(long, value_enum, default_value_t = StatusFilter::Active)]
        filter_status: StatusFilter,
        /// The database
        database: String,
    },

    /// Delete a table (soft delete: `table undelete` brings it back)
    #[command(
        long_about = wrap("Delete a table. The delete is soft: `table undelete` brings it back. \
                      Without --force ferritectl asks for confirmation on a terminal, and \
                      refuses when standard input is not a terminal."),
        after_help = "Example:\n  ferritectl table delete --force sensors cpu_old"
    )]
    Delete {
        /// Delete without asking
        #[arg(long)]
        force: bool,
        /// The database
        database: String,
        /// The table
        table: String,
    },

    /// Bring back a deleted table
    #[command(
        long_about = wrap("Bring back a soft-deleted table. When several deleted tables share the \
                      name, the most recently deleted one comes back; --id picks another \
                      (`table list --filter-status deleted` shows the ids)."),
        after_help = "Example:\n  ferritectl table undelete sensors cpu"
    )]
    Undelete {
        /// The id of the deleted table to bring back
        #[arg(long)]
        id: Option<i64>,
        /// The database
        database: String,
        /// The table's name
        table: String,
    },

    /// Rename a table
    #[command(
        long_about = wrap("Rename a table of a database."),
        after_help = "Example:\n  ferritectl table rename sensors cpu cpu_v1"
    )]
    Rename {
        /// The database
        database: String,
        /// The current name
        old: String,
        /// The new name
        new: String,
    },
}

/// The `cache` commands.
#[derive(Debug, Subcommand)]
pub enum CacheCommand {
    /// Create a last-value cache on a table
    #[command(
        long_about = wrap("Create a last-value cache: for every distinct combination of the key \
                      columns (tags), the newest --count rows of the value columns, `time` \
                      always among them. Rows not replaced within --ttl are dropped. The table \
                      must exist with the columns named. Rows written before the cache exists \
                      are in it if they are still in an ingester's memory."),
        after_help = "Examples:\n  ferritectl cache create-last sensors cpu\n  ferritectl cache \
                      create-last --key-columns region,host --value-columns usage_user --count 5 \
                      --ttl 1h sensors cpu"
    )]
    CreateLast {
        /// The cache's name [default: <table>_<key columns>_last_cache]
        #[arg(long)]
        name: Option<String>,
        /// Comma-separated tag columns that identify a key [default: every tag of the table]
        #[arg(long, value_delimiter = ',')]
        key_columns: Option<Vec<String>>,
        /// Comma-separated columns to keep per row [default: every other column]
        #[arg(long, value_delimiter = ',')]
        value_columns: Option<Vec<String>>,
        /// Rows kept per key, 1 to 10 [default: 1]
        #[arg(long)]
        count: Option<usize>,
        /// How long a row stays without a newer one (`30s`, `4h`) [default: 4h]
        #[arg(long)]
        ttl: Option<String>,
        /// The database
        database: String,
        /// The table
        table: String,
    },

    /// Create a distinct-value cache on a table
    #[command(
        long_about = wrap("Create a distinct-value cache: every distinct combination of the \
                      columns (tags) seen, up to --max-cardinality (the least recently seen go \
                      first); a combination not seen within --max-age is dropped."),
        after_help = "Example:\n  ferritectl cache create-distinct --columns region,host \
                      --max-cardinality 10000 sensors cpu"
    )]
    CreateDistinct {
        /// The cache's name [default: <table>_<columns>_distinct_cache]
        #[arg(long)]
        name: Option<String>,
        /// Comma-separated tag columns
        #[arg(long, value_delimiter = ',', required = true)]
        columns: Vec<String>,
        /// The most combinations kept [default: 100000]
        #[arg(long)]
        max_cardinality: Option<usize>,
        /// How long a combination stays without being seen again (`1h`, `7d`) [default: 1d]
        #[arg(long)]
        max_age: Option<String>,
        /// The database
        database: String,
        /// The table
        table: String,
    },

    /// List the caches of a database
    #[command(
        long_about = wrap("List the last-value and distinct-value caches of a database's tables."),
        after_help = "Example:\n  ferritectl cache list --format json sensors"
    )]
    List {
        /// Output format
        #[arg(long, value_enum, default_value_t = ListFormat::Table)]
        format: ListFormat,
        /// The database
        database: String,
    },

    /// Delete a cache
    #[command(
        long_about = wrap("Delete a last-value or distinct-value cache. Its rows are gone at once; \
                      creating it again starts empty."),
        after_help = "Example:\n  ferritectl cache delete sensors cpu last cpu_host_last_cache"
    )]
    Delete {
        /// The database
        database: String,
        /// The table
        table: String,
        /// The kind of cache
        #[arg(value_enum)]
        kind: CacheKindArg,
        /// The cache's name
        name: String,
    },
}

/// `last` or `distinct`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CacheKindArg {
    /// A last-value cache
    Last,
    /// A distinct-value cache
    Distinct,
}

impl CacheKindArg {
    /// As the API spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Last => "last",
            Self::Distinct => "distinct",
        }
    }
}

/// How one object (a token) is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ObjectFormat {
    /// One field per line, for people
    Table,
    /// The API's object (camelCase fields), for scripts
    Json,
}

/// The order of `token list`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TokenSort {
    /// By id
    Id,
    /// By description
    Description,
    /// By creation time, oldest first
    Created,
}

/// Permissions given on the command line.
#[derive(Debug, Clone, Args)]
pub struct PermissionArgs {
    /// Grant read on this database (`*` = every database); repeatable
    #[arg(long = "read-database", value_name = "DB")]
    pub read: Vec<String>,
    /// Grant write on this database (`*` = every database); repeatable
    #[arg(long = "write-database", value_name = "DB")]
    pub write: Vec<String>,
}

/// `ferritectl token …`
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a database token
    #[command(
        long_about = wrap("Create a database token with read and/or write permissions. The secret \
                      (apiv1_…) is printed this once: the server keeps only its hash. A \
                      permission on `*` covers every database, present and future; only write \
                      on `*` lets writes create databases. --expires-in counts from now."),
        after_help = "Examples:\n  ferritectl token create --read-database sensors --write-database \
                      sensors telegraf\n  ferritectl token create --read-database '*' --expires-in \
                      30d 'dashboards'\n  ferritectl token create --write-database sensors \
                      --format json ingest | jq -r .accessToken"
    )]
    Create {
        #[command(flatten)]
        permissions: PermissionArgs,
        /// When the token stops working (RFC 3339, e.g. 2030-01-01T00:00:00Z)
        #[arg(long, value_name = "TIME", conflicts_with = "expires_in")]
        expires_at: Option<String>,
        /// How long the token works from now (30d, 12h, 1w)
        #[arg(long, value_name = "DURATION")]
        expires_in: Option<String>,
        /// Output format
        #[arg(long, value_enum, default_value_t = ObjectFormat::Table)]
        format: ObjectFormat,
        /// What the token is for
        description: String,
    },

    /// List tokens (never their secrets)
    #[command(
        long_about = wrap("List tokens with their permissions, creation and expiry times. Revoked \
                      tokens show with --include-revoked."),
        after_help = "Examples:\n  ferritectl token list\n  ferritectl token list --include-revoked \
                      --sort description --format json"
    )]
    List {
        /// Output format
        #[arg(long, value_enum, default_value_t = ListFormat::Table)]
        format: ListFormat,
        /// Order of the list
        #[arg(long, value_enum, default_value_t = TokenSort::Created)]
        sort: TokenSort,
        /// Show revoked tokens too
        #[arg(long)]
        include_revoked: bool,
    },

    /// Show one token
    #[command(
        long_about = wrap("Show one token's description, permissions and times (never its secret)."),
        after_help = "Example:\n  ferritectl token get --format json 5c1f2a9e-8d1b-4c3e-9f7a-0b6d2e4f1a3c"
    )]
    Get {
        /// Output format
        #[arg(long, value_enum, default_value_t = ObjectFormat::Table)]
        format: ObjectFormat,
        /// The token's id
        id: String,
    },

    /// Change a token's description or permissions
    #[command(
        long_about = wrap("Change a token's description and/or permissions. Permissions given here \
                      replace all of the token's permissions; without --read-database and \
                      --write-database they stay as they are."),
        after_help = "Examples:\n  ferritectl token update --read-database sensors --read-database \
                      logs ID\n  ferritectl token update --description 'grafana (prod)' ID"
    )]
    Update {
        #[command(flatten)]
        permissions: PermissionArgs,
        /// The new description
        #[arg(long)]
        description: Option<String>,
        /// Output format
        #[arg(long, value_enum, default_value_t = ObjectFormat::Table)]
        format: ObjectFormat,
        /// The token's id
        id: String,
    },

    /// Revoke tokens
    #[command(
        alias = "delete",
        long_about = wrap("Revoke one or more tokens. A revoked token stops working on every router \
                      and querier within a second; it stays listed with --include-revoked. \
                      Without --force ferritectl asks for confirmation on a terminal, and \
                      refuses when standard input is not a terminal."),
        after_help = "Example:\n  ferritectl token revoke --force 5c1f2a9e-8d1b-4c3e-9f7a-0b6d2e4f1a3c"
    )]
    Revoke {
        /// Revoke without asking
        #[arg(long)]
        force: bool,
        /// The tokens' ids
        #[arg(required = true)]
        ids: Vec<String>,
    },
}

/// How query results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum QueryFormat {
    /// An aligned text table (the whole result is held in memory)
    Table,
    /// One JSON array of row objects
    Json,
    /// One JSON object per row and line
    Jsonl,
    /// CSV with a header line
    Csv,
}

/// The query language.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Language {
    /// SQL
    Sql,
    /// InfluxQL (a table of iox::measurement, time, GROUP BY tags and values)
    Influxql,
}

/// `ferritectl query …`
#[derive(Debug, Args)]
pub struct QueryArgs {
    /// The database [default: the profile's database]
    #[arg(long, value_name = "DB")]
    pub database: Option<String>,
    /// Output format
    #[arg(long, value_enum, default_value_t = QueryFormat::Table)]
    pub format: QueryFormat,
    /// The query language
    #[arg(long, value_enum, default_value_t = Language::Sql)]
    pub language: Language,
    /// Read the query from this file
    #[arg(long, value_name = "PATH", conflicts_with = "query")]
    pub file: Option<PathBuf>,
    /// The query; `-` reads it from standard input
    #[arg(required_unless_present = "file")]
    pub query: Option<String>,
}

/// Timestamp units of written lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Precision {
    /// Nanoseconds
    Ns,
    /// Microseconds
    Us,
    /// Milliseconds
    Ms,
    /// Seconds
    S,
    /// Guessed per line from the magnitude, as InfluxDB 3 does
    Auto,
}

impl Precision {
    /// The API's `precision` query parameter value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ns => "ns",
            Self::Us => "us",
            Self::Ms => "ms",
            Self::S => "s",
            Self::Auto => "auto",
        }
    }
}

/// `ferritectl write …`
#[derive(Debug, Args)]
pub struct WriteArgs {
    /// The database [default: the profile's database]
    #[arg(long, value_name = "DB")]
    pub database: Option<String>,
    /// Unit of the timestamps in the data
    #[arg(long, value_enum, default_value_t = Precision::Ns)]
    pub precision: Precision,
    /// The most lines in one request
    #[arg(long, value_name = "LINES", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub batch_size: u64,
    /// How many requests may be in flight at once
    #[arg(long, value_name = "N", default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=64))]
    pub concurrency: u64,
    /// Gzip each request (the default)
    #[arg(long, overrides_with = "no_gzip")]
    pub gzip: bool,
    /// Send requests uncompressed
    #[arg(long, overrides_with = "gzip")]
    pub no_gzip: bool,
    /// Read line protocol from this file (`-` = standard input)
    #[arg(long, value_name = "PATH", conflicts_with = "line_protocol")]
    pub file: Option<PathBuf>,
    /// Line protocol to write; `-` reads it from standard input
    #[arg(required_unless_present = "file")]
    pub line_protocol: Option<String>,
}

/// `ferritectl config …`
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Add a profile to the config file
    #[command(
        long_about = wrap("Add a profile (--profile, else \"default\") to the config file (--config, \
                      else ~/.config/ferrite/config.toml), creating the file if needed. The \
                      profile's host is --host (else http://127.0.0.1:8181). A profile of the \
                      same name is not replaced. The token is referred to by file, so the \
                      config file holds no secret."),
        after_help = "Example:\n  ferritectl --profile local config init --host http://127.0.0.1:8181 \
                      --token-file ~/.ferrite/admin-token --database sensors"
    )]
    Init {
        /// A file holding the token
        #[arg(long, value_name = "PATH")]
        token_file: Option<PathBuf>,
        /// The default database for query and write
        #[arg(long, value_name = "DB")]
        database: Option<String>,
    },

    /// Show the settings in effect and where they come from
    #[command(
        long_about = wrap("Show the config file, profile, host, database and token source ferritectl \
                      would use, and where it looked. The token itself is never printed."),
        after_help = "Example:\n  ferritectl --profile prod config show"
    )]
    Show,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn long_lines_wrap_at_spaces_and_indented_ones_stay() {
        let long = "word ".repeat(30);
        let wrapped = wrap(&format!("{}\n  {long}", long.trim_end()));
        let lines: Vec<&str> = wrapped.lines().collect();
        assert_eq!(lines.len(), 3, "{wrapped}");
        assert!(lines.iter().take(2).all(|l| l.len() <= WIDTH));
        assert!(lines[2].len() > WIDTH);
    }

    #[test]
    fn gzip_is_on_unless_turned_off() {
        let parse = |args: &[&str]| {
            let cli = Cli::try_parse_from(args).unwrap();
            match cli.command {
                Command::Write(w) => !w.no_gzip,
                _ => unreachable!(),
            }
        };
        assert!(parse(&["ferritectl", "write", "x"]));
        assert!(!parse(&["ferritectl", "write", "--no-gzip", "x"]));
        assert!(parse(&["ferritectl", "write", "--no-gzip", "--gzip", "x"]));
    }
}
