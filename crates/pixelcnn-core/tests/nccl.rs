//! The NCCL backend. Without a GPU (this machine): the shim is built, opens,
//! rendezvous and reaches ProcessGroupNCCL's constructor, and what c10d
//! throws there comes back as a typed `DeviceUnavailable` naming the backend,
//! never a crash; the wrong device, bad options and a CPU model are refused.
//! With a GPU the same tests run a one-rank NCCL group on cuda:0 instead.

mod common;
use common::*;
use pixelcnn_core::config::{Backend, DistributedConfig, EvalConfig, ModelConfig, TrainConfig};
use pixelcnn_core::distributed::{nccl_built, GroupOptions, ProcessGroup};
use pixelcnn_core::evaluate::predict;
use pixelcnn_core::images::ImagesRef;
use pixelcnn_core::state::ModelState;
use pixelcnn_core::train::fit;
use pixelcnn_core::Error;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};
use tch::{Cuda, Device, Kind, Tensor};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn one_rank(port: u16) -> GroupOptions {
    GroupOptions { rank: 0, world_size: 1, master_addr: "127.0.0.1".into(), master_port: port as i64, timeout: Duration::from_secs(10) }
}

#[test]
fn one_nccl_rank_sums_and_broadcasts_or_says_there_is_no_gpu() {
    let started = Instant::now();
    let result = ProcessGroup::nccl(&one_rank(free_port()), Device::Cuda(0));
    let elapsed = started.elapsed();
    match (nccl_built(), Cuda::is_available(), result) {
        (Err(reason), _, Err(Error::DeviceUnavailable(message))) => {
            eprintln!("{message}");
            assert!(message.contains("nccl") && message.contains("no NCCL") && message.contains(reason), "{message}");
        }
        (Ok(()), false, Err(Error::DeviceUnavailable(message))) => {
            // c10d's own words from ProcessGroupNCCL's constructor: the shim
            // opened, the rendezvous ran, the C++ exception was caught.
            eprintln!("{message} (after {elapsed:?})");
            assert!(message.contains("\"nccl\"") && message.contains("rank 0 of 1"), "{message}");
            assert!(message.contains("ProcessGroupNCCL is only supported with GPUs, no GPUs found"), "{message}");
            assert!(elapsed < Duration::from_secs(10), "took {elapsed:?}");
        }
        (Ok(()), true, Ok(mut group)) => {
            assert_eq!((group.rank(), group.world_size(), group.device(), group.backend_name()), (0, 1, Device::Cuda(0), "nccl"));
            let mut t = Tensor::arange_start(1, 1001, (Kind::Float, Device::Cuda(0)));
            group.all_reduce_sum(&mut t).unwrap();
            assert_eq!(t.sum(Kind::Double).double_value(&[]), 500.0 * 1001.0);
            let mut b = Tensor::from_slice(&[1.5f32, -2.0]).to_device(Device::Cuda(0));
            group.broadcast(&mut b, 0).unwrap();
            assert_eq!(Vec::<f32>::try_from(&b.to_device(Device::Cpu)).unwrap(), vec![1.5, -2.0]);
            // NCCL takes tensors on its device only: a CPU tensor is refused before c10d sees it.
            let mut cpu = Tensor::from_slice(&[1.0f32]);
            assert!(matches!(group.all_reduce_sum(&mut cpu), Err(Error::Internal(m)) if m.contains("nccl")));
        }
        (built, cuda, other) => panic!("built {built:?}, CUDA {cuda}: unexpected {:?}", other.map(|_| ())),
    }
}

#[test]
fn nccl_refuses_the_cpu_and_bad_options_before_any_rendezvous() {
    match ProcessGroup::nccl(&one_rank(free_port()), Device::Cpu) {
        Err(Error::DeviceUnavailable(message)) => assert!(message.contains("nccl") && message.contains("CUDA device"), "{message}"),
        other => panic!("expected DeviceUnavailable, got {:?}", other.map(|_| ())),
    }
    for (bad, field) in [
        (GroupOptions { world_size: 0, ..one_rank(1234) }, "distributed.worldSize"),
        (GroupOptions { rank: 1, ..one_rank(1234) }, "distributed.rank"),
        (GroupOptions { master_port: 0, ..one_rank(1234) }, "distributed.masterPort"),
    ] {
        match ProcessGroup::nccl(&bad, Device::Cuda(0)) {
            Err(Error::InvalidConfig { field: f, .. }) => assert_eq!(f, field),
            other => panic!("{bad:?}: expected InvalidConfig, got {:?}", other.map(|_| ())),
        }
    }
}

fn nccl_config(port: u16) -> TrainConfig {
    TrainConfig {
        epochs: 1, batch_size: 16, learning_rate: 5e-3, seed: 7, threads: Some(1), eval_batch_size: 64, checkpoint: None, precision: Default::default(),
        distributed: Some(DistributedConfig {
            rank: 0, world_size: 1, master_addr: "127.0.0.1".into(), master_port: port as i64, backend: Backend::Nccl, timeout_seconds: 10.0,
        }),
        ..Default::default()
    }
}

fn net() -> ModelConfig {
    ModelConfig { height: 8, width: 8, filters: 16, residual_blocks: Some(1), ..ModelConfig::small() }
}

#[test]
fn training_a_cpu_model_with_nccl_is_a_device_error() {
    let mut state = model(net(), 3);
    let train = striped(32, 8, 8, 1);
    match fit(&mut state, split(&train, 32, 8, 8), None, &nccl_config(free_port()), &AtomicBool::new(false), &mut |_| {}) {
        Err(Error::DeviceUnavailable(message)) => assert!(message.contains("\"nccl\" needs a CUDA model"), "{message}"),
        other => panic!("expected DeviceUnavailable, got {:?}", other.map(|_| ())),
    }
    assert!(state.history.is_empty(), "nothing was trained");
}

/// With a GPU: one NCCL rank trains as the same model alone on cuda:0
/// (gradients and parameters stay on the GPU; a sum over one rank changes nothing).
#[test]
fn one_nccl_rank_trains_like_one_process_on_the_gpu() {
    // Joining first also loads libtorch_cuda.so (through the shim) into this
    // test binary, which does not link it: only then can tch see a GPU.
    if let Err(e) = ProcessGroup::nccl(&one_rank(free_port()), Device::Cuda(0)) {
        eprintln!("no NCCL group here ({e}): covered by one_nccl_rank_sums_and_broadcasts_or_says_there_is_no_gpu");
        return;
    }
    let train = striped(64, 8, 8, 1);
    let probe_data = striped(4, 8, 8, 2);
    let probe = ImagesRef { count: 4, height: 8, width: 8, channels: 1, data: pixelcnn_core::images::Values::Bytes(&probe_data) };
    let run = |config: &TrainConfig| {
        let mut state = ModelState::new(net(), Device::Cuda(0), 3).unwrap();
        fit(&mut state, split(&train, 64, 8, 8), None, config, &AtomicBool::new(false), &mut |_| {}).unwrap();
        (state.history[0].train_loss, predict(&state, &probe, &EvalConfig::default()).unwrap())
    };
    let (group_loss, group_probs) = run(&nccl_config(free_port()));
    let (alone_loss, alone_probs) = run(&TrainConfig { distributed: None, ..nccl_config(0) });
    let gap = group_probs.iter().zip(&alone_probs).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
    eprintln!("NCCL, one rank: loss {group_loss} against {alone_loss} alone, predictions within {gap:.2e}");
    assert!(((group_loss - alone_loss) / alone_loss).abs() < 1e-5 && gap < 1e-4);
}
