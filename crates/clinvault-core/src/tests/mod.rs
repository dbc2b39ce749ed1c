//! Tests that need the crate's insides (direct database reads to prove "nothing changed").

mod role_matrix;
