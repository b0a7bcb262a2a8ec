//! `vigil serve`: the HTTP server. Today it serves the browser demo, a static folder, at
//! `/demo/`. Each feature contributes a group of routes, such as [`demo_routes`], and
//! [`router`] merges them, so further APIs join the same server.
//!
//! The server binds to 127.0.0.1 unless `--bind` names another address. The demo needs no
//! network access beyond fetching its own files.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use axum::Router;
use axum::response::Redirect;
use axum::routing::get;
use tower_http::services::ServeDir;

/// Path the demo is served under; the trailing slash matters, because the page loads its files
/// by relative URL.
pub const DEMO_PATH: &str = "/demo/";

/// Arguments of `vigil serve`.
#[derive(clap::Args, Debug)]
pub struct ServeArgs {
    /// TCP port to listen on; 0 picks a free port, printed at start.
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// Address to listen on. Anything other than a loopback address exposes the server to the
    /// network.
    #[arg(long, default_value_t = IpAddr::V4(Ipv4Addr::LOCALHOST))]
    pub bind: IpAddr,
    /// Folder of the built browser demo (default: web-demo/ next to this binary, then
    /// target/web-demo of the source tree).
    #[arg(long, value_name = "DIR")]
    pub demo_dir: Option<PathBuf>,
}

/// Serves until the process is interrupted. The first line on `out` is
/// `vigil serve: listening on http://ADDRESS/demo/`, so scripts that pass `--port 0` can read the
/// port.
pub fn run(args: &ServeArgs, out: &mut dyn std::io::Write) -> anyhow::Result<()> {
    let demo_dir = locate_demo_dir(args.demo_dir.as_deref())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("failed to start the async runtime")?;
    runtime.block_on(async {
        let address = SocketAddr::new(args.bind, args.port);
        let listener = tokio::net::TcpListener::bind(address)
            .await
            .with_context(|| format!("failed to listen on `{address}`"))?;
        let local = listener
            .local_addr()
            .context("failed to read the listening address")?;
        writeln!(out, "vigil serve: listening on http://{local}{DEMO_PATH}")?;
        out.flush().context("failed to write to stdout")?;
        tracing::info!(%local, demo_dir = %demo_dir.display(), "serving the browser demo");

        axum::serve(listener, router(&demo_dir))
            .with_graceful_shutdown(shutdown_signal())
            .await
            .context("the HTTP server failed")
    })
}

/// Builds the router with every route of the server.
pub fn router(demo_dir: &Path) -> Router {
    Router::new().merge(demo_routes(demo_dir))
}

/// Builds the browser demo's routes: the static files under `/demo/`, with `/` and `/demo`
/// redirecting there.
pub fn demo_routes(demo_dir: &Path) -> Router {
    Router::new()
        .route("/", get(|| async { Redirect::temporary(DEMO_PATH) }))
        .route("/demo", get(|| async { Redirect::permanent(DEMO_PATH) }))
        .nest_service(DEMO_PATH, ServeDir::new(demo_dir))
}

/// Finds the built demo: `explicit`, else `web-demo/` next to the binary, else `target/web-demo`
/// of the source tree.
pub fn locate_demo_dir(explicit: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(dir) = explicit {
        anyhow::ensure!(
            dir.join("index.html").is_file(),
            "no index.html in `{}`; pass the folder `cargo xtask build-web` writes",
            dir.display()
        );
        return Ok(dir.to_path_buf());
    }
    let exe = std::env::current_exe().context("failed to find the path of the `vigil` binary")?;
    let beside = exe.parent().map(|dir| dir.join("web-demo"));
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/web-demo");
    beside
        .into_iter()
        .chain([source])
        .find(|dir| dir.join("index.html").is_file())
        .context(
            "no built demo next to the `vigil` binary or in target/web-demo; build it with \
             `cargo xtask build-web` or pass --demo-dir DIR",
        )
}

async fn shutdown_signal() {
    if let Err(error) = tokio::signal::ctrl_c().await {
        tracing::warn!(%error, "failed to listen for Ctrl-C; stop the server with a signal");
        std::future::pending::<()>().await;
    }
    tracing::info!("stopping the server");
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A demo folder with a page and a module, removed when dropped.
    struct DemoDir(PathBuf);

    impl DemoDir {
        fn new(name: &str) -> Self {
            let dir =
                std::env::temp_dir().join(format!("vigil-serve-{name}-{}", std::process::id()));
            std::fs::create_dir_all(dir.join("pkg")).unwrap();
            std::fs::write(dir.join("index.html"), "<title>demo</title>").unwrap();
            std::fs::write(dir.join("pkg/vigil_web_bg.wasm"), b"\0asm\x01\0\0\0").unwrap();
            Self(dir)
        }
    }

    impl Drop for DemoDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// Serves `dir` on a free loopback port, sends one GET for `path` and returns the response.
    async fn get(dir: &Path, path: &str) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let server = tokio::spawn(axum::serve(listener, router(dir)).into_future());
        let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
        let request =
            format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await.unwrap();
        server.abort();
        String::from_utf8_lossy(&response).into_owned()
    }

    fn header<'a>(response: &'a str, name: &str) -> Option<&'a str> {
        response.lines().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.eq_ignore_ascii_case(name).then(|| value.trim())
        })
    }

    #[tokio::test]
    async fn demo_without_slash_redirects() {
        let dir = DemoDir::new("redirect");
        let response = get(&dir.0, "/demo").await;
        assert!(response.starts_with("HTTP/1.1 308"), "{response}");
        assert_eq!(header(&response, "location"), Some("/demo/"));
    }

    #[tokio::test]
    async fn demo_serves_index_page() {
        let dir = DemoDir::new("index");
        let response = get(&dir.0, "/demo/").await;
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
        assert!(response.ends_with("<title>demo</title>"), "{response}");
    }

    #[tokio::test]
    async fn wasm_has_wasm_content_type() {
        let dir = DemoDir::new("wasm");
        let response = get(&dir.0, "/demo/pkg/vigil_web_bg.wasm").await;
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
        assert_eq!(header(&response, "content-type"), Some("application/wasm"));
    }

    #[tokio::test]
    async fn missing_file_is_not_found() {
        let dir = DemoDir::new("missing");
        let response = get(&dir.0, "/demo/nothing.js").await;
        assert!(response.starts_with("HTTP/1.1 404"), "{response}");
    }

    #[tokio::test]
    async fn path_outside_demo_is_not_served() {
        let dir = DemoDir::new("traversal");
        let response = get(&dir.0, "/demo/../Cargo.toml").await;
        assert!(!response.starts_with("HTTP/1.1 200"), "{response}");
    }
}
