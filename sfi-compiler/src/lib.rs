//! nooks-cc: compiler-assisted software fault isolation for driver objects.
#![deny(missing_docs)]
