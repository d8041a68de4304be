//! The c10d process group across real processes on 127.0.0.1: each rank is
//! this test binary run again as a child (`rank_worker`, which does nothing
//! unless the parent set PIXELCNN_TEST_RANK). Covers the collectives'
//! results, a rank that never joins, a rank that dies before a collective,
//! and bad options.

mod common;
use common::*;
use pixelcnn_core::config::{EvalConfig, ModelConfig, Precision, TrainConfig};
use pixelcnn_core::config::{Backend, DistributedConfig};
use pixelcnn_core::distributed::{join_within_deadline, GroupOptions, ProcessGroup};
use pixelcnn_core::evaluate::predict;
use pixelcnn_core::images::ImagesRef;
use pixelcnn_core::precision::cpu_has_native_bf16;
use pixelcnn_core::state::ModelState;
use pixelcnn_core::train::fit_in_group;
use pixelcnn_core::Error;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tch::{Kind, Tensor};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn options(rank: i64, world_size: i64, port: u16, timeout: Duration) -> GroupOptions {
    GroupOptions { rank, world_size, master_addr: "127.0.0.1".into(), master_port: port as i64, timeout }
}

/// Starts this binary's `rank_worker` as `rank` of `world` doing `job`.
fn spawn_rank(rank: i64, world: i64, port: u16, job: &str) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args(["rank_worker", "--exact", "--include-ignored", "--nocapture", "--test-threads=1"])
        .env("PIXELCNN_TEST_RANK", rank.to_string())
        .env("PIXELCNN_TEST_WORLD", world.to_string())
        .env("PIXELCNN_TEST_PORT", port.to_string())
        .env("PIXELCNN_TEST_JOB", job)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// The lines a worker printed with the `RESULT=` prefix.
fn results(child: Child) -> (bool, Vec<String>, String) {
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    // libtest may print "test rank_worker ... " before the first line on the same line.
    let lines = stdout.lines().filter_map(|l| l.find("RESULT=").map(|i| l[i + "RESULT=".len()..].to_string())).collect();
    (out.status.success(), lines, format!("{stdout}{}", String::from_utf8_lossy(&out.stderr)))
}

#[test]
#[ignore = "run by the other tests as a child process"]
fn rank_worker() {
    let Ok(rank) = std::env::var("PIXELCNN_TEST_RANK") else { return };
    let rank: i64 = rank.parse().unwrap();
    let world: i64 = std::env::var("PIXELCNN_TEST_WORLD").unwrap().parse().unwrap();
    let port: u16 = std::env::var("PIXELCNN_TEST_PORT").unwrap().parse().unwrap();
    let job = std::env::var("PIXELCNN_TEST_JOB").unwrap();
    if job == "abort-during-fit" {
        return abort_during_fit(rank, world, port);
    }
    let mut group = ProcessGroup::gloo(&options(rank, world, port, Duration::from_secs(20))).unwrap();
    match job.as_str() {
        "collectives" => {
            // Rank r holds (r + 1)·[1, 2, …, 1000]: the sum over ranks is (1 + … + world)·[1, …].
            let mut t = Tensor::arange_start(1, 1001, (Kind::Float, tch::Device::Cpu)).g_mul_scalar((rank + 1) as f64);
            group.all_reduce_sum(&mut t).unwrap();
            println!("RESULT=sum {}", t.sum(Kind::Double).double_value(&[]));
            // Each rank draws different values; after the broadcast all hold rank 0's.
            tch::manual_seed(100 + rank);
            let mut b = Tensor::randn([257], (Kind::Float, tch::Device::Cpu));
            group.broadcast(&mut b, 0).unwrap();
            println!("RESULT=broadcast {:.6}", b.sum(Kind::Double).double_value(&[]));
        }
        "die-before-all-reduce" if rank == 1 => std::process::exit(0),
        "die-before-all-reduce" => {
            let started = Instant::now();
            let mut t = Tensor::ones([16], (Kind::Float, tch::Device::Cpu));
            match group.all_reduce_sum(&mut t) {
                Err(Error::Distributed(message)) => println!("RESULT=error after {:.1} s: {message}", started.elapsed().as_secs_f64()),
                other => println!("RESULT=unexpected {:?}", other.map(|_| ())),
            }
        }
        "train" | "train-gated" | "train-bf16" | "train-recipe" => {
            let (losses, probs) = train_small(net_for(&job), precision_for(&job), Some(&mut group), job == "train-recipe");
            println!("RESULT=losses {}", join(&losses));
            println!("RESULT=probs {}", join(&probs));
        }
        "train-from-another-state" => {
            // Rank 1 has trained an epoch on its own, as if it had resumed from a later checkpoint.
            let config = net_for("train");
            let mut state: ModelState = model(config, 3);
            let train = striped(32, 8, 8, 1);
            let train_config = TrainConfig {
                epochs: 1, batch_size: 16, learning_rate: 5e-3, seed: 7, threads: Some(1), eval_batch_size: 64, checkpoint: None, precision: Default::default(), distributed: None, ..Default::default()
            };
            let cancel = std::sync::atomic::AtomicBool::new(false);
            if rank == 1 {
                fit_in_group(&mut state, split(&train, 32, 8, 8), None, &train_config, None, &cancel, &mut |_| {}).unwrap();
            }
            match fit_in_group(&mut state, split(&train, 32, 8, 8), None, &train_config, Some(&mut group), &cancel, &mut |_| {}) {
                Err(Error::Distributed(message)) => println!("RESULT=error {message}"),
                other => println!("RESULT=unexpected {:?}", other.map(|_| ())),
            }
        }
        other => panic!("unknown job {other}"),
    }
}

/// Both ranks train through `fit` with a 60 s collective timeout; rank 1 is
/// aborted after its second step, when rank 0 is about to wait for it in the
/// next all-reduce. Prints how each ended and when.
fn abort_during_fit(rank: i64, world: i64, port: u16) {
    let mut state: ModelState = model(net_for("train"), 3);
    let train = striped(256, 8, 8, 1);
    let distributed = DistributedConfig { rank, world_size: world, master_addr: "127.0.0.1".into(), master_port: port as i64, backend: Backend::Gloo, timeout_seconds: 60.0 };
    let train_config = TrainConfig {
        epochs: 50, batch_size: 16, learning_rate: 5e-3, seed: 7, threads: Some(1), eval_batch_size: 64, checkpoint: None, precision: Default::default(), distributed: Some(distributed), ..Default::default()
    };
    let cancel = std::sync::atomic::AtomicBool::new(false);
    let mut steps = 0;
    let now = || std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
    let result = pixelcnn_core::train::fit(&mut state, split(&train, 256, 8, 8), None, &train_config, &cancel, &mut |event| {
        if let pixelcnn_core::train::TrainEvent::Step { .. } = event {
            steps += 1;
            if rank == 1 && steps == 2 {
                println!("RESULT=aborting at {:.3}", now());
                cancel.store(true, std::sync::atomic::Ordering::Relaxed);
            }
        }
    });
    let how = match result {
        Err(Error::Aborted(_)) => "aborted".to_string(),
        Err(Error::Distributed(message)) => format!("distributed {message}"),
        other => format!("unexpected {:?}", other.map(|_| ())),
    };
    println!("RESULT=ended at {:.3} {how}", now());
    // The aborted rank lives on, holding its model, as a Node process would:
    // only leaving the group, not exiting, may tell rank 0.
    if rank == 1 {
        std::thread::sleep(Duration::from_secs(12));
        drop(state);
    }
}

fn join<T: std::fmt::Display>(values: &[T]) -> String {
    values.iter().map(|v| v.to_string()).collect::<Vec<_>>().join(",")
}

fn parse(line: &str, prefix: &str) -> Vec<f64> {
    line.strip_prefix(prefix).unwrap().split(',').map(|v| v.parse().unwrap()).collect()
}

/// The network a `train` job trains: the seed's family, or (`train-gated`)
/// a gated one, whose last layer has parameters that get no gradient.
fn net_for(job: &str) -> ModelConfig {
    match job {
        "train-gated" => ModelConfig { height: 8, width: 8, filters: 8, layers: Some(2), input_kernel: Some(3), output_layers: Some(1), ..ModelConfig::gated_small() },
        _ => ModelConfig { height: 8, width: 8, filters: 16, residual_blocks: Some(1), ..ModelConfig::small() },
    }
}

/// Two epochs of a small network on 97 striped images (the last batch of 1
/// leaves one rank of two without a share), global batch 16: per epoch the
/// train and validation losses, then p(x = 1) of 4 test images.
/// The precision a `train` job trains in: bf16 for `train-bf16` (emulated
/// where the CPU has no bf16 instructions, as in `tests/precision.rs`).
fn precision_for(job: &str) -> Precision {
    if job != "train-bf16" {
        return Precision::Fp32;
    }
    if !cpu_has_native_bf16() {
        std::env::set_var("PIXELCNN_EMULATED_BF16", "1");
    }
    Precision::Bf16
}

/// `recipe`: with a schedule, the moving average (which `predict` then
/// uses), clipping, AdamW and validation inside epochs: every rank must
/// decide and average alike.
fn train_small(config: ModelConfig, precision: Precision, group: Option<&mut ProcessGroup>, recipe: bool) -> (Vec<f64>, Vec<f32>) {
    let mut state: ModelState = model(config, 3);
    let (train, test) = (striped(97, 8, 8, 1), striped(32, 8, 8, 2));
    let plain = TrainConfig {
        epochs: 2, batch_size: 16, learning_rate: 5e-3, seed: 7, threads: Some(1), eval_batch_size: 64, checkpoint: None, precision, distributed: None, ..Default::default()
    };
    let train_config = if recipe {
        TrainConfig {
            schedule: pixelcnn_core::schedule::Schedule::Exponential { decay: 0.9 }, ema: Some(0.8), clip_grad_norm: Some(0.05),
            weight_decay: 0.01, validate_every: 3, ..plain
        }
    } else {
        plain
    };
    fit_in_group(&mut state, split(&train, 97, 8, 8), Some(split(&test, 32, 8, 8)), &train_config, group, &std::sync::atomic::AtomicBool::new(false), &mut |_| {}).unwrap();
    let losses = state.history.iter().flat_map(|e| e.validations.iter().map(|v| v.val_loss).chain([e.train_loss, e.val_loss.unwrap()])).collect();
    let probe = ImagesRef { count: 4, height: 8, width: 8, channels: 1, data: pixelcnn_core::images::Values::Bytes(&test[..4 * 64]) };
    (losses, predict(&state, &probe, &EvalConfig { threads: Some(1), precision, ..Default::default() }).unwrap())
}

/// Two processes with global batch 16 train as one process with batch 16:
/// the same losses up to the order of floating-point sums, the same
/// predictions within 1e-4.
#[test]
fn two_ranks_train_like_one_process() {
    two_ranks_match_one_process("train");
}

#[test]
fn two_ranks_train_with_a_schedule_an_average_and_clipping_like_one_process() {
    two_ranks_match_one_process("train-recipe");
}

#[test]
fn two_ranks_train_a_gated_net_like_one_process() {
    two_ranks_match_one_process("train-gated");
}

/// In bf16 the ranks compute their shares as one process computes the whole
/// batch, so they match it up to bf16 rounding, which two epochs of training
/// amplify (measured: losses within a relative 3.6e-3, predictions 3.2e-2),
/// and each other exactly: every rank applies the same update.
#[test]
fn two_ranks_train_in_bf16_like_one_process() {
    let port = free_port();
    let children = [spawn_rank(0, 2, port, "train-bf16"), spawn_rank(1, 2, port, "train-bf16")];
    let (single_losses, single_probs) = train_small(net_for("train"), precision_for("train-bf16"), None, false);
    let outcomes: Vec<_> = children.into_iter().map(results).collect();
    for (rank, (ok, lines, all)) in outcomes.iter().enumerate() {
        assert!(*ok && lines.len() == 2, "rank {rank} failed:\n{all}");
        let losses = parse(&lines[0], "losses ");
        let probs = parse(&lines[1], "probs ");
        let loss_gap = losses.iter().zip(&single_losses).map(|(a, b)| ((a - b) / b).abs()).fold(0.0, f64::max);
        let prob_gap = probs.iter().zip(&single_probs).map(|(a, b)| (a - *b as f64).abs()).fold(0.0, f64::max);
        eprintln!("bf16, rank {rank}: losses within a relative {loss_gap:.2e} of one process, predictions within {prob_gap:.2e}");
        assert!(loss_gap < 1e-2 && prob_gap < 5e-2, "rank {rank}: losses {losses:?} against {single_losses:?}, predictions {prob_gap} apart");
    }
    assert_eq!(outcomes[0].1[1], outcomes[1].1[1], "the two ranks' weights differ");
}

fn two_ranks_match_one_process(job: &str) {
    let port = free_port();
    let children = [spawn_rank(0, 2, port, job), spawn_rank(1, 2, port, job)];
    let (single_losses, single_probs) = train_small(net_for(job), Precision::Fp32, None, job == "train-recipe");
    for (rank, (ok, lines, all)) in children.into_iter().map(results).enumerate() {
        assert!(ok && lines.len() == 2, "rank {rank} failed:\n{all}");
        let losses = parse(&lines[0], "losses ");
        let probs = parse(&lines[1], "probs ");
        let loss_gap = losses.iter().zip(&single_losses).map(|(a, b)| ((a - b) / b).abs()).fold(0.0, f64::max);
        let prob_gap = probs.iter().zip(&single_probs).map(|(a, b)| (a - *b as f64).abs()).fold(0.0, f64::max);
        eprintln!("{job}, rank {rank}: losses within a relative {loss_gap:.2e} of one process, predictions within {prob_gap:.2e}");
        assert!(loss_gap < 1e-5, "rank {rank}: losses {losses:?} against one process's {single_losses:?}");
        assert!(prob_gap < 1e-4, "rank {rank}: predictions differ by up to {prob_gap}");
    }
}

/// Ranks that would start from different training states (one resumed from
/// another checkpoint) all fail before the first step, the odd one naming itself.
#[test]
fn ranks_resumed_from_different_states_fail_before_training() {
    let port = free_port();
    let children = [spawn_rank(0, 2, port, "train-from-another-state"), spawn_rank(1, 2, port, "train-from-another-state")];
    let outcomes: Vec<_> = children.into_iter().map(results).collect();
    for (rank, (_, lines, all)) in outcomes.iter().enumerate() {
        assert!(lines.len() == 1 && lines[0].starts_with("error "), "rank {rank}: {all}");
        assert!(lines[0].contains("same checkpoint"), "rank {rank}: {}", lines[0]);
    }
    assert!(outcomes[1].1[0].contains("rank 1 starts from another training state than rank 0 (1 epochs done"), "{}", outcomes[1].1[0]);
    assert!(outcomes[0].1[0].contains("1 rank(s) start from another training state"), "{}", outcomes[0].1[0]);
}

#[test]
fn two_ranks_sum_and_broadcast_like_a_single_process() {
    let port = free_port();
    let children = [spawn_rank(0, 2, port, "collectives"), spawn_rank(1, 2, port, "collectives")];
    let outputs: Vec<_> = children.into_iter().map(results).collect();
    let expected_sum = 3.0 * 500.0 * 1001.0; // (1 + 2) · (1 + … + 1000)
    let mut broadcasts = Vec::new();
    for (rank, (ok, lines, all)) in outputs.iter().enumerate() {
        assert!(ok, "rank {rank} failed:\n{all}");
        assert_eq!(lines.len(), 2, "rank {rank}:\n{all}");
        let sum: f64 = lines[0].strip_prefix("sum ").unwrap().parse().unwrap();
        assert_eq!(sum, expected_sum, "rank {rank}");
        broadcasts.push(lines[1].clone());
    }
    assert_eq!(broadcasts[0], broadcasts[1], "after the broadcast both ranks hold rank 0's values");
}

#[test]
fn a_rank_that_never_joins_fails_the_others_after_the_timeout() {
    let started = Instant::now();
    let result = ProcessGroup::gloo(&options(0, 2, free_port(), Duration::from_secs(3)));
    let elapsed = started.elapsed();
    match result {
        Err(Error::Distributed(message)) => assert!(message.contains("rank 0 of 2 could not join"), "{message}"),
        other => panic!("expected a Distributed error, got {:?}", other.map(|_| ())),
    }
    assert!(elapsed >= Duration::from_secs(2) && elapsed < Duration::from_secs(30), "failed after {elapsed:?}");
}

#[test]
fn a_rank_that_dies_makes_the_collective_fail_with_a_typed_error() {
    let port = free_port();
    let children = [spawn_rank(0, 2, port, "die-before-all-reduce"), spawn_rank(1, 2, port, "die-before-all-reduce")];
    let mut outputs: Vec<_> = children.into_iter().map(results).collect();
    let (ok, lines, all) = outputs.remove(0);
    assert!(ok, "rank 0 crashed instead of reporting an error:\n{all}");
    assert_eq!(lines.len(), 1, "{all}");
    assert!(lines[0].starts_with("error after") && lines[0].contains("rank 0 of 2: all-reduce failed"), "{}", lines[0]);
    eprintln!("rank 0: {}", lines[0]);
}

/// A rank aborted during `fit` leaves the group at once: the other rank's
/// collective fails within seconds, not at its 60 s timeout.
#[test]
fn an_abort_on_one_rank_reaches_the_other_at_once() {
    let port = free_port();
    let children = [spawn_rank(0, 2, port, "abort-during-fit"), spawn_rank(1, 2, port, "abort-during-fit")];
    let outcomes: Vec<_> = children.into_iter().map(results).collect();
    // Both ranks print wall-clock times on this machine: the abort, and when each ended.
    let at = |line: &str, prefix: &str| -> (f64, String) {
        let rest = line.strip_prefix(prefix).unwrap_or_else(|| panic!("{line:?} does not start with {prefix:?}"));
        let (time, how) = rest.split_once(' ').unwrap_or((rest, ""));
        (time.parse().unwrap(), how.to_string())
    };
    let (_, lines1, all1) = &outcomes[1];
    assert_eq!(lines1.len(), 2, "rank 1: {all1}");
    let (aborted_at, _) = at(&lines1[0], "aborting at ");
    assert_eq!(at(&lines1[1], "ended at ").1, "aborted");
    let (_, lines0, all0) = &outcomes[0];
    assert_eq!(lines0.len(), 1, "rank 0: {all0}");
    let (ended_at, how0) = at(&lines0[0], "ended at ");
    assert!(how0.starts_with("distributed rank 0 of 2:") && how0.contains("another rank may have left the group"), "{how0}");
    // Rank 1 lives on for 12 s after its abort: rank 0 must learn of it well before.
    let seconds0 = ended_at - aborted_at;
    assert!(seconds0 < 6.0, "rank 0 learnt of the abort {seconds0:.1} s after it, not before rank 1 exited");
    eprintln!("rank 0 ended {seconds0:.2} s after rank 1's abort: {how0}");
}

/// A master address that accepts connections but never answers: joining
/// gives up at the timeout, and an abort stops the wait at once.
#[test]
fn a_silent_rendezvous_honours_the_timeout_and_the_abort() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    // Accepts every connection and holds it open without a byte.
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            held.push(stream);
        }
    });
    let silent = options(1, 2, port, Duration::from_secs(2));
    let never = std::sync::atomic::AtomicBool::new(false);
    let started = Instant::now();
    let join_options = silent.clone();
    match join_within_deadline(&silent, &never, move || ProcessGroup::gloo(&join_options)) {
        Err(Error::Distributed(message)) => assert!(message.contains("rank 1 of 2") && message.contains(&port.to_string()), "{message}"),
        other => panic!("expected a Distributed error, got {:?}", other.map(|_| ())),
    }
    let waited = started.elapsed();
    assert!(waited >= Duration::from_secs(2) && waited < Duration::from_secs(15), "gave up after {waited:?}");

    let patient = options(1, 2, port, Duration::from_secs(120));
    let cancel = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = cancel.clone();
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(500));
        flag.store(true, std::sync::atomic::Ordering::Relaxed);
    });
    let started = Instant::now();
    let join_options = patient.clone();
    match join_within_deadline(&patient, &cancel, move || ProcessGroup::gloo(&join_options)) {
        Err(Error::Aborted(message)) => assert!(message.contains("aborted"), "{message}"),
        other => panic!("expected an Aborted error, got {:?}", other.map(|_| ())),
    }
    assert!(started.elapsed() < Duration::from_secs(10), "abort took {:?}", started.elapsed());
}

#[test]
fn bad_options_name_the_field() {
    for (bad, field) in [
        (GroupOptions { world_size: 0, ..options(0, 1, 1234, Duration::from_secs(1)) }, "distributed.worldSize"),
        (options(2, 2, 1234, Duration::from_secs(1)), "distributed.rank"),
        (options(-1, 2, 1234, Duration::from_secs(1)), "distributed.rank"),
        (GroupOptions { master_port: 70000, ..options(0, 1, 1, Duration::from_secs(1)) }, "distributed.masterPort"),
        (GroupOptions { master_addr: String::new(), ..options(0, 1, 1234, Duration::from_secs(1)) }, "distributed.masterAddr"),
    ] {
        match ProcessGroup::gloo(&bad) {
            Err(Error::InvalidConfig { field: f, .. }) => assert_eq!(f, field),
            other => panic!("{bad:?}: expected InvalidConfig, got {:?}", other.map(|_| ())),
        }
    }
}

#[test]
fn one_rank_is_a_group_of_its_own() {
    let mut group = ProcessGroup::gloo(&options(0, 1, free_port(), Duration::from_secs(10))).unwrap();
    let mut t = Tensor::from_slice(&[1.0f32, 2.0, 3.0]);
    group.all_reduce_sum(&mut t).unwrap();
    assert_eq!(Vec::<f32>::try_from(&t).unwrap(), vec![1.0, 2.0, 3.0]);
}
