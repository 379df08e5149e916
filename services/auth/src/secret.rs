//! Token secrets: how they are made, hashed, and read from requests.
//!
//! A secret is `apiv1_` followed by 256 random bits in unpadded URL-safe base64 (the prefix
//! Clustered's tokens carry). Only its SHA-256 is stored: the secrets are random and long, so
//! a fast hash is as good as a slow one here and costs about a microsecond per request.

use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};

/// Prefix of every token ferrite generates.
pub const TOKEN_PREFIX: &str = "apiv1_";

/// Shortest admin token an operator may supply (a generated one has 49 characters).
pub const MIN_SUPPLIED_TOKEN_CHARS: usize = 32;

/// A new random secret: `apiv1_` + 32 random bytes, URL-safe base64.
pub fn generate_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!(
        "{TOKEN_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

/// Hex SHA-256 of a secret: what the catalog stores and what requests are matched on.
pub fn hash_token(secret: &str) -> String {
    Sha256::digest(secret.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The token of an `authorization` value: `Bearer t`, `Token t`, or the password of
/// `Basic base64(user:t)`. `None`: not one of these forms.
pub fn token_from_authorization(value: &str) -> Option<String> {
    let (scheme, rest) = value.trim().split_once(' ')?;
    let rest = rest.trim();
    let token = match scheme.to_ascii_lowercase().as_str() {
        "bearer" | "token" => rest.to_string(),
        "basic" => {
            // arrow-go (Grafana's plugin, the ADBC driver) sends unpadded base64; Java and
            // Python pad. Accept both.
            const BASIC: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
                &base64::alphabet::STANDARD,
                base64::engine::GeneralPurposeConfig::new()
                    .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
            );
            let decoded = String::from_utf8(BASIC.decode(rest).ok()?).ok()?;
            decoded.split_once(':')?.1.to_string()
        }
        _ => return None,
    };
    (!token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_come_from_every_authorization_scheme() {
        assert_eq!(token_from_authorization("Bearer t1").as_deref(), Some("t1"));
        assert_eq!(token_from_authorization("Token t2").as_deref(), Some("t2"));
        let basic = base64::engine::general_purpose::STANDARD.encode("user:t3");
        assert_eq!(
            token_from_authorization(&format!("Basic {basic}")).as_deref(),
            Some("t3")
        );
        // Unpadded, as arrow-go's AuthenticateBasicToken sends it.
        let unpadded = base64::engine::general_purpose::STANDARD_NO_PAD.encode("grafana:e2e-token");
        assert_eq!(
            token_from_authorization(&format!("Basic {unpadded}")).as_deref(),
            Some("e2e-token")
        );
        assert_eq!(token_from_authorization("Digest x"), None);
        assert_eq!(token_from_authorization("Bearer"), None);
        assert_eq!(token_from_authorization("Bearer  "), None);
        let no_password = base64::engine::general_purpose::STANDARD.encode("user:");
        assert_eq!(
            token_from_authorization(&format!("Basic {no_password}")),
            None
        );
    }

    #[test]
    fn generated_tokens_are_long_random_and_hash_to_hex() {
        let (a, b) = (generate_token(), generate_token());
        assert_ne!(a, b);
        assert!(a.starts_with(TOKEN_PREFIX));
        assert_eq!(a.len(), TOKEN_PREFIX.len() + 43);
        let h = hash_token(&a);
        assert_eq!(h.len(), 64);
        assert!(h.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(h, hash_token(&a));
        assert_ne!(h, hash_token(&b));
    }
}
