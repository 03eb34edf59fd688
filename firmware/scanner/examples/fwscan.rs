//! Scans files given on the command line and prints a short summary or the JSON report.

use std::path::Path;

use automata_fwscan::{Limits, RulePack, scan_path};

fn main() {
    let json = std::env::args().any(|a| a == "--json");
    for arg in std::env::args().skip(1).filter(|a| a != "--json") {
        let t = std::time::Instant::now();
        match scan_path(Path::new(&arg), &RulePack::builtin(), &Limits::default()) {
            Ok(r) if json => println!("{}", serde_json::to_string_pretty(&r).unwrap_or_default()),
            Ok(r) => {
                println!(
                    "{arg}: {} nodes, {:?}, ids {:?}",
                    r.nodes().len(),
                    t.elapsed(),
                    r.rule_ids()
                );
                println!("  fv {:?}", r.guids_of("fv"));
                println!("  ffs {}", r.guids_of("ffs").len());
                for e in &r.errors {
                    println!("  error {} @{:#x}: {}", e.path, e.offset, e.message);
                }
                for n in &r.notes {
                    println!("  note {n}");
                }
                for f in &r.findings {
                    println!("  {} {:?} {}", f.rule_id, f.severity, f.subject);
                }
            }
            Err(e) => println!("{arg}: {e}"),
        }
    }
}
