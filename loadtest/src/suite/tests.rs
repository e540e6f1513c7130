//! The suite's reading of generator reports, its dates and its table.

use clap::Parser;

use super::*;
use crate::cli::{Action, Cli};
use crate::coord::Outcome;

fn report(args: &[&str]) -> Report {
    let mut v = vec!["wsloop-loadtest"];
    v.extend_from_slice(args);
    let Ok(Action::Run(spec, _)) =
        Cli::try_parse_from(v).expect("clap accepts").command.into_action()
    else {
        panic!("not a run");
    };
    let mut outcome = Outcome::default();
    outcome.stats.counters.received_measured = 5_000;
    outcome.stats.window_ns = 1_000_000_000;
    outcome.stats.latency.record(20_000);
    Report::build(&spec, &outcome)
}

#[test]
fn reads_a_generator_report_typed() {
    let r = report(&["echo", "-s", "1024", "-d", "1"]);
    let json = serde_json::to_string(&r).expect("serializes");
    let back = parse_report(&json, &Scenario::Echo(1024)).expect("an echo report");
    assert_eq!(back.throughput.msgs_per_sec, 5_000.0);
    assert_eq!(back.latency_us.count, 1);
    assert_eq!(back.settings.size, 1024);
}

#[test]
fn refuses_a_report_it_cannot_trust() {
    let r = report(&["echo", "-s", "32"]);
    let json = serde_json::to_string(&r).expect("serializes");
    // Another scenario, another size.
    assert!(
        parse_report(&json, &Scenario::Latency)
            .expect_err("not rate")
            .contains("`echo` where `rate`")
    );
    assert!(parse_report(&json, &Scenario::Echo(1024)).expect_err("size").contains("32 B"));
    // A figure missing is an error naming it, not a zero.
    let mut v: serde_json::Value = serde_json::from_str(&json).expect("json");
    v.as_object_mut().expect("object").remove("throughput");
    let e = parse_report(&v.to_string(), &Scenario::Echo(32)).expect_err("no throughput");
    assert!(e.contains("missing field `throughput`"), "{e}");
    let mut no_counter: serde_json::Value = serde_json::from_str(&json).expect("json");
    no_counter["counters"].as_object_mut().expect("counters").remove("lost");
    let e = parse_report(&no_counter.to_string(), &Scenario::Echo(32)).expect_err("no lost");
    assert!(e.contains("missing field `lost`"), "{e}");
    v["throughput"] = serde_json::json!({"window_s": "ten"});
    assert!(parse_report(&v.to_string(), &Scenario::Echo(32)).is_err());
    assert!(parse_report("not json", &Scenario::Echo(32)).is_err());
}

#[test]
fn utc_dates() {
    assert_eq!(utc_stamp(0), "19700101T000000Z");
    assert_eq!(utc_date(951_782_400), "2000-02-29 00:00 UTC");
    assert_eq!(utc_stamp(1_795_983_300), "20261129T201500Z");
}

#[test]
fn the_table_shows_every_server_and_why_one_is_missing() {
    let mut m = Matrix::parse(matrix::DEFAULT).expect("default");
    m.only(&["wsloop-inline".into(), "tokio-tungstenite".into(), "node-ws".into()]).expect("known");
    let echo = |size: &str| {
        let r = report(&["echo", "-s", size]);
        Ok(Measured {
            report: Box::new(r),
            cpu: Some(measure::CpuWindow {
                secs: 1.0,
                ticks: procfs::CpuTicks { user: 60, system: 40 },
                core_busy_pct: Some(100.0),
                core_steal_pct: Some(12.0),
                generator: Some(procfs::CpuTicks { user: 10, system: 30 }),
                generator_core_steal_pct: Some(3.0),
            }),
            percentiles: vec![(0.5, 0.02), (0.99, 0.05)],
        })
    };
    let run = |server: &str, scenario, result| RunOutcome {
        server: server.into(),
        scenario,
        round: 1,
        result,
        notes: Vec::new(),
    };
    let results = Results {
        matrix: m,
        skipped: vec![("node-ws".into(), "`node` is not on PATH".into())],
        runs: vec![
            run("wsloop-inline", Scenario::Echo(32), echo("32")),
            run("wsloop-inline", Scenario::Echo(1024), echo("1024")),
            run("tokio-tungstenite", Scenario::Echo(32), echo("32")),
            run("tokio-tungstenite", Scenario::Echo(1024), Err("the server did not start".into())),
        ],
        meta: Meta::default(),
    };
    let text = table::render(&results, "");
    // 5,000 msg/s with 0.6 s user + 0.4 s system in 1 s: 120,000 + 80,000 ns per message.
    assert!(
        text.contains(
            "| wsloop, inline dispatch | 0.01 M | 0.01 M | 120,000 + 80,000 | 120,000 + 80,000 |"
        ),
        "{text}"
    );
    assert!(text.contains("| tokio-tungstenite, 1 thread | 0.01 M | failed |"), "{text}");
    assert!(text.contains("| Node ws | skipped: `node` is not on PATH |"), "{text}");
    assert!(
        text.contains("| wsloop, inline dispatch | tokio-tungstenite, 1 thread | 1.00× | – |"),
        "{text}"
    );
    assert!(text.contains("FAILED: the server did not start"));
    // The ratio table too, its skipped rows included; latency has a p50 and a p99 column.
    let ratios = text.split("## Each subject ÷ each peer").nth(1).expect("ratios");
    let ratios = ratios.split("\n## ").next().expect("the section");
    assert!(ratios.contains("| p50 at 10,000 msg/s | p99 at 10,000 msg/s |"), "{ratios}");
    assert!(ratios.contains("| Node ws | skipped |"), "{ratios}");
    let cells: Vec<usize> =
        ratios.lines().filter(|l| l.starts_with('|')).map(|l| l.matches('|').count()).collect();
    assert!(cells.len() == 4 && cells.iter().all(|&n| n == cells[0]), "{ratios}");
    // Every details row has as many cells as its header.
    let details = text.split("## Per-run details").nth(1).expect("details");
    let cells: Vec<usize> =
        details.lines().filter(|l| l.starts_with('|')).map(|l| l.matches('|').count()).collect();
    assert!(cells.len() == 6 && cells.iter().all(|&n| n == cells[0]), "{details}");
    assert!(details.contains("| 100% (0%; 12%) |"), "{details}");
    // 0.1 s user + 0.3 s system of the generator's over 5,000 messages, 3% stolen.
    assert!(details.contains("| 20,000 + 60,000 (3%) |"), "{details}");
    assert!(text.contains("p50 / p99 µs at 10,000 msg/s"));
    let dir = std::env::temp_dir().join(format!("wsloop-suite-charts-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    charts::write(&results, &dir).expect("charts draw");
    let svg = std::fs::read_to_string(dir.join("throughput.svg")).expect("throughput.svg");
    // Each server's label under its bars, a line per comma-separated part.
    let text_line = |t: &str| svg.lines().any(|l| l.trim() == t);
    assert!(text_line("wsloop") && text_line("inline dispatch"), "{svg}");
    assert!(text_line("tokio-tungstenite") && svg.contains("echo 1 KiB"), "{svg}");
    assert!(svg.contains("messages echoed per second"));
    // `--write` elsewhere: the copy links charts named after it, copied beside it.
    let elsewhere = dir.join("elsewhere");
    std::fs::create_dir_all(&elsewhere).expect("dir");
    let charts = write_beside(&results, &dir, &elsewhere.join("BENCH.md")).expect("written");
    assert_eq!(charts.len(), 2, "{charts:?}");
    let copy = std::fs::read_to_string(elsewhere.join("BENCH.md")).expect("the copy");
    assert!(copy.contains("(BENCH.throughput.svg)") && copy.contains("(BENCH.latency.svg)"));
    let copied = std::fs::read_to_string(elsewhere.join("BENCH.throughput.svg")).expect("copied");
    assert_eq!(copied, svg);
    assert!(elsewhere.join("BENCH.latency.svg").exists());
    assert!(text.contains("(throughput.svg)"), "the run's own report links its own charts");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn each_server_of_the_default_matrix_has_its_own_colour() {
    // The latency chart draws a line per server, coloured in turn from COLORS.
    let servers = Matrix::parse(matrix::DEFAULT).expect("default").servers.len();
    let colours = crate::plot::COLORS;
    assert!(servers <= colours.len(), "{servers} servers, {} colours", colours.len());
    for (i, a) in colours.iter().enumerate() {
        assert!(colours[i + 1..].iter().all(|b| b != a), "colour {i} repeats");
    }
}

#[test]
fn rounds_give_the_median_and_the_spread_of_the_ratios() {
    let mut m = Matrix::parse(matrix::DEFAULT).expect("default");
    m.only(&["wsloop-inline".into(), "tokio-tungstenite".into()]).expect("known");
    let run = |server: &str, round, rate: Option<f64>| {
        let result = rate.ok_or_else(|| "the server did not start".to_string()).map(|rate| {
            let mut r = report(&["echo", "-s", "32"]);
            r.throughput.msgs_per_sec = rate;
            Measured { report: Box::new(r), cpu: None, percentiles: Vec::new() }
        });
        RunOutcome {
            server: server.into(),
            scenario: Scenario::Echo(32),
            round,
            result,
            notes: Vec::new(),
        }
    };
    // Ours: 3, 1 (a round the host slowed), 2 M, then a failed round; theirs: 1, 1, 2 M.
    let results = Results {
        matrix: m,
        skipped: Vec::new(),
        runs: vec![
            run("wsloop-inline", 1, Some(3e6)),
            run("tokio-tungstenite", 1, Some(1e6)),
            run("wsloop-inline", 2, Some(1e6)),
            run("tokio-tungstenite", 2, Some(1e6)),
            run("wsloop-inline", 3, Some(2e6)),
            run("tokio-tungstenite", 3, Some(2e6)),
            run("wsloop-inline", 4, None),
        ],
        meta: Meta::default(),
    };
    // The median of the measured rounds; the failed one is left out.
    assert_eq!(results.run("wsloop-inline", Scenario::Echo(32)).map(|o| o.round), Some(3));
    assert_eq!(results.rounds_of("wsloop-inline", Scenario::Echo(32)).len(), 4);
    let text = table::render(&results, "");
    assert!(text.contains("| wsloop, inline dispatch | 2.00 M | – |"), "{text}");
    // The median of the rounds' own ratios, 3, 1 and 1, not the medians' 2 M ÷ 1 M: a
    // round the host slowed for ours and another it slowed for theirs make no ratio.
    assert!(
        text.contains(
            "| wsloop, inline dispatch | tokio-tungstenite, 1 thread | 1.00× (1.00–3.00) | – |"
        ),
        "{text}"
    );
    assert!(text.contains("| wsloop-inline | 4 | echo32 | – |"), "{text}");
}

#[test]
fn steal_from_a_tenth_of_the_core_is_noted() {
    let window = |steal| measure::CpuWindow {
        secs: 1.0,
        ticks: procfs::CpuTicks { user: 50, system: 20 },
        core_busy_pct: Some(95.0),
        core_steal_pct: steal,
        generator: None,
        generator_core_steal_pct: None,
    };
    assert_eq!(super::stolen(&window(Some(12.5))), Some(12.5));
    assert_eq!(super::stolen(&window(Some(9.9))), None);
    assert_eq!(super::stolen(&window(None)), None);
    // 95% busy, 70% the server's: 25% went to other work.
    assert_eq!(super::contention(&window(None)).map(f64::round), Some(25.0));
}

#[test]
fn each_scenario_runs_every_server_in_turn_reversed_in_even_rounds() {
    let mut m = Matrix::parse(matrix::DEFAULT).expect("default");
    m.settings.rounds = 3;
    let slots = schedule(&m, &[0, 1, 2]);
    let servers_of = |round, scenario| -> Vec<usize> {
        slots
            .iter()
            .filter(|s| s.round == round && s.scenario == scenario)
            .map(|s| s.server)
            .collect()
    };
    for scenario in [Scenario::Echo(32), Scenario::Echo(1024), Scenario::Latency] {
        assert_eq!(servers_of(1, scenario), [0, 1, 2]);
        assert_eq!(servers_of(2, scenario), [2, 1, 0]);
        assert_eq!(servers_of(3, scenario), [0, 1, 2]);
    }
    // Idle memory once, in the first round; nothing else.
    assert_eq!(servers_of(1, Scenario::Idle), [0, 1, 2]);
    assert!(servers_of(2, Scenario::Idle).is_empty());
    assert_eq!(slots.len(), 3 * 3 * 3 + 3);
    // A scenario's runs are next to each other: the first and last server of a round's
    // echo at 32 B are two runs apart, whatever the other scenarios.
    let at = |round, server| {
        slots.iter().position(|s| {
            s.round == round && s.scenario == Scenario::Echo(32) && s.server == server
        })
    };
    for round in 1..=3 {
        let (first, last) = (at(round, 0).expect("ran"), at(round, 2).expect("ran"));
        assert_eq!(first.abs_diff(last), 2, "round {round}");
    }
}
