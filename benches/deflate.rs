//! permessage-deflate throughput, and the memory a deflater/inflater pair holds.
//!
//! `cargo bench --bench deflate` first prints the heap bytes held by a `Deflater` and an
//! `Inflater` (counted by the counting allocator below) and the compressed size of the
//! benchmark messages, then measures compress and decompress MB/s (of uncompressed
//! bytes) for 1 KiB and 16 KiB JSON-like text in the two modes:
//!
//! - `shared`: no context takeover, window 15 (one codec per reactor);
//! - `dedicated`: context takeover, window 15 (one codec per connection).
//!
//! `cargo bench --bench deflate -- --memory` prints the numbers only.

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput};
use wsloop::protocol::deflate::{Deflater, Inflater};

/// The system allocator, counting the bytes live at any moment.
struct Counting;

/// Heap bytes allocated and not yet freed, by anything in the process.
static LIVE: AtomicIsize = AtomicIsize::new(0);

fn signed(n: usize) -> isize {
    isize::try_from(n).unwrap_or(isize::MAX)
}

// The one `unsafe` in the project outside the library (which denies it): a benchmark-only
// allocator wrapper, since a heap count is the only exact way to measure zlib-rs' state
// (it allocates through the Rust global allocator).
#[allow(unsafe_code)]
// SAFETY: every method forwards to `System` with the caller's arguments unchanged, so
// `System`'s guarantees hold; the counter is bookkeeping only.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as `GlobalAlloc::alloc`, passed through.
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            LIVE.fetch_add(signed(layout.size()), Ordering::Relaxed);
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as `GlobalAlloc::alloc_zeroed`, passed through.
        let ptr = unsafe { System.alloc_zeroed(layout) };
        if !ptr.is_null() {
            LIVE.fetch_add(signed(layout.size()), Ordering::Relaxed);
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by this allocator (so by `System`) with `layout`.
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(signed(layout.size()), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: same contract as `GlobalAlloc::realloc`, passed through.
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            LIVE.fetch_add(signed(new_size) - signed(layout.size()), Ordering::Relaxed);
        }
        new
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn live() -> isize {
    LIVE.load(Ordering::Relaxed)
}

/// A small deterministic generator (Knuth's MMIX LCG).
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

/// `count` different JSON-like messages of about `size` bytes each (a JSON array of
/// event records), the same on every run.
fn messages(size: usize, count: usize) -> Vec<Vec<u8>> {
    const EVENTS: [&str; 5] = ["click", "view", "purchase", "scroll", "login"];
    const PAGES: [&str; 4] = ["/home", "/cart", "/product/detail", "/search?q=shoes"];
    let mut rng = Lcg(0x00de_f1a7e);
    (0..count)
        .map(|_| {
            let mut out = String::from("[");
            while out.len() < size {
                if out.len() > 1 {
                    out.push(',');
                }
                out.push_str(&format!(
                    "{{\"id\":{},\"user\":\"user{:05}\",\"event\":\"{}\",\"page\":\"{}\",\
                     \"ts\":{},\"price\":{}.{:02},\"ok\":{}}}",
                    rng.below(1_000_000),
                    rng.below(50_000),
                    EVENTS[rng.below(5) as usize],
                    PAGES[rng.below(4) as usize],
                    1_700_000_000 + rng.below(10_000_000),
                    rng.below(500),
                    rng.below(100),
                    rng.below(2) == 1,
                ));
            }
            out.truncate(size - 1);
            out.push(']');
            out.into_bytes()
        })
        .collect()
}

/// Heap bytes a codec built by `make` holds after handling `message` once.
fn held<T>(make: impl FnOnce() -> T, run: impl FnOnce(&mut T)) -> isize {
    let before = live();
    let mut codec = make();
    run(&mut codec);
    let after = live();
    drop(codec);
    after - before
}

fn memory_report() {
    let message = messages(1024, 1).remove(0);
    let mut body = Vec::with_capacity(4096);
    let mut plain = Vec::with_capacity(4096);
    println!("heap bytes held after one 1 KiB message (context takeover):");
    println!("| window bits | level | Deflater | Inflater | pair |");
    println!("|---|---|---|---|---|");
    for (bits, level) in [(15, 1), (15, 6), (15, 9), (12, 6), (9, 1), (9, 6), (9, 9)] {
        let mut compressed = Vec::new();
        Deflater::new(bits, level, false).compress(&message, &mut compressed);
        let deflater = held(
            || Deflater::new(bits, level, false),
            |d| {
                body.clear();
                d.compress(&message, &mut body);
            },
        );
        let inflater = held(
            || Inflater::new(bits, false),
            |i| {
                plain.clear();
                i.decompress(&compressed, 1 << 20, &mut plain).expect("valid body");
            },
        );
        println!("| {bits} | {level} | {deflater} | {inflater} | {} |", deflater + inflater);
    }
    println!();
    println!("compressed size of the benchmark messages (mean over 64, window 15):");
    println!("| message | level | shared (no takeover) | dedicated (takeover) |");
    println!("|---|---|---|---|");
    for size in [1024, 16 * 1024] {
        let msgs = messages(size, 64);
        for level in [1, 6] {
            let mean = |no_takeover: bool| {
                let mut d = Deflater::new(15, level, no_takeover);
                let mut total = 0;
                for m in &msgs {
                    let mut out = Vec::new();
                    d.compress(m, &mut out);
                    total += out.len();
                }
                total / msgs.len()
            };
            println!("| {size} B | {level} | {} B | {} B |", mean(true), mean(false));
        }
    }
    println!();
}

/// Times `run(i)` for `iters` calls over a cycle of `count` messages; `restart` runs
/// untimed at the start of every cycle (a fresh context for takeover streams).
fn cycles<T>(
    iters: u64,
    count: usize,
    state: &mut T,
    restart: impl Fn(&mut T),
    mut run: impl FnMut(&mut T, usize),
) -> Duration {
    let mut total = Duration::ZERO;
    let mut i = 0u64;
    while i < iters {
        restart(state);
        let n = usize::try_from((iters - i).min(count as u64)).unwrap_or(count);
        let start = Instant::now();
        for k in 0..n {
            run(state, k);
        }
        total += start.elapsed();
        i += n as u64;
    }
    total
}

fn throughput(c: &mut Criterion) {
    const COUNT: usize = 64;
    for size in [1024usize, 16 * 1024] {
        let msgs = messages(size, COUNT);
        let mut group = c.benchmark_group(format!("deflate/{}KiB", size / 1024));
        group
            .throughput(Throughput::Bytes(size as u64))
            .warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(2));
        for (mode, no_takeover) in [("shared", true), ("dedicated", false)] {
            for level in [1u32, 6] {
                let id = BenchmarkId::new(format!("compress/{mode}"), format!("level{level}"));
                group.bench_function(id, |b| {
                    let mut d = Deflater::new(15, level, no_takeover);
                    let mut out = Vec::with_capacity(2 * size);
                    b.iter_custom(|iters| {
                        cycles(
                            iters,
                            COUNT,
                            &mut d,
                            |d| *d = Deflater::new(15, level, no_takeover),
                            |d, k| {
                                out.clear();
                                d.compress(black_box(&msgs[k]), &mut out);
                                black_box(&out);
                            },
                        )
                    });
                });
            }
            // Bodies made at level 6, in order, so a takeover stream inflates correctly.
            let mut d = Deflater::new(15, 6, no_takeover);
            let bodies: Vec<Vec<u8>> = msgs
                .iter()
                .map(|m| {
                    let mut out = Vec::new();
                    d.compress(m, &mut out);
                    out
                })
                .collect();
            let id = BenchmarkId::new(format!("decompress/{mode}"), "level6");
            group.bench_function(id, |b| {
                let mut i = Inflater::new(15, no_takeover);
                let mut out = Vec::with_capacity(2 * size);
                b.iter_custom(|iters| {
                    cycles(
                        iters,
                        COUNT,
                        &mut i,
                        |i| *i = Inflater::new(15, no_takeover),
                        |i, k| {
                            out.clear();
                            i.decompress(black_box(&bodies[k]), 1 << 20, &mut out)
                                .expect("valid body");
                            black_box(&out);
                        },
                    )
                });
            });
        }
        group.finish();
    }
}

fn main() {
    memory_report();
    if std::env::args().any(|a| a == "--memory") {
        return;
    }
    let mut c = Criterion::default().configure_from_args();
    throughput(&mut c);
    c.final_summary();
}
