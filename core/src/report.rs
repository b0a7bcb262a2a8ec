//! Parsing of device-side metrics reports.
