//! The one integration-test binary (ripgrep style): each module covers one
//! area; `util` gives every test its own temporary directory and finds the
//! binaries.

mod util;

mod bench;
mod crypt4gh;
mod format;
mod mount;
mod pack_cli;
mod packaging;
mod results;
mod vault;
mod vectors;
