//! Transport security: which URLs ferry talks to, and which certificates it
//! trusts.
//!
//! Owns:
//! * [`validate_base_url`]: `https://` anywhere, `http://` only to loopback
//!   (127.0.0.0/8, ::1, `localhost`) — a token in plain HTTP over a network
//!   is a leaked token; no credentials, query or fragment in the URL;
//! * building the one `reqwest::Client` per server ([`build_http_client`]):
//!   rustls with the ring provider; trust = the platform's roots
//!   (rustls-platform-verifier, reqwest's default for rustls), plus the
//!   plan's `tls.ca_file` PEM if given (which also pins a server presenting
//!   exactly one of its certificates: see `PinnedOrVerified`), or no
//!   verification at all with `tls.insecure` (the caller warns); redirects
//!   never followed (a redirect could carry the `Authorization` header to
//!   another host); no proxy from the environment (reqwest's `system-proxy`
//!   feature is off);
//! * the message of a TLS failure: it names the host and the fix.
//!
//! Does not own: reading the CA file (ops reads it, relative to the plan)
//! or printing the `insecure` warning (ops/report do).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

use reqwest::Url;

use super::{ClientConfig, ErrorKind};

/// Installs ring as rustls' process-wide crypto provider. reqwest is built
/// with `rustls-no-provider` and panics without one. Idempotent.
pub fn install_crypto_provider() {
    // Err means a provider is already installed (by us or the simulator).
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Is `host` (a URL host, IPv6 with or without brackets) a loopback
/// address or `localhost`?
pub fn is_loopback_host(host: &str) -> bool {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    let h = h.strip_suffix('.').unwrap_or(h);
    if h.eq_ignore_ascii_case("localhost") {
        return true;
    }
    match h.parse::<IpAddr>() {
        Ok(IpAddr::V4(v4)) => v4.is_loopback(),
        Ok(IpAddr::V6(v6)) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
        Err(_) => false,
    }
}

/// Checks a WHM base URL and returns it parsed. The message says what to
/// write instead.
pub fn validate_base_url(url: &str) -> Result<Url, String> {
    let parsed = Url::parse(url.trim()).map_err(|e| {
        format!("`{url}` is not a URL ({e}); write it like https://whm.example.net:2087")
    })?;
    let host = parsed
        .host_str()
        .ok_or_else(|| format!("`{url}` has no host; write it like https://whm.example.net:2087"))?
        .to_string();
    match parsed.scheme() {
        "https" => {}
        "http" if is_loopback_host(&host) => {}
        "http" => {
            return Err(format!(
                "`{url}` uses plain http to a non-loopback host ({host}): the API token would cross the network \
                 unencrypted; use https://{host}:2087 (http is allowed only for 127.0.0.0/8, ::1 and localhost)"
            ));
        }
        other => {
            return Err(format!(
                "`{url}` has scheme `{other}`; a WHM URL starts with https://"
            ));
        }
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        // Do not echo the URL: it contains a credential.
        return Err(format!(
            "the URL for {host} contains a user name or password; put the token in target.token \
             (a secret reference) and the user in target.user"
        ));
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(format!(
            "`{url}` has a query or fragment; give only scheme, host and port"
        ));
    }
    Ok(parsed)
}

/// `host:port` of a validated URL, for messages and [`super::WhmClient::host`].
pub fn host_and_port(url: &Url) -> String {
    let host = url.host_str().unwrap_or("?");
    match url.port_or_known_default() {
        Some(port) => {
            if host.contains(':') && !host.starts_with('[') {
                format!("[{host}]:{port}")
            } else {
                format!("{host}:{port}")
            }
        }
        None => host.to_string(),
    }
}

/// Builds the HTTP client for one server. Nothing is sent here.
/// `plain_http`: the URL is `http://` (loopback), so no certificate store
/// is loaded at all (a machine without system roots can still talk to the
/// simulator).
pub fn build_http_client(
    cfg: &ClientConfig,
    plain_http: bool,
) -> Result<reqwest::Client, ErrorKind> {
    install_crypto_provider();
    let mut b = reqwest::Client::builder()
        .user_agent(concat!("ferry/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(cfg.connect_timeout)
        .timeout(cfg.request_timeout)
        // Credentials must not follow a redirect to another host; WHM's API
        // never redirects, so any redirect is an error (a 3xx status).
        .redirect(reqwest::redirect::Policy::none())
        .pool_idle_timeout(Duration::from_secs(90))
        .pool_max_idle_per_host(16)
        .tcp_nodelay(true);
    if plain_http {
        b = b.tls_certs_only(Vec::new());
    } else if cfg.insecure {
        b = b.tls_danger_accept_invalid_certs(true);
    } else if let Some(pem) = &cfg.ca_pem {
        let certs = reqwest::Certificate::from_pem_bundle(pem.as_bytes()).map_err(|e| {
            ErrorKind::Config(format!(
                "tls.ca_file is not a PEM certificate ({}); give the CA certificate in PEM form \
                 (-----BEGIN CERTIFICATE-----)",
                root_message(&e)
            ))
        })?;
        if certs.is_empty() {
            return Err(ErrorKind::Config(
                "tls.ca_file contains no certificate; give the CA certificate in PEM form \
                 (-----BEGIN CERTIFICATE-----)"
                    .into(),
            ));
        }
        // The platform's roots stay trusted and the plan's CA is added; a
        // server presenting exactly a certificate of the PEM is accepted
        // too (see `PinnedOrVerified`).
        b = b.tls_backend_preconfigured(ca_file_config(pem)?);
    }
    b.build().map_err(|e| {
        ErrorKind::Config(format!(
            "cannot build the HTTP client: {}",
            root_message(&e)
        ))
    })
}

/// A rustls configuration on ring for another protocol than WHM's (the
/// journal's PostgreSQL): the platform's roots, plus `ca_pem`'s
/// certificates (with the same pinning rule as `tls.ca_file`), no ALPN.
pub fn rustls_config(ca_pem: Option<&str>) -> Result<rustls::ClientConfig, String> {
    install_crypto_provider();
    let mut config = match ca_pem {
        Some(pem) => ca_file_config(pem).map_err(|e| e.to_string())?,
        None => {
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let verifier = rustls_platform_verifier::Verifier::new(provider.clone())
                .map_err(|e| e.to_string())?;
            rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map_err(|e| e.to_string())?
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(verifier))
                .with_no_client_auth()
        }
    };
    config.alpn_protocols.clear();
    Ok(config)
}

/// The rustls configuration for a plan with `tls.ca_file`: the platform's
/// roots plus the file's certificates, through [`PinnedOrVerified`].
fn ca_file_config(pem: &str) -> Result<rustls::ClientConfig, ErrorKind> {
    let bad = |e: String| {
        ErrorKind::Config(format!(
            "tls.ca_file cannot be used ({e}); give the CA certificate in PEM form (-----BEGIN CERTIFICATE-----)"
        ))
    };
    let pinned: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|e| bad(format!("{e:?}")))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let inner = rustls_platform_verifier::Verifier::new_with_extra_roots(
        pinned.iter().cloned(),
        provider.clone(),
    )
    .map_err(|e| bad(e.to_string()))?;
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| bad(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(PinnedOrVerified {
            inner: Arc::new(inner),
            pinned,
        }))
        .with_no_client_auth();
    // reqwest is built without HTTP/2.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// Certificate verification for `tls.ca_file`: the usual chain and name
/// checks (platform roots + the file's CA); if they fail, a server whose
/// certificate is byte for byte one of the file's certificates is accepted.
///
/// Why the second rule: many WHM hosts present a self-signed certificate
/// marked `CA:TRUE` (what `openssl req -x509` makes by default). webpki
/// refuses a CA certificate as a server certificate (`CaUsedAsEndEntity`)
/// even when it is the trusted root, so the operator's obvious fix — "give
/// the host's certificate as ca_file" — would not work. An exact match is
/// certificate pinning: it is at least as strict as trusting that CA, and
/// the handshake signature is still verified against the certificate's
/// key, so only the holder of its private key gets through. (Validity dates
/// and the host name are not re-checked for a pinned certificate: the
/// operator named this exact certificate for this target.)
#[derive(Debug)]
struct PinnedOrVerified {
    inner: Arc<dyn ServerCertVerifier>,
    pinned: Vec<CertificateDer<'static>>,
}

impl ServerCertVerifier for PinnedOrVerified {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Ok(ok) => Ok(ok),
            Err(e) => {
                if self
                    .pinned
                    .iter()
                    .any(|p| p.as_ref() == end_entity.as_ref())
                {
                    Ok(ServerCertVerified::assertion())
                } else {
                    Err(e)
                }
            }
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// If a TLS error (rustls) is anywhere in the chain, its text.
pub(crate) fn find_tls_error(err: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cur {
        if let Some(t) = e.downcast_ref::<rustls::Error>() {
            return Some(t.to_string());
        }
        // io::Error's `source()` skips the error it wraps; look inside.
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && let Some(inner) = io.get_ref()
        {
            if let Some(t) = inner.downcast_ref::<rustls::Error>() {
                return Some(t.to_string());
            }
            if let Some(t) = find_tls_error(inner) {
                return Some(t);
            }
        }
        cur = e.source();
    }
    None
}

/// The message of a TLS failure: what failed, for which host, and the fix.
pub fn tls_failure_message(host: &str, detail: &str) -> String {
    format!(
        "TLS handshake with {host} failed: {detail}. If {host} uses a self-signed or private-CA \
         certificate, add `target.tls.ca_file: <the CA certificate PEM>` to the plan; \
         or, only for a test server, `tls: {{insecure: true}}` (no verification; ferry warns on every run)"
    )
}

/// The innermost message of an error chain (reqwest's own text repeats the
/// URL; the cause is at the bottom).
pub(crate) fn root_message(err: &(dyn std::error::Error + 'static)) -> String {
    let mut last = err.to_string();
    let mut cur = err.source();
    while let Some(e) = cur {
        last = e.to_string();
        cur = e.source();
    }
    last
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts() {
        for h in [
            "127.0.0.1",
            "127.1.2.3",
            "localhost",
            "LOCALHOST",
            "localhost.",
            "::1",
            "[::1]",
            "::ffff:127.0.0.1",
        ] {
            assert!(is_loopback_host(h), "{h}");
        }
        for h in [
            "10.0.0.1",
            "128.0.0.1",
            "whm.example.net",
            "localhost.example.net",
            "::2",
            "0.0.0.0",
            "[fe80::1]",
            "127.0.0.1.nip.io",
        ] {
            assert!(!is_loopback_host(h), "{h}");
        }
    }

    #[test]
    fn urls() {
        assert!(validate_base_url("https://whm.example.net:2087").is_ok());
        assert!(validate_base_url("https://10.0.0.5:2087/").is_ok());
        assert!(validate_base_url("http://127.0.0.1:41234").is_ok());
        assert!(validate_base_url("http://[::1]:41234").is_ok());
        assert!(validate_base_url("http://localhost:2086").is_ok());

        let e = validate_base_url("http://whm.example.net:2086").unwrap_err();
        assert!(
            e.contains("whm.example.net") && e.contains("https://"),
            "{e}"
        );
        let e = validate_base_url("http://10.1.1.1:2086").unwrap_err();
        assert!(e.contains("non-loopback"), "{e}");
        assert!(validate_base_url("ftp://whm.example.net").is_err());
        assert!(validate_base_url("whm.example.net:2087").is_err());
        assert!(validate_base_url("https://whm.example.net:2087/?api.version=1").is_err());

        let e = validate_base_url("https://root:hunter2@whm.example.net:2087").unwrap_err();
        assert!(!e.contains("hunter2"), "{e}");
    }

    #[test]
    fn host_and_port_defaults() {
        let u = validate_base_url("https://whm.example.net").unwrap();
        assert_eq!(host_and_port(&u), "whm.example.net:443");
        let u = validate_base_url("https://whm.example.net:2087").unwrap();
        assert_eq!(host_and_port(&u), "whm.example.net:2087");
        let u = validate_base_url("http://[::1]:9").unwrap();
        assert_eq!(host_and_port(&u), "[::1]:9");
    }

    #[test]
    fn bad_ca_pem_is_a_config_error() {
        let mut cfg = ClientConfig::new(
            "https://whm.example.net:2087",
            "root",
            crate::secret::Secret::new("t"),
        );
        cfg.ca_pem = Some("not a certificate".into());
        match build_http_client(&cfg, false) {
            Err(ErrorKind::Config(m)) => assert!(m.contains("ca_file"), "{m}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn tls_message_names_host_and_fix() {
        let m = tls_failure_message(
            "whm.example.net:2087",
            "invalid peer certificate: UnknownIssuer",
        );
        assert!(m.contains("whm.example.net:2087"));
        assert!(m.contains("target.tls.ca_file"));
        assert!(m.contains("insecure: true"));
    }
}
