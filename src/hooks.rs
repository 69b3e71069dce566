//! Extension points, registered in code before the broker starts.
//!
//! The seeds' hooks: `client.connected`, `client.subscribe` (can rewrite or
//! reject filters), `client.unsubscribe`, `message.publish` (can modify or drop
//! a message), `message.acked` and `client.disconnected`. A [`Hooks`] value is
//! built by the embedder and shared read-only (`Arc`) by every shard; each hook
//! runs synchronously on the shard that owns the client, so a hook must be quick
//! and must never block (hand slow work to a channel of your own).
//!
//! MQTT 5 enhanced authentication is driven by [`Authenticator`]s added with
//! [`Hooks::add_authenticator`] (see `crate::auth`). The one asynchronous
//! hook, [`Hooks::set_authenticate`], checks logins (user name, password)
//! that no built-in method decided: its future runs on the client's home
//! shard while the CONNECT waits (bounded by `auth.hook_timeout_ms`).

pub use crate::auth::{AuthDecision, LoginRequest, Refusal};
pub use crate::auth::{AuthExchange, AuthRequest, AuthStep, Authenticator};
use crate::codec::{ProtocolVersion, QoS};
use crate::message::Message;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// The authenticate hook's answer: a future run on the client's home shard
/// (it may be `!Send`: an HTTP, LDAP or database client of that shard).
pub type AuthFuture = Pin<Box<dyn Future<Output = AuthDecision>>>;

/// Who a hook is about.
#[derive(Debug, Clone)]
pub struct ClientInfo {
    pub client_id: Arc<str>,
    pub username: Option<Arc<str>>,
    pub peer: Option<crate::peer::PeerAddr>,
    pub version: ProtocolVersion,
    /// The shard that owns the client.
    pub shard: usize,
}

/// One filter of a SUBSCRIBE as the `client.subscribe` hooks see it, with
/// its MQTT 5 options (all off for 3.1/3.1.1 clients).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscribeRequest {
    pub filter: String,
    /// The QoS asked for (the broker grants at most `mqtt.maximum_qos`).
    pub qos: QoS,
    /// Set to true to reject this filter (SUBACK 0x80; MQTT 5: 0x87 Not authorized).
    pub rejected: bool,
    /// MQTT 5 No Local: the client's own messages are not sent back to it.
    pub no_local: bool,
    /// MQTT 5 Retain As Published: deliveries keep the published RETAIN flag.
    pub retain_as_published: bool,
    /// MQTT 5 Retain Handling: 0 retained messages on subscribe, 1 only for
    /// a new subscription, 2 never.
    pub retain_handling: u8,
}

impl SubscribeRequest {
    /// A request for `filter` at `qos` without MQTT 5 options (for a hook
    /// that adds filters).
    pub fn new(filter: impl Into<String>, qos: QoS) -> Self {
        SubscribeRequest {
            filter: filter.into(),
            qos,
            rejected: false,
            no_local: false,
            retain_as_published: false,
            retain_handling: 0,
        }
    }
}

type ConnectedFn = dyn Fn(&ClientInfo) + Send + Sync;
type SubscribeFn = dyn Fn(&ClientInfo, &mut Vec<SubscribeRequest>) + Send + Sync;
type UnsubscribeFn = dyn Fn(&ClientInfo, &mut Vec<String>) + Send + Sync;
type PublishFn = dyn Fn(&ClientInfo, Message) -> Option<Message> + Send + Sync;
type AckedFn = dyn Fn(&ClientInfo, &Message) + Send + Sync;
type DisconnectedFn = dyn Fn(&ClientInfo, &str) + Send + Sync;
type AuthenticateFn = dyn Fn(&LoginRequest) -> AuthFuture + Send + Sync;

/// The registered hooks, run in registration order.
#[derive(Default, Clone)]
pub struct Hooks {
    connected: Vec<Arc<ConnectedFn>>,
    subscribe: Vec<Arc<SubscribeFn>>,
    unsubscribe: Vec<Arc<UnsubscribeFn>>,
    publish: Vec<Arc<PublishFn>>,
    acked: Vec<Arc<AckedFn>>,
    disconnected: Vec<Arc<DisconnectedFn>>,
    authenticators: Vec<Arc<dyn Authenticator>>,
    authenticate: Option<Arc<AuthenticateFn>>,
}

impl std::fmt::Debug for Hooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hooks")
            .field("connected", &self.connected.len())
            .field("subscribe", &self.subscribe.len())
            .field("unsubscribe", &self.unsubscribe.len())
            .field("publish", &self.publish.len())
            .field("acked", &self.acked.len())
            .field("disconnected", &self.disconnected.len())
            .field("authenticators", &self.authenticators.len())
            .field("authenticate", &self.authenticate.is_some())
            .finish()
    }
}

impl Hooks {
    pub fn new() -> Self {
        Self::default()
    }

    /// `client.connected`: after CONNACK 0 was queued.
    pub fn on_client_connected(&mut self, f: impl Fn(&ClientInfo) + Send + Sync + 'static) {
        self.connected.push(Arc::new(f));
    }

    /// `client.subscribe`: before filters are validated and added; may rewrite or reject.
    pub fn on_client_subscribe(
        &mut self,
        f: impl Fn(&ClientInfo, &mut Vec<SubscribeRequest>) + Send + Sync + 'static,
    ) {
        self.subscribe.push(Arc::new(f));
    }

    /// `client.unsubscribe`: before filters are removed; may rewrite the list.
    pub fn on_client_unsubscribe(
        &mut self,
        f: impl Fn(&ClientInfo, &mut Vec<String>) + Send + Sync + 'static,
    ) {
        self.unsubscribe.push(Arc::new(f));
    }

    /// `message.publish`: before routing; return `None` to drop, or a (modified) message.
    /// Runs for client publishes, wills and the HTTP API's publishes (an empty
    /// client id), not for the broker's own `$SYS` messages. The publisher is
    /// still acknowledged when dropped.
    pub fn on_message_publish(
        &mut self,
        f: impl Fn(&ClientInfo, Message) -> Option<Message> + Send + Sync + 'static,
    ) {
        self.publish.push(Arc::new(f));
    }

    /// `message.acked`: a subscriber completed a QoS 1 (PUBACK) or QoS 2 (PUBCOMP) delivery.
    pub fn on_message_acked(&mut self, f: impl Fn(&ClientInfo, &Message) + Send + Sync + 'static) {
        self.acked.push(Arc::new(f));
    }

    /// `client.disconnected`: the connection is gone; the reason is a short text.
    pub fn on_client_disconnected(
        &mut self,
        f: impl Fn(&ClientInfo, &str) + Send + Sync + 'static,
    ) {
        self.disconnected.push(Arc::new(f));
    }

    /// MQTT 5 enhanced authentication: a CONNECT (or AUTH 0x19) whose
    /// Authentication Method one of the registered authenticators starts
    /// is authenticated by it (the first that accepts the method); any other
    /// method gets CONNACK 0x8C. Without an authenticator every method does.
    pub fn add_authenticator(&mut self, a: impl Authenticator + 'static) {
        self.authenticators.push(Arc::new(a));
    }

    /// The authenticate hook: asked about a login (user name and password)
    /// that the built-in methods (certificate, client ids, password file,
    /// JWT) did not decide. The CONNACK waits for its future, at most
    /// `auth.hook_timeout_ms` (then 0x03 / MQTT 5 0x88). Setting it again
    /// replaces it.
    pub fn set_authenticate(
        &mut self,
        f: impl Fn(&LoginRequest) -> AuthFuture + Send + Sync + 'static,
    ) {
        self.authenticate = Some(Arc::new(f));
    }

    /// Whether an authenticate hook is set.
    pub fn has_authenticate(&self) -> bool {
        self.authenticate.is_some()
    }

    /// The hook's future for `req`, if a hook is set.
    pub(crate) fn authenticate(&self, req: &LoginRequest) -> Option<AuthFuture> {
        self.authenticate.as_ref().map(|f| f(req))
    }

    /// An exchange of `method`, from the first authenticator offering it.
    pub(crate) fn start_auth(
        &self,
        client: &AuthRequest<'_>,
        method: &str,
    ) -> Option<Box<dyn AuthExchange>> {
        self.authenticators
            .iter()
            .find_map(|a| a.start(client, method))
    }

    pub(crate) fn client_connected(&self, c: &ClientInfo) {
        self.connected.iter().for_each(|h| h(c));
    }

    pub(crate) fn client_subscribe(&self, c: &ClientInfo, reqs: &mut Vec<SubscribeRequest>) {
        self.subscribe.iter().for_each(|h| h(c, reqs));
    }

    pub(crate) fn client_unsubscribe(&self, c: &ClientInfo, filters: &mut Vec<String>) {
        self.unsubscribe.iter().for_each(|h| h(c, filters));
    }

    pub(crate) fn message_publish(&self, c: &ClientInfo, msg: Message) -> Option<Message> {
        self.publish.iter().try_fold(msg, |m, h| h(c, m))
    }

    pub(crate) fn message_acked(&self, c: &ClientInfo, msg: &Message) {
        self.acked.iter().for_each(|h| h(c, msg));
    }

    pub(crate) fn client_disconnected(&self, c: &ClientInfo, reason: &str) {
        self.disconnected.iter().for_each(|h| h(c, reason));
    }
}
