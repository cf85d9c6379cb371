//! `tls_server_config` → a rustls [`ServerConfig`], with the aws-lc-rs provider (the one reqwest
//! already brings). The files are read once per (re)load into [`Material`], so what is checked
//! for changes is exactly what is served.

use std::fmt;
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms, aws_lc_rs};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{
    CertificateError, DigitallySignedStruct, DistinguishedName, ProtocolVersion, RootCertStore,
    ServerConfig, SignatureScheme,
};
use secrecy::{ExposeSecret, SecretSlice};

use super::web_config::{ClientAuth, Curve, KeyPem, Pem, TlsSettings, TlsVersion, WebConfigError};

/// The bytes a TLS configuration needs, read from files or taken inline.
pub struct Material {
    /// The server's certificate chain, PEM (`cert_file` or `cert`), leaf first.
    pub cert: Vec<u8>,
    /// The server's private key, PEM (`key_file` or `key`): a secret, zeroed on drop, never
    /// printed.
    pub key: SecretSlice<u8>,
    /// The CA bundle client certificates are verified against, PEM (`client_ca_file` or
    /// `client_ca`).
    pub client_ca: Option<Vec<u8>>,
}

impl Material {
    /// Reads the certificate, key and client CA files (or takes the inline PEM).
    pub fn read(t: &TlsSettings) -> Result<Material, WebConfigError> {
        let cert = match &t.cert {
            Pem::File(p) => read(p, "cert_file")?,
            Pem::Inline(s) => s.clone().into_bytes(),
        };
        let key = match &t.key {
            KeyPem::File(p) => read(p, "key_file")?,
            KeyPem::Inline(s) => s.expose_secret().as_bytes().to_vec(),
        };
        let client_ca = match &t.client_ca {
            Some(Pem::File(p)) => Some(read(p, "client_ca_file")?),
            Some(Pem::Inline(s)) => Some(s.clone().into_bytes()),
            None => None,
        };
        Ok(Material {
            cert,
            key: key.into(),
            client_ca,
        })
    }

    /// Feeds every byte into `hash` (to notice a rotated certificate or key).
    pub fn digest_into(&self, hash: &mut impl sha2::Digest) {
        for part in [
            &self.cert[..],
            self.key.expose_secret(),
            self.client_ca.as_deref().unwrap_or_default(),
        ] {
            hash.update((part.len() as u64).to_le_bytes());
            hash.update(part);
        }
    }
}

fn read(path: &Path, key: &str) -> Result<Vec<u8>, WebConfigError> {
    std::fs::read(path).map_err(|e| {
        WebConfigError(format!(
            "tls_server_config.{key}: failed to read {}: {e}",
            path.display()
        ))
    })
}

fn tls_err(msg: impl Into<String>) -> WebConfigError {
    WebConfigError(format!("tls_server_config: {}", msg.into()))
}

/// Builds the server configuration; also returns warnings for settings rustls cannot honour
/// exactly (a suite or curve it does not implement).
pub fn server_config(
    t: &TlsSettings,
    m: &Material,
) -> Result<(Arc<ServerConfig>, Vec<String>), WebConfigError> {
    let mut warnings = Vec::new();
    let mut provider = aws_lc_rs::default_provider();
    let is_tls12 =
        |s: &rustls::SupportedCipherSuite| s.version().version == ProtocolVersion::TLSv1_2;

    // cipher_suites: as in Go, they only restrict TLS 1.2; TLS 1.3 suites are not configurable.
    let mut offer_tls12 = t.min_version <= TlsVersion::Tls12;
    if let Some(names) = &t.cipher_suites {
        let mut tls12 = Vec::new();
        for name in names {
            if matches!(
                name.as_str(),
                "TLS_AES_128_GCM_SHA256"
                    | "TLS_AES_256_GCM_SHA384"
                    | "TLS_CHACHA20_POLY1305_SHA256"
            ) {
                continue;
            }
            match provider
                .cipher_suites
                .iter()
                .find(|s| is_tls12(s) && format!("{:?}", s.suite()) == *name)
            {
                Some(s)
                    if !tls12
                        .iter()
                        .any(|t: &rustls::SupportedCipherSuite| t.suite() == s.suite()) =>
                {
                    tls12.push(*s)
                }
                Some(_) => {}
                None => warnings.push(format!(
                    "tls_server_config.cipher_suites: {name} is not implemented by rustls; skipped"
                )),
            }
        }
        if tls12.is_empty() && offer_tls12 {
            if t.max_version == TlsVersion::Tls12 {
                return Err(tls_err(
                    "none of cipher_suites is implemented by rustls, so TLS 1.2 cannot be offered \
                     and max_version is TLS12",
                ));
            }
            warnings.push(
                "tls_server_config.cipher_suites: none is implemented by rustls; TLS 1.2 is not offered"
                    .into(),
            );
            offer_tls12 = false;
        }
        let mut suites: Vec<_> = provider
            .cipher_suites
            .iter()
            .filter(|s| !is_tls12(s))
            .copied()
            .collect();
        suites.extend(tls12);
        provider.cipher_suites = suites;
    }

    if let Some(curves) = &t.curve_preferences {
        let mut groups = Vec::new();
        for curve in curves {
            let group: &'static dyn rustls::crypto::SupportedKxGroup = match curve {
                Curve::P256 => aws_lc_rs::kx_group::SECP256R1,
                Curve::P384 => aws_lc_rs::kx_group::SECP384R1,
                Curve::X25519 => aws_lc_rs::kx_group::X25519,
                Curve::P521 => {
                    warnings.push(
                        "tls_server_config.curve_preferences: CurveP521 is not implemented by rustls; skipped"
                            .into(),
                    );
                    continue;
                }
            };
            if !groups
                .iter()
                .any(|g: &&dyn rustls::crypto::SupportedKxGroup| g.name() == group.name())
            {
                groups.push(group);
            }
        }
        if groups.is_empty() {
            return Err(tls_err(
                "none of curve_preferences is implemented by rustls (CurveP256, CurveP384, X25519 are)",
            ));
        }
        provider.kx_groups = groups;
    }

    let mut versions = Vec::new();
    if t.max_version >= TlsVersion::Tls13 {
        versions.push(&rustls::version::TLS13);
    }
    if offer_tls12 {
        versions.push(&rustls::version::TLS12);
    }

    let chain = CertificateDer::pem_slice_iter(&m.cert)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| tls_err(format!("certificate: not PEM ({e})")))?;
    if chain.is_empty() {
        return Err(tls_err("certificate: no CERTIFICATE block found"));
    }
    let key = PrivateKeyDer::from_pem_slice(m.key.expose_secret())
        .map_err(|e| tls_err(format!("key: no usable private key found ({e})")))?;

    let provider = Arc::new(provider);
    let verifier = client_verifier(t, m, &provider)?;
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&versions)
        .map_err(|e| tls_err(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|e| tls_err(format!("failed to load the certificate and key: {e}")))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config.ignore_client_order = t.prefer_server_cipher_suites;
    Ok((Arc::new(config), warnings))
}

fn client_verifier(
    t: &TlsSettings,
    m: &Material,
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<dyn ClientCertVerifier>, WebConfigError> {
    let roots = match &m.client_ca {
        Some(pem) => {
            let mut roots = RootCertStore::empty();
            for cert in CertificateDer::pem_slice_iter(pem) {
                let cert = cert.map_err(|e| tls_err(format!("client CA: not PEM ({e})")))?;
                roots
                    .add(cert)
                    .map_err(|e| tls_err(format!("client CA: unusable certificate ({e})")))?;
            }
            if roots.is_empty() {
                return Err(tls_err("client CA: no CERTIFICATE block found"));
            }
            Some(Arc::new(roots))
        }
        None => None,
    };
    let algorithms = provider.signature_verification_algorithms;
    let verifying = |roots: Option<Arc<RootCertStore>>| {
        let roots = roots.ok_or_else(|| tls_err("client_ca_file is required"))?;
        Ok::<_, WebConfigError>(WebPkiClientVerifier::builder_with_provider(
            roots,
            provider.clone(),
        ))
    };
    let inner: Arc<dyn ClientCertVerifier> = match t.client_auth {
        ClientAuth::NoClientCert => WebPkiClientVerifier::no_client_auth(),
        ClientAuth::RequestClientCert => Arc::new(AnyClientCert {
            mandatory: false,
            algorithms,
        }),
        ClientAuth::RequireAnyClientCert => Arc::new(AnyClientCert {
            mandatory: true,
            algorithms,
        }),
        ClientAuth::VerifyClientCertIfGiven => verifying(roots)?
            .allow_unauthenticated()
            .build()
            .map_err(|e| tls_err(format!("client CA: {e}")))?,
        ClientAuth::RequireAndVerifyClientCert => verifying(roots)?
            .build()
            .map_err(|e| tls_err(format!("client CA: {e}")))?,
    };
    Ok(match &t.client_allowed_sans {
        Some(sans) => Arc::new(AllowedSans {
            inner,
            sans: sans.clone(),
        }),
        None => inner,
    })
}

/// `RequestClientCert` / `RequireAnyClientCert`: a certificate is asked for (and, for the
/// latter, required) but not verified against a CA, as Go does; its signature over the
/// handshake is still checked, so the client holds the key.
#[derive(Debug)]
struct AnyClientCert {
    mandatory: bool,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for AnyClientCert {
    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// `client_allowed_sans`: after the inner verifier, the client certificate must carry one of
/// the listed SANs (DNS name, IP address or URI; exact match, as the toolkit does).
struct AllowedSans {
    inner: Arc<dyn ClientCertVerifier>,
    sans: Vec<String>,
}

impl fmt::Debug for AllowedSans {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AllowedSans")
            .field("sans", &self.sans)
            .finish_non_exhaustive()
    }
}

impl ClientCertVerifier for AllowedSans {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let verified = self
            .inner
            .verify_client_cert(end_entity, intermediates, now)?;
        let cert = webpki::EndEntityCert::try_from(end_entity)
            .map_err(|_| rustls::Error::InvalidCertificate(CertificateError::BadEncoding))?;
        let allowed = self.sans.iter().any(|san| {
            cert.valid_dns_names().any(|d| d == san)
                || cert.valid_uri_names().any(|u| u == san)
                || san.parse::<IpAddr>().is_ok_and(|ip| {
                    cert.verify_is_valid_for_subject_name(&ServerName::IpAddress(ip.into()))
                        .is_ok()
                })
        });
        if allowed {
            Ok(verified)
        } else {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::ApplicationVerificationFailure,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}
