//! The opening handshake as the connection runs it: reading the request or
//! response head out of the input, and the server's decisions
//! ([`Connection::accept`], [`Connection::reject`], [`Connection::respond`]).
//! The HTTP bytes and RFC 6455 §4 checks are the handshake layer's; the
//! negotiation is `crate::upgrade`'s and the extension layer's.

use super::Connection;
use super::lifecycle::{Stage, Transition, abnormal};
use crate::error::{Error, Failure, Misuse};
use crate::event::{DecisionError, Event, PendingHttp, PendingRequest};
use crate::extension::Offers;
use crate::handshake::server::{Parsed, parse_request};
use crate::handshake::{HandshakeError, HttpResponse, Response, client, find_head_end};
use crate::types::ReadyState;
use crate::upgrade::Negotiated;
use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;
use bytes::Buf;

/// What a client's request asked for, to check the response against (boxed
/// in the stage: an OPEN connection does not carry its size).
#[derive(Debug)]
pub(crate) struct ClientOffer {
    /// The expected `Sec-WebSocket-Accept`.
    pub(crate) accept: String,
    pub(crate) protocols: Vec<String>,
    pub(crate) extensions: Offers,
}

impl Connection {
    /// Runs the handshake step the stage calls for; returns whether it moved on.
    pub(crate) fn handshake_step(&mut self) -> bool {
        match self.life.stage() {
            Stage::AwaitResponse { .. } => self.client_handshake(),
            Stage::AwaitRequest { .. } => self.server_handshake(),
            Stage::AwaitDecision { .. } | Stage::AwaitHttpAnswer | Stage::Done => false,
        }
    }

    /// The end of the head in the input (scanning on from `scanned`), or
    /// the limit error.
    fn find_head(&mut self) -> Result<Option<usize>, HandshakeError> {
        let scanned = match self.life.stage_mut() {
            Stage::AwaitRequest { scanned } | Stage::AwaitResponse { scanned, .. } => scanned,
            _ => return Ok(None),
        };
        let limit = self.config.max_handshake_size;
        match find_head_end(&self.inbuf, *scanned) {
            Some(end) if end <= limit => Ok(Some(end)),
            None if self.inbuf.len() <= limit => {
                *scanned = self.inbuf.len();
                Ok(None)
            }
            _ => Err(HandshakeError::TooLarge { limit }),
        }
    }

    /// Server: looks for a complete request head and surfaces it.
    fn server_handshake(&mut self) -> bool {
        let end = match self.find_head() {
            Ok(Some(end)) => end,
            Ok(None) => return false,
            Err(e) => return self.fail_server_handshake(e),
        };
        match parse_request(&self.inbuf[..end]) {
            Ok(Some((parsed, len))) => {
                self.inbuf.advance(len);
                match parsed {
                    Parsed::Upgrade(request, key) => {
                        self.apply(Transition::Surfaced(Stage::AwaitDecision { key: key.clone() }));
                        self.events.push_back(Event::Request(PendingRequest {
                            request: Box::new(request),
                            key,
                        }));
                    }
                    Parsed::Http(request) => {
                        self.apply(Transition::Surfaced(Stage::AwaitHttpAnswer));
                        self.events.push_back(Event::HttpRequest(PendingHttp {
                            request: Box::new(request),
                        }));
                    }
                }
                true
            }
            // The blank line was found, so the head is complete.
            Ok(None) => self.fail_server_handshake(HandshakeError::Malformed("incomplete request head")),
            Err(e) => self.fail_server_handshake(e),
        }
    }

    /// Server, a decision pending: whether `incoming` more bytes would take
    /// what the client sent after its request head past
    /// `Config::max_handshake_size`; if so the connection has failed with
    /// [`HandshakeError::EarlyData`] (400). RFC 6455 §4.1: a client waits
    /// for the response before sending data, so little or nothing is
    /// expected here.
    pub(crate) fn early_data_overflows(&mut self, incoming: usize) -> bool {
        let limit = self.config.max_handshake_size;
        if self.inbuf.len().saturating_add(incoming) <= limit {
            return false;
        }
        self.fail_server_handshake(HandshakeError::EarlyData { limit });
        true
    }

    /// The handshake timer fired (`Config::handshake_timeout`): a server
    /// still waiting for the request head answers 408 (RFC 9110 §15.5.9)
    /// and closes; a client still waiting for the response fails.
    pub(crate) fn handshake_timed_out(&mut self) {
        match self.life.stage() {
            Stage::AwaitRequest { .. } => {
                let mut head = Vec::new();
                HttpResponse::new(408).encode(false, &mut head);
                self.out.extend(&head);
            }
            Stage::AwaitResponse { .. } => {}
            // The head arrived in time; what follows is the application's.
            Stage::AwaitDecision { .. } | Stage::AwaitHttpAnswer | Stage::Done => return,
        }
        self.apply(Transition::Failed(Failure::HandshakeTimeout, abnormal()));
    }

    /// Server: answers a request that broke the handshake rules with its
    /// 4xx, and fails.
    fn fail_server_handshake(&mut self, error: HandshakeError) -> bool {
        let mut head = Vec::new();
        HttpResponse::for_error(&error).encode(false, &mut head);
        self.out.extend(&head);
        self.fail_handshake(error, None);
        false
    }

    fn fail_handshake(&mut self, error: HandshakeError, response: Option<Box<Response>>) {
        self.apply(Transition::Failed(Failure::Handshake { error, response }, abnormal()));
    }

    /// Client: looks for a complete response head and checks it against
    /// the offer (RFC 6455 §4.2.2).
    fn client_handshake(&mut self) -> bool {
        let end = match self.find_head() {
            Ok(Some(end)) => end,
            Ok(None) => return false,
            Err(e) => {
                self.fail_handshake(e, None);
                return false;
            }
        };
        let (mut response, version, len) = match client::parse_response(&self.inbuf[..end]) {
            Ok(Some(r)) => r,
            Ok(None) => {
                self.fail_handshake(HandshakeError::Malformed("incomplete response head"), None);
                return false;
            }
            Err(e) => {
                self.fail_handshake(e, None);
                return false;
            }
        };
        let Stage::AwaitResponse { offer, .. } = self.life.stage() else {
            return false;
        };
        let checked = client::check_response(&response, version, &offer.accept)
            .and_then(|()| offer.extensions.check_response(&response.headers))
            .and_then(|ext| client::check_protocol(&mut response, &offer.protocols).map(|()| ext));
        let extension = match checked {
            Ok(ext) => ext,
            Err(e) => {
                self.fail_handshake(e, Some(Box::new(response)));
                return false;
            }
        };
        // Frames that came in the same read as the response stay in `inbuf`.
        self.inbuf.advance(len);
        let negotiated = Negotiated {
            protocol: response.protocol.clone(),
            extension,
            answer: None,
            headers: Vec::new(),
        };
        self.open_with(negotiated, Some(Box::new(response)));
        true
    }

    /// Moves to OPEN with what the handshake agreed on, and tells the
    /// application (`response`: the client's 101).
    fn open_with(&mut self, negotiated: Negotiated, response: Option<Box<Response>>) {
        let extensions = negotiated.extensions();
        self.extension = negotiated.extension;
        self.apply(Transition::Opened);
        self.events.push_back(Event::Open {
            protocol: negotiated.protocol,
            extensions,
            response,
        });
    }

    /// Accepts an upgrade request ([`Event::Request`]): queues the 101
    /// response, moves to OPEN (an [`Event::Open`] follows) and goes on to
    /// the frames that arrived with the request.
    ///
    /// On an error nothing is sent, and the request comes back in the
    /// error to be answered again (for example rejected).
    ///
    /// ```
    /// use wsmachine::{Accept, Config, Connection, Event};
    /// let mut server = Connection::server(Config::default());
    /// server.receive(b"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
    ///     Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
    ///     Sec-WebSocket-Protocol: chat\r\n\r\n");
    /// let Some(Event::Request(request)) = server.poll_event() else { panic!() };
    /// let protocol = request.protocols.first().cloned();
    /// server.accept(request, Accept::new().protocol(&protocol.unwrap()))?;
    /// assert!(matches!(server.poll_event(), Some(Event::Open { .. })));
    /// assert!(server.pending_output().starts_with(b"HTTP/1.1 101 "));
    /// # Ok::<(), wsmachine::DecisionError>(())
    /// ```
    pub fn accept(&mut self, request: PendingRequest, accept: crate::Accept) -> Result<(), DecisionError> {
        if !matches!(self.life.stage(), Stage::AwaitDecision { key } if *key == request.key) {
            return Err(self.foreign(request));
        }
        let negotiated = match accept.agree(&request.headers, &request.protocols) {
            Ok(n) => n,
            Err(e) => {
                return Err(DecisionError {
                    error: e.into(),
                    pending: request,
                });
            }
        };
        let mut head = Vec::new();
        negotiated.encode_101(&request.key, &mut head);
        self.out.extend(&head);
        self.open_with(negotiated, None);
        self.process();
        Ok(())
    }

    /// Answers an upgrade request ([`Event::Request`]) with a non-101
    /// response (for example 403), then CLOSED: the transport should be
    /// closed once the response is written.
    pub fn reject(&mut self, request: PendingRequest, response: HttpResponse) -> Result<(), DecisionError> {
        if !matches!(self.life.stage(), Stage::AwaitDecision { key } if *key == request.key) {
            return Err(self.foreign(request));
        }
        if let Err(e) = response.validate() {
            return Err(DecisionError {
                error: Error::Misuse(e.into()),
                pending: request,
            });
        }
        self.answer(&response, false);
        Ok(())
    }

    /// Answers a plain HTTP request ([`Event::HttpRequest`]) with
    /// `response` (a page, a health check, a 404), then CLOSED: the
    /// transport should be closed once the response is written. The answer
    /// to a `HEAD` goes without its body (RFC 9110 §9.3.2).
    ///
    /// ```
    /// use wsmachine::{Config, Connection, Event, HttpResponse};
    /// let mut server = Connection::server(Config::default());
    /// server.receive(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    /// let Some(Event::HttpRequest(request)) = server.poll_event() else { panic!() };
    /// server.respond(request, HttpResponse::new(200).body("hello"))?;
    /// assert!(server.pending_output().starts_with(b"HTTP/1.1 200 OK\r\n"));
    /// # Ok::<(), wsmachine::DecisionError<wsmachine::PendingHttp>>(())
    /// ```
    pub fn respond(&mut self, request: PendingHttp, response: HttpResponse) -> Result<(), DecisionError<PendingHttp>> {
        let error = if !matches!(self.life.stage(), Stage::AwaitHttpAnswer) {
            Some(self.not_pending())
        } else {
            response.validate().err().map(|e| Error::Misuse(e.into()))
        };
        if let Some(error) = error {
            return Err(DecisionError {
                error,
                pending: request,
            });
        }
        self.answer(&response, request.method == "HEAD");
        Ok(())
    }

    fn answer(&mut self, response: &HttpResponse, head_request: bool) {
        let mut head = Vec::new();
        response.encode(head_request, &mut head);
        self.out.extend(&head);
        self.apply(Transition::Rejected);
    }

    /// The request is not this connection's pending one: it ended meanwhile
    /// (CLOSED), or the request came from another connection.
    fn foreign(&self, request: PendingRequest) -> DecisionError {
        DecisionError {
            error: self.not_pending(),
            pending: request,
        }
    }

    fn not_pending(&self) -> Error {
        match self.life.state() {
            ReadyState::Closed => Error::NotOpen(ReadyState::Closed),
            _ => Error::Misuse(Misuse::ForeignRequest),
        }
    }
}
