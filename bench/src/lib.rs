//! The host side of nooks: build, boot, measure, report.
