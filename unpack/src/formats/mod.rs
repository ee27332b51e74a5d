//! One module per container format, each with `extract(data, sink)`.

pub mod arj;
pub mod autoit;
pub mod binhex;
pub mod cab;
pub mod chm;
pub mod compressed;
pub mod cpio;
pub mod embedded;
pub mod html;
pub mod ishield;
pub mod mail;
pub mod nsis;
pub mod ole2;
pub mod pdf;
pub mod rtf;
pub mod sevenz;
pub mod sis;
pub mod szdd;
pub mod tar;
pub mod tnef;
pub mod zip;

#[cfg(test)]
pub(crate) mod testsink;
