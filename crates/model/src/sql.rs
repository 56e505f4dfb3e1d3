//! Transparent `sqlx` encoding of the string types: a value binds as its
//! string and reads back from a `TEXT` column through its type's rules, on
//! every database sqlx reaches (`Any`, SQLite, PostgreSQL). A stored value
//! that breaks the rules is a decode error (sqlx names the column), never a
//! panic and never an unchecked value.

/// Implements `sqlx::Type`, `Encode` and `Decode` for a string newtype
/// (`$t(String)`, invoked in the module that defines it), decoding with
/// `$decode: fn(String) -> Result<$t, InvalidValue>`; `$text: fn(&$t) -> &str`
/// gives the stored form (the tuple field by default).
#[cfg(feature = "sqlx")]
macro_rules! sql_string {
    ($t:ident, $decode:expr) => {
        $crate::sql::sql_string!($t, $decode, |v: &$t| &v.0);
    };
    ($t:ident, $decode:expr, $text:expr) => {
        impl<DB: sqlx::Database> sqlx::Type<DB> for $t
        where
            String: sqlx::Type<DB>,
        {
            fn type_info() -> DB::TypeInfo {
                <String as sqlx::Type<DB>>::type_info()
            }

            fn compatible(ty: &DB::TypeInfo) -> bool {
                <String as sqlx::Type<DB>>::compatible(ty)
            }
        }

        impl<'q, DB: sqlx::Database> sqlx::Encode<'q, DB> for $t
        where
            String: sqlx::Encode<'q, DB>,
        {
            fn encode_by_ref(
                &self,
                buf: &mut <DB as sqlx::Database>::ArgumentBuffer<'q>,
            ) -> Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
                let text: fn(&$t) -> &str = $text;
                // One copy, moved into the arguments.
                <String as sqlx::Encode<'q, DB>>::encode(text(self).to_owned(), buf)
            }
        }

        impl<'r, DB: sqlx::Database> sqlx::Decode<'r, DB> for $t
        where
            String: sqlx::Decode<'r, DB>,
        {
            fn decode(value: <DB as sqlx::Database>::ValueRef<'r>) -> Result<Self, sqlx::error::BoxDynError> {
                let s = <String as sqlx::Decode<'r, DB>>::decode(value)?;
                let decode: fn(String) -> Result<$t, $crate::InvalidValue> = $decode;
                decode(s).map_err(|e| format!("stored {} is invalid: {}", stringify!($t), e.message).into())
            }
        }
    };
}

/// Without the `sqlx` feature: nothing.
#[cfg(not(feature = "sqlx"))]
macro_rules! sql_string {
    ($($any:tt)*) => {};
}
pub(crate) use sql_string;
