//! What mcpd and mcpctl share about the API, with no server machinery (no cqrs-es, no sqlx), as
//! kube-rs keeps `kube-core` beside its client: the registry of resource kinds.
#![forbid(unsafe_code)]

pub mod kind;

pub use kind::{Field, Kind, KindInfo, RBAC_RESOURCES, Show};
