//! Test support (the `testing` feature; for tests only): short constructors of
//! domain values from literals a test knows to be valid. They panic on an
//! invalid literal, which in a test is the right failure.
#![allow(clippy::panic)]

use crate::domain::{ImageName, ImageRef, InstanceName, UserName, VmId};

/// A user name.
pub fn user(s: &str) -> UserName {
    UserName::parse(s).unwrap_or_else(|e| panic!("test user name {s:?}: {e}"))
}

/// A connector instance name.
pub fn instance(s: &str) -> InstanceName {
    InstanceName::parse(s).unwrap_or_else(|e| panic!("test instance name {s:?}: {e}"))
}

/// A native image name.
pub fn image(s: &str) -> ImageName {
    ImageName::parse(s).unwrap_or_else(|e| panic!("test image name {s:?}: {e}"))
}

/// An image reference.
pub fn image_ref(s: &str) -> ImageRef {
    ImageRef::parse(s).unwrap_or_else(|e| panic!("test image ref {s:?}: {e}"))
}

/// A VM id.
pub fn vm_id(s: &str) -> VmId {
    VmId::parse(s).unwrap_or_else(|e| panic!("test VM id {s:?}: {e}"))
}
