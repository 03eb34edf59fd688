//! Vendor firmware catalogs.
