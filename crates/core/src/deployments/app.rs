//! The application document (types, parsing, validation): defined in the
//! leaf module [`crate::app_doc`] (the registry loads the files that
//! declare applications, and the services' error type carries its errors,
//! without depending on `deployments`), re-exported here.

pub use crate::app_doc::*;
