//! The certificates of a TLS benchmark run, made with the `openssl` command
//! (xtask has no certificate library, and needs none for three files): an
//! ECDSA P-256 CA and a server certificate it signs for `localhost` and
//! 127.0.0.1, the key and group the TLS floor is pinned to, so that the
//! servers' handshakes cost what the floor's do.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context as _, bail};

use crate::show;

/// The extensions of the server certificate: the name and address
/// echo-bench checks, and what a TLS server's certificate may do.
const SERVER_EXTENSIONS: &str = "\
subjectAltName=DNS:localhost,IP:127.0.0.1
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth
";

/// The files a run's servers and clients are given.
#[derive(Debug, Clone)]
pub(super) struct Certs {
    /// The CA certificate echo-bench trusts (`--tls-ca`).
    pub(super) ca: PathBuf,
    /// The server's certificate for `localhost` and 127.0.0.1.
    pub(super) cert: PathBuf,
    /// The server's private key (PKCS#8).
    pub(super) key: PathBuf,
}

/// Makes a CA and a server certificate in `dir`, valid for two days.
///
/// # Errors
/// `openssl` is missing or fails; the message names the command.
pub(super) fn make(dir: &Path) -> anyhow::Result<Certs> {
    let ca = dir.join("ca.pem");
    let ca_key = dir.join("ca-key.pem");
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    let request = dir.join("server.csr");
    let extensions = dir.join("server.ext");
    let p256 = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    openssl(
        Command::new("openssl")
            .args(["req", "-x509"])
            .args(p256)
            .arg("-keyout")
            .arg(&ca_key)
            .arg("-out")
            .arg(&ca)
            .args(["-days", "2", "-subj", "/CN=echo bench CA"])
            .args(["-addext", "basicConstraints=critical,CA:TRUE"])
            .args(["-addext", "keyUsage=critical,keyCertSign,cRLSign"]),
    )?;
    openssl(
        Command::new("openssl")
            .arg("req")
            .args(p256)
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&request)
            .args(["-subj", "/CN=localhost"]),
    )?;
    std::fs::write(&extensions, SERVER_EXTENSIONS)
        .with_context(|| format!("cannot write {}", extensions.display()))?;
    openssl(
        Command::new("openssl")
            .args(["x509", "-req", "-in"])
            .arg(&request)
            .arg("-CA")
            .arg(&ca)
            .arg("-CAkey")
            .arg(&ca_key)
            .args(["-set_serial", "1", "-days", "2", "-out"])
            .arg(&cert)
            .arg("-extfile")
            .arg(&extensions),
    )?;
    Ok(Certs { ca, cert, key })
}

/// Echoes and runs one openssl command, its chatter kept off the terminal
/// unless it fails.
fn openssl(command: &mut Command) -> anyhow::Result<()> {
    let shown = show(command);
    eprintln!("$ {shown}");
    let output = match command.stdin(Stdio::null()).output() {
        Ok(output) => output,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            bail!("no openssl command to make the TLS benchmark's certificates: install openssl")
        }
        Err(err) => bail!("cannot run `{shown}`: {err}"),
    };
    if !output.status.success() {
        bail!(
            "`{shown}` failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(())
}
