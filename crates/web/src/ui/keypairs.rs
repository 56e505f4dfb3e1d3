//! The key pairs of the current project (`/keypairs`), through the same
//! core service as the EC2 front's key-pair actions: the list (name,
//! fingerprint, who made it, when), create (Ed25519: post/redirect/get, the
//! private key held for the session that made it and shown once, with a
//! download, on the page the redirect leads to; never stored, never in a
//! cookie or a URL, so reloading shows it no more), import of a public key,
//! and delete behind a confirmation page. A refusal (a taken name, a key
//! that does not parse) comes back next to its field with what was typed.
//! Viewers see the list without forms; a pair of another project is "not
//! found", as in the EC2 front.

use super::confirm::{self, Confirm};
use super::context::{CsrfForm, Ctx};
use super::errors::{UiError, UiResult};
use super::form::{friendly, FormErrors};
use super::one_time::OneTime;
use super::resources::Stamp;
use super::{html, urlencode, Chrome};
use actix_web::web;
use askama::Template;
use base64::Engine;
use cloudbroker_core::ServiceError;
use serde::Deserialize;

pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/keypairs", web::get().to(list))
        .route("/keypairs", web::post().to(create))
        .route("/keypairs/import", web::post().to(import))
        .route("/keypairs/{name}/delete", web::get().to(confirm_delete))
        .route("/keypairs/{name}/delete", web::post().to(delete));
}

struct PairRow {
    name: String,
    /// The name as a path segment.
    path: String,
    fingerprint: String,
    created_by: String,
    created: Stamp,
}

/// A pair just created: its private key, shown this once.
#[derive(Clone)]
struct NewPair {
    name: String,
    fingerprint: String,
    private_key: String,
}

impl NewPair {
    /// The private key as a `data:` URL (the download needs no second request).
    fn download(&self) -> String {
        format!("data:application/x-pem-file;base64,{}", base64::engine::general_purpose::STANDARD.encode(&self.private_key))
    }

    /// The download's file name (the pair's name, safe characters only).
    fn file(&self) -> String {
        let safe: String = self.name.chars().map(|c| if c.is_ascii_alphanumeric() || "._-".contains(c) { c } else { '_' }).collect();
        format!("{safe}.pem")
    }
}

#[derive(Template)]
#[template(path = "keypairs.html")]
struct KeyPairsPage {
    c: Chrome,
    pairs: Vec<PairRow>,
    new_pair: Option<NewPair>,
    /// The create form's name as typed.
    create_name: String,
    /// The import form's fields as typed.
    import_name: String,
    import_key: String,
    errors: FormErrors,
    /// Which form `errors` belong to (`create`, `import`, `list`).
    form: &'static str,
}

impl KeyPairsPage {
    fn err(&self, form: &str, field: &str) -> Option<&str> {
        if self.form == form {
            self.errors.of(field)
        } else {
            None
        }
    }

    fn general(&self, form: &str) -> Option<&str> {
        if self.form == form {
            self.errors.general.as_deref()
        } else {
            None
        }
    }
}

fn blank(ui: &Ctx) -> KeyPairsPage {
    let title = if ui.actor().in_personal_project() { "Key pairs".to_string() } else { format!("Key pairs of {}", ui.actor().project) };
    KeyPairsPage {
        c: ui.chrome("keypairs", title),
        pairs: Vec::new(),
        new_pair: None,
        create_name: String::new(),
        import_name: String::new(),
        import_key: String::new(),
        errors: FormErrors::none(),
        form: "",
    }
}

async fn render(ui: &Ctx, mut p: KeyPairsPage) -> UiResult {
    let now = ui.broker.clock.now();
    p.pairs = ui
        .broker
        .key_pairs
        .list(ui.actor())
        .await?
        .into_iter()
        .map(|k| PairRow {
            path: urlencode(&k.name),
            created: Stamp::of(&k.created_at, now),
            name: k.name,
            fingerprint: k.fingerprint,
            created_by: k.created_by.to_string(),
        })
        .collect();
    Ok(html(p.errors.status(), &p))
}

async fn list(ui: Ctx) -> UiResult {
    let mut p = blank(&ui);
    p.new_pair = NEW_PAIRS.take(&ui.me.raw);
    render(&ui, p).await
}

/// The messages of a refused create or import, next to their fields.
fn refusal(e: &ServiceError, name_field: &str) -> FormErrors {
    let mut errs = FormErrors::from_service(e, &["public_key"]);
    match e {
        ServiceError::Invalid { field: Some("key_name"), message } => errs = FormErrors::field(name_field, message.clone()),
        ServiceError::Conflict(_) => errs = FormErrors::field(name_field, format!("{}: choose another name", friendly(e))),
        _ => {}
    }
    errs
}

#[derive(Deserialize, Default)]
pub(super) struct CreateForm {
    #[serde(default)]
    name: String,
}

async fn create(ui: Ctx, form: CsrfForm<CreateForm>) -> UiResult {
    let name = form.name.trim();
    let mut p = blank(&ui);
    p.form = "create";
    p.create_name = form.name.clone();
    if name.is_empty() {
        p.errors = FormErrors::field("name", "give the key pair a name");
        return render(&ui, p).await;
    }
    // Checked first: a taken name is said before a key is made.
    let made = match ui.broker.key_pairs.check_new(ui.actor(), name, None).await {
        Ok(()) => ui.broker.key_pairs.create(ui.actor(), name).await,
        Err(e) => Err(e),
    };
    match made {
        Ok((pair, private)) => {
            // Post/redirect/get: reloading the page that shows the key makes nothing.
            NEW_PAIRS.put(
                &ui.me.raw,
                NewPair { name: pair.name.clone(), fingerprint: pair.fingerprint, private_key: private.as_str().to_string() },
            );
            Ok(ui.redirect_with("/keypairs", &format!("Key pair {} created: save its private key now, it is not shown again", pair.name)))
        }
        Err(e @ ServiceError::Forbidden(_)) => Err(e.into()),
        Err(e) => {
            p.errors = refusal(&e, "name");
            render(&ui, p).await
        }
    }
}

#[derive(Deserialize, Default)]
pub(super) struct ImportForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    public_key: String,
}

async fn import(ui: Ctx, form: CsrfForm<ImportForm>) -> UiResult {
    let form = form.into_inner();
    let mut p = blank(&ui);
    p.form = "import";
    p.import_name = form.name.clone();
    p.import_key = form.public_key.clone();
    let name = form.name.trim();
    let mut errs = FormErrors::none();
    if name.is_empty() {
        errs.add("import_name", "give the key pair a name");
    }
    if form.public_key.trim().is_empty() {
        errs.add("public_key", "paste the public key (one line, e.g. 'ssh-ed25519 AAAA... you@host')");
    }
    if errs.any() {
        p.errors = errs;
        return render(&ui, p).await;
    }
    let done = match ui.broker.key_pairs.check_new(ui.actor(), name, Some(&form.public_key)).await {
        Ok(()) => ui.broker.key_pairs.import(ui.actor(), name, &form.public_key).await,
        Err(e) => Err(e),
    };
    match done {
        Ok(pair) => Ok(ui.redirect_with("/keypairs", &format!("Key pair {} imported ({})", pair.name, pair.fingerprint))),
        Err(e @ ServiceError::Forbidden(_)) => Err(e.into()),
        Err(e) => {
            p.errors = refusal(&e, "import_name");
            render(&ui, p).await
        }
    }
}

async fn confirm_delete(ui: Ctx, name: web::Path<String>) -> UiResult {
    let pair = ui.broker.key_pairs.get(ui.actor(), &name).await?;
    ui.actor().require_act()?;
    let q = Confirm::new(
        format!("Delete key pair {}?", pair.name),
        format!("/keypairs/{}/delete", urlencode(&pair.name)),
        "Delete key pair",
        "/keypairs",
    )
    .line(format!("Key pair {} ({}) is removed from project {}.", pair.name, pair.fingerprint, ui.actor().project))
    .line("VMs launched with it keep it; new launches can no longer name it.");
    Ok(confirm::page(&ui, "keypairs", q))
}

async fn delete(ui: Ctx, name: web::Path<String>, _: CsrfForm) -> UiResult {
    match ui.broker.key_pairs.delete(ui.actor(), &name).await {
        Ok(()) => Ok(ui.redirect_with("/keypairs", &format!("Key pair {name} deleted"))),
        Err(ServiceError::NotFound(_)) => Err(UiError::NotFound("No such key pair.")),
        Err(e) => Err(e.into()),
    }
}

/// The private keys of pairs just created (shown once).
static NEW_PAIRS: OneTime<NewPair> = OneTime::new();
