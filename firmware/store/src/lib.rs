//! The content-addressed firmware store.
