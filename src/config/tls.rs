//! `[listener.tls]`: the certificate, key and client-certificate policy of a
//! `kind = "tls"` listener.
//!
//! Owned by its [`ListenerConfig`](super::ListenerConfig) (`tls` field).
//! Only names and choices live here; [`crate::tls`] reads the files (at
//! start and on SIGHUP) and builds the rustls configuration from them.

use super::ConfigError;
use serde::Deserialize;

/// Whether a client must show a certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClientAuth {
    /// No client certificate is asked for.
    #[default]
    None,
    /// Asked for; a client without one still connects, one with a
    /// certificate the CA does not vouch for is refused.
    Optional,
    /// A certificate the CA vouches for is required.
    Require,
}

/// Which name of a verified client certificate becomes the connection's
/// identity (the session's user name).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IdentitySource {
    /// None: the certificate only proves the client may connect.
    #[default]
    None,
    /// The subject's common name.
    Cn,
    /// The first DNS name, else the first e-mail address, of the subject
    /// alternative names.
    San,
}

/// The oldest TLS version a listener accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
pub enum MinVersion {
    #[default]
    #[serde(rename = "1.2")]
    Tls12,
    #[serde(rename = "1.3")]
    Tls13,
}

/// `[listener.tls]`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// PEM file: the server certificate first, then its chain.
    pub cert_file: String,
    /// PEM file: the private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: String,
    /// PEM file: the CA certificates client certificates are checked
    /// against (needed when `client_auth` is not "none").
    pub ca_file: String,
    /// "none", "optional" or "require".
    pub client_auth: ClientAuth,
    /// "none", "cn" or "san".
    pub identity_as_username: IdentitySource,
    /// "1.2" (TLS 1.2 and 1.3) or "1.3" (TLS 1.3 only).
    pub min_version: MinVersion,
}

impl TlsConfig {
    /// `key` names the table in errors (`listener[1].tls`).
    pub(super) fn validate(&self, key: &str) -> Result<(), ConfigError> {
        let need = |name: &str, value: &str, why: &str| {
            if value.is_empty() {
                Err(ConfigError(format!("{key}.{name}: {why}")))
            } else {
                Ok(())
            }
        };
        need("cert_file", &self.cert_file, "a TLS listener needs one")?;
        need("key_file", &self.key_file, "a TLS listener needs one")?;
        if self.client_auth != ClientAuth::None {
            need(
                "ca_file",
                &self.ca_file,
                "client_auth needs the CA that signs client certificates",
            )?;
        }
        if self.identity_as_username != IdentitySource::None && self.client_auth == ClientAuth::None
        {
            return Err(ConfigError(format!(
                "{key}.identity_as_username: needs client_auth = \"optional\" or \"require\""
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    use super::*;

    const TLS: &str = "[listener]\nkind = \"tls\"\nbind = \"127.0.0.1:8883\"\n[listener.tls]\n";

    #[test]
    fn a_tls_table_parses() {
        let c = Config::from_toml(&format!(
            "{TLS}cert_file = \"c.pem\"\nkey_file = \"k.pem\"\nca_file = \"ca.pem\"\nclient_auth = \"require\"\nidentity_as_username = \"cn\"\nmin_version = \"1.3\"\n"
        ))
        .unwrap();
        let t = c.listener[0].tls.as_ref().unwrap();
        assert_eq!(t.client_auth, ClientAuth::Require);
        assert_eq!(t.identity_as_username, IdentitySource::Cn);
        assert_eq!(t.min_version, MinVersion::Tls13);
    }

    #[test]
    fn bad_tls_tables_are_named() {
        for (body, key) in [
            ("key_file = \"k\"\n", "listener.tls.cert_file"),
            ("cert_file = \"c\"\n", "listener.tls.key_file"),
            (
                "cert_file = \"c\"\nkey_file = \"k\"\nclient_auth = \"optional\"\n",
                "listener.tls.ca_file",
            ),
            (
                "cert_file = \"c\"\nkey_file = \"k\"\nidentity_as_username = \"san\"\n",
                "listener.tls.identity_as_username",
            ),
            (
                "cert_file = \"c\"\nkey_file = \"k\"\nmin_version = \"1.1\"\n",
                "1.1",
            ),
            (
                "cert_file = \"c\"\nkey_file = \"k\"\nclient_auth = \"yes\"\n",
                "yes",
            ),
        ] {
            let err = Config::from_toml(&format!("{TLS}{body}")).unwrap_err();
            assert!(err.0.contains(key), "{body:?}: {err}");
        }
    }
}
