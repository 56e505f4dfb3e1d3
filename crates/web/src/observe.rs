//! What operators see of the HTTP edge: one middleware gives every request a
//! request id (the client's `X-Request-Id` when it is short and plain, else a
//! fresh one; kept in the request's extensions as a [`RequestId`], where the
//! UI's error pages and the EC2 front's `RequestId` read it), runs the
//! request inside a `http_request` span carrying it (so
//! every log line of the request, and of the cloud calls it causes, names
//! it), returns it in the `X-Request-Id` response header, logs one line per
//! request and counts it in the `cloudbroker_http_*` metrics by method,
//! route *template* and status (never the raw path: ids and user names stay
//! out of label values). `GET /metrics` serves the Prometheus text; it is
//! open to direct loopback clients, or to anyone presenting the configured
//! `metrics_token` as a bearer token. [`Draining`] is the flag that turns
//! `/readyz` to 503 once shutdown has begun. Every answer also carries the
//! security headers (`Content-Security-Policy`, `X-Frame-Options: DENY`,
//! `X-Content-Type-Options: nosniff`, `Referrer-Policy`, and HSTS where the
//! broker is reached over HTTPS).

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{web, HttpMessage, HttpRequest, HttpResponse};
use cloudbroker_core::Broker;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;
use tracing::Instrument;

/// The request and response header carrying the request id.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

pub use cloudbroker_core::request_id::{RequestId, MAX_REQUEST_ID_LEN};

/// Set once shutdown begins: `/readyz` then answers 503 so load balancers
/// stop sending new requests while in-flight ones finish.
#[derive(Clone, Debug, Default)]
pub struct Draining(Arc<AtomicBool>);

impl Draining {
    /// Marks the server as draining.
    pub fn start(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    /// Whether shutdown has begun.
    pub fn is_draining(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

fn method_label(m: &actix_web::http::Method) -> &'static str {
    match m.as_str() {
        "GET" => "GET",
        "HEAD" => "HEAD",
        "POST" => "POST",
        "PUT" => "PUT",
        "PATCH" => "PATCH",
        "DELETE" => "DELETE",
        "OPTIONS" => "OPTIONS",
        _ => "other",
    }
}

/// A route template as a label value that lives as long as the process:
/// templates are the router's (a bounded set), each kept once, so counting
/// a request allocates nothing. Past [`MAX_ROUTES`] (not reachable with the
/// router's routes), "other".
fn route_label(pattern: Option<String>) -> &'static str {
    static ROUTES: std::sync::OnceLock<std::sync::RwLock<std::collections::HashMap<String, &'static str>>> = std::sync::OnceLock::new();
    let Some(pattern) = pattern else { return "unmatched" };
    let routes = ROUTES.get_or_init(Default::default);
    if let Some(r) = routes.read().unwrap_or_else(|e| e.into_inner()).get(&pattern) {
        return r;
    }
    let mut w = routes.write().unwrap_or_else(|e| e.into_inner());
    if w.len() >= MAX_ROUTES {
        return "other";
    }
    let kept: &'static str = Box::leak(pattern.clone().into_boxed_str());
    w.entry(pattern).or_insert(kept)
}

/// Route templates kept as label values at most.
const MAX_ROUTES: usize = 512;

/// A status code as a label value without allocating (common codes), else
/// its digits kept once per code (at most 900 of them).
fn status_label(status: u16) -> &'static str {
    static CODES: std::sync::OnceLock<Vec<&'static str>> = std::sync::OnceLock::new();
    let codes = CODES.get_or_init(|| (100u16..1000).map(|c| &*Box::leak(c.to_string().into_boxed_str())).collect());
    codes.get(usize::from(status).wrapping_sub(100)).copied().unwrap_or("other")
}

/// The middleware (see the module comment).
pub async fn observe(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let id =
        req.headers().get(REQUEST_ID_HEADER).and_then(|v| v.to_str().ok()).and_then(RequestId::parse).unwrap_or_else(RequestId::generate);
    let route = route_label(req.match_pattern());
    let method = method_label(req.method());
    // The request line is logged only where info is on (not read otherwise).
    let logged = tracing::enabled!(tracing::Level::INFO);
    let (path, peer) = if logged {
        (req.path().to_string(), crate::common::auth::client_ip(req.request()).map(|a| a.to_string()).unwrap_or_default())
    } else {
        (String::new(), String::new())
    };
    let span = tracing::info_span!("http_request", request_id = %id, method, route = %route);
    req.extensions_mut().insert(id.clone());
    let labels = [("method", method), ("route", route)];
    let in_flight = metrics::gauge!("cloudbroker_http_requests_in_flight");
    in_flight.increment(1.0);
    let started = Instant::now();
    let res = next.call(req).instrument(span.clone()).await;
    in_flight.decrement(1.0);
    let elapsed = started.elapsed();
    let status = match &res {
        Ok(r) => r.status().as_u16(),
        Err(e) => e.as_response_error().status_code().as_u16(),
    };
    metrics::histogram!("cloudbroker_http_request_duration_seconds", &labels).record(elapsed.as_secs_f64());
    let counted = [labels[0], labels[1], ("status", status_label(status))];
    metrics::counter!("cloudbroker_http_requests_total", &counted).increment(1);
    if logged {
        span.in_scope(|| tracing::info!(status, elapsed_ms = elapsed.as_millis() as u64, %path, %peer, "request"));
    }
    let mut res = res?;
    if let Ok(v) = HeaderValue::from_str(id.as_str()) {
        res.headers_mut().insert(HeaderName::from_static(REQUEST_ID_HEADER), v);
    }
    let tls = res.request().app_config().secure()
        || res
            .request()
            .app_data::<web::Data<Broker>>()
            .is_some_and(|b| b.config.public_url.as_deref().is_some_and(|u| u.starts_with("https://")));
    security_headers(res.headers_mut(), tls);
    Ok(res)
}

/// The page's Content-Security-Policy: the UI loads its own script and
/// stylesheet only (no inline code, no other origin), never in a frame.
pub const CONTENT_SECURITY_POLICY: &str =
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// Security headers on every answer (a handler's own value is kept);
/// `Strict-Transport-Security` only where the broker is reached over HTTPS
/// (served with TLS, or a `public_url` that is https behind a proxy).
fn security_headers(h: &mut actix_web::http::header::HeaderMap, tls: bool) {
    let mut set = |name: &'static str, value: &'static str| {
        let name = HeaderName::from_static(name);
        if !h.contains_key(&name) {
            h.insert(name, HeaderValue::from_static(value));
        }
    };
    set("content-security-policy", CONTENT_SECURITY_POLICY);
    set("x-frame-options", "DENY");
    set("x-content-type-options", "nosniff");
    set("referrer-policy", "no-referrer");
    if tls {
        set("strict-transport-security", "max-age=31536000");
    }
}

/// Whether the request came straight from this host (no proxy in between:
/// a local reverse proxy would make every outside client look local).
fn direct_loopback(req: &HttpRequest) -> bool {
    let proxied = ["forwarded", "x-forwarded-for", "x-real-ip"].iter().any(|h| req.headers().contains_key(*h));
    !proxied && req.peer_addr().is_some_and(|a| a.ip().is_loopback())
}

/// `GET /metrics`: the Prometheus text format.
pub async fn metrics(req: HttpRequest, broker: web::Data<Broker>) -> HttpResponse {
    match &broker.config.metrics_token {
        Some(token) => {
            let given = req.headers().get("authorization").and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
            let ok = given.is_some_and(|g| subtle::ConstantTimeEq::ct_eq(g.as_bytes(), token.expose().as_bytes()).into());
            if !ok {
                return HttpResponse::Unauthorized()
                    .insert_header(("WWW-Authenticate", "Bearer realm=\"metrics\""))
                    .json(serde_json::json!({"error": "unauthorized", "message": "/metrics needs the metrics token as a bearer token"}));
            }
        }
        None if !direct_loopback(&req) => {
            return HttpResponse::Forbidden().json(serde_json::json!({
                "error": "forbidden",
                "message": "/metrics is open to loopback clients only; set metrics_token (CLOUDBROKER_METRICS_TOKEN) to scrape from elsewhere"
            }));
        }
        None => {}
    }
    HttpResponse::Ok().content_type("text/plain; version=0.0.4; charset=utf-8").body(cloudbroker_core::metrics::render())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_kept_once_and_bounded() {
        assert_eq!(status_label(200), "200");
        assert_eq!(status_label(503), "503");
        assert_eq!(status_label(42), "other");
        assert_eq!(route_label(None), "unmatched");
        let a = route_label(Some("/api/v1/vms/{id}".into()));
        let b = route_label(Some("/api/v1/vms/{id}".into()));
        assert_eq!(a, "/api/v1/vms/{id}");
        assert!(std::ptr::eq(a, b), "a template was kept twice");
    }
}
