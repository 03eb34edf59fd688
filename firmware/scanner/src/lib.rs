//! Firmware blob scanning.
