//! A `vigil serve` process for integration tests, with a signed client.

use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use vigil_host::api::Credentials;
use vigil_host::api::client::ApiClient;

/// Access key the test servers accept.
pub const ACCESS_KEY: &str = "AKIDVIGILTEST";
/// Its secret.
pub const SECRET_KEY: &str = "vigil-test-secret";

/// A running `vigil serve`, killed with SIGKILL when dropped.
pub struct Server {
    /// The process.
    pub child: Child,
    /// Where it listens.
    pub address: SocketAddr,
}

impl Server {
    /// Starts `vigil serve` on a free port with the data folder `data` and `extra` arguments.
    pub fn start(data: &Path, credentials: &Path, extra: &[&str]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_vigil"))
            .args(["serve", "--port", "0", "--data"])
            .arg(data)
            .arg("--credentials")
            .arg(credentials)
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("vigil serve starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let address = line
            .trim()
            .trim_end_matches('/')
            .rsplit("http://")
            .next()
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("no address in {line:?}"));
        Server { child, address }
    }

    /// A signed client for this server.
    pub fn client(&self) -> ApiClient {
        ApiClient::new(
            self.address,
            Credentials::new(ACCESS_KEY, SECRET_KEY),
            "us-east-1",
        )
    }

    /// Kills the server with SIGKILL and waits for it.
    pub fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A fresh folder with a credentials file for [`ACCESS_KEY`]; returns (folder, credentials).
pub fn test_folder(name: &str) -> (PathBuf, PathBuf) {
    let dir = std::env::temp_dir().join(format!("vigil-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let credentials = dir.join("credentials");
    std::fs::write(
        &credentials,
        format!(
            "[default]\naws_access_key_id = {ACCESS_KEY}\naws_secret_access_key = {SECRET_KEY}\n"
        ),
    )
    .unwrap();
    (dir, credentials)
}
