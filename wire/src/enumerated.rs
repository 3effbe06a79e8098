//! [`enumerated!`]: a fieldless enum declared with its `ALL` array from one list of variants,
//! so no variant can be left out of `ALL` (a kind missing there would never be projected, and
//! its writes would answer 202 forever).

/// Declares a fieldless enum and `pub const ALL`, every variant in declaration order.
#[macro_export]
macro_rules! enumerated {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident {
            $($(#[$variant_meta:meta])* $variant:ident),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        $vis enum $name {
            $($(#[$variant_meta])* $variant),+
        }

        impl $name {
            /// Every variant, in declaration order.
            pub const ALL: [$name; [$(stringify!($variant)),+].len()] = [$($name::$variant),+];
        }
    };
}
