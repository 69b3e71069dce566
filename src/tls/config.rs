//! `[listener.tls]` → `rustls::ServerConfig`: reads the certificate chain,
//! the key and the client CA bundle, and picks the versions and the client
//! certificate verifier. Called by `Broker::start` (errors stop the start)
//! and by the TLS reloader it registers (errors keep the old config).

use crate::config::{ClientAuth, MinVersion, TlsConfig};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use std::sync::Arc;

/// The provider every listener uses: ring.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Every certificate in a PEM file; an error names the file.
fn certificates(path: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("{path}: {e}"))?;
    if certs.is_empty() {
        return Err(format!("{path}: no certificate in it"));
    }
    Ok(certs)
}

/// Build the server configuration; the error names the file or says what
/// does not fit (the key does not match the certificate, say).
pub fn server_config(t: &TlsConfig) -> Result<ServerConfig, String> {
    let provider = provider();
    let chain = certificates(&t.cert_file)?;
    let key =
        PrivateKeyDer::from_pem_file(&t.key_file).map_err(|e| format!("{}: {e}", t.key_file))?;
    let versions: &[&rustls::SupportedProtocolVersion] = match t.min_version {
        MinVersion::Tls12 => &[&rustls::version::TLS13, &rustls::version::TLS12],
        MinVersion::Tls13 => &[&rustls::version::TLS13],
    };
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)
        .map_err(|e| e.to_string())?;
    let builder = match t.client_auth {
        ClientAuth::None => builder.with_no_client_auth(),
        auth => {
            let mut roots = RootCertStore::empty();
            for ca in certificates(&t.ca_file)? {
                roots.add(ca).map_err(|e| format!("{}: {e}", t.ca_file))?;
            }
            let v = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let v = match auth {
                ClientAuth::Optional => v.allow_unauthenticated(),
                _ => v,
            };
            builder.with_client_cert_verifier(v.build().map_err(|e| format!("{}: {e}", t.ca_file))?)
        }
    };
    builder
        .with_single_cert(chain, key)
        .map_err(|e| format!("{} / {}: {e}", t.cert_file, t.key_file))
}
