//! Deployments: multi-VM applications launched across connector instances,
//! orchestrated by the broker itself. An application is a named, versioned
//! document ([`app`]) whose published versions never change ([`apps`]).
//! A deployment's VMs are admitted together, all or none ([`admit`]), and
//! driven by the `deployments` worker (`driver.rs`) through [`engine`]'s
//! [`Deployments`] service; its VMs find each other through [`exchange`].

pub mod admit;
pub mod app;
pub mod apps;
mod driver;
pub mod engine;
pub mod exchange;

pub use app::{AppDoc, AppError, AppName, Application, NodeSpec, ParamSpec, ReadyWhen, BUILTIN_OUTPUTS};
pub use apps::{ApplicationSummary, Applications, FileApplication};
pub use engine::{
    DeployRequest, Deployment, DeploymentId, DeploymentState, Deployments, DrivePassReport, Event, MemberView, NodeView, OnFailure,
    ParamView, Placement, ScalePlan,
};
