//! Form messages: a service error becomes a message next to the field it
//! names (`ServiceError::Invalid { field, .. }`) or one at the top of the
//! form, in words a user can act on (a range reads "must be between 1 and
//! 1000", never `(1..=1000)`). A form reports every error of a submit at
//! once, with a summary at the top naming the fields to fix. The page that
//! shows them keeps what was typed (each handler re-renders with the
//! submitted values).

use cloudbroker_core::ServiceError;
use std::collections::BTreeMap;

/// The messages of one failed submit.
#[derive(Clone, Debug, Default)]
pub struct FormErrors {
    fields: BTreeMap<String, String>,
    /// A message for the whole form.
    pub general: Option<String>,
}

impl FormErrors {
    /// No errors.
    pub fn none() -> Self {
        Self::default()
    }

    /// One message at the top of the form.
    pub fn general(message: impl Into<String>) -> Self {
        Self { fields: BTreeMap::new(), general: Some(plain(&message.into())) }
    }

    /// One message next to `field`.
    pub fn field(field: &str, message: impl Into<String>) -> Self {
        let mut e = Self::default();
        e.add(field, message);
        e
    }

    /// Adds a message next to `field`.
    pub fn add(&mut self, field: &str, message: impl Into<String>) {
        self.fields.insert(field.to_string(), plain(&message.into()));
    }

    /// How many fields have a message.
    pub fn field_count(&self) -> usize {
        self.fields.len()
    }

    /// The summary at the top of a form whose fields have messages: how
    /// many, and which (`None`: no field has one).
    pub fn summary(&self) -> Option<String> {
        if self.fields.is_empty() {
            return None;
        }
        let names: Vec<&str> = self.fields.keys().map(|f| f.strip_prefix("p.").unwrap_or(f)).collect();
        Some(match names.len() {
            1 => format!("1 value needs fixing, marked below: {}.", names[0]),
            n => format!("{n} values need fixing, each marked below: {}.", names.join(", ")),
        })
    }

    /// From a service error: next to its field when the form has that
    /// field (`known`), otherwise at the top.
    pub fn from_service(e: &ServiceError, known: &[&str]) -> Self {
        if let ServiceError::Invalid { field: Some(f), message }
        | ServiceError::Unresolved { field: f, message }
        | ServiceError::PolicyViolation { field: f, message, .. } = e
        {
            if known.contains(f) {
                return Self::field(f, message.clone());
            }
        }
        Self::general(friendly(e))
    }

    /// The message next to `field`, if any.
    pub fn of(&self, field: &str) -> Option<&str> {
        self.fields.get(field).map(String::as_str)
    }

    /// Whether there is any message.
    pub fn any(&self) -> bool {
        self.general.is_some() || !self.fields.is_empty()
    }

    /// The HTTP status of a page showing these messages.
    pub fn status(&self) -> actix_web::http::StatusCode {
        if self.any() {
            actix_web::http::StatusCode::BAD_REQUEST
        } else {
            actix_web::http::StatusCode::OK
        }
    }
}

/// A validation message in plain words: a range written as code
/// (`(1..=1000)`) reads "it must be between 1 and 1000", "not an integer"
/// reads "not a whole number".
pub fn plain(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(open) = rest.find(" (") {
        let after = &rest[open + 2..];
        let range = after.find(')').map(|close| &after[..close]).and_then(|inside| {
            let (lo, hi) = inside.split_once("..=")?;
            let number = |x: &str| !x.is_empty() && x.trim_start_matches('-').chars().all(|c| c.is_ascii_digit() || c == '.');
            (number(lo) && number(hi)).then(|| (lo.to_string(), hi.to_string(), inside.len()))
        });
        match range {
            Some((lo, hi, len)) => {
                out.push_str(&rest[..open]);
                out.push_str(&format!(": it must be between {lo} and {hi}"));
                rest = &after[len + 1..];
            }
            None => {
                out.push_str(&rest[..open + 2]);
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out.replace("is not an integer", "is not a whole number")
}

/// A service error in words a user understands, with what to do next.
pub fn friendly(e: &ServiceError) -> String {
    match e {
        ServiceError::QuotaExceeded { scope: cloudbroker_core::QuotaScope::User, quota, current, requested } => format!(
            "Over quota: you may have {quota} VM(s) on this connector instance, you have {current} and asked for {requested} more. \
             Terminate VMs you no longer need, or ask an administrator for a higher quota."
        ),
        ServiceError::QuotaExceeded { scope: cloudbroker_core::QuotaScope::Project(p), quota, current, requested } => format!(
            "Over the quota of project '{p}': its members may have {quota} VM(s) on this connector instance together, they have {current} \
             and you asked for {requested} more. Terminate the project's VMs it no longer needs, or ask an administrator for a higher quota."
        ),
        ServiceError::Cloud(c) => {
            // The cloud's own message may end its sentence: one full stop.
            let said = c.to_string();
            format!("The cloud refused: {}. Check your credentials and the values chosen, then try again.", said.trim_end_matches('.'))
        }
        ServiceError::Unavailable(m) => format!("{m}. An administrator needs to fix this connector instance's configuration."),
        ServiceError::MasterKeyUnknown { .. } => format!("{e}. Nothing was changed; an administrator needs to fix this."),
        ServiceError::DatabaseUnavailable(_) => {
            "The broker's database is unavailable just now: nothing was changed. Try again in a few seconds.".into()
        }
        ServiceError::NotFound(r) => {
            let what = r.to_string();
            if what.starts_with("credentials for") {
                format!("You have no {what}: save them under Credentials first.")
            } else {
                format!("{what} not found.")
            }
        }
        ServiceError::LimitExceeded { .. } => format!("{e}: remove ones you no longer need."),
        ServiceError::BudgetExceeded(r) => {
            let mut m = r.to_string();
            if let Some(first) = m.get_mut(0..1) {
                first.make_ascii_uppercase();
            }
            format!("Over budget: {m}. Stop or terminate VMs you no longer need, or ask an administrator for a higher budget.")
        }
        ServiceError::Throttled { .. }
        | ServiceError::Conflict(_)
        | ServiceError::NotPermitted(_)
        | ServiceError::Invalid { .. }
        | ServiceError::InvalidDocument(_)
        | ServiceError::InNode { .. }
        | ServiceError::Unresolved { .. }
        | ServiceError::PolicyViolation { .. }
        | ServiceError::Forbidden(_) => e.to_string(),
        ServiceError::Unauthenticated(_) => "Your session ended: sign in again.".into(),
        ServiceError::Store(_) | ServiceError::Internal(_) => "The broker failed to do this; try again or ask an administrator.".into(),
    }
}

/// The local time-free rendering of a timestamp (UTC, to the minute).
pub fn when(t: &chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// [`when`] of a timestamp the services give as RFC 3339 text (kept as
/// given when it does not parse).
pub fn when_text(t: &str) -> String {
    chrono::DateTime::parse_from_rfc3339(t).map(|t| when(&t.with_timezone(&chrono::Utc))).unwrap_or_else(|_| t.to_string())
}

/// A masked credential as pages show it (its time in [`when`]'s form).
pub fn shown(mut c: cloudbroker_core::vault::MaskedCredential) -> cloudbroker_core::vault::MaskedCredential {
    c.updated_at = when_text(&c.updated_at);
    c
}

/// How long ago, roughly ("3 min", "2 h", "5 d").
pub fn age(t: &chrono::DateTime<chrono::Utc>) -> String {
    let s = (chrono::Utc::now() - *t).num_seconds().max(0);
    match s {
        0..=59 => format!("{s} s"),
        60..=3599 => format!("{} min", s / 60),
        3600..=86_399 => format!("{} h", s / 3600),
        _ => format!("{} d", s / 86_400),
    }
}
