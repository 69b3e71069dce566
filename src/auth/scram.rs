//! SCRAM-SHA-256 (RFC 5802, RFC 7677) as an MQTT 5 authentication method,
//! over an in-memory user table the embedder fills before the broker starts.
//!
//! Owns [`ScramSha256`] (the table: per user a salt, an iteration count and
//! the two keys derived from the password; the password itself is not kept)
//! and [`ScramClient`], the client's half, for tests, tools and embedders
//! that connect to a coremq. The broker drives a server exchange through
//! [`AuthExchange`]: the CONNECT carries the client-first message, AUTH 0x18
//! carries server-first, the client's AUTH 0x18 carries client-final, and
//! CONNACK 0x00 (or AUTH 0x00) carries server-final (`v=`, so the client can
//! check the server knew the password too).
//!
//! Limits: no channel binding (a `p=` GS2 flag is refused), no authorization
//! identity, no SASLprep (passwords are taken as their UTF-8 bytes, which is
//! the same for ASCII). PBKDF2 runs when a user is added, never per exchange.
//! An unknown user gets a made-up salt (derived from a per-table secret), so
//! the first answer does not tell whether the user exists.

use super::{AuthExchange, AuthRequest, AuthStep, Authenticator};
use crate::codec::Reason;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use bytes::Bytes;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Arc;

/// The Authentication Method name (RFC 7677's SASL mechanism name).
pub const METHOD: &str = "SCRAM-SHA-256";
/// PBKDF2 iterations for [`ScramSha256::add_user`] (RFC 7677's minimum).
pub const DEFAULT_ITERATIONS: u32 = 4096;

type Key = [u8; 32];

fn hmac(key: &[u8], msg: &[u8]) -> Key {
    // HMAC accepts a key of any length: `new_from_slice` cannot fail.
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    m.update(msg);
    m.finalize().into_bytes().into()
}

fn salted_password(password: &str, salt: &[u8], iterations: u32) -> Key {
    let mut out = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<Sha256>(password.as_bytes(), salt, iterations, &mut out);
    out
}

/// What the server keeps of a password (RFC 5802 §3).
#[derive(Clone)]
struct Credentials {
    salt: Vec<u8>,
    iterations: u32,
    stored_key: Key,
    server_key: Key,
}

impl Credentials {
    fn derive(password: &str, salt: &[u8], iterations: u32) -> Credentials {
        let salted = salted_password(password, salt, iterations);
        let client_key = hmac(&salted, b"Client Key");
        Credentials {
            salt: salt.to_vec(),
            iterations,
            stored_key: Sha256::digest(client_key).into(),
            server_key: hmac(&salted, b"Server Key"),
        }
    }
}

/// Random bytes from the operating system (all zero if it has none: the
/// nonce then is predictable, which getrandom does not let happen on Linux).
fn random<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    if getrandom::fill(&mut b).is_err() {
        log::error!("no randomness from the operating system for SCRAM");
    }
    b
}

#[derive(Clone, Default)]
struct Users {
    table: HashMap<String, Credentials>,
}

/// The SCRAM-SHA-256 authenticator: register it with
/// [`Hooks::add_authenticator`](crate::hooks::Hooks::add_authenticator).
#[derive(Clone)]
pub struct ScramSha256 {
    users: Arc<Users>,
    /// Salts for unknown users are HMAC(secret, user name): stable per
    /// user, so asking twice does not reveal that the user is missing.
    secret: Key,
}

impl Default for ScramSha256 {
    fn default() -> Self {
        Self::new()
    }
}

impl ScramSha256 {
    /// An empty user table.
    pub fn new() -> ScramSha256 {
        ScramSha256 {
            users: Arc::default(),
            secret: random(),
        }
    }

    /// Add (or replace) a user, with a random 16-byte salt and
    /// [`DEFAULT_ITERATIONS`].
    pub fn add_user(&mut self, name: &str, password: &str) {
        self.add_user_with(name, password, &random::<16>(), DEFAULT_ITERATIONS);
    }

    /// Add (or replace) a user with a given salt and iteration count.
    pub fn add_user_with(&mut self, name: &str, password: &str, salt: &[u8], iterations: u32) {
        let c = Credentials::derive(password, salt, iterations.max(1));
        Arc::make_mut(&mut self.users)
            .table
            .insert(name.to_owned(), c);
    }

    /// A server exchange whose server nonce is `nonce`.
    fn exchange(&self, nonce: String) -> ScramExchange {
        ScramExchange {
            auth: self.clone(),
            server_nonce: nonce,
            state: State::First,
        }
    }
}

impl Authenticator for ScramSha256 {
    fn start(&self, _client: &AuthRequest<'_>, method: &str) -> Option<Box<dyn AuthExchange>> {
        (method == METHOD).then(|| {
            let nonce = B64.encode(random::<18>());
            Box::new(self.exchange(nonce)) as Box<dyn AuthExchange>
        })
    }
}

/// Where a server exchange is.
enum State {
    /// Waiting for client-first.
    First,
    /// Server-first sent; waiting for client-final.
    Final {
        /// None: an unknown user, refused at the end.
        cred: Option<Credentials>,
        gs2_header: String,
        nonce: String,
        /// client-first-message-bare "," server-first-message
        auth_prefix: String,
    },
    Done,
}

/// One server-side SCRAM exchange.
struct ScramExchange {
    auth: ScramSha256,
    server_nonce: String,
    state: State,
}

/// A refusal: wrong credentials (0x86) or a message that is not SCRAM (0x87).
const BAD_CREDENTIALS: AuthStep = AuthStep::Fail(Reason::BAD_USER_NAME_OR_PASSWORD);
const NOT_SCRAM: AuthStep = AuthStep::Fail(Reason::NOT_AUTHORIZED);

impl AuthExchange for ScramExchange {
    fn step(&mut self, data: Option<&[u8]>) -> AuthStep {
        let Some(text) = data.and_then(|d| std::str::from_utf8(d).ok()) else {
            return NOT_SCRAM;
        };
        match std::mem::replace(&mut self.state, State::Done) {
            State::First => self.client_first(text).unwrap_or(NOT_SCRAM),
            State::Final {
                cred,
                gs2_header,
                nonce,
                auth_prefix,
            } => {
                let Some(m) = parse_client_final(text) else {
                    return NOT_SCRAM;
                };
                if m.channel_binding != B64.encode(&gs2_header) || m.nonce != nonce {
                    return NOT_SCRAM;
                }
                let Some(cred) = cred else {
                    return BAD_CREDENTIALS;
                };
                let auth_message = format!("{auth_prefix},{}", m.without_proof);
                match verify(&cred, &auth_message, m.proof) {
                    Some(v) => AuthStep::Success(Some(Bytes::from(v.into_bytes()))),
                    None => BAD_CREDENTIALS,
                }
            }
            State::Done => NOT_SCRAM,
        }
    }
}

impl ScramExchange {
    /// client-first → server-first.
    fn client_first(&mut self, text: &str) -> Option<AuthStep> {
        let (gs2_header, bare) = split_gs2(text)?;
        let mut attrs = bare.split(',');
        let user = unescape_name(attrs.next()?.strip_prefix("n=")?)?;
        let client_nonce = attrs.next()?.strip_prefix("r=")?;
        if client_nonce.is_empty() || !client_nonce.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
            return None;
        }
        let cred = self.auth.users.table.get(&user).cloned();
        let (salt, iterations) = match &cred {
            Some(c) => (c.salt.clone(), c.iterations),
            None => (
                hmac(&self.auth.secret, user.as_bytes())[..16].to_vec(),
                DEFAULT_ITERATIONS,
            ),
        };
        let nonce = format!("{client_nonce}{}", self.server_nonce);
        let server_first = format!("r={nonce},s={},i={iterations}", B64.encode(salt));
        self.state = State::Final {
            cred,
            gs2_header: gs2_header.to_owned(),
            nonce,
            auth_prefix: format!("{bare},{server_first}"),
        };
        Some(AuthStep::Continue(Bytes::from(server_first.into_bytes())))
    }
}

/// Check the client's proof; the server-final message (`v=`) when right.
fn verify(cred: &Credentials, auth_message: &str, proof_b64: &str) -> Option<String> {
    let proof = B64.decode(proof_b64).ok()?;
    if proof.len() != 32 {
        return None;
    }
    let signature = hmac(&cred.stored_key, auth_message.as_bytes());
    let client_key: Vec<u8> = proof.iter().zip(signature).map(|(p, s)| p ^ s).collect();
    let stored: Key = Sha256::digest(&client_key).into();
    // Compared without an early exit.
    let diff = stored
        .iter()
        .zip(cred.stored_key)
        .fold(0u8, |d, (a, b)| d | (a ^ b));
    (diff == 0).then(|| {
        let server_sig = hmac(&cred.server_key, auth_message.as_bytes());
        format!("v={}", B64.encode(server_sig))
    })
}

/// Split client-first into its GS2 header ("n,," or "y,,": no channel
/// binding, no authorization identity) and the bare message.
fn split_gs2(text: &str) -> Option<(&str, &str)> {
    let header_len = 3;
    let header = text.get(..header_len)?;
    matches!(header, "n,," | "y,,").then(|| (header, &text[header_len..]))
}

/// A SCRAM user name: `=2C` is a comma, `=3D` an equals sign, nothing else
/// may follow `=` (RFC 5802 §5.1).
fn unescape_name(s: &str) -> Option<String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('=') {
        out.push_str(&rest[..i]);
        let esc = rest.get(i..i + 3)?;
        out.push(match esc {
            "=2C" => ',',
            "=3D" => '=',
            _ => return None,
        });
        rest = &rest[i + 3..];
    }
    out.push_str(rest);
    (!out.is_empty()).then_some(out)
}

/// client-final-message, taken apart.
struct ClientFinal<'a> {
    channel_binding: &'a str,
    nonce: &'a str,
    without_proof: &'a str,
    proof: &'a str,
}

fn parse_client_final(text: &str) -> Option<ClientFinal<'_>> {
    let at = text.rfind(",p=")?;
    let (without_proof, proof) = (&text[..at], &text[at + 3..]);
    let mut attrs = without_proof.split(',');
    Some(ClientFinal {
        channel_binding: attrs.next()?.strip_prefix("c=")?,
        nonce: attrs.next()?.strip_prefix("r=")?,
        without_proof,
        proof,
    })
}

/// The client's half of SCRAM-SHA-256 (no channel binding).
pub struct ScramClient {
    password: String,
    /// client-first-message-bare
    first_bare: String,
    client_nonce: String,
    /// Expected server signature, once the final message was built.
    server_signature: Option<Key>,
}

impl ScramClient {
    /// A client for `user` with a random nonce.
    pub fn new(user: &str, password: &str) -> ScramClient {
        Self::with_nonce(user, password, &B64.encode(random::<18>()))
    }

    /// A client with a given nonce (printable ASCII without commas).
    pub fn with_nonce(user: &str, password: &str, nonce: &str) -> ScramClient {
        let name = user.replace('=', "=3D").replace(',', "=2C");
        ScramClient {
            password: password.to_owned(),
            first_bare: format!("n={name},r={nonce}"),
            client_nonce: nonce.to_owned(),
            server_signature: None,
        }
    }

    /// client-first-message: the CONNECT's Authentication Data.
    pub fn first(&self) -> String {
        format!("n,,{}", self.first_bare)
    }

    /// client-final-message answering server-first, or None when
    /// server-first is not well formed or does not extend our nonce.
    pub fn answer(&mut self, server_first: &str) -> Option<String> {
        let mut attrs = server_first.split(',');
        let nonce = attrs.next()?.strip_prefix("r=")?;
        let salt = B64.decode(attrs.next()?.strip_prefix("s=")?).ok()?;
        let iterations: u32 = attrs.next()?.strip_prefix("i=")?.parse().ok()?;
        if !nonce.starts_with(&self.client_nonce) || iterations == 0 {
            return None;
        }
        let without_proof = format!("c=biws,r={nonce}");
        let auth_message = format!("{},{server_first},{without_proof}", self.first_bare);
        let salted = salted_password(&self.password, &salt, iterations);
        let client_key = hmac(&salted, b"Client Key");
        let stored_key: Key = Sha256::digest(client_key).into();
        let signature = hmac(&stored_key, auth_message.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(signature)
            .map(|(k, s)| k ^ s)
            .collect();
        let server_key = hmac(&salted, b"Server Key");
        self.server_signature = Some(hmac(&server_key, auth_message.as_bytes()));
        Some(format!("{without_proof},p={}", B64.encode(proof)))
    }

    /// Whether server-final proves the server knew the password.
    pub fn verify_server(&self, server_final: &str) -> bool {
        let expected = self
            .server_signature
            .map(|s| format!("v={}", B64.encode(s)));
        expected.as_deref() == Some(server_final)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 7677 §3: user "user", password "pencil".
    const CLIENT_NONCE: &str = "rOprNGfwEbeRWgbNEkqO";
    const SERVER_NONCE: &str = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
    const SALT_B64: &str = "W22ZaJ0SNY7soEsUEjb6gQ==";
    const CLIENT_FIRST: &str = "n,,n=user,r=rOprNGfwEbeRWgbNEkqO";
    const SERVER_FIRST: &str =
        "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
    const CLIENT_FINAL: &str = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
                                p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
    const SERVER_FINAL: &str = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";

    fn rfc_server() -> ScramExchange {
        let mut s = ScramSha256::new();
        let salt = B64.decode(SALT_B64).unwrap();
        s.add_user_with("user", "pencil", &salt, 4096);
        s.exchange(SERVER_NONCE.into())
    }

    fn text(step: AuthStep) -> String {
        match step {
            AuthStep::Continue(b) | AuthStep::Success(Some(b)) => {
                String::from_utf8(b.to_vec()).unwrap()
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn server_follows_the_rfc7677_test_vector() {
        let mut ex = rfc_server();
        let first = ex.step(Some(CLIENT_FIRST.as_bytes()));
        assert!(matches!(first, AuthStep::Continue(_)));
        assert_eq!(text(first), SERVER_FIRST);
        let last = ex.step(Some(CLIENT_FINAL.as_bytes()));
        assert!(matches!(last, AuthStep::Success(_)));
        assert_eq!(text(last), SERVER_FINAL);
        // The exchange is over: anything more is refused.
        assert_eq!(ex.step(Some(CLIENT_FINAL.as_bytes())), NOT_SCRAM);
    }

    #[test]
    fn client_follows_the_rfc7677_test_vector() {
        let mut c = ScramClient::with_nonce("user", "pencil", CLIENT_NONCE);
        assert_eq!(c.first(), CLIENT_FIRST);
        assert_eq!(c.answer(SERVER_FIRST).as_deref(), Some(CLIENT_FINAL));
        assert!(c.verify_server(SERVER_FINAL));
        assert!(!c.verify_server("v=AAAA"));
    }

    #[test]
    fn a_wrong_proof_is_bad_credentials() {
        let mut ex = rfc_server();
        let _ = ex.step(Some(CLIENT_FIRST.as_bytes()));
        let mut c = ScramClient::with_nonce("user", "pen", CLIENT_NONCE);
        let fin = c.answer(SERVER_FIRST).unwrap();
        assert_eq!(ex.step(Some(fin.as_bytes())), BAD_CREDENTIALS);
    }

    #[test]
    fn an_unknown_user_gets_a_stable_salt_then_bad_credentials() {
        let s = ScramSha256::new();
        let salt_of = |s: &ScramSha256| {
            let mut ex = s.exchange("x".into());
            let first = text(ex.step(Some(b"n,,n=ghost,r=abc")));
            (first, ex)
        };
        let (a, mut ex) = salt_of(&s);
        let (b, _) = salt_of(&s);
        assert_eq!(a, b, "the same made-up salt each time");
        let mut c = ScramClient::with_nonce("ghost", "x", "abc");
        let fin = c.answer(&a).unwrap();
        assert_eq!(ex.step(Some(fin.as_bytes())), BAD_CREDENTIALS);
    }

    #[test]
    fn malformed_messages_are_refused_not_panicked_on() {
        for bad in [
            &b""[..],
            b"\xff\xfe",
            b"p=tls-unique,,n=user,r=abc",
            b"n,a=admin,n=user,r=abc",
            b"n,,n=us=1Aer,r=abc",
            b"n,,n=user",
            b"n,,r=abc,n=user",
            b"n,,n=user,r=",
            b"n,",
        ] {
            assert_eq!(rfc_server().step(Some(bad)), NOT_SCRAM, "{bad:?}");
        }
        assert_eq!(rfc_server().step(None), NOT_SCRAM);
        let mut ex = rfc_server();
        let _ = ex.step(Some(CLIENT_FIRST.as_bytes()));
        assert_eq!(ex.step(Some(b"c=biws,r=other,p=AAAA")), NOT_SCRAM);
        let mut ex = rfc_server();
        let _ = ex.step(Some(CLIENT_FIRST.as_bytes()));
        let bad_proof = CLIENT_FINAL.replace("p=dHzb", "p=!!!!");
        assert_eq!(ex.step(Some(bad_proof.as_bytes())), BAD_CREDENTIALS);
    }

    #[test]
    fn user_names_are_escaped_both_ways() {
        assert_eq!(unescape_name("a=2Cb=3Dc").as_deref(), Some("a,b=c"));
        assert_eq!(unescape_name("a=").as_deref(), None);
        let c = ScramClient::with_nonce("a,b=c", "p", "n");
        assert_eq!(c.first(), "n,,n=a=2Cb=3Dc,r=n");
    }
}
