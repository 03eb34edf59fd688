//! Serves a small simulated fleet without the main binary, for working on the simulator:
//! `cargo run -p automata-simulator --example fleet -- [servers] [first-port] [mockup-dir]`.

use std::sync::Arc;

use automata_simulator::mockup::Mockup;
use automata_simulator::{Fleet, SimConfig};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let servers = args.next().and_then(|a| a.parse().ok()).unwrap_or(2);
    let port = args.next().and_then(|a| a.parse().ok()).unwrap_or(8000);
    let mut cfg = SimConfig::local(servers, port);
    if let Some(dir) = args.next() {
        cfg.mockups = Mockup::load_all(std::path::Path::new(&dir))?
            .into_iter()
            .map(Arc::new)
            .collect();
    }
    let fleet = Fleet::start(cfg).await?;
    for e in &fleet.endpoints {
        println!("{} {} {}", e.name, e.address, e.mockup);
    }
    println!("control http://{}", fleet.control);
    tokio::signal::ctrl_c().await?;
    fleet.stop().await;
    Ok(())
}
