//! `gateway check`: compile a folder of manifests without serving and judge the result.

use std::path::Path;

use gateway_core::compile::{Options, compile};
use gateway_core::ir::Ir;
use gateway_core::status::Status;
use gateway_file::{LoadError, LoadOptions};

/// What `check` found.
#[derive(Debug)]
pub enum Checked {
    /// A manifest does not load (syntax, unknown field types…): nothing was compiled.
    LoadFailed(LoadError),
    /// Everything loaded and compiled.
    Compiled {
        /// The configuration a gateway would serve.
        ir: Ir,
        /// The conditions of every resource.
        status: Status,
    },
}

impl Checked {
    /// Whether `gateway check` exits 0: everything loads and every resource is healthy
    /// ([`Status::all_healthy`]).
    pub fn is_healthy(&self) -> bool {
        match self {
            Checked::LoadFailed(_) => false,
            Checked::Compiled { status, .. } => status.all_healthy(),
        }
    }

    /// The exit code `gateway check` uses: 0 healthy, 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        u8::from(!self.is_healthy())
    }

    /// The table `gateway check` prints by default (or the load error).
    pub fn to_table(&self, config: &Path) -> String {
        match self {
            Checked::LoadFailed(error) => format!("{} does not load:\n{error}\n", config.display()),
            Checked::Compiled { status, .. } => status.to_table(),
        }
    }
}

/// Loads `config` (a file or a folder, read recursively) the way the file source serves it
/// and compiles it.
pub fn check(config: &Path, controller_name: Option<String>, default_namespace: &str) -> Checked {
    let load_options = LoadOptions::default().with_default_namespace(default_namespace);
    match gateway_file::load(config, &load_options) {
        Err(error) => Checked::LoadFailed(error),
        Ok(snapshot) => {
            let options = Options {
                controller_name,
                ..Options::default()
            };
            let (ir, mut status) = compile(&snapshot, &options);
            // What the data plane would refuse without binding anything (certificates the TLS
            // stack rejects); ports are only known to be free by binding them, so `check`
            // says nothing about them.
            gateway_net::verify(&ir).merge_into(&mut status);
            Checked::Compiled { ir, status }
        }
    }
}
