//! The `jidgate` binary: the command line of [`jidgate::cli`].

#![forbid(unsafe_code)]

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    match jidgate::cli::main().await {
        Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        Err(e) => {
            eprintln!("jidgate: {e:#}");
            ExitCode::from(2)
        }
    }
}
