//! `bentocloud-docs`: writes the Registry docs under `docs/` from the provider's schema
//! (`--check` only reports pages that differ, and exits 1 if any do).

use std::path::Path;

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let check = std::env::args().any(|a| a == "--check");
    if check {
        let stale = bentocloud::docs::stale_pages(root);
        for p in &stale {
            eprintln!("stale: docs/{}", p.display());
        }
        std::process::exit(if stale.is_empty() { 0 } else { 1 });
    }
    for (rel, text) in bentocloud::docs::render_all(&root.join("examples")) {
        let path = root.join("docs").join(&rel);
        if let Some(dir) = path.parent() {
            if let Err(e) = std::fs::create_dir_all(dir) {
                eprintln!("cannot create {}: {e}", dir.display());
                std::process::exit(1);
            }
        }
        if let Err(e) = std::fs::write(&path, text) {
            eprintln!("cannot write {}: {e}", path.display());
            std::process::exit(1);
        }
        println!("wrote docs/{}", rel.display());
    }
}
