//! Where ferritectl connects and with which token: flags and environment over the chosen
//! profile of the config file over local defaults.
//!
//! ```text
//!  --host / FERRITE_HOST ─┐                     ┌─ host     (else http://127.0.0.1:8181)
//!  --token / FERRITE_TOKEN┼─► profile in TOML ──┼─ token    (token, token_file, else the local
//!  --profile, --config ───┘   ([[profile]])     │            serve's ~/.ferrite/admin-token)
//!                                               └─ database, tls
//! ```
//!
//! The token is resolved lazily: `completions` and `config` need none, and a missing token
//! is reported with every place that was looked at.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use url::Url;

/// The host when neither flags, environment nor profile name one.
pub const DEFAULT_HOST: &str = "http://127.0.0.1:8181";

/// The profile used when none is named.
pub const DEFAULT_PROFILE: &str = "default";

/// A settings problem, with what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file cannot be read.
    #[error("cannot read the config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The config file is not valid TOML of the expected shape.
    #[error("invalid config file {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The TOML parser's message.
        message: String,
    },
    /// `--profile` names a profile the file lacks.
    #[error(
        "no profile '{name}' in {path} (profiles there: {available}); add a [[profile]] with \
         name = \"{name}\" or pick another with --profile"
    )]
    NoSuchProfile {
        /// The profile asked for.
        name: String,
        /// The config file.
        path: PathBuf,
        /// The profiles it has.
        available: String,
    },
    /// Two profiles share a name.
    #[error("the config file {path} has two profiles named '{name}'")]
    DuplicateProfile {
        /// The name.
        name: String,
        /// The config file.
        path: PathBuf,
    },
    /// The host is not an http:// or https:// URL.
    #[error("invalid host '{host}': {reason} (expected e.g. http://127.0.0.1:8181)")]
    BadHost {
        /// The host as given.
        host: String,
        /// Why it is refused.
        reason: String,
    },
    /// The profile's `token_file` cannot be read.
    #[error("cannot read the token file {path} (token_file of profile '{profile}'): {source}")]
    TokenFile {
        /// The file.
        path: PathBuf,
        /// The profile naming it.
        profile: String,
        /// Why.
        source: std::io::Error,
    },
    /// No token anywhere.
    #[error(
        "no token: {looked}.\nGive one with --token <TOKEN> or FERRITE_TOKEN, or set token or \
         token_file in the profile (`ferritectl config init --token-file PATH` writes one)"
    )]
    NoToken {
        /// Every place that was looked at, and what was found there.
        looked: String,
    },
    /// `query` or `write` without a database.
    #[error("no database: pass --database <DB> or set database = \"<DB>\" in profile '{profile}'")]
    NoDatabase {
        /// The profile in use.
        profile: String,
    },
}

/// The config file: a list of profiles.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// `[[profile]]` tables.
    #[serde(default)]
    pub profile: Vec<Profile>,
}

/// One server and how to reach it.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// What `--profile` calls it.
    pub name: String,
    /// The server's URL.
    pub host: Option<String>,
    /// The token itself.
    pub token: Option<String>,
    /// A file holding the token (relative paths start at the config file's directory).
    pub token_file: Option<PathBuf>,
    /// The default database of `query` and `write`.
    pub database: Option<String>,
    /// TLS settings for an `https://` host.
    #[serde(default)]
    pub tls: TlsConfig,
}

/// TLS settings for an `https://` host.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// A PEM file of CA certificates to trust besides the system's.
    pub ca: Option<PathBuf>,
    /// Skip certificate verification.
    #[serde(default)]
    pub insecure: bool,
}

/// What the command line and environment say (clap merges flags and environment).
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    /// `--config` / `FERRITECTL_CONFIG`.
    pub config: Option<PathBuf>,
    /// `--profile` / `FERRITECTL_PROFILE`.
    pub profile: Option<String>,
    /// `--host` / `FERRITE_HOST`.
    pub host: Option<String>,
    /// `--token` / `FERRITE_TOKEN`.
    pub token: Option<String>,
}

/// The user's directories, explicit so tests need not touch the real ones.
#[derive(Debug, Clone)]
pub struct Dirs {
    /// `$HOME`.
    pub home: Option<PathBuf>,
    /// `$XDG_CONFIG_HOME` or `~/.config`.
    pub config: Option<PathBuf>,
}

impl Dirs {
    /// This user's directories.
    pub fn of_user() -> Self {
        Self {
            home: dirs::home_dir(),
            config: dirs::config_dir(),
        }
    }
}

/// Where the token came from (shown by `config show`, never the token).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSource {
    /// `--token` or `FERRITE_TOKEN`.
    Flag,
    /// The profile's `token`.
    Profile,
    /// The profile's `token_file`.
    File(PathBuf),
    /// The local `ferrite serve`'s admin token file.
    LocalAdmin(PathBuf),
}

impl std::fmt::Display for TokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Flag => write!(f, "--token / FERRITE_TOKEN"),
            Self::Profile => write!(f, "the profile's token"),
            Self::File(p) => write!(f, "the profile's token_file {}", p.display()),
            Self::LocalAdmin(p) => {
                write!(f, "the local ferrite serve's admin token {}", p.display())
            }
        }
    }
}

/// The settings in effect.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The config file consulted (it may not exist).
    pub config_path: Option<PathBuf>,
    /// Whether that file exists.
    pub config_found: bool,
    /// The profile's name.
    pub profile: String,
    /// Whether the profile was found in the file.
    pub profile_found: bool,
    /// The server.
    pub host: Url,
    /// The token and where it came from, or why there is none.
    token: Result<(String, TokenSource), String>,
    /// The default database.
    pub database: Option<String>,
    /// TLS settings.
    pub tls: TlsConfig,
}

impl Settings {
    /// Resolve flags, environment and config file.
    pub fn resolve(overrides: &Overrides, dirs: &Dirs) -> Result<Self, ConfigError> {
        let config_path = overrides.config.clone().or_else(|| {
            dirs.config
                .as_ref()
                .map(|d| d.join("ferrite").join("config.toml"))
        });
        let file = match &config_path {
            // A file named explicitly must exist; the default one may not.
            Some(path) if overrides.config.is_some() || path.exists() => Some(load(path)?),
            _ => None,
        };
        let config_found = file.is_some();
        let profile_name =
            nonempty(overrides.profile.clone()).unwrap_or_else(|| DEFAULT_PROFILE.to_string());
        let profile = match &file {
            Some(file) => pick(file, &profile_name, config_path.as_deref(), overrides)?,
            None if overrides.profile.is_some() && profile_name != DEFAULT_PROFILE => {
                return Err(ConfigError::NoSuchProfile {
                    name: profile_name,
                    path: config_path.unwrap_or_default(),
                    available: "none: the file does not exist".to_string(),
                });
            }
            None => None,
        };
        let profile_found = profile.is_some();
        let profile = profile.unwrap_or_else(|| Profile {
            name: profile_name.clone(),
            ..Profile::default()
        });
        let base = config_path
            .as_deref()
            .and_then(Path::parent)
            .map(Path::to_path_buf);
        let expand = |p: &Path| expand_path(p, dirs.home.as_deref(), base.as_deref());

        let host_text = nonempty(overrides.host.clone())
            .or_else(|| nonempty(profile.host.clone()))
            .unwrap_or_else(|| DEFAULT_HOST.to_string());
        let host = parse_host(&host_text)?;

        let mut looked = vec!["--token and FERRITE_TOKEN are not set".to_string()];
        let token = if let Some(t) = nonempty(overrides.token.clone()) {
            Ok((t, TokenSource::Flag))
        } else if let Some(t) = nonempty(profile.token.clone()) {
            Ok((t, TokenSource::Profile))
        } else if let Some(file) = &profile.token_file {
            let path = expand(file);
            let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::TokenFile {
                path: path.clone(),
                profile: profile.name.clone(),
                source,
            })?;
            Ok((text.trim().to_string(), TokenSource::File(path)))
        } else {
            looked.push(match (&config_path, config_found, profile_found) {
                (None, _, _) => "no config file (no config directory)".to_string(),
                (Some(p), false, _) => format!("no config file at {}", p.display()),
                (Some(p), true, false) => {
                    format!("no profile '{}' in {}", profile.name, p.display())
                }
                (Some(p), true, true) => format!(
                    "profile '{}' in {} has neither token nor token_file",
                    profile.name,
                    p.display()
                ),
            });
            local_admin_token(&host, dirs.home.as_deref(), &mut looked)
        };
        Ok(Self {
            config_path,
            config_found,
            profile: profile.name.clone(),
            profile_found,
            host,
            token,
            database: nonempty(profile.database.clone()),
            tls: TlsConfig {
                ca: profile.tls.ca.as_deref().map(expand),
                insecure: profile.tls.insecure,
            },
        })
    }

    /// The token, or an error saying everywhere ferritectl looked.
    pub fn token(&self) -> Result<&str, ConfigError> {
        match &self.token {
            Ok((t, _)) => Ok(t),
            Err(looked) => Err(ConfigError::NoToken {
                looked: looked.clone(),
            }),
        }
    }

    /// Where the token came from, if there is one.
    pub fn token_source(&self) -> Option<&TokenSource> {
        self.token.as_ref().ok().map(|(_, s)| s)
    }

    /// `--database`, else the profile's.
    pub fn database(&self, flag: Option<&str>) -> Result<String, ConfigError> {
        flag.filter(|d| !d.is_empty())
            .map(str::to_string)
            .or_else(|| self.database.clone())
            .ok_or_else(|| ConfigError::NoDatabase {
                profile: self.profile.clone(),
            })
    }

    /// A description of the settings for `config show`.
    pub fn describe(&self) -> String {
        let mut out = String::new();
        let file = match (&self.config_path, self.config_found) {
            (Some(p), true) => p.display().to_string(),
            (Some(p), false) => format!("{} (does not exist)", p.display()),
            (None, _) => "none".to_string(),
        };
        let _ = writeln!(out, "config file: {file}");
        let found = if self.profile_found {
            ""
        } else {
            " (not in the config file)"
        };
        let _ = writeln!(out, "profile:     {}{found}", self.profile);
        let _ = writeln!(out, "host:        {}", self.host);
        let _ = writeln!(
            out,
            "database:    {}",
            self.database.as_deref().unwrap_or("(none)")
        );
        let token = match &self.token {
            Ok((_, source)) => format!("from {source}"),
            Err(looked) => format!("none ({looked})"),
        };
        let _ = writeln!(out, "token:       {token}");
        if let Some(ca) = &self.tls.ca {
            let _ = writeln!(out, "tls ca:      {}", ca.display());
        }
        if self.tls.insecure {
            let _ = writeln!(out, "tls:         insecure (certificates are not checked)");
        }
        out
    }
}

fn nonempty(s: Option<String>) -> Option<String> {
    s.filter(|s| !s.trim().is_empty())
}

fn load(path: &Path) -> Result<ConfigFile, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    toml::from_str(&text).map_err(|e| ConfigError::Parse {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

fn pick(
    file: &ConfigFile,
    name: &str,
    path: Option<&Path>,
    overrides: &Overrides,
) -> Result<Option<Profile>, ConfigError> {
    let path = path.map(Path::to_path_buf).unwrap_or_default();
    let mut found = file.profile.iter().filter(|p| p.name == name);
    let profile = found.next().cloned();
    if found.next().is_some() {
        return Err(ConfigError::DuplicateProfile {
            name: name.to_string(),
            path,
        });
    }
    // The default profile may be absent (flags suffice); one asked for by name may not.
    if profile.is_none() && overrides.profile.is_some() && name != DEFAULT_PROFILE {
        let names: Vec<&str> = file.profile.iter().map(|p| p.name.as_str()).collect();
        return Err(ConfigError::NoSuchProfile {
            name: name.to_string(),
            path,
            available: if names.is_empty() {
                "none".to_string()
            } else {
                names.join(", ")
            },
        });
    }
    Ok(profile)
}

/// `~/x` from the home directory, a relative path from the config file's directory.
fn expand_path(path: &Path, home: Option<&Path>, base: Option<&Path>) -> PathBuf {
    if let (Ok(rest), Some(home)) = (path.strip_prefix("~"), home) {
        return home.join(rest);
    }
    match base {
        Some(base) if path.is_relative() => base.join(path),
        _ => path.to_path_buf(),
    }
}

/// An http(s) URL; `host:port` alone means `http://host:port`.
pub fn parse_host(text: &str) -> Result<Url, ConfigError> {
    let text = text.trim();
    let with_scheme = if text.contains("://") {
        text.to_string()
    } else {
        format!("http://{text}")
    };
    let bad = |reason: String| ConfigError::BadHost {
        host: text.to_string(),
        reason,
    };
    let url = Url::parse(&with_scheme).map_err(|e| bad(e.to_string()))?;
    match url.scheme() {
        "http" | "https" => {}
        other => return Err(bad(format!("scheme '{other}' is not http or https"))),
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(bad("no host name".to_string()));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad("a host URL takes no query or fragment".to_string()));
    }
    Ok(url)
}

/// `ferrite serve`'s admin token, for a server on this machine.
fn local_admin_token(
    host: &Url,
    home: Option<&Path>,
    looked: &mut Vec<String>,
) -> Result<(String, TokenSource), String> {
    let local = matches!(
        host.host_str(),
        Some("127.0.0.1" | "localhost" | "[::1]" | "::1")
    );
    match home {
        Some(home) if local => {
            let path = home.join(".ferrite").join("admin-token");
            match std::fs::read_to_string(&path) {
                Ok(text) if !text.trim().is_empty() => {
                    return Ok((text.trim().to_string(), TokenSource::LocalAdmin(path)));
                }
                Ok(_) => looked.push(format!("{} is empty", path.display())),
                Err(e) => looked.push(format!("cannot read {}: {e}", path.display())),
            }
        }
        _ if !local => looked.push(format!(
            "{host} is not local, so ~/.ferrite/admin-token does not apply"
        )),
        _ => looked.push("no home directory for ~/.ferrite/admin-token".to_string()),
    }
    Err(looked.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Home {
        dir: tempfile::TempDir,
    }

    impl Home {
        fn new() -> Self {
            Self {
                dir: tempfile::tempdir().unwrap(),
            }
        }

        fn dirs(&self) -> Dirs {
            Dirs {
                home: Some(self.dir.path().to_path_buf()),
                config: Some(self.dir.path().join(".config")),
            }
        }

        fn write(&self, relative: &str, text: &str) -> PathBuf {
            let path = self.dir.path().join(relative);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, text).unwrap();
            path
        }
    }

    #[test]
    fn without_config_the_flags_suffice() {
        let home = Home::new();
        let s = Settings::resolve(
            &Overrides {
                host: Some("http://example.com:9999".into()),
                token: Some("t".into()),
                ..Overrides::default()
            },
            &home.dirs(),
        )
        .unwrap();
        assert_eq!(s.host.as_str(), "http://example.com:9999/");
        assert_eq!(s.token().unwrap(), "t");
        assert_eq!(s.token_source(), Some(&TokenSource::Flag));
    }

    #[test]
    fn the_default_profile_of_the_default_file_is_used() {
        let home = Home::new();
        home.write("secret", "apiv1_abc\n");
        home.write(
            ".config/ferrite/config.toml",
            r#"
            [[profile]]
            name = "default"
            host = "http://10.0.0.1:8181"
            token_file = "~/secret"
            database = "sensors"
            [profile.tls]
            ca = "ca.pem"
            "#,
        );
        let s = Settings::resolve(&Overrides::default(), &home.dirs()).unwrap();
        assert_eq!(s.host.as_str(), "http://10.0.0.1:8181/");
        assert_eq!(s.token().unwrap(), "apiv1_abc");
        assert_eq!(s.database(None).unwrap(), "sensors");
        assert_eq!(s.database(Some("other")).unwrap(), "other");
        assert_eq!(
            s.tls.ca.as_deref(),
            Some(home.dir.path().join(".config/ferrite/ca.pem").as_path()),
            "a relative path starts at the config file's directory"
        );
    }

    #[test]
    fn a_named_profile_wins_and_flags_override_it() {
        let home = Home::new();
        let file = home.write(
            "c.toml",
            r#"
            [[profile]]
            name = "default"
            host = "http://a:1"
            token = "ta"
            [[profile]]
            name = "prod"
            host = "b:2"
            token = "tb"
            "#,
        );
        let mut o = Overrides {
            config: Some(file.clone()),
            profile: Some("prod".into()),
            ..Overrides::default()
        };
        let s = Settings::resolve(&o, &home.dirs()).unwrap();
        assert_eq!((s.host.as_str(), s.token().unwrap()), ("http://b:2/", "tb"));
        o.token = Some("flag".into());
        let s = Settings::resolve(&o, &home.dirs()).unwrap();
        assert_eq!(s.token().unwrap(), "flag");

        o.profile = Some("staging".into());
        let e = Settings::resolve(&o, &home.dirs()).unwrap_err().to_string();
        assert!(
            e.contains("no profile 'staging'") && e.contains("default, prod"),
            "{e}"
        );
    }

    #[test]
    fn a_missing_token_names_every_place_looked() {
        let home = Home::new();
        let s = Settings::resolve(
            &Overrides {
                host: Some("http://db.example.com:8181".into()),
                ..Overrides::default()
            },
            &home.dirs(),
        )
        .unwrap();
        let e = s.token().unwrap_err().to_string();
        assert!(e.contains("FERRITE_TOKEN"), "{e}");
        assert!(e.contains("no config file at"), "{e}");
        assert!(e.contains("is not local"), "{e}");
        assert!(e.contains("--token <TOKEN>"), "{e}");
    }

    #[test]
    fn a_local_host_falls_back_to_the_serve_admin_token() {
        let home = Home::new();
        let path = home.write(".ferrite/admin-token", "local-admin\n");
        let s = Settings::resolve(&Overrides::default(), &home.dirs()).unwrap();
        assert_eq!(s.token().unwrap(), "local-admin");
        assert_eq!(s.token_source(), Some(&TokenSource::LocalAdmin(path)));
    }

    #[test]
    fn an_explicit_config_file_must_exist_and_parse() {
        let home = Home::new();
        let o = Overrides {
            config: Some(home.dir.path().join("nope.toml")),
            ..Overrides::default()
        };
        assert!(matches!(
            Settings::resolve(&o, &home.dirs()),
            Err(ConfigError::Read { .. })
        ));
        let file = home.write("bad.toml", "[[profile]]\nname = \"x\"\nhots = \"typo\"\n");
        let e = Settings::resolve(
            &Overrides {
                config: Some(file),
                ..Overrides::default()
            },
            &home.dirs(),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("hots"), "{e}");
    }

    #[test]
    fn hosts_need_http_or_https() {
        assert_eq!(
            parse_host("localhost:8181").unwrap().as_str(),
            "http://localhost:8181/"
        );
        assert!(parse_host("https://h/prefix").is_ok());
        assert!(parse_host("ftp://h").is_err());
        assert!(parse_host("http://h/?x=1").is_err());
    }
}
