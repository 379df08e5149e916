//! Where a process gets the admin token from.
//!
//! - `ferrite serve`: `<data-dir>/admin-token` (mode 0600), created with a new random token
//!   on the first start.
//! - cluster services: a file (`--admin-token-file`, a mounted Kubernetes Secret) or the
//!   `FERRITE_ADMIN_TOKEN` variable. The same token authenticates the services to each other.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, bail};

use crate::secret::{MIN_SUPPLIED_TOKEN_CHARS, generate_token};

/// The token in `path` (surrounding whitespace ignored).
pub fn read_token_file(path: &Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the admin token from {}", path.display()))?;
    checked(text.trim(), &path.display().to_string())
}

/// A supplied token, refused if too short to be safe; `source` names it in the error.
pub fn checked(token: &str, source: &str) -> anyhow::Result<String> {
    if token.chars().count() < MIN_SUPPLIED_TOKEN_CHARS {
        bail!(
            "the admin token from {source} has {} characters; use at least \
             {MIN_SUPPLIED_TOKEN_CHARS} random ones (for example `openssl rand -hex 32`)",
            token.chars().count()
        );
    }
    if !token.bytes().all(|b| b.is_ascii_graphic()) {
        bail!("the admin token from {source} must be printable ASCII without spaces");
    }
    Ok(token.to_string())
}

/// The token in `path`, or a new one written there (mode 0600) when the file does not exist.
/// `true` with a new token.
pub fn load_or_create(path: &Path) -> anyhow::Result<(String, bool)> {
    if path.exists() {
        return Ok((read_token_file(path)?, false));
    }
    let token = generate_token();
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    writeln!(file, "{token}")?;
    file.sync_all()?;
    Ok((token, true))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_admin_token_is_written_once_and_read_back() {
        let dir = std::env::temp_dir().join(format!("ferrite-admin-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("admin-token");
        let (token, created) = load_or_create(&path).unwrap();
        assert!(created);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let (again, created) = load_or_create(&path).unwrap();
        assert!(!created);
        assert_eq!(again, token);
        std::fs::write(&path, "short\n").unwrap();
        let err = load_or_create(&path).unwrap_err().to_string();
        assert!(err.contains("at least 32"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
