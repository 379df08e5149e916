//! Access tokens as the catalog stores them: a hash of the secret, permissions on database
//! ids, an optional expiry, and a revocation time.
//!
//! The secret itself never reaches the catalog: whoever creates a token hashes it first
//! (`ferrite_auth`) and shows it to the user once. Permissions are bound to database ids, so
//! a token for `db` does not open a later database that merely has the same name.

use std::fmt;

use ferrite_model::DatabaseId;

/// What a permission allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Action {
    /// Queries.
    Read,
    /// Writes.
    Write,
}

/// What a permission applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Resource {
    /// Every database, present and future (`*`).
    AllDatabases,
    /// One database, by id.
    Database(DatabaseId),
}

/// One grant of a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Permission {
    /// What it allows.
    pub action: Action,
    /// On what.
    pub resource: Resource,
}

/// A token to register.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewToken {
    /// Public id, shown in listings and used to update or revoke the token.
    pub id: uuid::Uuid,
    /// What the token is for.
    pub description: String,
    /// Hex SHA-256 of the secret.
    pub hash: String,
    /// What it may do.
    pub permissions: Vec<Permission>,
    /// When it stops working, ns since the epoch; `None`: never.
    pub expires_at: Option<i64>,
}

/// A registered token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecord {
    /// Public id.
    pub id: uuid::Uuid,
    /// What the token is for.
    pub description: String,
    /// Hex SHA-256 of the secret.
    pub hash: String,
    /// What it may do.
    pub permissions: Vec<Permission>,
    /// Creation time, ns since the epoch.
    pub created_at: i64,
    /// Expiry, ns since the epoch.
    pub expires_at: Option<i64>,
    /// Revocation time, ns since the epoch.
    pub revoked_at: Option<i64>,
}

/// Changes to a token; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TokenUpdate {
    /// New description.
    pub description: Option<String>,
    /// New permissions, replacing the old ones.
    pub permissions: Option<Vec<Permission>>,
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Action::Read => "read",
            Action::Write => "write",
        })
    }
}

impl Action {
    /// `read` or `write`.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "read" => Some(Self::Read),
            "write" => Some(Self::Write),
            _ => None,
        }
    }
}

/// Permissions as stored: `read:12,write:*`.
pub(crate) fn encode_permissions(permissions: &[Permission]) -> String {
    permissions
        .iter()
        .map(|p| match p.resource {
            Resource::AllDatabases => format!("{}:*", p.action),
            Resource::Database(id) => format!("{}:{}", p.action, id.get()),
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// The stored text form back; the reason when it cannot be read.
pub(crate) fn decode_permissions(text: &str) -> Result<Vec<Permission>, String> {
    text.split(',')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (action, resource) = p
                .split_once(':')
                .ok_or_else(|| format!("permission '{p}' has no ':'"))?;
            let action = Action::parse(action)
                .ok_or_else(|| format!("unknown action '{action}' in permission '{p}'"))?;
            let resource = match resource {
                "*" => Resource::AllDatabases,
                id => Resource::Database(DatabaseId(
                    id.parse()
                        .map_err(|_| format!("bad database id in permission '{p}'"))?,
                )),
            };
            Ok(Permission { action, resource })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permissions_round_trip_through_their_text_form() {
        let permissions = vec![
            Permission {
                action: Action::Read,
                resource: Resource::Database(DatabaseId(12)),
            },
            Permission {
                action: Action::Write,
                resource: Resource::AllDatabases,
            },
        ];
        let text = encode_permissions(&permissions);
        assert_eq!(text, "read:12,write:*");
        assert_eq!(decode_permissions(&text).unwrap(), permissions);
        assert_eq!(decode_permissions("").unwrap(), vec![]);
        assert!(decode_permissions("delete:*").is_err());
        assert!(decode_permissions("read:x").is_err());
    }
}
