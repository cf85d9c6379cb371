//! Tencent credential sources from configuration: the SDKs' environment names, profile
//! paths, TKE variables and role ARN shapes, resolved into [`SourceSpec`]s (no I/O but reading
//! the environment map given); and the permission warnings for a file that holds a secret.

use std::collections::BTreeMap;
use std::path::Path;

use reqwest::Url;
use secrecy::{ExposeSecret, SecretString};

use super::{
    CREDENTIAL_SOURCES, ConfigError, ENV_CREDENTIALS_FILE, ENV_SECRET_ID, ENV_SECRET_KEY,
    ENV_TKE_PROVIDER_ID, ENV_TKE_REGION, ENV_TKE_ROLE_ARN, ENV_TKE_WEB_IDENTITY_TOKEN_FILE,
    ENV_TOKEN, RawAccount, base_url, fault, load_raw,
};
use crate::tencent::credentials::{
    self as creds, AssumeRoleSpec, BaseSource, ChainLink, Credentials, OidcSpec,
    STS_DURATION_SECONDS, SecretIdFrom, SecretKeyFrom, SourceSpec,
};

/// The `TENCENTCLOUD_*` keys of `env`, when both the id and the key are set.
pub(super) fn env_credentials(env: &BTreeMap<String, String>) -> Option<Credentials> {
    let id = env
        .get(ENV_SECRET_ID)
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())?;
    let secret = env
        .get(ENV_SECRET_KEY)
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())?;
    Some(Credentials {
        secret_id: id.to_owned(),
        secret_key: SecretString::from(secret.to_owned()),
        token: env
            .get(ENV_TOKEN)
            .map(|t| t.trim())
            .filter(|t| !t.is_empty())
            .map(|t| SecretString::from(t.to_owned())),
    })
}

/// The profile file: `TENCENTCLOUD_CREDENTIALS_FILE`, else `~/.tencentcloud/credentials`.
pub(super) fn profile_file(env: &BTreeMap<String, String>) -> Result<std::path::PathBuf, String> {
    if let Some(file) = env
        .get(ENV_CREDENTIALS_FILE)
        .filter(|f| !f.trim().is_empty())
    {
        return Ok(file.trim().into());
    }
    match env.get("HOME").filter(|h| !h.trim().is_empty()) {
        Some(home) => Ok(Path::new(home.trim())
            .join(".tencentcloud")
            .join("credentials")),
        None => Err(format!(
            "no credentials file: neither {ENV_CREDENTIALS_FILE} nor HOME is set"
        )),
    }
}

/// TKE pod identity from `env`, or the names of the variables that are missing.
pub(super) fn oidc_spec(
    env: &BTreeMap<String, String>,
    session_name: &str,
    sts_endpoint: &Url,
) -> Result<OidcSpec, String> {
    let names = [
        ENV_TKE_REGION,
        ENV_TKE_PROVIDER_ID,
        ENV_TKE_WEB_IDENTITY_TOKEN_FILE,
        ENV_TKE_ROLE_ARN,
    ];
    let values: Vec<Option<&str>> = names
        .iter()
        .map(|n| env.get(*n).map(|v| v.trim()).filter(|v| !v.is_empty()))
        .collect();
    let missing: Vec<&str> = names
        .iter()
        .zip(&values)
        .filter(|(_, v)| v.is_none())
        .map(|(n, _)| *n)
        .collect();
    match values.as_slice() {
        [
            Some(region),
            Some(provider_id),
            Some(token_file),
            Some(role_arn),
        ] => Ok(OidcSpec {
            region: (*region).to_owned(),
            provider_id: (*provider_id).to_owned(),
            token_file: (*token_file).into(),
            role_arn: (*role_arn).to_owned(),
            session_name: session_name.to_owned(),
            sts_endpoint: sts_endpoint.clone(),
        }),
        _ => Err(format!("{} not set", missing.join(", "))),
    }
}

/// Role names, session names: letters, digits and `+=,.@-_`.
pub(super) fn name_chars_ok(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "+=,.@-_".contains(c))
}

/// Validates where one account's credentials come from, as data: no cache is built and no
/// service asked. Secrets stay wrapped; files named here are read once now, so that a missing or
/// empty one is refused at start, not at the first poll.
pub(super) fn account_credentials(
    key: &str,
    name: &str,
    a: RawAccount,
    env: &BTreeMap<String, String>,
) -> Result<SourceSpec, ConfigError> {
    let k = |sub: &str| format!("{key}.{sub}");
    let static_keys = [
        ("secret_id", a.secret_id.is_some()),
        ("secret_key", a.secret_key.is_some()),
        ("secret_id_file", a.secret_id_file.is_some()),
        ("secret_key_file", a.secret_key_file.is_some()),
    ];
    let first_static_key = static_keys.iter().find(|(_, set)| *set).map(|(n, _)| *n);
    let kind = match a.credentials.as_deref().map(str::trim) {
        None if first_static_key.is_some() => "static",
        None => "chain",
        Some(kind) => CREDENTIAL_SOURCES
            .into_iter()
            .find(|s| *s == kind)
            .ok_or_else(|| {
                fault(
                    &k("credentials"),
                    format!("{kind:?} is not one of {}", CREDENTIAL_SOURCES.join(", ")),
                )
            })?,
    };
    let only_with = |sub: &str, sources: &str| {
        fault(
            &k(sub),
            format!(
                "only used with credentials = {sources}; account {name:?} has credentials = {kind:?}"
            ),
        )
    };
    if let Some(sub) = first_static_key.filter(|_| kind != "static") {
        return Err(only_with(sub, "\"static\""));
    }
    if a.profile.is_some() && !matches!(kind, "profile" | "chain") {
        return Err(only_with("profile", "\"profile\" or \"chain\""));
    }
    for (sub, set) in [
        ("role", a.role.is_some()),
        ("metadata_endpoint", a.metadata_endpoint.is_some()),
    ] {
        if set && !matches!(kind, "cvm_role" | "chain") {
            return Err(only_with(sub, "\"cvm_role\" or \"chain\""));
        }
    }

    let sts_endpoint = base_url(
        &k("sts_endpoint"),
        a.sts_endpoint
            .as_deref()
            .unwrap_or(creds::DEFAULT_STS_ENDPOINT),
        "STS is POSTed to /",
    )?;
    let session_name = a
        .role_session_name
        .as_deref()
        .map(str::trim)
        .unwrap_or(creds::DEFAULT_ROLE_SESSION_NAME)
        .to_owned();
    if !(2..=128).contains(&session_name.len()) || !name_chars_ok(&session_name) {
        return Err(fault(
            &k("role_session_name"),
            format!("{session_name:?}: 2 to 128 letters, digits or +=,.@-_"),
        ));
    }
    // The value is never quoted in an error: it is a secret.
    let external_id = match a.external_id.as_ref().map(|e| e.expose_secret().trim()) {
        None => None,
        Some(id) if creds::ExternalId::is_valid(id) => {
            Some(creds::ExternalId(SecretString::from(id.to_owned())))
        }
        Some(id) => {
            return Err(fault(
                &k("external_id"),
                format!(
                    "is not an STS ExternalId: 2 to 128 letters, digits or _+=,.@:/- (this one has {} characters; its value is not shown)",
                    id.chars().count()
                ),
            ));
        }
    };
    let assume_role = match a.role_arn.as_deref().map(str::trim) {
        None => None,
        Some(arn) if arn.starts_with("qcs::cam::") && !arn.contains(char::is_whitespace) => {
            Some(AssumeRoleSpec {
                role_arn: arn.to_owned(),
                session_name: session_name.clone(),
                sts_endpoint: sts_endpoint.clone(),
                duration_seconds: STS_DURATION_SECONDS,
                external_id,
            })
        }
        Some(arn) => {
            return Err(fault(
                &k("role_arn"),
                format!(
                    "{arn:?} is not a role ARN like qcs::cam::uin/100000000001:roleName/live-readonly"
                ),
            ));
        }
    };
    if assume_role.is_none() && a.external_id.is_some() {
        return Err(fault(
            &k("external_id"),
            format!(
                "is sent only with AssumeRole: set role_arn too (account {name:?} has no role_arn)"
            ),
        ));
    }
    if assume_role.is_none() && !matches!(kind, "oidc" | "chain") {
        for (sub, set) in [
            ("role_session_name", a.role_session_name.is_some()),
            ("sts_endpoint", a.sts_endpoint.is_some()),
        ] {
            if set {
                return Err(fault(
                    &k(sub),
                    format!(
                        "has no effect without role_arn (or credentials = \"oidc\"); account {name:?} has credentials = {kind:?}"
                    ),
                ));
            }
        }
    }
    let profile = a
        .profile
        .as_deref()
        .map(str::trim)
        .unwrap_or(creds::DEFAULT_PROFILE)
        .to_owned();
    if profile.is_empty() || profile.contains(['[', ']']) {
        return Err(fault(
            &k("profile"),
            format!("{profile:?} is not a profile name"),
        ));
    }
    let role = match a.role.as_deref().map(str::trim) {
        None => None,
        Some(role) if name_chars_ok(role) => Some(role.to_owned()),
        Some(role) => {
            return Err(fault(
                &k("role"),
                format!("{role:?} is not a CAM role name (letters, digits, +=,.@-_)"),
            ));
        }
    };
    let metadata_endpoint = base_url(
        &k("metadata_endpoint"),
        a.metadata_endpoint
            .as_deref()
            .unwrap_or(creds::DEFAULT_METADATA_ENDPOINT),
        "the exporter appends /latest/meta-data/cam/security-credentials/",
    )?;
    let no_keys_in_env = || {
        fault(
            key,
            format!(
                "account {name:?} has no secret_id/secret_key, and {ENV_SECRET_ID} / {ENV_SECRET_KEY} are not both set"
            ),
        )
    };

    let base = match kind {
        "static" => static_source(key, name, a.credentials.is_some(), &a)?,
        "env" => BaseSource::Env(env_credentials(env).ok_or_else(no_keys_in_env)?),
        "profile" => {
            let file = profile_file(env).map_err(|e| fault(&k("profile"), e))?;
            creds::read_profile(&file, &profile).map_err(|e| fault(&k("profile"), e))?;
            BaseSource::Profile { file, profile }
        }
        "cvm_role" => BaseSource::CvmRole {
            role,
            metadata_endpoint,
        },
        "oidc" => BaseSource::Oidc(oidc_spec(env, &session_name, &sts_endpoint).map_err(
            |missing| {
                fault(
                    &k("credentials"),
                    format!("account {name:?} has credentials = \"oidc\" (TKE pod identity), but {missing}"),
                )
            },
        )?),
        _ => BaseSource::Chain(vec![
            ChainLink {
                name: "env",
                source: env_credentials(env).map(BaseSource::Env).ok_or_else(|| {
                    format!("{ENV_SECRET_ID} / {ENV_SECRET_KEY} are not both set")
                }),
            },
            ChainLink {
                name: "profile",
                source: profile_file(env).map(|file| BaseSource::Profile { file, profile }),
            },
            ChainLink {
                name: "cvm_role",
                source: Ok(BaseSource::CvmRole {
                    role,
                    metadata_endpoint,
                }),
            },
            ChainLink {
                name: "oidc",
                source: oidc_spec(env, &session_name, &sts_endpoint).map(BaseSource::Oidc),
            },
        ]),
    };
    Ok(SourceSpec { base, assume_role })
}

/// `static`: each half inline or from a file (read now, to refuse a bad one at start).
pub(super) fn static_source(
    key: &str,
    name: &str,
    explicit: bool,
    a: &RawAccount,
) -> Result<BaseSource, ConfigError> {
    let k = |sub: &str| format!("{key}.{sub}");
    let empty = || {
        fault(
            key,
            format!("account {name:?}: secret_id and secret_key must not be empty"),
        )
    };
    let secret_id = match (&a.secret_id, &a.secret_id_file) {
        (Some(_), Some(_)) => {
            return Err(fault(
                &k("secret_id_file"),
                "give secret_id or secret_id_file, not both",
            ));
        }
        (Some(id), None) if id.trim().is_empty() => return Err(empty()),
        // It goes into the Authorization header of every call: anything else would fail every
        // poll with the same error, after --check-config had said "ok".
        (Some(id), None) if !id.trim().chars().all(|c| c.is_ascii_graphic()) => {
            return Err(fault(
                &k("secret_id"),
                format!(
                    "account {name:?}: {:?} holds a character that is not printable ASCII \
                     (a SecretId is like AKID...)",
                    id.trim()
                ),
            ));
        }
        (Some(id), None) => Some(SecretIdFrom::Inline(id.trim().to_owned())),
        (None, Some(file)) => {
            let path = std::path::PathBuf::from(file.trim());
            creds::read_secret_file(&path, "secret_id_file")
                .map_err(|e| fault(&k("secret_id_file"), e))?;
            Some(SecretIdFrom::File(path))
        }
        (None, None) => None,
    };
    let secret_key = match (&a.secret_key, &a.secret_key_file) {
        (Some(_), Some(_)) => {
            return Err(fault(
                &k("secret_key_file"),
                "give secret_key or secret_key_file, not both",
            ));
        }
        (Some(secret), None) if secret.expose_secret().trim().is_empty() => return Err(empty()),
        (Some(secret), None) => Some(SecretKeyFrom::Inline(SecretString::from(
            secret.expose_secret().trim().to_owned(),
        ))),
        (None, Some(file)) => {
            let path = std::path::PathBuf::from(file.trim());
            creds::read_secret_file(&path, "secret_key_file")
                .map_err(|e| fault(&k("secret_key_file"), e))?;
            Some(SecretKeyFrom::File(path))
        }
        (None, None) => None,
    };
    match (secret_id, secret_key) {
        (Some(secret_id), Some(secret_key)) => Ok(BaseSource::Static {
            secret_id,
            secret_key,
        }),
        (None, None) if explicit => Err(fault(
            key,
            format!(
                "account {name:?} has credentials = \"static\" but no secret_id/secret_key (or secret_id_file/secret_key_file)"
            ),
        )),
        _ => Err(fault(
            key,
            format!(
                "account {name:?}: give both secret_id and secret_key (each inline or as a *_file), or neither"
            ),
        )),
    }
}

/// Warnings for `main` to log at start: a configuration file that holds a `secret_key` and that
/// other users can read. Empty when there is nothing to say (or no file, or not on Unix).
pub fn permission_warnings(file: Option<&Path>) -> Vec<String> {
    let Some(file) = file else {
        return Vec::new();
    };
    let Ok(raw) = load_raw(Some(file), BTreeMap::new()) else {
        return Vec::new();
    };
    let holders: Vec<String> = raw
        .accounts
        .unwrap_or_default()
        .iter()
        .filter(|a| a.secret_key.is_some() || a.external_id.is_some())
        .map(|a| format!("{:?}", a.name))
        .collect();
    if holders.is_empty() {
        return Vec::new();
    }
    let mut warnings = Vec::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        if let Ok(meta) = std::fs::metadata(file) {
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o044 != 0 {
                warnings.push(format!(
                    "config file {} holds a secret_key or external_id (account {}) and other users can read it (mode {mode:04o}): \
                     chmod 600 it, or use secret_key_file or another credentials source",
                    file.display(),
                    holders.join(", ")
                ));
            }
        }
    }
    warnings
}
