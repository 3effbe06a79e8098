//! What the writer needs to know of a command before it loads anything.

/// Implemented by every aggregate's command type.
pub trait Creates {
    /// Whether the command begins its aggregate's stream (it is refused on a live aggregate).
    /// The writer then decides it on a new aggregate and appends at sequence 1 without reading
    /// the stream first. When the stream exists after all (a name deleted and created again,
    /// or a concurrent create), that append clashes, and the command is decided again on the
    /// aggregate as loaded.
    fn creates(&self) -> bool;
}
