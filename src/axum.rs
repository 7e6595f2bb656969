//! A drop-in for axum 0.8's `WebSocketUpgrade` extractor (feature `axum`),
//! with what axum's lacks: permessage-deflate (RFC 7692), the crate's
//! [`Config`] (limits, keepalive, timeouts) and an [`OriginPolicy`].
//!
//! Like axum's, it accepts an HTTP/1.1 upgrade (`GET`, answered 101) and an
//! HTTP/2 extended CONNECT (RFC 8441: `CONNECT` with `:protocol websocket`,
//! answered 200) on the same route; route it with `any(...)`, and serve
//! with `axum::serve` (which enables `SETTINGS_ENABLE_CONNECT_PROTOCOL`, RFC
//! 8441 §3) or a hyper-util server of your own with
//! `.http2().enable_connect_protocol()`. The socket is the crate's tokio
//! [`WebSocketStream`](crate::tokio::WebSocketStream) ([`WebSocket`]): a
//! `Stream` of [`Event`](crate::Event)s and a `Sink` of
//! [`Message`](crate::Message)s, which `split()`s.
//!
//! ```no_run
//! use axum::{Router, response::Response, routing::any};
//! use futures_util::StreamExt;
//! use wsmachine::axum::{WebSocket, WebSocketUpgrade};
//! use wsmachine::deflate::DeflateConfig;
//! use wsmachine::{Event, Message};
//!
//! async fn handler(ws: WebSocketUpgrade) -> Response {
//!     ws.protocols(["echo"])
//!         .deflate(DeflateConfig::default())
//!         .on_upgrade(handle_socket)
//! }
//!
//! async fn handle_socket(mut socket: WebSocket) {
//!     while let Some(Ok(event)) = socket.next().await {
//!         let reply = match event {
//!             Event::Text(text) => Message::Text(text),
//!             Event::Binary(data) => Message::Binary(data),
//!             _ => continue,
//!         };
//!         if socket.send(reply).await.is_err() {
//!             return;
//!         }
//!     }
//! }
//!
//! # async fn run() {
//! let app: Router = Router::new().route("/ws", any(handler));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await.unwrap();
//! axum::serve(listener, app).await.unwrap();
//! # }
//! ```
//!
//! Rejections, with axum's statuses where RFC 6455 agrees: a method other
//! than `GET` (HTTP/1.1) or `CONNECT` (HTTP/2) is 405; a missing or wrong
//! `Upgrade`, `Connection`, `Sec-WebSocket-Key` or `:protocol` is 400; a
//! `Sec-WebSocket-Version` other than 13 is 426 with
//! `Sec-WebSocket-Version: 13` (RFC 6455 §4.2.2, §4.4; axum answers 400); a
//! request hyper cannot hand over is 426. See [`Rejection`].

use crate::handshake::Headers;
use crate::hyper::{Transport, UpgradeFuture, check, headers_of, negotiate, protocol_of, response_for};
use crate::{Accept, Config, OriginPolicy};
use ::axum_core::body::Body;
use ::axum_core::extract::FromRequestParts;
use ::axum_core::response::{IntoResponse, Response};
use ::http::request::Parts;
use ::http::{Method, Version};
use ::hyper::upgrade::OnUpgrade;
use core::fmt;
use core::future::Future;
use std::borrow::Cow;
use std::string::{String, ToString};
use std::vec::Vec;

pub use crate::hyper::{Rejection, WebSocket};

/// The rejection of [`WebSocketUpgrade`] (axum's name for it).
pub type WebSocketUpgradeRejection = Rejection;

impl IntoResponse for Rejection {
    fn into_response(self) -> Response {
        self.response::<Body>()
    }
}

/// What to do when the upgrade fails after the response was sent (the
/// client went away, the connection broke): see
/// [`WebSocketUpgrade::on_failed_upgrade`]. Any `FnOnce(axum::Error)` is one.
pub trait OnFailedUpgrade: Send + 'static {
    /// Called with hyper's error, wrapped as axum's.
    fn call(self, error: ::axum_core::Error);
}

impl<F> OnFailedUpgrade for F
where
    F: FnOnce(::axum_core::Error) + Send + 'static,
{
    fn call(self, error: ::axum_core::Error) {
        self(error)
    }
}

/// The default [`OnFailedUpgrade`]: ignores the error.
#[derive(Clone, Copy, Debug, Default)]
#[non_exhaustive]
pub struct DefaultOnFailedUpgrade;

impl OnFailedUpgrade for DefaultOnFailedUpgrade {
    fn call(self, _error: ::axum_core::Error) {}
}

/// The extractor: a checked WebSocket request (HTTP/1.1 upgrade or HTTP/2
/// extended CONNECT), answered by [`on_upgrade`](WebSocketUpgrade::on_upgrade).
#[must_use = "a WebSocket is only opened by `on_upgrade`'s response"]
pub struct WebSocketUpgrade<F = DefaultOnFailedUpgrade> {
    method: Method,
    version: Version,
    headers: Headers,
    /// The `:protocol` pseudo-header (HTTP/2, RFC 8441 §4).
    pseudo_protocol: Option<String>,
    transport: Transport,
    on_upgrade: OnUpgrade,
    offered: Vec<String>,
    protocol: Option<String>,
    deflate: Option<crate::deflate::DeflateConfig>,
    config: Config,
    origin: Option<OriginPolicy>,
    on_failed_upgrade: F,
}

impl<F> fmt::Debug for WebSocketUpgrade<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebSocketUpgrade")
            .field("transport", &self.transport)
            .field("offered", &self.offered)
            .field("protocol", &self.protocol)
            .field("deflate", &self.deflate)
            .finish_non_exhaustive()
    }
}

impl<F> WebSocketUpgrade<F> {
    /// Chooses the first of `protocols` (the server's, in order of
    /// preference) that the client offered in `Sec-WebSocket-Protocol`
    /// (RFC 6455 §4.2.2 item 4); none offered: no subprotocol.
    pub fn protocols<I>(mut self, protocols: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<Cow<'static, str>>,
    {
        self.protocol = protocols
            .into_iter()
            .map(Into::into)
            .find(|p| self.offered.iter().any(|o| o == p.as_ref()))
            .map(|p| p.into_owned());
        self
    }

    /// The subprotocols the client offered, in its order.
    pub fn requested_protocols(&self) -> impl Iterator<Item = &str> {
        self.offered.iter().map(String::as_str)
    }

    /// The subprotocol chosen by [`protocols`](WebSocketUpgrade::protocols), if any.
    pub fn selected_protocol(&self) -> Option<&str> {
        self.protocol.as_deref()
    }

    /// Accepts permessage-deflate (RFC 7692) when the client offers it, with
    /// these settings (as [`Accept::deflate`]); the socket's
    /// `connection().deflate()` then tells what was agreed. Without this
    /// call, no compression (as axum's).
    pub fn deflate(mut self, config: crate::deflate::DeflateConfig) -> Self {
        self.deflate = Some(config);
        self
    }

    /// The socket's settings: message and frame limits, keepalive, timeouts.
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// Checks the request's `Origin` with `policy` (RFC 6455 §10.2) when
    /// answering; a refused page gets 403 and no socket. Over HTTP/2 the
    /// `:authority` stands for `Host`.
    pub fn origin(mut self, policy: OriginPolicy) -> Self {
        self.origin = Some(policy);
        self
    }

    /// Whether the request came over HTTP/2 (an extended CONNECT, RFC 8441)
    /// rather than as an HTTP/1.1 upgrade.
    pub fn is_http2(&self) -> bool {
        self.transport == Transport::Http2
    }

    /// Which HTTP the request came over.
    pub fn transport(&self) -> Transport {
        self.transport
    }

    /// Calls `callback` if the upgrade fails after the response was sent
    /// (by default errors are ignored).
    pub fn on_failed_upgrade<C: OnFailedUpgrade>(self, callback: C) -> WebSocketUpgrade<C> {
        WebSocketUpgrade {
            method: self.method,
            version: self.version,
            headers: self.headers,
            pseudo_protocol: self.pseudo_protocol,
            transport: self.transport,
            on_upgrade: self.on_upgrade,
            offered: self.offered,
            protocol: self.protocol,
            deflate: self.deflate,
            config: self.config,
            origin: self.origin,
            on_failed_upgrade: callback,
        }
    }

    /// Answers the request: negotiates the subprotocol and extensions and
    /// returns the response (101, or 200 over HTTP/2); once hyper has sent
    /// it, `callback` runs with the socket in a task of its own. A refused
    /// `Origin` gives 403 and never calls `callback`.
    pub fn on_upgrade<C, Fut>(self, callback: C) -> Response
    where
        C: FnOnce(WebSocket) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
        F: OnFailedUpgrade,
    {
        if let Some(policy) = &self.origin {
            if let Err(e) = policy.check_headers(&self.headers) {
                return Rejection::Origin(e).into_response();
            }
        }
        let mut accept = Accept::new();
        if let Some(p) = &self.protocol {
            accept = accept.protocol(p);
        }
        if let Some(d) = self.deflate {
            accept = accept.deflate(d);
        }
        let upgrade = match negotiate(
            &self.method,
            self.version,
            self.pseudo_protocol.as_deref(),
            &self.headers,
            accept,
        ) {
            Ok(upgrade) => upgrade,
            Err(rejection) => return rejection.into_response(),
        };
        let response = match response_for::<Body>(&upgrade) {
            Ok(response) => response,
            Err(misuse) => return Rejection::Accept(misuse).into_response(),
        };
        let socket = UpgradeFuture::new(self.on_upgrade, upgrade, self.config);
        let on_failed_upgrade = self.on_failed_upgrade;
        ::tokio::spawn(async move {
            match socket.await {
                Ok(ws) => callback(ws).await,
                Err(e) => on_failed_upgrade.call(::axum_core::Error::new(e)),
            }
        });
        response
    }
}

impl<S: Send + Sync> FromRequestParts<S> for WebSocketUpgrade<DefaultOnFailedUpgrade> {
    type Rejection = Rejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let headers = headers_of(parts.version, &parts.uri, &parts.headers);
        let transport = check(&parts.method, parts.version, &headers, &parts.extensions)?;
        let on_upgrade = parts.extensions.remove::<OnUpgrade>().ok_or(Rejection::NotUpgradable)?;
        let pseudo_protocol = protocol_of(&parts.extensions).map(String::from);
        let offered = headers
            .list("sec-websocket-protocol")
            .map(|p| String::from_utf8_lossy(p).to_string())
            .collect();
        Ok(WebSocketUpgrade {
            method: parts.method.clone(),
            version: parts.version,
            headers,
            pseudo_protocol,
            transport,
            on_upgrade,
            offered,
            protocol: None,
            deflate: None,
            config: Config::default(),
            origin: None,
            on_failed_upgrade: DefaultOnFailedUpgrade,
        })
    }
}
