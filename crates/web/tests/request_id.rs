//! One request id per HTTP request: the id in the `X-Request-Id` answer
//! header is the one in the request's log span, EC2's `RequestId` (in the
//! error document, the answer document and `x-amzn-RequestId`), and the id
//! the UI's error pages show. A plain id the client sends is kept.

// Test code: panicking on an unexpected result is the point.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{TestApp, SUPER_PW};
use reqwest::Method;
use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

/// Every log line of this test process (the server runs in it).
fn logs() -> Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let sink = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::INFO)
            .with_ansi(false)
            .with_writer(move || Sink(sink.clone()))
            .finish();
        tracing::subscriber::set_global_default(subscriber).unwrap();
        buf
    })
    .clone()
}

struct Sink(Arc<Mutex<Vec<u8>>>);

impl Write for Sink {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The log lines written inside the span of request `id`.
fn lines_of(id: &str) -> Vec<String> {
    let text = String::from_utf8_lossy(&logs().lock().unwrap()).into_owned();
    text.lines().filter(|l| l.contains(&format!("request_id={id}"))).map(str::to_string).collect()
}

fn element<'a>(xml: &'a str, name: &str) -> Option<&'a str> {
    let open = format!("<{name}>");
    let start = xml.find(&open)? + open.len();
    Some(&xml[start..start + xml[start..].find('<')?])
}

/// A SigV4-signed EC2 call (with `extra` headers); the answer's status, headers and body.
async fn ec2(app: &TestApp, key: &(String, String), body: &str, extra: &[(&str, &str)]) -> (u16, reqwest::header::HeaderMap, String) {
    let host = app.base.trim_start_matches("http://").to_string();
    let headers =
        vec![("host".to_string(), host), ("content-type".to_string(), "application/x-www-form-urlencoded; charset=utf-8".to_string())];
    let params = cloudbroker_sigv::SigningParams::new(&key.0, &key.1, "sb", "ec2", chrono::Utc::now());
    let added = cloudbroker_sigv::sign_v4_headers("POST", "/ec2", &[], &headers, body.as_bytes(), &params).unwrap();
    let mut r = app.http.post(app.url("/ec2")).body(body.to_string());
    for (k, v) in headers.iter().chain(added.iter()).filter(|(k, _)| k != "host") {
        r = r.header(k.as_str(), v.as_str());
    }
    for (k, v) in extra {
        r = r.header(*k, *v);
    }
    let resp = r.send().await.unwrap();
    let (status, headers) = (resp.status().as_u16(), resp.headers().clone());
    (status, headers, resp.text().await.unwrap())
}

fn header(h: &reqwest::header::HeaderMap, name: &str) -> String {
    h.get(name).unwrap_or_else(|| panic!("no {name}")).to_str().unwrap().to_string()
}

app_test!(ec2_request_ids_are_the_http_request_ids, |app: TestApp| async move {
    logs();
    let admin = app.token("super", SUPER_PW).await;
    let (s, k) = app.call(Method::POST, "/api/v1/users/super/access-keys", &admin, None).await;
    assert_eq!(s, 201, "{k}");
    let key = (k["access_key_id"].as_str().unwrap().to_string(), k["secret_access_key"].as_str().unwrap().to_string());

    // An error answer: its RequestID is the request's id, everywhere.
    let (s, h, xml) = ec2(&app, &key, "Action=NoSuchAction&Version=2016-11-15", &[]).await;
    assert_eq!(s, 400, "{xml}");
    let id = header(&h, "x-request-id");
    assert_eq!(id.len(), 32, "a generated id: {id}");
    assert_eq!(element(&xml, "RequestID"), Some(id.as_str()), "{xml}");
    assert_eq!(header(&h, "x-amzn-requestid"), id);
    assert!(lines_of(&id).iter().any(|l| l.contains("http_request") && l.contains("status=400")), "no log line in the span of {id}");

    // A success answer: its requestId too.
    let (s, h, xml) = ec2(&app, &key, "Action=DescribeRegions&Version=2016-11-15", &[]).await;
    assert_eq!(s, 200, "{xml}");
    let id = header(&h, "x-request-id");
    assert_eq!(element(&xml, "requestId"), Some(id.as_str()), "{xml}");
    assert_eq!(header(&h, "x-amzn-requestid"), id);

    // An unauthenticated call, with the client's own plain id: kept.
    let r = app
        .http
        .post(app.url("/ec2"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("X-Request-Id", "trace-ec2-7")
        .body("Action=DescribeRegions")
        .send()
        .await
        .unwrap();
    let h = r.headers().clone();
    let xml = r.text().await.unwrap();
    assert_eq!(element(&xml, "RequestID"), Some("trace-ec2-7"), "{xml}");
    assert_eq!((header(&h, "x-request-id"), header(&h, "x-amzn-requestid")), ("trace-ec2-7".into(), "trace-ec2-7".into()));
    assert!(!lines_of("trace-ec2-7").is_empty(), "no log line in the span of trace-ec2-7");
});

app_test!(ui_error_pages_show_the_http_request_id, |app: TestApp| async move {
    logs();
    let http = reqwest::Client::builder().cookie_store(true).redirect(reqwest::redirect::Policy::none()).build().unwrap();
    // A forged sign-in form: the 403 page names the request's id.
    let r = http
        .post(app.url("/login"))
        .header("X-Request-Id", "trace-ui-3")
        .form(&[("username", "super"), ("password", SUPER_PW), ("csrf", "forged")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(header(r.headers(), "x-request-id"), "trace-ui-3");
    let body = r.text().await.unwrap();
    assert!(body.contains("<code id=\"request-id\">trace-ui-3</code>"), "{body}");
    assert!(lines_of("trace-ui-3").iter().any(|l| l.contains("UI error page")), "the page's log line is in the request's span");

    // Signed in: a page that does not exist, with a generated id.
    let page = http.get(app.url("/login")).send().await.unwrap().text().await.unwrap();
    let at = page.find("name=\"csrf\" value=\"").unwrap() + "name=\"csrf\" value=\"".len();
    let csrf = page[at..at + page[at..].find('"').unwrap()].to_string();
    let r = http.post(app.url("/login")).form(&[("username", "super"), ("password", SUPER_PW), ("csrf", &csrf)]).send().await.unwrap();
    assert!(r.status().is_redirection());
    let r = http.get(app.url("/no-such-page")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    let id = header(r.headers(), "x-request-id");
    let body = r.text().await.unwrap();
    assert!(body.contains(&format!("<code id=\"request-id\">{id}</code>")), "{id}: {body}");
    // A form without the session's token: refused, the same id shown.
    let r = http.post(app.url("/profile/tokens")).form(&[("name", "t"), ("days", "1")]).send().await.unwrap();
    assert_eq!(r.status(), 403);
    let id = header(r.headers(), "x-request-id");
    let body = r.text().await.unwrap();
    assert!(body.contains("invalid CSRF token") && body.contains(&format!("<code id=\"request-id\">{id}</code>")), "{id}: {body}");
});
