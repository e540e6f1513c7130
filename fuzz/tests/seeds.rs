//! Replays every committed corpus file through its target's checks, as a plain test:
//! `cargo test --manifest-path fuzz/Cargo.toml` (stable is enough).

use std::fs;
use std::path::Path;

#[test]
fn every_seed_passes_its_target() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    for (name, run) in wsloop_fuzz::TARGETS {
        let dir = corpus.join(name);
        let mut seeds = 0;
        for entry in fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.expect("corpus entry").path();
            let data = fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            eprintln!("{name}: {}", path.display());
            run(&data);
            seeds += 1;
        }
        assert!(seeds > 0, "no seeds for {name}");
    }
}
