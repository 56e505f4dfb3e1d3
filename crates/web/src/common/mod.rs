//! What every front-end shares: the base mapping of service errors to HTTP
//! statuses, and request helpers (credentials in headers, the client's
//! address). Each front-end renders errors its own way on top of this.

pub mod auth;
pub mod error;
