//! Who is calling: the admin token (a file, re-read on SIGHUP) and tenant
//! tokens (`exs_<id>_<secret>`, stored as SHA-256 hashes, compared in
//! constant time).
//!
//! Tokens are never logged; only token ids appear in logs and audit events.

use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::RwLock;

use base64::Engine as _;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::model::TenantId;
use crate::private_file::{self, PrivateFileError};
use crate::store::records::TokenRecord;

/// The caller of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// The admin token: may do everything.
    Admin,
    /// A tenant token: its tenant and that tenant's apps only.
    Tenant {
        /// The tenant it acts for.
        tenant_id: TenantId,
        /// Its id (public part of the token).
        token_id: String,
    },
}

impl Principal {
    /// The `actor` of audit events.
    pub fn actor(&self) -> String {
        match self {
            Principal::Admin => "admin".to_owned(),
            Principal::Tenant { token_id, .. } => format!("token:{token_id}"),
        }
    }

    /// Whether this caller may act on `tenant`.
    pub fn may_act_for(&self, tenant: &TenantId) -> bool {
        match self {
            Principal::Admin => true,
            Principal::Tenant { tenant_id, .. } => tenant_id == tenant,
        }
    }

    /// The tenant of a tenant token.
    pub fn tenant(&self) -> Option<&TenantId> {
        match self {
            Principal::Admin => None,
            Principal::Tenant { tenant_id, .. } => Some(tenant_id),
        }
    }
}

/// Why the admin token file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum AdminTokenError {
    /// Reading or creating the file failed.
    #[error("cannot use admin token file {path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file holds no token.
    #[error("admin token file {path} is empty; delete it to have a new token generated")]
    Empty {
        /// The file.
        path: PathBuf,
    },
    /// The token is too short to resist guessing.
    #[error(
        "admin token file {path} holds a token of {chars} characters; at least {MIN_ADMIN_TOKEN_CHARS} are needed: delete the file to have a new token generated, or write a longer random one (e.g. `head -c 32 /dev/urandom | base64`)"
    )]
    TooShort {
        /// The file.
        path: PathBuf,
        /// Characters found.
        chars: usize,
    },
    /// The file is larger than any token.
    #[error(
        "admin token file {path} is larger than {MAX_ADMIN_TOKEN_FILE_BYTES} bytes; it must hold only the token"
    )]
    TooLarge {
        /// The file.
        path: PathBuf,
    },
    /// Not a regular file, or group or others may read it: the rule of key
    /// files ([`crate::private_file`]).
    #[error("admin token file {path} {source}")]
    Access {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        #[source]
        source: PrivateFileError,
    },
}

/// Shortest admin token accepted (SPEC §11.1); a generated one has 43.
pub const MIN_ADMIN_TOKEN_CHARS: usize = 32;
/// Largest admin token file read.
const MAX_ADMIN_TOKEN_FILE_BYTES: u64 = 4096;

/// The admin token's SHA-256, re-read from its file on demand.
pub struct AdminToken {
    path: PathBuf,
    /// `keys.allow_group_readable`: the token file follows the key files' rule.
    allow_group_readable: bool,
    digest: RwLock<[u8; 32]>,
}

impl AdminToken {
    /// Loads the token file, creating it with a random token (mode 0600)
    /// if it does not exist. Returns whether it was created. The file must
    /// be private (as a key file, with `allow_group_readable` as
    /// `keys.allow_group_readable`) and hold at least
    /// [`MIN_ADMIN_TOKEN_CHARS`] characters.
    pub fn load_or_create(
        path: &Path,
        allow_group_readable: bool,
    ) -> Result<(AdminToken, bool), AdminTokenError> {
        let created = match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
        {
            Ok(mut file) => {
                let token = random_token_text()?;
                file.write_all(token.as_bytes())
                    .and_then(|()| file.write_all(b"\n"))
                    .and_then(|()| file.sync_all())
                    .map_err(|source| AdminTokenError::Io {
                        path: path.to_owned(),
                        source,
                    })?;
                true
            }
            Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => false,
            Err(source) => {
                return Err(AdminTokenError::Io {
                    path: path.to_owned(),
                    source,
                });
            }
        };
        let digest = read_digest(path, allow_group_readable)?;
        Ok((
            AdminToken {
                path: path.to_owned(),
                allow_group_readable,
                digest: RwLock::new(digest),
            },
            created,
        ))
    }

    /// Re-reads the file (SIGHUP), with the same rules as at start. On
    /// failure the previous token stays.
    pub fn reload(&self) -> Result<(), AdminTokenError> {
        let digest = read_digest(&self.path, self.allow_group_readable)?;
        *self.digest.write().unwrap_or_else(|p| p.into_inner()) = digest;
        Ok(())
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether `presented` is the admin token (constant time).
    pub fn matches(&self, presented: &str) -> bool {
        let digest = self.digest.read().unwrap_or_else(|p| p.into_inner());
        let presented = sha256(presented.as_bytes());
        bool::from(presented.ct_eq(&*digest))
    }
}

fn read_digest(path: &Path, allow_group_readable: bool) -> Result<[u8; 32], AdminTokenError> {
    let io = |source| AdminTokenError::Io {
        path: path.to_owned(),
        source,
    };
    let access = |source| AdminTokenError::Access {
        path: path.to_owned(),
        source,
    };
    // Check before opening (a FIFO would block), then what was opened.
    private_file::check(&std::fs::metadata(path).map_err(io)?, allow_group_readable)
        .map_err(access)?;
    let file = std::fs::File::open(path).map_err(io)?;
    private_file::check(&file.metadata().map_err(io)?, allow_group_readable).map_err(access)?;
    let mut text = Zeroizing::new(String::new());
    file.take(MAX_ADMIN_TOKEN_FILE_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(io)?;
    if text.len() as u64 > MAX_ADMIN_TOKEN_FILE_BYTES {
        return Err(AdminTokenError::TooLarge {
            path: path.to_owned(),
        });
    }
    let token = text.trim();
    if token.is_empty() {
        return Err(AdminTokenError::Empty {
            path: path.to_owned(),
        });
    }
    let chars = token.chars().count();
    if chars < MIN_ADMIN_TOKEN_CHARS {
        return Err(AdminTokenError::TooShort {
            path: path.to_owned(),
            chars,
        });
    }
    Ok(sha256(token.as_bytes()))
}

/// A newly minted tenant token: the text is shown once, then dropped.
pub struct MintedToken {
    /// Public id (`exs_<id>_…`).
    pub token_id: String,
    /// The whole token; zeroized on drop.
    pub token: Zeroizing<String>,
    /// What the store keeps.
    pub sha256: [u8; 32],
}

/// Mints `exs_<id>_<secret>`: 6 random bytes of id (hex), 32 of secret
/// (base64url).
pub fn mint_token() -> std::io::Result<MintedToken> {
    let mut id = [0u8; 6];
    getrandom::fill(&mut id).map_err(|e| std::io::Error::other(e.to_string()))?;
    let token_id = hex::encode(id);
    let secret = random_token_text().map_err(|e| std::io::Error::other(e.to_string()))?;
    let token = Zeroizing::new(format!("exs_{token_id}_{}", secret.as_str()));
    let sha256 = sha256(token.as_bytes());
    Ok(MintedToken {
        token_id,
        token,
        sha256,
    })
}

/// The token id inside `exs_<id>_<secret>`, if the text has that shape.
pub fn token_id_of(presented: &str) -> Option<&str> {
    let rest = presented.strip_prefix("exs_")?;
    let (id, secret) = rest.split_once('_')?;
    (id.len() == 12 && id.bytes().all(|b| b.is_ascii_hexdigit()) && !secret.is_empty())
        .then_some(id)
}

/// Whether `presented` is the token `record` was minted for (constant time).
pub fn token_matches(record: &TokenRecord, presented: &str) -> bool {
    bool::from(sha256(presented.as_bytes()).ct_eq(&record.token_sha256))
}

/// The bearer token of an `Authorization` header value.
pub fn bearer(header: &str) -> Option<&str> {
    let (scheme, token) = header.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

fn random_token_text() -> Result<Zeroizing<String>, AdminTokenError> {
    let mut bytes = Zeroizing::new([0u8; 32]);
    getrandom::fill(bytes.as_mut()).map_err(|e| AdminTokenError::Io {
        path: PathBuf::new(),
        source: std::io::Error::other(e.to_string()),
    })?;
    Ok(Zeroizing::new(
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes.as_ref()),
    ))
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_tokens_parse_back_to_their_id() {
        let minted = mint_token().unwrap();
        assert!(minted.token.starts_with("exs_"));
        assert_eq!(token_id_of(&minted.token), Some(minted.token_id.as_str()));
        assert_eq!(minted.sha256, sha256(minted.token.as_bytes()));
        for bad in [
            "exs_",
            "exs_abc_x",
            "exs_zzzzzzzzzzzz_x",
            "exs_0123456789ab_",
            "nope",
        ] {
            assert_eq!(token_id_of(bad), None, "{bad}");
        }
    }

    #[test]
    fn bearer_header_parsing() {
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("bearer  abc "), Some("abc"));
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(bearer("Bearer "), None);
        assert_eq!(bearer("Bearer"), None);
    }

    const LONG: &str = "a-replacement-admin-token-of-40-characters";

    #[test]
    fn the_admin_token_file_is_created_private_and_reloaded() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("admin.token");
        let (admin, created) = AdminToken::load_or_create(&path, false).unwrap();
        assert!(created);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let token = std::fs::read_to_string(&path).unwrap();
        assert!(token.trim().len() >= MIN_ADMIN_TOKEN_CHARS);
        assert!(admin.matches(token.trim()));
        assert!(!admin.matches("wrong"));
        std::fs::write(&path, format!("{LONG}\n")).unwrap();
        admin.reload().unwrap();
        assert!(admin.matches(LONG));
        std::fs::write(&path, "  \n").unwrap();
        assert!(matches!(admin.reload(), Err(AdminTokenError::Empty { .. })));
        assert!(admin.matches(LONG), "a bad reload keeps the previous token");
        // An existing file is never replaced, even an unusable one.
        assert!(matches!(
            AdminToken::load_or_create(&path, false),
            Err(AdminTokenError::Empty { .. })
        ));
    }

    /// The token file follows the key files' rule and needs 32 characters,
    /// at start and on reload; a refused reload keeps the previous token.
    #[test]
    fn short_or_readable_token_files_are_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("admin.token");
        let (admin, _) = AdminToken::load_or_create(&path, false).unwrap();
        let original = std::fs::read_to_string(&path).unwrap();

        std::fs::write(&path, "x\n").unwrap();
        let error = admin.reload().unwrap_err();
        assert!(
            matches!(error, AdminTokenError::TooShort { chars: 1, .. }),
            "{error:?}"
        );
        assert!(error.to_string().contains("at least 32"), "{error}");
        std::fs::write(&path, format!("{}\n", &LONG[..31])).unwrap();
        assert!(matches!(
            admin.reload(),
            Err(AdminTokenError::TooShort { chars: 31, .. })
        ));

        std::fs::write(&path, LONG).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let error = admin.reload().unwrap_err();
        assert!(matches!(
            error,
            AdminTokenError::Access {
                source: PrivateFileError::TooOpen { mode: 0o644, .. },
                ..
            }
        ));
        assert!(error.to_string().contains("chmod 600"), "{error}");
        assert!(
            admin.matches(original.trim()),
            "refused reloads keep the old token"
        );
        assert!(matches!(
            AdminToken::load_or_create(&path, false),
            Err(AdminTokenError::Access { .. })
        ));

        // Group access is allowed with keys.allow_group_readable, as for keys.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        assert!(AdminToken::load_or_create(&path, false).is_err());
        let (admin, _) = AdminToken::load_or_create(&path, true).unwrap();
        assert!(admin.matches(LONG));
    }
}
