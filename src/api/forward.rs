//! Forwarding by a node's front server (docs/CLUSTER.md "Any node, any client"): a
//! tenant's request or WebSocket goes on to the tenant's own server on the node that
//! routes it (this node or another), so that a load balancer may spread clients over
//! every node.
//!
//! The owner is read from the tenant's lease (which carries the address of the tenant's
//! server), at most every [`OWNER_TTL`] per front and tenant. A request is sent on
//! as it came (method, path, query, headers, body streamed) with the client's address
//! appended to `X-Forwarded-For` and [`FORWARDED_BY`] set; the answer comes back streamed,
//! as the owner wrote it (compressed or not). A WebSocket is opened to the owner first (so
//! that the owner's refusal, a wrong token say, is the client's answer), then frames are
//! passed both ways until either side closes; when the owner goes away the client's socket
//! is closed with 1012 (service restart) and the desktop resumes from `hello` on
//! reconnecting, by then on the new owner.
//!
//! One hop: a front forwards to a tenant's server, which never forwards. Nothing is
//! retried here: a request may have reached the owner before its connection broke, so the
//! client, which knows whether its request is safe to repeat, gets 503 `not_owner` with
//! `Retry-After: 1`.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use actix_web::body::SizedStream;
use actix_web::http::header::{self, HeaderMap, HeaderName};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use actix_ws::{CloseCode, CloseReason, Message};
use bytestring::ByteString;
use futures_util::{SinkExt, StreamExt};

use super::error::ApiError;
use crate::cluster::{LeaseValue, Node};

/// Set on every answer of a cluster node: the id of the node that made it (a forwarded
/// answer keeps the owner's), so a client behind a load balancer sees who served it.
pub const NODE_HEADER: &str = "switchboard-node";

/// Set on every forwarded request: the id of the node that forwarded it.
pub const FORWARDED_BY: &str = "switchboard-forwarded-by";

/// How long a front server trusts the owner it read from the lease.
pub const OWNER_TTL: Duration = Duration::from_millis(250);

/// The largest WebSocket frame passed on (a `hello` with full transcripts is large; the
/// owner enforces its own limit on what desktops send).
const MAX_FRAME: usize = 64 << 20;

/// How long a front server waits to connect to the owner.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// The owner of each tenant as a front server last read it from the lease, when, and
/// whether it failed to answer since.
#[derive(Default)]
pub struct OwnerCache {
    last: Mutex<std::collections::HashMap<String, Seen>>,
}

/// When a tenant's lease was read, what it said, and whether its owner failed since.
type Seen = (Instant, Option<LeaseValue>, bool);

impl OwnerCache {
    /// The owner of tenant `tenant`, from the lease when the last read is older than
    /// [`OWNER_TTL`].
    pub async fn owner(&self, node: &Node, tenant: &str) -> Option<LeaseValue> {
        if let Ok(last) = self.last.lock() {
            if let Some((at, owner, _)) = last.get(tenant) {
                if at.elapsed() < OWNER_TTL {
                    return owner.clone();
                }
            }
        }
        let owner = node.owner(tenant).await;
        if let Ok(mut last) = self.last.lock() {
            // Bounded by the registry: a tenant id is looked up only once it is known.
            last.insert(tenant.to_string(), (Instant::now(), owner.clone(), false));
        }
        owner
    }

    /// Notes that tenant `tenant`'s owner did not answer. The lease is read again when
    /// the last read is [`OWNER_TTL`] old, as always (a dead owner's lease names it until
    /// another node takes it: reading it for every request of a failover would only load
    /// NATS). `true` the first time since that read, so that a failover logs a line per
    /// tenant and lease read, not one per request.
    pub fn forget(&self, tenant: &str) -> bool {
        let Ok(mut last) = self.last.lock() else {
            return true;
        };
        match last.get_mut(tenant) {
            Some((_, _, failed)) => !std::mem::replace(failed, true),
            None => true,
        }
    }
}

/// A forwarded request's body: streamed as it comes, or already read (a sign-in, whose
/// tenant the front server reads from it).
pub enum Body {
    Stream(web::Payload),
    Read(web::Bytes),
}

/// The HTTP client of one front server worker: no overall timeout (a CSV export of a year, a
/// backup and a socket last as long as they last), a bounded connect, and no bound on
/// connections. With the client's default bound (100 per worker), 200 desktops and their
/// customers through the fronts of a cluster completed nothing: every REST request
/// waited out its client's 30 s (found by `benches/cluster_measure.sh`; not reproduced by
/// a test yet).
pub fn client() -> awc::Client {
    awc::Client::builder()
        .disable_timeout()
        .connector(awc::Connector::new().timeout(CONNECT_TIMEOUT).limit(0))
        .finish()
}

/// 503 `not_owner` naming `owner` (or nobody), with `Retry-After: 1`.
pub fn not_owner(owner: Option<&LeaseValue>, why: &str) -> ApiError {
    let message = match owner {
        Some(LeaseValue {
            handover_to: Some(to),
            node,
            ..
        }) => format!("this node does not route the tenant{why}; {node} is handing it over to {to}; try again shortly"),
        Some(o) if !o.url.is_empty() => format!(
            "this node does not route the tenant{why}; its owner is {} at {}",
            o.node, o.url
        ),
        Some(o) => format!("this node does not route the tenant{why}; its owner is {}", o.node),
        None => format!("this node does not route the tenant{why}, and no node does right now; try again shortly"),
    };
    ApiError {
        retry_after_s: Some(1),
        ..ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "not_owner", message)
    }
}

/// Headers that belong to one connection, never passed on (RFC 9110 7.6.1), and those the
/// forwarder sets itself.
fn hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "proxy-connection"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
            | "host"
            | "content-length"
            | "x-forwarded-for"
            | FORWARDED_BY
    )
}

/// The handshake's own headers, which the WebSocket client makes afresh.
fn handshake(name: &HeaderName) -> bool {
    name.as_str().starts_with("sec-websocket-")
}

/// `X-Forwarded-For` as the owner should see it: what the client's side sent, then the
/// address this node took the request from.
fn forwarded_for(req: &HttpRequest) -> Option<String> {
    let peer = req.peer_addr()?.ip().to_string();
    let earlier: Vec<&str> = req
        .headers()
        .get_all(header::X_FORWARDED_FOR)
        .filter_map(|v| v.to_str().ok())
        .collect();
    Some(if earlier.is_empty() {
        peer
    } else {
        format!("{}, {peer}", earlier.join(", "))
    })
}

fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers.get(header::CONTENT_LENGTH)?.to_str().ok()?.parse().ok()
}

fn is_websocket(req: &HttpRequest) -> bool {
    req.headers()
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

/// Everything a front server does not answer itself: on to the server of the node that
/// routes tenant `tenant` (this node's own or another's).
pub async fn forward(
    req: HttpRequest,
    body: Body,
    node: &Node,
    owners: &OwnerCache,
    client: &awc::Client,
    tenant: &str,
) -> Result<HttpResponse, ApiError> {
    let owner = match owners.owner(node, tenant).await {
        Some(o) if !o.url.is_empty() && o.handover_to.is_none() => o,
        other => return Err(not_owner(other.as_ref(), "")),
    };
    let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
    let url = format!("{}{path}", owner.url.trim_end_matches('/'));
    let me = node.config.node_id.as_str();
    let answer = match body {
        Body::Stream(payload) if is_websocket(&req) => forward_socket(&req, payload, client, &url, me).await,
        body => forward_request(&req, body, client, &url, me).await,
    };
    answer.map_err(|e| match e {
        Forwarding::Unreachable(why) => {
            if owners.forget(tenant) {
                tracing::warn!(tenant, owner = %owner.node, url = %owner.url, error = %why, "the tenant's owner did not answer a forwarded request");
            }
            not_owner(Some(&owner), &format!(" and its owner did not answer ({why})"))
        }
        Forwarding::Refused(e) => e,
    })
}

enum Forwarding {
    /// The owner could not be reached (or broke the connection before answering).
    Unreachable(String),
    /// An answer for the client as it is.
    Refused(ApiError),
}

async fn forward_request(
    req: &HttpRequest,
    body: Body,
    client: &awc::Client,
    url: &str,
    me: &str,
) -> Result<HttpResponse, Forwarding> {
    let mut out = client.request(req.method().clone(), url).no_decompress();
    for (name, value) in req.headers() {
        if !hop_by_hop(name) {
            out = out.append_header((name.clone(), value.clone()));
        }
    }
    if let Some(xff) = forwarded_for(req) {
        out = out.insert_header((header::X_FORWARDED_FOR, xff));
    }
    out = out.insert_header((FORWARDED_BY, me));
    let chunked = req.headers().contains_key(header::TRANSFER_ENCODING);
    let sent = match (body, content_length(req.headers())) {
        (Body::Read(bytes), _) => out.send_body(bytes).await,
        (Body::Stream(_), Some(0) | None) if !chunked => out.send().await,
        (Body::Stream(payload), Some(n)) => out.send_body(SizedStream::new(n, payload)).await,
        (Body::Stream(payload), None) => out.send_stream(payload).await,
    };
    let answer = sent.map_err(|e| Forwarding::Unreachable(e.to_string()))?;
    let mut back = HttpResponse::build(answer.status());
    for (name, value) in answer.headers() {
        if !hop_by_hop(name) {
            back.append_header((name.clone(), value.clone()));
        }
    }
    Ok(match content_length(answer.headers()) {
        Some(n) => back.body(SizedStream::new(n, answer)),
        None => back.streaming(answer),
    })
}

async fn forward_socket(
    req: &HttpRequest,
    payload: web::Payload,
    client: &awc::Client,
    url: &str,
    me: &str,
) -> Result<HttpResponse, Forwarding> {
    let mut out = client.ws(url).max_frame_size(MAX_FRAME);
    for (name, value) in req.headers() {
        if !hop_by_hop(name) && !handshake(name) {
            out = out.header(name.clone(), value.clone());
        }
    }
    if let Some(protocols) = req.headers().get(header::SEC_WEBSOCKET_PROTOCOL) {
        out = out.set_header(header::SEC_WEBSOCKET_PROTOCOL, protocols.clone());
    }
    if let Some(xff) = forwarded_for(req) {
        out = out.set_header(header::X_FORWARDED_FOR, xff);
    }
    out = out.set_header(FORWARDED_BY, me);
    let upstream = match out.connect().await {
        Ok((_, framed)) => framed,
        Err(awc::error::WsClientError::InvalidResponseStatus(status)) => {
            return Err(Forwarding::Refused(refused_socket(status)));
        }
        Err(e) => return Err(Forwarding::Unreachable(e.to_string())),
    };
    let (response, session, stream) = actix_ws::handle(req, payload)
        .map_err(|e| Forwarding::Refused(ApiError::bad_request("not_a_websocket", e.to_string())))?;
    let stream = stream.max_frame_size(MAX_FRAME);
    actix_rt::spawn(pipe(session, stream, upstream));
    Ok(response)
}

/// The owner refused the socket with `status`: the same status for the client, with the
/// code the owner gives it (the owner's body does not come back through a WebSocket
/// handshake).
fn refused_socket(status: awc::http::StatusCode) -> ApiError {
    let status = StatusCode::from_u16(status.as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    match status {
        StatusCode::UNAUTHORIZED => ApiError::unauthorized(),
        StatusCode::FORBIDDEN => ApiError::forbidden("the tenant's owner refused this socket"),
        StatusCode::BAD_REQUEST => ApiError::bad_request("not_a_websocket", "the tenant's owner refused the handshake"),
        StatusCode::TOO_MANY_REQUESTS => ApiError::rate_limited(1000, "sockets"),
        s => ApiError::new(s, "forward_refused", format!("the tenant's owner answered {s}")),
    }
}

/// Why a forwarded socket closes when the owner's side ended: 1012, reconnect.
fn owner_changed() -> CloseReason {
    CloseReason {
        code: CloseCode::Restart,
        description: Some("the tenant's owner changed; reconnect to resume".into()),
    }
}

/// Frames both ways between the client's socket and the owner's, until either ends.
async fn pipe<S>(mut session: actix_ws::Session, mut client: actix_ws::MessageStream, upstream: S)
where
    S: futures_util::Stream<Item = Result<awc::ws::Frame, awc::error::WsProtocolError>>
        + futures_util::Sink<awc::ws::Message, Error = awc::error::WsProtocolError>,
{
    use awc::ws::{Frame, Message as Out};
    let (mut to_owner, mut from_owner) = upstream.split();
    loop {
        tokio::select! {
            frame = from_owner.next() => {
                let sent = match frame {
                    Some(Ok(Frame::Text(b))) => match ByteString::try_from(b) {
                        Ok(text) => session.text(text).await,
                        Err(_) => break,
                    },
                    Some(Ok(Frame::Binary(b))) => session.binary(b).await,
                    Some(Ok(Frame::Ping(b))) => session.ping(&b).await,
                    Some(Ok(Frame::Pong(b))) => session.pong(&b).await,
                    Some(Ok(Frame::Continuation(item))) => session.continuation(item).await,
                    Some(Ok(Frame::Close(reason))) => {
                        let _ = session.close(reason).await;
                        return;
                    }
                    Some(Err(_)) | None => {
                        // The owner went away (died, stepped down, handed over).
                        let _ = session.close(Some(owner_changed())).await;
                        return;
                    }
                };
                if sent.is_err() {
                    break;
                }
            }
            message = client.next() => {
                let out = match message {
                    Some(Ok(Message::Text(t))) => Out::Text(t),
                    Some(Ok(Message::Binary(b))) => Out::Binary(b),
                    Some(Ok(Message::Ping(b))) => Out::Ping(b),
                    Some(Ok(Message::Pong(b))) => Out::Pong(b),
                    Some(Ok(Message::Continuation(item))) => Out::Continuation(item),
                    Some(Ok(Message::Nop)) => continue,
                    Some(Ok(Message::Close(reason))) => {
                        let _ = to_owner.send(Out::Close(reason)).await;
                        return;
                    }
                    Some(Err(_)) | None => break,
                };
                if to_owner.send(out).await.is_err() {
                    let _ = session.close(Some(owner_changed())).await;
                    return;
                }
            }
        }
    }
    let _ = to_owner.send(Out::Close(None)).await;
    let _ = session.close(None).await;
}
