//! The identity a client certificate gives: its subject's common name or its
//! first subject alternative name (a DNS name, else an e-mail address).
//!
//! A small DER reader over the certificate rustls already verified — just the
//! path to the subject and the SAN extension, nothing else of X.509. Every
//! length is checked; anything unexpected gives `None`, never a panic.
//! Called by [`super::handshake`] when the listener sets
//! `identity_as_username`.

use crate::config::IdentitySource;

/// Longest identity taken (a user name), in bytes.
const MAX_LEN: usize = 1024;
/// OID 2.5.4.3 (commonName), DER body.
const OID_CN: &[u8] = &[0x55, 0x04, 0x03];
/// OID 2.5.29.17 (subjectAltName), DER body.
const OID_SAN: &[u8] = &[0x55, 0x1d, 0x11];

/// One DER element: (tag, contents, what follows).
fn tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |a, &b| (a << 8) | usize::from(b));
        (len, &rest[n..])
    };
    (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
}

/// The elements of a constructed value, in order.
fn items(mut input: &[u8]) -> impl Iterator<Item = (u8, &[u8])> {
    std::iter::from_fn(move || {
        let (tag, body, rest) = tlv(input)?;
        input = rest;
        Some((tag, body))
    })
}

/// A directory string we read as text: UTF8String, PrintableString, IA5String.
fn text(tag: u8, body: &[u8]) -> Option<String> {
    if !matches!(tag, 0x0c | 0x13 | 0x16) || body.is_empty() || body.len() > MAX_LEN {
        return None;
    }
    std::str::from_utf8(body).ok().map(str::to_owned)
}

/// The identity of a DER certificate, as `source` says.
pub fn identity(cert_der: &[u8], source: IdentitySource) -> Option<String> {
    let (0x30, cert, _) = tlv(cert_der)? else {
        return None;
    };
    let (0x30, tbs, _) = tlv(cert)? else {
        return None;
    };
    let mut fields = items(tbs).peekable();
    if fields.peek().is_some_and(|(tag, _)| *tag == 0xa0) {
        fields.next(); // version
    }
    // serial, signature algorithm, issuer, validity, then the subject.
    let (_, subject) = fields.by_ref().nth(4)?;
    match source {
        IdentitySource::None => None,
        IdentitySource::Cn => common_name(subject),
        IdentitySource::San => {
            let exts = fields.find(|(tag, _)| *tag == 0xa3)?.1;
            subject_alt_name(exts)
        }
    }
}

/// The first CN of a Name (SEQUENCE of SET of SEQUENCE { OID, value }).
fn common_name(subject: &[u8]) -> Option<String> {
    items(subject)
        .flat_map(|(_, set)| items(set))
        .find_map(|(_, attr)| {
            let mut parts = items(attr);
            let (oid_tag, oid) = parts.next()?;
            let (tag, value) = parts.next()?;
            (oid_tag == 0x06 && oid == OID_CN).then(|| text(tag, value))?
        })
}

/// The first dNSName, else the first rfc822Name, of the SAN extension in
/// `[3] { SEQUENCE of Extension }`.
fn subject_alt_name(exts: &[u8]) -> Option<String> {
    let (0x30, list, _) = tlv(exts)? else {
        return None;
    };
    let names = items(list).find_map(|(_, ext)| {
        let mut parts = items(ext);
        let (_, oid) = parts.next()?;
        if oid != OID_SAN {
            return None;
        }
        // critical BOOLEAN is optional; the value is the OCTET STRING.
        let (_, value) = parts.find(|(tag, _)| *tag == 0x04)?;
        let (0x30, names, _) = tlv(value)? else {
            return None;
        };
        Some(names)
    })?;
    let pick = |want: u8| items(names).find_map(|(tag, v)| (tag == want).then(|| text(0x16, v))?);
    pick(0x82).or_else(|| pick(0x81))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{CertificateParams, DnType, KeyPair, SanType};

    fn cert(cn: Option<&str>, sans: Vec<SanType>) -> Vec<u8> {
        let mut p = CertificateParams::default();
        p.distinguished_name = rcgen::DistinguishedName::new();
        p.distinguished_name
            .push(DnType::OrganizationName, "coremq tests");
        if let Some(cn) = cn {
            p.distinguished_name.push(DnType::CommonName, cn);
        }
        p.subject_alt_names = sans;
        let key = KeyPair::generate().unwrap();
        p.self_signed(&key).unwrap().der().to_vec()
    }

    #[test]
    fn common_name_and_sans() {
        let der = cert(
            Some("device-7"),
            vec![
                SanType::Rfc822Name("d7@example.com".try_into().unwrap()),
                SanType::DnsName("d7.example.com".try_into().unwrap()),
            ],
        );
        assert_eq!(
            identity(&der, IdentitySource::Cn).as_deref(),
            Some("device-7")
        );
        assert_eq!(
            identity(&der, IdentitySource::San).as_deref(),
            Some("d7.example.com"),
            "a DNS name before an e-mail address"
        );
        assert_eq!(identity(&der, IdentitySource::None), None);
        let mail = cert(
            None,
            vec![SanType::Rfc822Name("m@example.com".try_into().unwrap())],
        );
        assert_eq!(
            identity(&mail, IdentitySource::San).as_deref(),
            Some("m@example.com")
        );
        assert_eq!(identity(&mail, IdentitySource::Cn), None, "no CN");
        let bare = cert(Some("x"), vec![]);
        assert_eq!(identity(&bare, IdentitySource::San), None, "no SAN");
    }

    #[test]
    fn truncated_or_garbage_gives_none() {
        let der = cert(Some("device-7"), vec![]);
        for n in 0..der.len() {
            let _ = identity(&der[..n], IdentitySource::Cn);
            let _ = identity(&der[..n], IdentitySource::San);
        }
        assert_eq!(
            identity(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff], IdentitySource::Cn),
            None
        );
        assert_eq!(identity(b"", IdentitySource::San), None);
    }
}
