//! Web sessions, cookies and CSRF through the real server.

// Test code: panicking on an unexpected result is the point; helper
// functions outside #[test] are covered by this too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::zombie_processes)]

mod common;

use common::{TestApp, SUPER_PW};

fn csrf_of(html: &str) -> String {
    let i = html.find("name=\"csrf\" value=\"").expect("csrf field") + "name=\"csrf\" value=\"".len();
    html[i..].split('"').next().unwrap().to_string()
}

async fn login(app: &TestApp, client: &reqwest::Client, user: &str, pw: &str) -> reqwest::Response {
    let page = client.get(app.url("/login")).send().await.unwrap().text().await.unwrap();
    let csrf = csrf_of(&page);
    client.post(app.url("/login")).form(&[("username", user), ("password", pw), ("csrf", csrf.as_str())]).send().await.unwrap()
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().cookie_store(true).build().unwrap()
}

#[tokio::test]
async fn login_csrf_and_logout() {
    let app = TestApp::sqlite().await;
    let c = client();
    // Unauthenticated pages redirect to the sign-in form.
    let r = c.get(app.url("/")).send().await.unwrap();
    assert!(r.url().path().ends_with("/login"));

    // A forged sign-in without the double-submit token is refused.
    let r = c.post(app.url("/login")).form(&[("username", "super"), ("password", SUPER_PW), ("csrf", "forged")]).send().await.unwrap();
    assert_eq!(r.status(), 403);

    let r = login(&app, &c, "super", "nope").await;
    assert_eq!(r.status(), 401);
    assert!(r.text().await.unwrap().contains("wrong user name or password"));

    let r = login(&app, &c, "super", SUPER_PW).await;
    assert_eq!(r.status(), 200);
    let home = r.text().await.unwrap();
    assert!(home.contains("Welcome, super"), "{home}");
    let csrf = csrf_of(&home);

    // State changes need the session's CSRF token.
    let r = c
        .post(app.url("/profile/ssh-key"))
        .form(&[("ssh_public_key", "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA super@x")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = c
        .post(app.url("/profile/ssh-key"))
        .form(&[("ssh_public_key", "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA super@x"), ("csrf", "wrong")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(app.broker.store().get_user("super").await.unwrap().unwrap().ssh_public_key, None, "nothing changed");
    let r = c.post(app.url("/profile/ssh-key")).form(&[("ssh_public_key", "not a key"), ("csrf", csrf.as_str())]).send().await.unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("not in OpenSSH format"));
    let r = c
        .post(app.url("/profile/ssh-key"))
        .form(&[("ssh_public_key", "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA super@x"), ("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert!(r.text().await.unwrap().contains("SSH key saved"));

    let r = c.post(app.url("/logout")).form(&[("csrf", "wrong")]).send().await.unwrap();
    assert_eq!(r.status(), 403);
    assert!(c.get(app.url("/")).send().await.unwrap().text().await.unwrap().contains("Welcome"), "still signed in");
    let r = c.post(app.url("/logout")).form(&[("csrf", csrf.as_str())]).send().await.unwrap();
    assert!(r.url().path().ends_with("/login"));
    let r = c.get(app.url("/")).send().await.unwrap();
    assert!(r.url().path().ends_with("/login"), "signed out");
}

#[tokio::test]
async fn session_cookie_attributes() {
    let app = TestApp::sqlite().await;
    let c = reqwest::Client::builder().cookie_store(true).redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let r = login(&app, &c, "super", SUPER_PW).await;
    assert_eq!(r.status(), 303);
    let set: Vec<String> = r.headers().get_all("set-cookie").iter().map(|v| v.to_str().unwrap().to_string()).collect();
    let s = set.iter().find(|c| c.starts_with("cb_session=")).expect("session cookie");
    assert!(s.contains("HttpOnly") && s.contains("SameSite=Strict") && s.contains("Path=/"), "{s}");
    assert!(!s.contains("Secure"), "plain http without an https public_url");
    let raw = s.trim_start_matches("cb_session=").split(';').next().unwrap();
    assert!(raw.len() >= 43, "256-bit id");
    assert!(app.broker.store().get_session(raw).await.unwrap().is_none(), "stored hashed, not as the id");
}

#[tokio::test]
async fn secure_cookie_behind_https_public_url() {
    let app = TestApp::start_with(None, tempfile::tempdir().unwrap(), |c| c.public_url = Some("https://broker.example.org".into()))
        .await
        .unwrap();
    let c = reqwest::Client::builder().cookie_store(true).redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let r = login(&app, &c, "super", SUPER_PW).await;
    let set: Vec<String> = r.headers().get_all("set-cookie").iter().map(|v| v.to_str().unwrap().to_string()).collect();
    assert!(set.iter().find(|c| c.starts_with("cb_session=")).unwrap().contains("Secure"), "{set:?}");
}

#[tokio::test]
async fn idle_and_absolute_expiry() {
    let app = TestApp::start_with(None, tempfile::tempdir().unwrap(), |c| c.session_idle_secs = 1).await.unwrap();
    let c = client();
    assert!(login(&app, &c, "super", SUPER_PW).await.text().await.unwrap().contains("Welcome"));
    tokio::time::sleep(std::time::Duration::from_millis(1300)).await;
    let r = c.get(app.url("/")).send().await.unwrap();
    assert!(r.url().path().ends_with("/login"), "idle session expired");

    let app = TestApp::start_with(None, tempfile::tempdir().unwrap(), |c| c.session_absolute_secs = 2).await.unwrap();
    let c = client();
    assert!(login(&app, &c, "super", SUPER_PW).await.text().await.unwrap().contains("Welcome"));
    for _ in 0..3 {
        tokio::time::sleep(std::time::Duration::from_millis(800)).await;
        let _ = c.get(app.url("/")).send().await.unwrap();
    }
    let r = c.get(app.url("/")).send().await.unwrap();
    assert!(r.url().path().ends_with("/login"), "absolute lifetime ends even an active session");
}

#[tokio::test]
async fn ui_login_is_throttled() {
    let app = TestApp::sqlite().await;
    let c = client();
    for _ in 0..5 {
        assert_eq!(login(&app, &c, "super", "bad").await.status(), 401);
    }
    let r = login(&app, &c, "super", SUPER_PW).await;
    assert_eq!(r.status(), 429);
    assert!(r.text().await.unwrap().contains("too many failed attempts"));
}
