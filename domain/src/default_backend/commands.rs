use crate::name::ResourceName;

#[derive(Debug, Clone, PartialEq)]
pub enum DefaultBackendCommand {
    /// Make `to` the default; `to_exists` is whether that backend exists.
    SetDefaultBackend { to: ResourceName, to_exists: bool },
    /// Asked when a document says `isDefault: false`: refused for the current default, since
    /// a default must remain; nothing happens for any other backend.
    KeepNotDefault { name: ResourceName },
}

impl crate::Creates for DefaultBackendCommand {
    fn creates(&self) -> bool {
        match self {
            DefaultBackendCommand::SetDefaultBackend { .. } | DefaultBackendCommand::KeepNotDefault { .. } => false,
        }
    }
}
