//! The CPU block cache: large blocks freed by one step serve the next.

use pixelcnn_core::allocator::{block_cache_stats, release_free_memory, tune_for_tensors};
use tch::{Kind, Tensor};

// The cache is process-wide and the tests count its bytes: one at a time.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn a_freed_large_block_serves_the_next_allocation_of_its_size_and_release_empties_the_cache() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    tune_for_tensors();
    release_free_memory();
    let before = block_cache_stats();
    assert_eq!(before.cached_bytes, 0);

    // 4 MiB (plus its 64-byte header, rounded to pages): above the 1 MiB below
    // which malloc is used directly.
    let first = Tensor::ones([1 << 20], (Kind::Float, tch::Device::Cpu));
    let address = first.data_ptr() as usize;
    drop(first);
    let held = block_cache_stats();
    assert_eq!(held.cached_bytes, (4 << 20) + 4096, "the freed block is kept");

    let second = Tensor::zeros([1 << 20], (Kind::Float, tch::Device::Cpu));
    assert_eq!(second.data_ptr() as usize, address, "the same block is reused");
    assert_eq!(second.sum(Kind::Float).double_value(&[]), 0.0, "a reused block holds the new tensor's values");
    let after = block_cache_stats();
    assert_eq!(after.hits, held.hits + 1);
    assert_eq!(after.cached_bytes, 0);

    // A request much smaller than every cached block does not take one.
    drop(second);
    let small = Tensor::zeros([300_000], (Kind::Float, tch::Device::Cpu));
    assert_eq!(block_cache_stats().cached_bytes, (4 << 20) + 4096);
    drop(small);

    release_free_memory();
    assert_eq!(block_cache_stats().cached_bytes, 0);
}

#[test]
fn convolutions_whose_scratch_memory_is_freed_through_the_raw_deleter_run_under_the_cache() {
    // oneDNN allocates its scratch buffers with `raw_allocate` and frees them
    // with `raw_deleter`, which receives only the data pointer: an allocator
    // that cannot free by data pointer aborts the process here.
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    tune_for_tensors();
    let x = Tensor::randn([16, 64, 32, 32], (Kind::Float, tch::Device::Cpu)).set_requires_grad(true);
    let w = Tensor::randn([64, 64, 3, 3], (Kind::Float, tch::Device::Cpu)).set_requires_grad(true);
    let mut previous = None;
    for _ in 0..3 {
        let y = x.conv2d(&w, None::<Tensor>, [1, 1], [1, 1], [1, 1], 1);
        y.sum(Kind::Float).backward();
        let total = y.sum(Kind::Float).double_value(&[]);
        if let Some(p) = previous {
            assert_eq!(total, p, "the same convolution gives the same result on reused blocks");
        }
        previous = Some(total);
    }
    assert!(block_cache_stats().hits > 0);
}

#[test]
fn inference_calls_keep_their_blocks_for_the_next_call_and_hand_them_back_when_idle() {
    use pixelcnn_core::config::{EvalConfig, ModelConfig};
    use pixelcnn_core::images::{ImagesRef, Values};
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    tune_for_tensors();
    let state = pixelcnn_core::state::ModelState::new(ModelConfig::preset("seed").expect("preset"), tch::Device::Cpu, 0).expect("model");
    let data: Vec<u8> = (0..16 * 28 * 28).map(|i| (i % 3 == 0) as u8).collect();
    let images = ImagesRef { count: 16, height: 28, width: 28, channels: 1, data: Values::Bytes(&data) };
    release_free_memory();
    let first = pixelcnn_core::evaluate::log_probs(&state, &images, &EvalConfig::default()).expect("log_probs");
    let kept = block_cache_stats();
    assert!(kept.cached_bytes > 0, "the call's activations stay cached for the next call");
    let second = pixelcnn_core::evaluate::log_probs(&state, &images, &EvalConfig::default()).expect("log_probs");
    assert_eq!(first, second);
    assert!(block_cache_stats().hits > kept.hits, "the second call reuses the first one's blocks");
    // Released once no call has run for PIXELCNN_RELEASE_AFTER_MS (1 s by default).
    let idle = std::time::Instant::now();
    while block_cache_stats().cached_bytes > 0 && idle.elapsed() < std::time::Duration::from_secs(10) {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(block_cache_stats().cached_bytes, 0, "handed back after {:?} idle", idle.elapsed());
    assert!(idle.elapsed() >= std::time::Duration::from_millis(800), "not before the delay: {:?}", idle.elapsed());
}
