//! The web UI as a browser without script sees it, for the `ui_*` tests: a
//! signed-in user's cookie jar ([`Ui`]) that posts every form with the
//! session's CSRF token, and readers of the pages' parts (a piece between
//! two markers, the field errors, the flash, a confirmation page's form).
//! Every reader panics, naming what it looked for, when the page lacks it.

use super::TestApp;
use reqwest::redirect::Policy;

/// A signed-in user's cookie jar.
pub struct Ui {
    /// Redirects followed (up to 5).
    pub http: reqwest::Client,
    /// The same cookies, redirects not followed.
    pub raw: reqwest::Client,
    pub base: String,
    pub csrf: String,
}

/// The CSRF token of the first form of `body`.
pub fn csrf_of(body: &str) -> String {
    let at = body.find("name=\"csrf\" value=\"").expect("a form with a CSRF token") + "name=\"csrf\" value=\"".len();
    body[at..].split('"').next().unwrap().to_string()
}

impl Ui {
    /// Signs `user` in with password `pw` through the login form.
    pub async fn sign_in(app: &TestApp, user: &str, pw: &str) -> Self {
        let jar = std::sync::Arc::new(reqwest::cookie::Jar::default());
        let http = reqwest::Client::builder().cookie_provider(jar.clone()).redirect(Policy::limited(5)).build().unwrap();
        let raw = reqwest::Client::builder().cookie_provider(jar).redirect(Policy::none()).build().unwrap();
        let page = http.get(app.url("/login")).send().await.unwrap().text().await.unwrap();
        let csrf = csrf_of(&page);
        let r = http.post(app.url("/login")).form(&[("username", user), ("password", pw), ("csrf", &csrf)]).send().await.unwrap();
        assert_eq!(r.status(), 200, "sign-in of {user}");
        let home = r.text().await.unwrap();
        Self { http, raw, base: app.base.clone(), csrf: csrf_of(&home) }
    }

    /// GETs `path` (redirects followed): status and body.
    pub async fn get(&self, path: &str) -> (u16, String) {
        let r = self.http.get(format!("{}{path}", self.base)).send().await.unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }

    /// Posts a form with the session's CSRF token (redirects followed).
    pub async fn post(&self, path: &str, fields: &[(&str, &str)]) -> (u16, String) {
        let mut f: Vec<(&str, &str)> = fields.to_vec();
        f.push(("csrf", &self.csrf));
        let r = self.http.post(format!("{}{path}", self.base)).form(&f).send().await.unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }

    /// Posts without following the redirect: status and `Location`.
    pub async fn post_no_follow(&self, path: &str, fields: &[(&str, &str)]) -> (u16, String) {
        let mut f: Vec<(&str, &str)> = fields.to_vec();
        f.push(("csrf", &self.csrf));
        let r = self.raw.post(format!("{}{path}", self.base)).form(&f).send().await.unwrap();
        let to = r.headers().get("location").map(|l| l.to_str().unwrap().to_string()).unwrap_or_default();
        (r.status().as_u16(), to)
    }

    /// Opens the confirmation page at `path` (a GET), checks it asks, and
    /// sends its form as a user clicking the button does (its action and
    /// hidden fields, with the session's CSRF token): the final page.
    pub async fn confirm(&self, path: &str) -> (u16, String) {
        let (s, page) = self.get(path).await;
        assert_eq!(s, 200, "the confirmation page {path}: {page}");
        let (action, fields) = confirm_form(&page);
        let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        self.post(&action, &fields).await
    }
}

/// Text as it reads once the HTML escapes are undone.
pub fn unescape(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&#x27;", "'")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&#x2f;", "/")
        .replace("&amp;", "&")
}

/// What stands between the first `start` and the next `end`.
pub fn between<'a>(body: &'a str, start: &str, end: &str) -> &'a str {
    body.split(start).nth(1).and_then(|r| r.split(end).next()).unwrap_or_else(|| panic!("no {start} in {body}"))
}

/// The messages next to fields (`class="field-error"`).
pub fn field_errors(body: &str) -> Vec<String> {
    body.split("class=\"field-error\"").skip(1).map(|s| between(s, ">", "</span>").to_string()).collect()
}

/// The flash message of a page and its class.
pub fn flash(body: &str) -> (String, String) {
    let at = body.find("id=\"flash\">").unwrap_or_else(|| panic!("no flash in {body}"));
    let open = body[..at].rfind("<p class=\"").unwrap();
    let class = between(&body[open..], "<p class=\"", "\"").to_string();
    (class, between(&body[at..], "id=\"flash\">", "</p>").to_string())
}

/// The confirmation page's form: where it posts and its hidden fields (the CSRF token left out).
pub fn confirm_form(page: &str) -> (String, Vec<(String, String)>) {
    assert!(page.contains("id=\"confirm-form\"") && page.contains("id=\"confirm-cancel\""), "a confirmation page: {page}");
    // The page's own form (the header's sign-out form comes first).
    let form = between(between(page, "id=\"confirm-heading\"", "id=\"confirm-cancel\""), "<form method=\"post\" action=\"", "</form>");
    let action = unescape(form.split('"').next().unwrap());
    let fields = form
        .split("<input type=\"hidden\" name=\"")
        .skip(1)
        .map(|f| {
            let name = f.split('"').next().unwrap().to_string();
            let value = unescape(between(f, "value=\"", "\""));
            (name, value)
        })
        .filter(|(n, _)| n != "csrf")
        .collect();
    (action, fields)
}
