//! API types (see issue 4).
