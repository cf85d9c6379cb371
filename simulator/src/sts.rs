//! The simulator's credential services: the CVM metadata service and STS (`AssumeRole`,
//! `AssumeRoleWithWebIdentity`), issuing short-lived credentials that the Live API side accepts,
//! with their token, until they expire.
//!
//! - Metadata: `GET /latest/meta-data/cam/security-credentials/` answers the instance's role name
//!   (404 when none is attached, [`Simulator::attach_instance_role`]); `GET …/<role>` answers
//!   `TmpSecretId`, `TmpSecretKey`, `Token`, `ExpiredTime`, `Expiration`, `Code: "Success"` for the
//!   attached role, 404 for any other.
//! - STS: `POST /` with `X-TC-Action: AssumeRole` (TC3-signed with service `sts`, by permanent or
//!   temporary keys, the latter with their `X-TC-Token`) or `AssumeRoleWithWebIdentity`
//!   (`Authorization: SKIP`, a web identity token registered with [`Simulator::add_oidc_provider`]),
//!   version `2018-08-13`, for a role registered with [`Simulator::add_role`]. Errors have the API's
//!   shape (HTTP 200, `Response.Error`).
//! - Lifetime: the metadata service issues credentials for [`Simulator::set_temporary_lifetime`]
//!   (default 2 h); STS for `DurationSeconds` (default 7200) but never longer than that lifetime.
//! - The Live API accepts temporary credentials, and counts them against the rate limit of the
//!   account their role maps to, until they expire or are revoked
//!   ([`Simulator::revoke_temporary_credentials`]); then, or with a wrong or missing token, it
//!   answers `AuthFailure.TokenFailure`.
//!
//! Expiry runs on tokio's clock (so paused-time tests rotate credentials instantly); `ExpiredTime`
//! is this host's Unix time plus the lifetime, as a client measures it.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::to_bytes;
use axum::extract::{Path as AxumPath, Request, State as AxumState};
use axum::http::{HeaderMap, HeaderName, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use tokio::time::Instant;

use super::{
    MAX_BODY_BYTES, MAX_CLOCK_SKEW_SECS, Served, Simulator, State, constant_time_eq, err,
    error_answer, handle, header_text, new_request_id,
};
use tencent_tc3::{self as sign, SigningInput};

/// The STS version served.
pub const STS_VERSION: &str = "2018-08-13";
/// The STS actions served on `POST /` (any other action goes to the Live API).
pub const STS_ACTIONS: [&str; 2] = ["AssumeRole", "AssumeRoleWithWebIdentity"];
/// Default lifetime of issued credentials.
pub const DEFAULT_TEMPORARY_LIFETIME: Duration = Duration::from_secs(7200);
/// The metadata path the credentials live under.
pub const METADATA_PATH: &str = "/latest/meta-data/cam/security-credentials/";
const TOKEN_FAILURE: &str = "AuthFailure.TokenFailure";

/// A fault of the metadata service, for every request until cleared.
#[derive(Debug, Clone, PartialEq)]
pub enum MetadataFault {
    /// HTTP 503, as when the service is down behind its load balancer.
    Unavailable,
    /// HTTP 200 with a body that is not JSON.
    BadJson,
    /// JSON credentials, but with `Code` `"Failure"`.
    CodeNotSuccess,
}

/// Temporary credentials the simulator issued.
#[derive(Clone)]
pub struct IssuedCredentials {
    /// The temporary SecretId (`TmpSecretId`), `AKIDtmp…`.
    pub secret_id: String,
    /// The temporary SecretKey (`TmpSecretKey`).
    pub secret_key: String,
    /// The session token (`Token`), to be sent as `X-TC-Token` with every call they sign.
    pub token: String,
    /// The (permanent SecretId of the) account whose packages they see.
    pub account: String,
    /// `metadata`, `AssumeRole`, `AssumeRoleWithWebIdentity` or `manual`.
    pub issued_by: &'static str,
    /// When they were issued, on tokio's clock.
    pub issued_at: Instant,
    /// When the Live API stops accepting them, on tokio's clock (`issued_at` + lifetime).
    pub expires_at: Instant,
    /// `ExpiredTime` as answered (Unix seconds).
    pub expired_time: i64,
    /// Revoked ([`Simulator::revoke_temporary_credentials`]): refused before their expiry.
    pub revoked: bool,
}

impl std::fmt::Debug for IssuedCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedCredentials")
            .field("secret_id", &self.secret_id)
            .field("account", &self.account)
            .field("issued_by", &self.issued_by)
            .field("issued_at", &self.issued_at)
            .field("expires_at", &self.expires_at)
            .field("revoked", &self.revoked)
            .finish_non_exhaustive()
    }
}

/// One request to the metadata service or STS, as the simulator saw it.
#[derive(Debug, Clone)]
pub struct CredentialRequest {
    /// Arrival, on tokio's clock.
    pub at: Instant,
    /// `metadata:role-name`, `metadata:credentials`, or the STS action.
    pub service: String,
    /// The SecretId that signed an STS request; `None` when unsigned or unparsable.
    pub signed_by: Option<String>,
    /// The `Authorization` header was exactly `SKIP`.
    pub unsigned: bool,
    /// An `X-TC-Token` header was sent (temporary keys signed it).
    pub had_token: bool,
    /// `X-TC-Region`, when sent.
    pub region: Option<String>,
    /// `ok`, `http_<status>`, `fault:bad_json`, `fault:code` or the error code answered.
    pub outcome: String,
}

/// The credential services' state, inside the simulator's one lock.
pub(super) struct StsState {
    lifetime: Duration,
    issued: Vec<IssuedCredentials>,
    by_id: HashMap<String, usize>,
    /// Role ARN → account.
    roles: HashMap<String, String>,
    /// Role ARN → the ExternalId its trust policy requires (`qcs:ExternalId`).
    external_ids: HashMap<String, String>,
    /// (role name, account).
    instance_role: Option<(String, String)>,
    /// Provider id → the web identity token it accepts.
    oidc: HashMap<String, String>,
    metadata_fault: Option<MetadataFault>,
    sts_fault: Option<&'static str>,
    log: Vec<CredentialRequest>,
}

impl Default for StsState {
    fn default() -> Self {
        StsState {
            lifetime: DEFAULT_TEMPORARY_LIFETIME,
            issued: Vec::new(),
            by_id: HashMap::new(),
            roles: HashMap::new(),
            external_ids: HashMap::new(),
            instance_role: None,
            oidc: HashMap::new(),
            metadata_fault: None,
            sts_fault: None,
            log: Vec::new(),
        }
    }
}

impl StsState {
    /// The Live API's view of a SecretId: `Ok(None)` when it is not a temporary one;
    /// `Ok(Some((account, key)))` when it is, its token matches and it is still valid.
    pub(super) fn resolve(
        &self,
        secret_id: &str,
        token: Option<&str>,
        at: Instant,
    ) -> Result<Option<(String, String)>, (&'static str, String)> {
        let Some(issued) = self.by_id.get(secret_id).and_then(|&i| self.issued.get(i)) else {
            return Ok(None);
        };
        let token_ok =
            token.is_some_and(|t| constant_time_eq(t.as_bytes(), issued.token.as_bytes()));
        if !token_ok {
            return Err((
                TOKEN_FAILURE,
                "The token is missing or does not match the temporary SecretId.".into(),
            ));
        }
        if issued.revoked {
            return Err((TOKEN_FAILURE, "The token has been revoked.".into()));
        }
        if at >= issued.expires_at {
            return Err((TOKEN_FAILURE, "The token has expired.".into()));
        }
        Ok(Some((issued.account.clone(), issued.secret_key.clone())))
    }

    fn issue(
        &mut self,
        account: &str,
        issued_by: &'static str,
        lifetime: Duration,
        at: Instant,
    ) -> IssuedCredentials {
        let compact = || new_request_id().replace('-', "");
        let issued = IssuedCredentials {
            secret_id: format!("AKIDtmp{}", &compact()[..24]),
            secret_key: compact(),
            token: format!("tok{}{}", compact(), compact()),
            account: account.to_owned(),
            issued_by,
            issued_at: at,
            expires_at: at + lifetime,
            expired_time: unix_now() + i64::try_from(lifetime.as_secs()).unwrap_or(i64::MAX / 2),
            revoked: false,
        };
        self.by_id
            .insert(issued.secret_id.clone(), self.issued.len());
        self.issued.push(issued.clone());
        issued
    }
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

fn expiration(expired_time: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(expired_time)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

impl Simulator {
    /// Lifetime of the credentials the metadata service issues, and the longest STS issues.
    pub fn set_temporary_lifetime(&self, lifetime: Duration) {
        self.lock().sts.lifetime = lifetime;
    }

    /// A CAM role that `AssumeRole` / `AssumeRoleWithWebIdentity` can assume; its credentials see
    /// the packages of `account` (a permanent SecretId of [`Self::add_account`]).
    pub fn add_role(&self, role_arn: &str, account: &str) {
        self.lock()
            .sts
            .roles
            .insert(role_arn.to_owned(), account.to_owned());
    }

    /// A CAM role as [`Self::add_role`], whose trust policy also requires `AssumeRole` to send
    /// this `ExternalId` (the `qcs:ExternalId` condition a reseller's customer sets): a request
    /// with none, or another, is refused with `UnauthorizedOperation` (the simulator's choice of
    /// code), whose message never holds either value.
    pub fn add_role_with_external_id(&self, role_arn: &str, account: &str, external_id: &str) {
        let mut state = self.lock();
        state
            .sts
            .roles
            .insert(role_arn.to_owned(), account.to_owned());
        state
            .sts
            .external_ids
            .insert(role_arn.to_owned(), external_id.to_owned());
    }

    /// The role the metadata service serves (the instance's CAM role), seeing `account`'s packages.
    pub fn attach_instance_role(&self, role_name: &str, account: &str) {
        self.lock().sts.instance_role = Some((role_name.to_owned(), account.to_owned()));
    }

    /// An OIDC provider of `AssumeRoleWithWebIdentity` and the one web identity token it accepts
    /// now (calling again replaces it, as when the projected token rotates).
    pub fn add_oidc_provider(&self, provider_id: &str, web_identity_token: &str) {
        self.lock()
            .sts
            .oidc
            .insert(provider_id.to_owned(), web_identity_token.to_owned());
    }

    /// Every metadata request (role name and credentials) is answered with this fault until
    /// cleared with `None`.
    pub fn set_metadata_fault(&self, fault: Option<MetadataFault>) {
        self.lock().sts.metadata_fault = fault;
    }

    /// Every STS request is answered with this error code until cleared.
    pub fn set_sts_fault(&self, code: Option<&'static str>) {
        self.lock().sts.sts_fault = code;
    }

    /// Issues temporary credentials for `account` directly (as if by some other STS client).
    pub fn issue_temporary_credentials(
        &self,
        account: &str,
        lifetime: Duration,
    ) -> IssuedCredentials {
        self.lock()
            .sts
            .issue(account, "manual", lifetime, Instant::now())
    }

    /// Every temporary credential issued so far, oldest first.
    pub fn issued_credentials(&self) -> Vec<IssuedCredentials> {
        self.lock().sts.issued.clone()
    }

    /// Revokes every temporary credential issued so far: the Live API answers their next use with
    /// `AuthFailure.TokenFailure`.
    pub fn revoke_temporary_credentials(&self) {
        for issued in &mut self.lock().sts.issued {
            issued.revoked = true;
        }
    }

    /// Requests to the metadata service and STS, oldest first.
    pub fn credential_requests(&self) -> Vec<CredentialRequest> {
        self.lock().sts.log.clone()
    }
}

/// `POST /`: STS actions to STS, everything else to the Live API.
pub(super) async fn dispatch(served: AxumState<Served>, request: Request) -> Response {
    let action = header_text(request.headers(), &HeaderName::from_static("x-tc-action"));
    if action.is_some_and(|a| STS_ACTIONS.contains(&a.as_str())) {
        sts(served, request).await
    } else {
        handle(served, request).await
    }
}

async fn sts(AxumState(served): AxumState<Served>, request: Request) -> Response {
    let at = Instant::now();
    let (parts, body) = request.into_parts();
    let body = to_bytes(body, MAX_BODY_BYTES).await.ok();
    let headers = &parts.headers;
    let action = header_text(headers, &HeaderName::from_static("x-tc-action")).unwrap_or_default();
    let authorization = header_text(headers, &header::AUTHORIZATION);
    let mut entry = CredentialRequest {
        at,
        service: action.clone(),
        signed_by: authorization
            .as_deref()
            .and_then(sign::parse_authorization)
            .map(|a| a.secret_id),
        unsigned: authorization.as_deref() == Some("SKIP"),
        had_token: headers.contains_key("x-tc-token"),
        region: header_text(headers, &HeaderName::from_static("x-tc-region")),
        outcome: String::new(),
    };
    let request_id = new_request_id();
    let mut state = served.sim.lock();
    let result = sts_answer(
        &mut state,
        &action,
        headers,
        body.as_deref(),
        at,
        unix_now(),
    );
    entry.outcome = match &result {
        Ok(_) => "ok".to_owned(),
        Err(e) => e.code.to_owned(),
    };
    state.sts.log.push(entry);
    drop(state);
    let answer = match result {
        Ok(mut response) => {
            response.insert("RequestId".to_owned(), Value::String(request_id));
            json!({ "Response": response })
        }
        Err(e) => {
            tracing::debug!(code = e.code, message = %e.message, "simulator: STS error answer");
            error_answer(e.code, &e.message, request_id)
        }
    };
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        answer.to_string(),
    )
        .into_response()
}

fn sts_answer(
    state: &mut State,
    action: &str,
    headers: &HeaderMap,
    body: Option<&[u8]>,
    at: Instant,
    now_unix: i64,
) -> Result<Map<String, Value>, super::ApiError> {
    let version = header_text(headers, &HeaderName::from_static("x-tc-version"));
    if version.as_deref() != Some(STS_VERSION) {
        return Err(err(
            "NoSuchVersion",
            format!(
                "The API version `{}` does not exist for action `{action}`.",
                version.unwrap_or_default()
            ),
        ));
    }
    if let Some(code) = state.sts.sts_fault {
        return Err(err(code, format!("Simulated fault: {code}.")));
    }
    let Some(body) = body else {
        return Err(err(
            "InvalidParameter",
            "The request body could not be read.",
        ));
    };
    let Ok(Value::Object(params)) = serde_json::from_slice::<Value>(body) else {
        return Err(err(
            "InvalidParameter",
            "The request body must be a JSON object.",
        ));
    };
    let text = |name: &str| params.get(name).and_then(Value::as_str).map(str::to_owned);
    let Some(role_arn) = text("RoleArn") else {
        return Err(err("MissingParameter", "RoleArn is missing."));
    };
    let session = text("RoleSessionName").unwrap_or_default();
    if !(2..=128).contains(&session.len())
        || !session
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+=,.@-_".contains(c))
    {
        return Err(err(
            "InvalidParameterValue",
            format!("RoleSessionName `{session}` is invalid."),
        ));
    }
    let duration = match params.get("DurationSeconds") {
        None | Some(Value::Null) => 7200,
        Some(v) => match v.as_u64() {
            Some(d @ 1..=43_200) => d,
            _ => {
                return Err(err(
                    "InvalidParameterValue",
                    format!("DurationSeconds `{v}` is invalid; use 1 to 43200."),
                ));
            }
        },
    };

    match action {
        "AssumeRole" => check_signature(state, headers, body, at, now_unix)?,
        _ => {
            if header_text(headers, &header::AUTHORIZATION).as_deref() != Some("SKIP") {
                return Err(err(
                    "AuthFailure.InvalidAuthorization",
                    "AssumeRoleWithWebIdentity is not signed: send `Authorization: SKIP`.",
                ));
            }
            let provider = text("ProviderId").unwrap_or_default();
            let Some(expected) = state.sts.oidc.get(&provider) else {
                return Err(err(
                    "InvalidParameter.ProviderNotExist",
                    format!("The identity provider `{provider}` does not exist."),
                ));
            };
            let token = text("WebIdentityToken").unwrap_or_default();
            if !constant_time_eq(token.as_bytes(), expected.as_bytes()) {
                return Err(err(
                    "InvalidParameter.WebIdentityTokenError",
                    "The web identity token is invalid.",
                ));
            }
        }
    }
    if action == "AssumeRole"
        && let Some(required) = state.sts.external_ids.get(&role_arn)
    {
        let sent = text("ExternalId");
        let matches = sent
            .as_deref()
            .is_some_and(|s| constant_time_eq(s.as_bytes(), required.as_bytes()));
        if !matches {
            let what = if sent.is_some() {
                "does not match"
            } else {
                "is missing"
            };
            return Err(err(
                "UnauthorizedOperation",
                format!(
                    "The trust policy of role `{role_arn}` requires an ExternalId (qcs:ExternalId); the request's {what}."
                ),
            ));
        }
    }
    let Some(account) = state.sts.roles.get(&role_arn).cloned() else {
        return Err(err(
            "ResourceNotFound.RoleNotExist",
            format!("The role `{role_arn}` does not exist."),
        ));
    };
    let lifetime = Duration::from_secs(duration).min(state.sts.lifetime);
    let issued = state.sts.issue(
        &account,
        if action == "AssumeRole" {
            "AssumeRole"
        } else {
            "AssumeRoleWithWebIdentity"
        },
        lifetime,
        at,
    );
    let mut response = Map::new();
    response.insert(
        "Credentials".to_owned(),
        json!({
            "Token": issued.token,
            "TmpSecretId": issued.secret_id,
            "TmpSecretKey": issued.secret_key,
        }),
    );
    response.insert("ExpiredTime".to_owned(), json!(issued.expired_time));
    response.insert(
        "Expiration".to_owned(),
        json!(expiration(issued.expired_time)),
    );
    Ok(response)
}

/// TC3 with service `sts`, by permanent keys or temporary ones with their token.
fn check_signature(
    state: &State,
    headers: &HeaderMap,
    body: &[u8],
    at: Instant,
    now_unix: i64,
) -> Result<(), super::ApiError> {
    let Some(auth) =
        header_text(headers, &header::AUTHORIZATION).and_then(|a| sign::parse_authorization(&a))
    else {
        return Err(err(
            "AuthFailure.InvalidAuthorization",
            "The Authorization header is missing or not TC3-HMAC-SHA256.",
        ));
    };
    let timestamp = header_text(headers, &HeaderName::from_static("x-tc-timestamp"))
        .and_then(|t| t.parse::<i64>().ok())
        .unwrap_or(0);
    let token = header_text(headers, &HeaderName::from_static("x-tc-token"));
    let key = match state.sts.resolve(&auth.secret_id, token.as_deref(), at) {
        Ok(Some((_, key))) => key,
        Ok(None) => match state.accounts.get(&auth.secret_id) {
            Some(account) => account.secret_key.clone(),
            None => {
                return Err(err(
                    "AuthFailure.SecretIdNotFound",
                    "The SecretId is not found.",
                ));
            }
        },
        Err((code, message)) => return Err(err(code, message)),
    };
    if now_unix.abs_diff(timestamp) > MAX_CLOCK_SKEW_SECS {
        return Err(err(
            "AuthFailure.SignatureExpire",
            "The signature timestamp is too far from server time.",
        ));
    }
    let content_type = header_text(headers, &header::CONTENT_TYPE).unwrap_or_default();
    let host = header_text(headers, &header::HOST).unwrap_or_default();
    let expected = sign::signature(
        &key,
        &SigningInput {
            host: &host,
            content_type: &content_type,
            service: "sts",
            timestamp,
            body,
        },
    );
    if auth.service != "sts"
        || auth.date != sign::utc_date(timestamp)
        || !constant_time_eq(expected.as_bytes(), auth.signature.as_bytes())
    {
        return Err(err(
            "AuthFailure.SignatureFailure",
            "The provided credentials could not be validated.",
        ));
    }
    Ok(())
}

/// `GET …/security-credentials/`: the attached role's name.
pub(super) async fn metadata_role_name(AxumState(served): AxumState<Served>) -> Response {
    let mut state = served.sim.lock();
    let (status, body) = match (&state.sts.metadata_fault, &state.sts.instance_role) {
        (Some(MetadataFault::Unavailable), _) => (StatusCode::SERVICE_UNAVAILABLE, String::new()),
        (_, None) => (StatusCode::NOT_FOUND, String::new()),
        (_, Some((role, _))) => (StatusCode::OK, role.clone()),
    };
    log_metadata(&mut state, "metadata:role-name", status, "");
    text_reply(status, body)
}

/// `GET …/security-credentials/<role>`: the role's temporary credentials.
pub(super) async fn metadata_credentials(
    AxumState(served): AxumState<Served>,
    AxumPath(role): AxumPath<String>,
) -> Response {
    let at = Instant::now();
    let mut state = served.sim.lock();
    let fault = state.sts.metadata_fault.clone();
    let attached = state
        .sts
        .instance_role
        .clone()
        .filter(|(name, _)| *name == role);
    let (status, body, outcome) = match (fault, attached) {
        (Some(MetadataFault::Unavailable), _) => {
            (StatusCode::SERVICE_UNAVAILABLE, String::new(), "")
        }
        (_, None) => (
            StatusCode::NOT_FOUND,
            "<html>404 Not Found</html>".into(),
            "",
        ),
        (Some(MetadataFault::BadJson), Some(_)) => (
            StatusCode::OK,
            "<html>Service Unavailable</html>".into(),
            "fault:bad_json",
        ),
        (fault, Some((_, account))) => {
            let lifetime = state.sts.lifetime;
            let issued = state.sts.issue(&account, "metadata", lifetime, at);
            let code = if fault == Some(MetadataFault::CodeNotSuccess) {
                "Failure"
            } else {
                "Success"
            };
            let body = json!({
                "TmpSecretId": issued.secret_id,
                "TmpSecretKey": issued.secret_key,
                "ExpiredTime": issued.expired_time,
                "Expiration": expiration(issued.expired_time),
                "Token": issued.token,
                "Code": code,
            });
            let outcome = if code == "Success" { "" } else { "fault:code" };
            (StatusCode::OK, body.to_string(), outcome)
        }
    };
    log_metadata(&mut state, "metadata:credentials", status, outcome);
    text_reply(status, body)
}

fn log_metadata(state: &mut State, service: &str, status: StatusCode, outcome: &str) {
    let outcome = if !outcome.is_empty() {
        outcome.to_owned()
    } else if status == StatusCode::OK {
        "ok".to_owned()
    } else {
        format!("http_{}", status.as_u16())
    };
    state.sts.log.push(CredentialRequest {
        at: Instant::now(),
        service: service.to_owned(),
        signed_by: None,
        unsigned: false,
        had_token: false,
        region: None,
        outcome,
    });
}

fn text_reply(status: StatusCode, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, "text/plain")], body).into_response()
}

#[cfg(test)]
mod tests;
