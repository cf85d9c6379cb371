//! Fetching credentials from each source: files, the metadata service, STS.
//!
//! Every error says what was asked and why it failed, never what a secret was: answers are parsed
//! into JSON values and read field by field, so no parser message can quote a key or token.

use std::path::Path;
use std::time::Duration;

use axum::http::Request;
use bytes::Bytes;
use reqwest::Url;
use reqwest::header::HeaderMap;
use secrecy::SecretString;
use serde_json::{Value, json};

use super::{
    AssumeRoleSpec, BaseSource, CredentialError, Credentials, FetchContext, OidcSpec, STS_VERSION,
    SecretIdFrom, SecretKeyFrom, SourceSpec,
};
use crate::clock::unix_seconds;
use crate::tencent::api3::{self, Call, host_header};
use crate::tencent::transport::{Answer, TransportError};

/// Secret and token files are small; a bigger one is not what it should be.
const MAX_FILE_BYTES: u64 = 64 * 1024;
/// The region `AssumeRole` is sent to (as the SDKs' role-ARN provider does).
const ASSUME_ROLE_REGION: &str = "ap-guangzhou";
const SECURITY_CREDENTIALS: &str = "latest/meta-data/cam/security-credentials/";

/// How long fetched credentials may be used.
#[derive(Debug)]
pub(super) enum Validity {
    /// Keys fixed at start.
    Fixed,
    /// Read from files: read again after [`super::FILE_RECHECK`].
    Recheck,
    /// Temporary: this long left (from `ExpiredTime`, measured against this host's clock).
    Expires(Duration),
}

pub(super) struct Fetched {
    pub credentials: Credentials,
    pub validity: Validity,
    /// The source that gave them (the chain's link, or the source itself).
    pub from: &'static str,
}

/// The whole spec: the base source, then `AssumeRole` when configured.
pub(super) async fn fetch(
    spec: &SourceSpec,
    ctx: FetchContext<'_>,
) -> Result<Fetched, CredentialError> {
    let base = fetch_base(&spec.base, ctx)
        .await
        .map_err(|(name, reason)| CredentialError {
            source_name: name,
            reason,
        })?;
    let Some(role) = &spec.assume_role else {
        return Ok(base);
    };
    assume_role(role, &base.credentials, ctx)
        .await
        .map(|(credentials, validity)| Fetched {
            credentials,
            validity,
            from: base.from,
        })
        .map_err(|reason| CredentialError {
            source_name: "role_arn",
            reason: format!(
                "AssumeRole {} with the credentials of {}: {reason}",
                role.role_arn, base.from
            ),
        })
}

type SourceResult = Result<Fetched, (&'static str, String)>;

async fn fetch_base(base: &BaseSource, ctx: FetchContext<'_>) -> SourceResult {
    match base {
        BaseSource::Chain(links) => {
            let mut reasons = Vec::new();
            for link in links {
                let result = match &link.source {
                    Ok(source) => Box::pin(fetch_base(source, ctx)).await,
                    Err(why) => Err((link.name, why.clone())),
                };
                match result {
                    Ok(fetched) => return Ok(fetched),
                    Err((name, reason)) => {
                        tracing::debug!(link = name, "credential chain: {reason}");
                        reasons.push(format!("{name}: {reason}"));
                    }
                }
            }
            Err((
                "chain",
                format!("no source gave credentials ({})", reasons.join("; ")),
            ))
        }
        single => fetch_single(single, ctx)
            .await
            .map_err(|reason| (single.name(), reason)),
    }
}

async fn fetch_single(base: &BaseSource, ctx: FetchContext<'_>) -> Result<Fetched, String> {
    let from = base.name();
    let (credentials, validity) = match base {
        BaseSource::Static {
            secret_id,
            secret_key,
        } => {
            let mut from_file = false;
            let id = match secret_id {
                SecretIdFrom::Inline(id) => id.clone(),
                SecretIdFrom::File(path) => {
                    from_file = true;
                    read_secret_file(path, "secret_id_file")?
                }
            };
            let key = match secret_key {
                SecretKeyFrom::Inline(key) => key.clone(),
                SecretKeyFrom::File(path) => {
                    from_file = true;
                    SecretString::from(read_secret_file(path, "secret_key_file")?)
                }
            };
            let credentials = Credentials {
                secret_id: id,
                secret_key: key,
                token: None,
            };
            let validity = if from_file {
                Validity::Recheck
            } else {
                Validity::Fixed
            };
            (credentials, validity)
        }
        BaseSource::Env(credentials) => (credentials.clone(), Validity::Fixed),
        BaseSource::Profile { file, profile } => (read_profile(file, profile)?, Validity::Recheck),
        BaseSource::CvmRole {
            role,
            metadata_endpoint,
        } => cvm_role(role.as_deref(), metadata_endpoint, ctx).await?,
        BaseSource::Oidc(spec) => oidc(spec, ctx).await?,
        BaseSource::Chain(_) => return Err("a chain cannot be a link of a chain".into()),
    };
    Ok(Fetched {
        credentials,
        validity,
        from,
    })
}

/// A mounted secret: the whole file, surrounding whitespace trimmed, not empty.
pub(crate) fn read_secret_file(path: &Path, key: &str) -> Result<String, String> {
    let text = read_small_file(path).map_err(|e| format!("{key} {}: {e}", path.display()))?;
    let text = text.trim();
    if text.is_empty() {
        return Err(format!("{key} {}: the file is empty", path.display()));
    }
    Ok(text.to_owned())
}

fn read_small_file(path: &Path) -> Result<String, String> {
    let meta = std::fs::metadata(path).map_err(|e| e.to_string())?;
    if !meta.is_file() {
        return Err("not a regular file".into());
    }
    if meta.len() > MAX_FILE_BYTES {
        return Err(format!(
            "{} bytes, more than the {MAX_FILE_BYTES} a key file can be",
            meta.len()
        ));
    }
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    String::from_utf8(bytes).map_err(|_| "not UTF-8 text".to_owned())
}

/// `[profile]` of an INI credentials file: `secret_id` and `secret_key`.
pub(crate) fn read_profile(path: &Path, profile: &str) -> Result<Credentials, String> {
    let text =
        read_small_file(path).map_err(|e| format!("credentials file {}: {e}", path.display()))?;
    let mut in_section = false;
    let mut found = false;
    let (mut id, mut key) = (None, None);
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(rest) = line.strip_prefix('[') {
            let Some(name) = rest.strip_suffix(']') else {
                return Err(format!(
                    "credentials file {}: line {}: a section header must end with ]",
                    path.display(),
                    n + 1
                ));
            };
            in_section = name.trim() == profile;
            found |= in_section;
            continue;
        }
        // Only a line number in this message: a malformed line may hold a key.
        let Some((k, v)) = line.split_once('=') else {
            return Err(format!(
                "credentials file {}: line {} is neither a [section] nor key = value",
                path.display(),
                n + 1
            ));
        };
        if !in_section {
            continue;
        }
        let v = v.trim().trim_matches('"').trim();
        match k.trim().to_ascii_lowercase().as_str() {
            "secret_id" => id = Some(v.to_owned()),
            "secret_key" => key = Some(SecretString::from(v.to_owned())),
            _ => {}
        }
    }
    if !found {
        return Err(format!(
            "credentials file {}: no [{profile}] profile",
            path.display()
        ));
    }
    match (id.filter(|s| !s.is_empty()), key) {
        (Some(secret_id), Some(secret_key)) if !secret_key_is_empty(&secret_key) => {
            Ok(Credentials {
                secret_id,
                secret_key,
                token: None,
            })
        }
        _ => Err(format!(
            "credentials file {}: profile [{profile}] needs both secret_id and secret_key",
            path.display()
        )),
    }
}

fn secret_key_is_empty(key: &SecretString) -> bool {
    use secrecy::ExposeSecret as _;
    key.expose_secret().is_empty()
}

/// The instance role: its name (asked when not configured), then its credentials.
async fn cvm_role(
    role: Option<&str>,
    endpoint: &Url,
    ctx: FetchContext<'_>,
) -> Result<(Credentials, Validity), String> {
    let base = endpoint
        .join(SECURITY_CREDENTIALS)
        .map_err(|e| format!("metadata_endpoint {endpoint}: {e}"))?;
    let role = match role {
        Some(role) => role.to_owned(),
        None => {
            let body = metadata_get(ctx, &base).await.map_err(|e| match e {
                TransportError::Status(404) => format!(
                    "metadata service {base}: HTTP 404: no CAM role is attached to this instance"
                ),
                e => format!("metadata service {base}: {e}"),
            })?;
            let text = String::from_utf8_lossy(&body);
            let name = text.lines().next().unwrap_or_default().trim().to_owned();
            if name.is_empty() || !name.chars().all(role_name_char) {
                return Err(format!(
                    "metadata service {base}: the answer is not a role name; no CAM role is attached to this instance?"
                ));
            }
            name
        }
    };
    let mut url = base.clone();
    url.path_segments_mut()
        .map_err(|()| format!("metadata_endpoint {endpoint} cannot be a base URL"))?
        .pop_if_empty()
        .push(&role);
    let body = metadata_get(ctx, &url).await.map_err(|e| match e {
        TransportError::Status(404) => format!(
            "metadata service {url}: HTTP 404: role {role:?} is not attached to this instance"
        ),
        e => format!("metadata service {url}: {e}"),
    })?;
    let answer: Value = serde_json::from_slice(&body)
        .map_err(|_| format!("metadata service {url}: the answer is not JSON"))?;
    let code = answer.get("Code").and_then(Value::as_str);
    if code != Some("Success") {
        return Err(format!(
            "metadata service {url}: Code is {}, not \"Success\"",
            code.map_or("missing".to_owned(), |c| format!("{c:?}"))
        ));
    }
    temporary(&answer, &answer, "ExpiredTime").map_err(|e| format!("metadata service {url}: {e}"))
}

fn role_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "+=,.@-_".contains(c)
}

/// TmpSecretId / TmpSecretKey / Token from `creds`, `ExpiredTime` (Unix seconds) from `outer`.
fn temporary(
    creds: &Value,
    outer: &Value,
    expired_field: &str,
) -> Result<(Credentials, Validity), String> {
    let text = |name: &str| {
        creds
            .get(name)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| format!("{name} is missing or not a string"))
    };
    let secret_id = text("TmpSecretId")?.to_owned();
    let secret_key = SecretString::from(text("TmpSecretKey")?.to_owned());
    let token = SecretString::from(text("Token")?.to_owned());
    let expired = outer
        .get(expired_field)
        .and_then(Value::as_i64)
        .ok_or_else(|| format!("{expired_field} is missing or not an integer"))?;
    let now = unix_seconds();
    if expired <= now {
        return Err(format!(
            "the credentials given expired already ({expired_field} {expired}, this host's clock says {now})"
        ));
    }
    Ok((
        Credentials {
            secret_id,
            secret_key,
            token: Some(token),
        },
        Validity::Expires(Duration::from_secs((expired - now) as u64)),
    ))
}

/// TKE pod identity: the projected token, exchanged for a role's credentials (unsigned).
async fn oidc(spec: &OidcSpec, ctx: FetchContext<'_>) -> Result<(Credentials, Validity), String> {
    let token = read_secret_file(&spec.token_file, "TKE_WEB_IDENTITY_TOKEN_FILE")?;
    let body = json!({
        "ProviderId": spec.provider_id,
        "WebIdentityToken": token,
        "RoleArn": spec.role_arn,
        "RoleSessionName": spec.session_name,
        "DurationSeconds": super::STS_DURATION_SECONDS,
    });
    sts_call(
        ctx,
        &spec.sts_endpoint,
        "AssumeRoleWithWebIdentity",
        &spec.region,
        &body,
        None,
    )
    .await
    .map_err(|e| format!("AssumeRoleWithWebIdentity {}: {e}", spec.role_arn))
}

/// STS `AssumeRole`, signed with `base`.
async fn assume_role(
    spec: &AssumeRoleSpec,
    base: &Credentials,
    ctx: FetchContext<'_>,
) -> Result<(Credentials, Validity), String> {
    let mut body = json!({
        "RoleArn": spec.role_arn,
        "RoleSessionName": spec.session_name,
        "DurationSeconds": spec.duration_seconds,
    });
    if let (Some(external_id), Some(fields)) = (&spec.external_id, body.as_object_mut()) {
        fields.insert("ExternalId".into(), external_id.expose().into());
    }
    sts_call(
        ctx,
        &spec.sts_endpoint,
        "AssumeRole",
        ASSUME_ROLE_REGION,
        &body,
        Some(base),
    )
    .await
}

/// One STS call: `POST /`, signed with `signer` (service `sts`) or unsigned (`Authorization: SKIP`).
async fn sts_call(
    ctx: FetchContext<'_>,
    endpoint: &Url,
    action: &'static str,
    region: &str,
    body: &Value,
    signer: Option<&Credentials>,
) -> Result<(Credentials, Validity), String> {
    let body = body.to_string().into_bytes();
    let timestamp = unix_seconds();
    let host = host_header(endpoint);
    let headers = api3::headers(
        &Call {
            host: &host,
            service: "sts",
            action,
            version: STS_VERSION,
            region: Some(region),
            timestamp,
            body: &body,
        },
        signer,
    )
    .map_err(|e| e.to_string())?;

    let answer = sts_post(ctx, endpoint, headers, body)
        .await
        .map_err(|e| format!("STS {endpoint}: {e}"))?;
    let answer: Value = serde_json::from_slice(&answer)
        .map_err(|_| format!("STS {endpoint}: the answer is not JSON"))?;
    let response = answer
        .get("Response")
        .ok_or_else(|| format!("STS {endpoint}: the answer has no Response"))?;
    let field = |v: &Value, name: &str| v.get(name).and_then(Value::as_str).map(str::to_owned);
    if let Some(error) = response.get("Error") {
        return Err(format!(
            "STS error {}: {} (RequestId {})",
            field(error, "Code").unwrap_or_else(|| "?".into()),
            field(error, "Message").unwrap_or_default(),
            field(response, "RequestId").unwrap_or_else(|| "-".into()),
        ));
    }
    let creds = response
        .get("Credentials")
        .ok_or_else(|| format!("STS {endpoint}: the answer has no Credentials"))?;
    temporary(creds, response, "ExpiredTime").map_err(|e| format!("STS {endpoint}: {e}"))
}

/// A GET from the CVM metadata service (never through a proxy): the body of a 2xx answer.
async fn metadata_get(ctx: FetchContext<'_>, url: &Url) -> Result<Bytes, TransportError> {
    let request = Request::get(url.as_str()).body(Bytes::new())?;
    ctx.transport
        .exchange(Answer::Metadata, request, ctx.timeout)
        .await
}

/// A POST to STS: the body of a 2xx answer.
async fn sts_post(
    ctx: FetchContext<'_>,
    endpoint: &Url,
    headers: HeaderMap,
    body: Vec<u8>,
) -> Result<Bytes, TransportError> {
    let mut request = Request::post(endpoint.as_str()).body(Bytes::from(body))?;
    *request.headers_mut() = headers;
    ctx.transport
        .exchange(Answer::Sts, request, ctx.timeout)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str, text: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("tle-cred-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn profiles_are_read_from_ini_sections() {
        use secrecy::ExposeSecret as _;
        let path = temp(
            "profile-ok",
            "# comment\n[default]\nsecret_id = AKIDdef\nsecret_key = def-key\n\n[prod]\nsecret_id=AKIDprod\nsecret_key = \"prod-key\"\n",
        );
        let c = read_profile(&path, "prod").unwrap();
        assert_eq!(c.secret_id, "AKIDprod");
        assert_eq!(c.secret_key.expose_secret(), "prod-key");
        let d = read_profile(&path, "default").unwrap();
        assert_eq!(d.secret_id, "AKIDdef");
        let e = read_profile(&path, "staging").unwrap_err();
        assert!(e.contains("no [staging] profile"), "{e}");
        let half = temp("profile-half", "[default]\nsecret_id = AKIDx\n");
        let e = read_profile(&half, "default").unwrap_err();
        assert!(e.contains("needs both"), "{e}");
        let bad = temp("profile-bad", "[default]\nsecret-key-without-equals-sign\n");
        let e = read_profile(&bad, "default").unwrap_err();
        assert!(e.contains("line 2"), "{e}");
        assert!(
            !e.contains("secret-key-without"),
            "never quotes a line: {e}"
        );
        let e = read_profile(Path::new("/nonexistent/tle/credentials"), "default").unwrap_err();
        assert!(e.contains("/nonexistent/tle/credentials"), "{e}");
    }

    #[test]
    fn secret_files_are_trimmed_and_must_not_be_empty() {
        let path = temp("key-ok", "  the-key\n");
        assert_eq!(
            read_secret_file(&path, "secret_key_file").unwrap(),
            "the-key"
        );
        let empty = temp("key-empty", "\n");
        let e = read_secret_file(&empty, "secret_key_file").unwrap_err();
        assert!(e.contains("empty"), "{e}");
        let dir = std::env::temp_dir();
        let e = read_secret_file(&dir, "secret_key_file").unwrap_err();
        assert!(e.contains("not a regular file"), "{e}");
    }

    #[test]
    fn temporary_credentials_are_checked_field_by_field_without_quoting_them() {
        let future = unix_seconds() + 1000;
        let ok = json!({"TmpSecretId": "AKIDtmp", "TmpSecretKey": "tmp-secret", "Token": "tok", "ExpiredTime": future});
        let (c, v) = temporary(&ok, &ok, "ExpiredTime").unwrap();
        assert_eq!(c.secret_id, "AKIDtmp");
        assert!(matches!(v, Validity::Expires(d) if d.as_secs() <= 1000 && d.as_secs() >= 990));
        let bad = json!({"TmpSecretId": "AKIDtmp", "TmpSecretKey": "tmp-secret", "Token": 5, "ExpiredTime": "tok-secret"});
        let e = temporary(&bad, &bad, "ExpiredTime").unwrap_err();
        assert!(e.contains("Token"), "{e}");
        assert!(!e.contains("tmp-secret"), "{e}");
        let past = json!({"TmpSecretId": "AKIDtmp", "TmpSecretKey": "tmp-secret", "Token": "tok", "ExpiredTime": 5});
        let e = temporary(&past, &past, "ExpiredTime").unwrap_err();
        assert!(e.contains("expired already"), "{e}");
    }
}
