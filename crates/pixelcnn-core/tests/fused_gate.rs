//! The fused gate (`cxx/fused_gate.cpp`) against the composition of ATen
//! operations it replaces in training: the same values and gradients, for
//! contiguous and strided tensors, over the whole range of inputs, and a
//! gated network whose training step gives the same loss and gradients with
//! it and without it. Splitting a batch across threads (`batch_split.rs`)
//! gives the whole batch's gradients too.
//!
//! Bounds: float32 results of two implementations of tanh and σ (libtorch's
//! and the fused polynomial) differ by a few units in the last place;
//! measured at most 1.2e-7 in values and 6.2e-7 in gradients (absolute,
//! on these inputs; the tests print theirs), allowed 1e-6.

use pixelcnn_core::batch_split;
use pixelcnn_core::config::{ModelConfig, Precision};
use pixelcnn_core::network::fused_gate;
use pixelcnn_core::network::shifted_conv::gate;
use pixelcnn_core::state::ModelState;
use pixelcnn_core::train::{backward_share, compute_gradients};
use std::sync::Mutex;
use tch::{Device, Kind, Tensor};

/// The tests switch the fused gate on and off for the whole process: one at a time.
static SWITCH: Mutex<()> = Mutex::new(());

trait ChannelsLast {
    fn channels_last(&self) -> Tensor;
}

impl ChannelsLast for Tensor {
    fn channels_last(&self) -> Tensor {
        pixelcnn_core::network::pixelcnn::channels_last(self).unwrap()
    }
}

fn composed(x: &Tensor) -> Tensor {
    let halves = x.chunk(2, 1);
    halves[0].tanh() * halves[1].sigmoid()
}

fn max_abs_difference(a: &Tensor, b: &Tensor) -> f64 {
    (a - b).abs().max().double_value(&[])
}

/// Values over the whole float range that matters: tiny, ordinary, saturating, extreme.
fn inputs(n: i64, c: i64, h: i64, w: i64) -> Tensor {
    let ordinary = Tensor::randn([n, c, h, w], (Kind::Float, Device::Cpu)) * 3.0;
    let special = Tensor::from_slice(&[0.0f32, 1e-6, -1e-6, 1e-3, -1e-3, 20.0, -20.0, 44.0, -44.0, 88.0, -88.0, 100.0, -100.0, 1e30, -1e30]);
    let flat = ordinary.flatten(0, -1);
    let k = special.size()[0].min(flat.size()[0]);
    let _ = flat.narrow(0, 0, k).copy_(&special.narrow(0, 0, k));
    flat.view([n, c, h, w])
}

/// (value difference, gradient difference) of the fused gate against the composition.
fn compare(x: &Tensor, upstream: &Tensor) -> (f64, f64) {
    let _guard = SWITCH.lock().unwrap();
    let x_ref = x.detach().set_requires_grad(true);
    let x_fused = x.detach().set_requires_grad(true);
    let want = composed(&x_ref);
    (&want * upstream).sum(Kind::Float).backward();
    fused_gate::set_enabled(true);
    let got = gate(&x_fused).unwrap();
    (&got * upstream).sum(Kind::Float).backward();
    let differences = (max_abs_difference(&got, &want), max_abs_difference(&x_fused.grad(), &x_ref.grad()));
    eprintln!("fused against composed: values within {:.2e}, gradients within {:.2e}", differences.0, differences.1);
    differences
}

#[test]
fn fused_gate_matches_the_composition_channels_last() {
    tch::manual_seed(1);
    // 2F = 38: four vectors of eight channels and a scalar tail of three per half.
    let x = inputs(3, 38, 5, 7).channels_last();
    let upstream = Tensor::randn([3, 19, 5, 7], (Kind::Float, Device::Cpu));
    let (value, grad) = compare(&x, &upstream);
    assert!(value <= 1e-6, "values differ by {value}");
    assert!(grad <= 1e-6, "gradients differ by {grad}");
}

#[test]
fn fused_gate_reads_strided_views_in_place() {
    tch::manual_seed(2);
    // A window of a larger channels-last tensor (as a padded input's
    // gradient is): the channels stay innermost, the rows are strided.
    let big = inputs(2, 16, 9, 12).channels_last();
    let x = big.narrow(2, 1, 6).narrow(3, 2, 8);
    assert!(!x.is_contiguous());
    let upstream_big = Tensor::randn([2, 8, 10, 11], (Kind::Float, Device::Cpu)).channels_last();
    let upstream = upstream_big.narrow(2, 2, 6).narrow(3, 0, 8);
    let (value, grad) = compare(&x, &upstream);
    assert!(value <= 1e-6 && grad <= 1e-6, "values differ by {value}, gradients by {grad}");
}

#[test]
fn other_layouts_and_inference_use_the_composition() {
    let _guard = SWITCH.lock().unwrap();
    fused_gate::set_enabled(true);
    tch::manual_seed(3);
    // Channels not innermost (contiguous NCHW with more than one pixel): the composition, bit for bit.
    let x = Tensor::randn([2, 8, 3, 3], (Kind::Float, Device::Cpu)).set_requires_grad(true);
    assert_eq!(max_abs_difference(&gate(&x).unwrap(), &composed(&x)), 0.0);
    // No gradients recorded (the samplers' and evaluation's passes): the composition, bit for bit.
    let y = Tensor::randn([2, 8, 3, 3], (Kind::Float, Device::Cpu)).channels_last();
    assert_eq!(max_abs_difference(&gate(&y).unwrap(), &composed(&y)), 0.0);
}

/// Every parameter's gradient after one backward pass, with the loss.
fn gradients(state: &ModelState, run: impl FnOnce() -> Tensor) -> (f64, Vec<Tensor>) {
    for (_, p) in state.net.parameters() {
        let mut g = p.grad();
        if g.defined() {
            let _ = g.zero_();
        }
    }
    let loss = run().double_value(&[]);
    let grads = state.net.parameters().into_iter().map(|(_, p)| p.grad()).map(|g| if g.defined() { g.copy() } else { g }).collect();
    (loss, grads)
}

fn largest_relative_difference(a: &[Tensor], b: &[Tensor]) -> f64 {
    a.iter()
        .zip(b)
        .filter(|(x, _)| x.defined())
        .map(|(x, y)| max_abs_difference(x, y) / (x.abs().max().double_value(&[]) + 1e-12))
        .fold(0.0, f64::max)
}

fn gated_state() -> (ModelState, Tensor) {
    let config = ModelConfig { height: 10, width: 9, ..ModelConfig::gated_small() };
    let state = ModelState::new(config, Device::Cpu, 7).unwrap();
    tch::manual_seed(4);
    let x = Tensor::rand([16, 1, 10, 9], (Kind::Float, Device::Cpu)).lt(0.4).to_kind(Kind::Float);
    (state, x)
}

#[test]
fn a_gated_training_step_is_the_same_with_the_fused_gate() {
    let _guard = SWITCH.lock().unwrap();
    let (state, x) = gated_state();
    fused_gate::set_enabled(false);
    let (loss_ref, grads_ref) = gradients(&state, || backward_share(&state.net, &x, None, Precision::Fp32, 1.0, None).unwrap());
    fused_gate::set_enabled(true);
    let (loss, grads) = gradients(&state, || backward_share(&state.net, &x, None, Precision::Fp32, 1.0, None).unwrap());
    assert!((loss - loss_ref).abs() <= 1e-6 * loss_ref, "loss {loss} against {loss_ref}");
    let worst = largest_relative_difference(&grads_ref, &grads);
    assert!(worst <= 1e-4, "gradients differ by {worst} relative to each tensor's largest");
}

#[test]
fn a_batch_split_across_threads_gives_the_whole_batch_gradients() {
    let _guard = SWITCH.lock().unwrap();
    let gated = ModelConfig { height: 10, width: 9, ..ModelConfig::gated_small() };
    let small = ModelConfig { height: 10, width: 9, ..ModelConfig::small() };
    let nets = [
        ("gated", gated.clone()),
        ("gated, 3 classes", ModelConfig { classes: Some(3), ..gated }),
        ("small, 3 classes", ModelConfig { classes: Some(3), ..small }),
    ];
    tch::set_num_threads(2);
    // 17 images: parts of 9 and 8, so the parts' weights differ.
    assert_eq!(batch_split::parts_for(Device::Cpu, 17), 2);
    tch::manual_seed(5);
    let x = Tensor::rand([17, 1, 10, 9], (Kind::Float, Device::Cpu)).lt(0.4).to_kind(Kind::Float);
    let labels = Tensor::randint(3, [17], (Kind::Int64, Device::Cpu));
    for (name, config) in nets {
        let labels = config.classes.map(|_| &labels);
        let state = ModelState::new(config, Device::Cpu, 7).unwrap();
        let (loss_whole, grads_whole) = gradients(&state, || backward_share(&state.net, &x, labels, Precision::Fp32, 1.0, None).unwrap());
        let (loss_split, grads_split) = gradients(&state, || compute_gradients(&state.net, &x, labels, Precision::Fp32, None).unwrap());
        assert!((loss_whole - loss_split).abs() <= 1e-6 * loss_whole, "{name}: loss {loss_split} against {loss_whole}");
        let worst = largest_relative_difference(&grads_whole, &grads_split);
        assert!(worst <= 1e-5, "{name}: gradients differ by {worst} relative to each tensor's largest");
        // Deterministic: the same split twice gives the same gradients, bit for bit.
        let (_, again) = gradients(&state, || compute_gradients(&state.net, &x, labels, Precision::Fp32, None).unwrap());
        assert_eq!(largest_relative_difference(&grads_split, &again), 0.0, "{name}");
    }
    assert_eq!(tch::get_num_threads(), 2, "the thread count is restored");
}
