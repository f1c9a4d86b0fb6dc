//! The compressing proxy of the end-to-end benchmark (`bench/proxy.sh --compress`): a plain
//! proxy to one origin that turns the response compression module (installed, off, by
//! default) on at `--level` for every request. The client's `Accept-Encoding` picks the
//! algorithm (zstd, then brotli, then gzip when it weighs them equally).
//!
//! ```sh
//! cargo run --release -p pingora-proxy --example compress_bench -- \
//!     --listen 127.0.0.1:6193 --level 6 127.0.0.1:8080
//! curl --compressed -v 127.0.0.1:6193/file.txt
//! ```

use std::net::SocketAddr;

use async_trait::async_trait;
use clap::Parser;
use pingora_core::modules::http::compression::ResponseCompression;
use pingora_core::server::configuration::Opt;
use pingora_core::server::Server;
use pingora_core::upstreams::peer::HttpPeer;
use pingora_core::Result;
use pingora_proxy::{http_proxy_service, ProxyHttp, Session};

/// The command line: the server's options, the listening address, the level, the origin.
#[derive(Parser, Debug)]
struct Args {
    #[command(flatten)]
    server: Opt,
    /// Where the proxy listens.
    #[arg(long, default_value = "127.0.0.1:6193")]
    listen: String,
    /// The compression level for every algorithm (0: off).
    #[arg(long, default_value_t = 6)]
    level: u32,
    /// The origin (`ip:port`).
    origin: SocketAddr,
}

// The allocator of the load_balancer example, so the proxies of the benchmarks compare alike.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A proxy compressing every response the module's rules allow.
struct CompressBench {
    origin: SocketAddr,
    level: u32,
}

#[async_trait]
impl ProxyHttp for CompressBench {
    type CTX = ();
    fn new_ctx(&self) {}

    async fn request_filter(&self, session: &mut Session, _ctx: &mut ()) -> Result<bool> {
        if let Some(compression) = session
            .downstream_modules_ctx
            .get_mut::<ResponseCompression>()
        {
            compression.adjust_level(self.level);
        }
        Ok(false)
    }

    async fn upstream_peer(&self, _session: &mut Session, _ctx: &mut ()) -> Result<Box<HttpPeer>> {
        Ok(Box::new(HttpPeer::new(self.origin, false, String::new())))
    }
}

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("error")).init();
    let args = Args::parse();
    let mut server = Server::new(Some(args.server)).expect("server set-up");
    server.bootstrap();
    let app = CompressBench {
        origin: args.origin,
        level: args.level,
    };
    let mut proxy = http_proxy_service(&server.configuration, app);
    proxy.add_tcp(&args.listen);
    server.add_service(proxy);
    server.run_forever();
}
