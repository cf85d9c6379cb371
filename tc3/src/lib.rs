//! TC3-HMAC-SHA256, the Tencent Cloud API 3.0 request signature, exactly as the official SDKs do
//! it: signing a request ([`authorization`]) and parsing an `Authorization` header back into its
//! fields ([`parse_authorization`]), for the exporter's client and the simulator's check alike.
//!
//! Pure functions over bytes: no clock, no I/O. The caller passes the timestamp so that the
//! official test vectors (see the tests below; the algorithm is in the API 3.0 signing page and
//! the SDKs, summarised in the project's reference notes) pin it down byte for byte.
//!
//! Only `POST /` with the two signed headers `content-type;host` is covered: the one request
//! shape the Live API, STS and the simulator use.
#![warn(missing_docs)]
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::panic
    )
)]

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

type HmacSha256 = Hmac<Sha256>;

/// The parts of a request that the signature covers.
pub struct SigningInput<'a> {
    /// The `Host` header exactly as sent, port included (`127.0.0.1:8080`).
    pub host: &'a str,
    /// The `Content-Type` header value, byte-identical to the one sent.
    pub content_type: &'a str,
    /// The service name: the first label of the API host (`live`).
    pub service: &'a str,
    /// `X-TC-Timestamp`, Unix seconds.
    pub timestamp: i64,
    /// The exact body bytes sent.
    pub body: &'a [u8],
}

/// Lowercase hex of SHA-256 (64 characters): `HashedRequestPayload` and the hash of the
/// canonical request in the string to sign.
pub fn sha256_hex(data: &[u8]) -> String {
    hex(&Sha256::digest(data))
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        // Proof: `b >> 4` and `b & 0xf` of a byte are both below 16, the length of DIGITS.
        #[allow(clippy::indexing_slicing)]
        {
            out.push(DIGITS[(b >> 4) as usize] as char);
            out.push(DIGITS[(b & 0xf) as usize] as char);
        }
    }
    out
}

fn hmac(key: &[u8], msg: &[u8]) -> Vec<u8> {
    // HMAC accepts keys of any length; `new_from_slice` cannot fail for it.
    #[allow(clippy::expect_used)]
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(msg);
    mac.finalize().into_bytes().to_vec()
}

/// The UTC date (`YYYY-MM-DD`) of a Unix timestamp (seconds), as the credential scope wants it.
/// A timestamp outside the `time` crate's date range gives `1970-01-01` (never a panic).
pub fn utc_date(timestamp: i64) -> String {
    let days = timestamp.div_euclid(86_400);
    match time::Date::from_julian_day(2_440_588 + days as i32) {
        Ok(d) => format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day()),
        Err(_) => "1970-01-01".to_owned(),
    }
}

/// The canonical request:
/// `POST\n/\n\ncontent-type:..\nhost:..\n\ncontent-type;host\n<hashed payload>`.
pub fn canonical_request(input: &SigningInput<'_>) -> String {
    format!(
        "POST\n/\n\ncontent-type:{}\nhost:{}\n\ncontent-type;host\n{}",
        input.content_type,
        input.host,
        sha256_hex(input.body)
    )
}

/// The credential scope: `Date/service/tc3_request`, the date being the UTC date of the timestamp.
pub fn credential_scope(input: &SigningInput<'_>) -> String {
    format!(
        "{}/{}/tc3_request",
        utc_date(input.timestamp),
        input.service
    )
}

/// The lowercase hex signature of a request (64 characters): HMAC-SHA256 of the string to sign
/// with the key derived from `TC3` + SecretKey, the date, the service and `tc3_request`.
pub fn signature(secret_key: &str, input: &SigningInput<'_>) -> String {
    let scope = credential_scope(input);
    let string_to_sign = format!(
        "TC3-HMAC-SHA256\n{}\n{}\n{}",
        input.timestamp,
        scope,
        sha256_hex(canonical_request(input).as_bytes())
    );
    let date = utc_date(input.timestamp);
    let k_date = hmac(format!("TC3{secret_key}").as_bytes(), date.as_bytes());
    let k_service = hmac(&k_date, input.service.as_bytes());
    let k_signing = hmac(&k_service, b"tc3_request");
    hex(&hmac(&k_signing, string_to_sign.as_bytes()))
}

/// The full `Authorization` header value:
/// `TC3-HMAC-SHA256 Credential=<SecretId>/<scope>, SignedHeaders=content-type;host, Signature=<hex>`.
pub fn authorization(secret_id: &str, secret_key: &str, input: &SigningInput<'_>) -> String {
    format!(
        "TC3-HMAC-SHA256 Credential={}/{}, SignedHeaders=content-type;host, Signature={}",
        secret_id,
        credential_scope(input),
        signature(secret_key, input)
    )
}

/// The fields of an `Authorization` header, as a server (the simulator) reads them.
#[derive(Debug, PartialEq, Eq)]
pub struct ParsedAuthorization {
    /// The `SecretId` before the first `/` of `Credential`: the key the server looks up.
    pub secret_id: String,
    /// `YYYY-MM-DD` from the credential scope; in a valid request, the UTC date of
    /// `X-TC-Timestamp`.
    pub date: String,
    /// The service from the credential scope (`live`, `sts`); in a valid request, the first
    /// label of the host.
    pub service: String,
    /// `SignedHeaders` as sent; the SDKs and this client send `content-type;host`.
    pub signed_headers: String,
    /// `Signature` as sent (a valid one is 64 lowercase hex digits), for the server to compare
    /// with the one it computes.
    pub signature: String,
}

/// Parses `TC3-HMAC-SHA256 Credential=ID/DATE/SERVICE/tc3_request, SignedHeaders=.., Signature=..`.
///
/// `None` when the scheme is not `TC3-HMAC-SHA256`, a part is not `key=value`, a key is unknown,
/// one of the three is missing, or the credential does not have exactly four `/`-separated
/// parts ending in `tc3_request`. The signature itself is not verified here.
pub fn parse_authorization(header: &str) -> Option<ParsedAuthorization> {
    let rest = header.strip_prefix("TC3-HMAC-SHA256 ")?;
    let (mut credential, mut signed, mut sig) = (None, None, None);
    for part in rest.split(',') {
        let (k, v) = part.trim().split_once('=')?;
        match k {
            "Credential" => credential = Some(v),
            "SignedHeaders" => signed = Some(v),
            "Signature" => sig = Some(v),
            _ => return None,
        }
    }
    let mut c = credential?.split('/');
    let (secret_id, date, service, term) = (c.next()?, c.next()?, c.next()?, c.next()?);
    if term != "tc3_request" || c.next().is_some() {
        return None;
    }
    Some(ParsedAuthorization {
        secret_id: secret_id.to_owned(),
        date: date.to_owned(),
        service: service.to_owned(),
        signed_headers: signed?.to_owned(),
        signature: sig?.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE";
    const KEY: &str = "Gu5t9xGARNpq86cd98joQYCN3EXAMPLE";
    const TS: i64 = 1_551_113_065;

    #[test]
    fn official_cvm_example_from_the_signing_page() {
        let body = br#"{"Limit": 1, "Filters": [{"Values": ["\u672a\u547d\u540d"], "Name": "instance-name"}]}"#;
        let input = SigningInput {
            host: "cvm.tencentcloudapi.com",
            content_type: "application/json; charset=utf-8",
            service: "cvm",
            timestamp: TS,
            body,
        };
        assert_eq!(
            sha256_hex(body),
            "35e9c5b0e3ae67532d3c9f17ead6c90222632e5b1ff7f6e89887f1398934f064"
        );
        assert_eq!(
            sha256_hex(canonical_request(&input).as_bytes()),
            "5ffe6a04c0664d6b969fab9a13bdab201d63ee709638e2749d62a09ca18d7031"
        );
        assert_eq!(credential_scope(&input), "2019-02-25/cvm/tc3_request");
        assert_eq!(
            signature(KEY, &input),
            "72e494ea809ad7a8c8f7a4507b9bddcbaa8e581f516e8da2f66e2c5a96525168"
        );
    }

    fn live(body: &[u8]) -> SigningInput<'_> {
        SigningInput {
            host: "live.tencentcloudapi.com",
            content_type: "application/json",
            service: "live",
            timestamp: TS,
            body,
        }
    }

    #[test]
    fn live_vectors_from_the_python_sdk() {
        assert_eq!(
            signature(KEY, &live(br#"{"PackageType": 0}"#)),
            "3b5cbc2d3bbce4554735c1a3d09777d7874e4d77dea857acbf11ffbe05788b36"
        );
        assert_eq!(
            signature(KEY, &live(br#"{"PackageType":0}"#)),
            "3493a8ec27633ccb5b1d32453b2016fffa8320a19808b93a32e36b43a172f9b2"
        );
    }

    #[test]
    fn authorization_header_round_trips_through_the_parser() {
        let header = authorization(ID, KEY, &live(b"{}"));
        assert!(header.starts_with(
            "TC3-HMAC-SHA256 Credential=AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE/2019-02-25/live/tc3_request, SignedHeaders=content-type;host, Signature="
        ));
        let parsed = parse_authorization(&header).expect("parses");
        assert_eq!(parsed.secret_id, ID);
        assert_eq!(parsed.date, "2019-02-25");
        assert_eq!(parsed.service, "live");
        assert_eq!(parsed.signed_headers, "content-type;host");
        assert_eq!(parsed.signature, signature(KEY, &live(b"{}")));
        assert!(parse_authorization("Basic abc").is_none());
        assert!(
            parse_authorization("TC3-HMAC-SHA256 Credential=a/b/c/x, SignedHeaders=h, Signature=s")
                .is_none()
        );
    }

    #[test]
    fn utc_date_handles_day_boundaries_and_pre_epoch() {
        assert_eq!(utc_date(0), "1970-01-01");
        assert_eq!(utc_date(86_399), "1970-01-01");
        assert_eq!(utc_date(86_400), "1970-01-02");
        assert_eq!(utc_date(-1), "1969-12-31");
        assert_eq!(utc_date(TS), "2019-02-25");
    }
}
