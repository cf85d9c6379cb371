//! The request headers of a Tencent Cloud API 3.0 call, written once for the Live API and STS:
//! `Content-Type`, `X-TC-Action`, `X-TC-Version`, `X-TC-Timestamp`, `X-TC-Region` (when the call
//! names one), `X-TC-RequestClient`, `Authorization` (TC3-HMAC-SHA256, or `SKIP` for STS's
//! unsigned `AssumeRoleWithWebIdentity`) and `X-TC-Token` for temporary credentials
//! (Tencent Cloud API 3.0 "公共参数" and "签名方法 v3"). The secret headers are marked sensitive.

use reqwest::Url;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderValue};

use super::credentials::keys::Credentials;
use super::sign::{SigningInput, authorization};

/// The body type of every call: API 3.0's POST style with a JSON body.
pub const CONTENT_TYPE_JSON: &str = "application/json";

/// `X-TC-RequestClient`: this exporter and its version.
const REQUEST_CLIENT: &str = concat!("tencent-live-exporter/", env!("CARGO_PKG_VERSION"));

/// One API 3.0 call, as its headers and signature see it.
#[derive(Debug, Clone, Copy)]
pub struct Call<'a> {
    /// The `Host` header the signature covers ([`host_header`] of the endpoint).
    pub host: &'a str,
    /// The signing service (`live`, `sts`).
    pub service: &'a str,
    /// `X-TC-Action`.
    pub action: &'static str,
    /// `X-TC-Version`.
    pub version: &'static str,
    /// `X-TC-Region`, when the API needs one (STS); the Live API's package query takes none.
    pub region: Option<&'a str>,
    /// `X-TC-Timestamp`: Unix seconds, also signed.
    pub timestamp: i64,
    /// The JSON body, whose hash the signature covers.
    pub body: &'a [u8],
}

/// A credential that cannot travel in a header (a byte outside visible ASCII). Names the field,
/// never its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    /// The SecretId (it is part of `Authorization`).
    #[error("the SecretId is not a valid header value")]
    SecretId,
    /// The session token (`X-TC-Token`).
    #[error("the session token is not a valid header value")]
    Token,
}

/// The headers of `call`, signed with `signer`, or with `Authorization: SKIP` when `None`.
pub fn headers(call: &Call<'_>, signer: Option<&Credentials>) -> Result<HeaderMap, HeaderError> {
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE_JSON));
    headers.insert("X-TC-Action", HeaderValue::from_static(call.action));
    headers.insert("X-TC-Version", HeaderValue::from_static(call.version));
    headers.insert("X-TC-Timestamp", HeaderValue::from(call.timestamp));
    if let Some(region) = call.region.and_then(|r| HeaderValue::from_str(r).ok()) {
        headers.insert("X-TC-Region", region);
    }
    headers.insert(
        "X-TC-RequestClient",
        HeaderValue::from_static(REQUEST_CLIENT),
    );
    let auth = match signer {
        Some(c) => {
            if let Some(token) = c.token() {
                let mut token = HeaderValue::from_str(token).map_err(|_| HeaderError::Token)?;
                token.set_sensitive(true);
                headers.insert("X-TC-Token", token);
            }
            authorization(
                &c.secret_id,
                c.key(),
                &SigningInput {
                    host: call.host,
                    content_type: CONTENT_TYPE_JSON,
                    service: call.service,
                    timestamp: call.timestamp,
                    body: call.body,
                },
            )
        }
        None => "SKIP".to_owned(),
    };
    let mut auth = HeaderValue::from_str(&auth).map_err(|_| HeaderError::SecretId)?;
    auth.set_sensitive(true);
    headers.insert(AUTHORIZATION, auth);
    Ok(headers)
}

/// The `Host` header value reqwest sends for a URL: the port only when it is not the default.
pub fn host_header(url: &Url) -> String {
    let host = url.host_str().unwrap_or_default();
    match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use reqwest::Url;
    use reqwest::header::AUTHORIZATION;
    use secrecy::SecretString;

    use super::{Call, HeaderError, headers, host_header};
    use crate::tencent::credentials::keys::Credentials;

    const CALL: Call<'static> = Call {
        host: "sts.tencentcloudapi.com",
        service: "sts",
        action: "AssumeRole",
        version: "2018-08-13",
        region: Some("ap-guangzhou"),
        timestamp: 1_700_000_000,
        body: b"{}",
    };

    #[test]
    fn host_header_keeps_only_non_default_ports() {
        let u = |s: &str| Url::parse(s).unwrap();
        assert_eq!(
            host_header(&u("https://live.tencentcloudapi.com")),
            "live.tencentcloudapi.com"
        );
        assert_eq!(
            host_header(&u("https://live.tencentcloudapi.com:443/")),
            "live.tencentcloudapi.com"
        );
        assert_eq!(host_header(&u("http://127.0.0.1:8080")), "127.0.0.1:8080");
    }

    #[test]
    fn unsigned_calls_say_skip_and_signed_ones_carry_the_token_marked_sensitive() {
        let h = headers(&CALL, None).unwrap();
        assert_eq!(h[AUTHORIZATION], "SKIP");
        assert_eq!(h["X-TC-Region"], "ap-guangzhou");
        assert_eq!(h["X-TC-Timestamp"], "1700000000");
        assert!(!h.contains_key("X-TC-Token"));

        let creds = Credentials {
            token: Some(SecretString::from("tok")),
            ..Credentials::new("AKIDexample", "key")
        };
        let h = headers(
            &Call {
                region: None,
                ..CALL
            },
            Some(&creds),
        )
        .unwrap();
        let auth = h[AUTHORIZATION].to_str().unwrap();
        assert!(
            auth.starts_with("TC3-HMAC-SHA256 Credential=AKIDexample/"),
            "{auth}"
        );
        assert!(h[AUTHORIZATION].is_sensitive() && h["X-TC-Token"].is_sensitive());
        assert!(!h.contains_key("X-TC-Region"));

        let bad = Credentials::new("AKID\nx", "key");
        assert_eq!(
            headers(&CALL, Some(&bad)).unwrap_err(),
            HeaderError::SecretId
        );
    }
}
