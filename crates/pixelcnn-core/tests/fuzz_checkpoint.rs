//! Fuzzing the checkpoint reader with mutated and random files: every input
//! must give Ok or a Checkpoint error, never a panic, and never a large
//! allocation driven by a header's claims.
//!
//! CI runs 3,000 executions (seed 99). A long run, outside CI:
//! `PIXELCNN_FUZZ_EXECUTIONS=1000000 PIXELCNN_FUZZ_SEED=7 bash scripts/test-rust.sh --test fuzz_checkpoint -- --nocapture`.

mod common;
use common::*;
use pixelcnn_core::checkpoint::{from_bytes, to_bytes};
use pixelcnn_core::config::ModelConfig;
use pixelcnn_core::rng::Rng;
use pixelcnn_core::Error;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use tch::Device;

fn check(bytes: &[u8], outcomes: &mut [usize; 2]) {
    let result = catch_unwind(AssertUnwindSafe(|| from_bytes(bytes, Path::new("fuzz.safetensors"), Device::Cpu)));
    match result {
        Ok(Ok(_)) => outcomes[0] += 1,
        Ok(Err(Error::Checkpoint { .. })) | Ok(Err(Error::InvalidConfig { .. })) => outcomes[1] += 1,
        Ok(Err(other)) => panic!("unexpected error kind: {other:?}"),
        Err(_) => panic!("the checkpoint reader panicked on {} bytes", bytes.len()),
    }
}

#[test]
fn mutated_and_random_checkpoints_never_panic() {
    let state = model(ModelConfig { height: 6, width: 6, filters: 4, residual_blocks: Some(1), ..ModelConfig::small() }, 1);
    let valid = to_bytes(&state).unwrap();
    let header_len = u64::from_le_bytes(valid[..8].try_into().unwrap()) as usize;
    let env = |name: &str, default: u64| std::env::var(name).ok().and_then(|v| v.parse::<u64>().ok()).unwrap_or(default);
    let mut rng = Rng::new(env("PIXELCNN_FUZZ_SEED", 99));
    let mut outcomes = [0usize; 2];
    let executions = env("PIXELCNN_FUZZ_EXECUTIONS", 3000) as usize;
    let started = std::time::Instant::now();
    for i in 0..executions {
        let mut bytes = valid.clone();
        match i % 6 {
            // Flip bytes anywhere in the header.
            0 => for _ in 0..1 + rng.below(4) { let at = 8 + rng.below(header_len); bytes[at] = rng.next_u64() as u8; },
            // Truncate anywhere.
            1 => bytes.truncate(rng.below(valid.len())),
            // A header length claiming absurd sizes.
            2 => bytes[..8].copy_from_slice(&(rng.next_u64() >> rng.below(64)).to_le_bytes()),
            // Digits in the header changed (offsets, shapes, config numbers).
            3 => {
                let digits: Vec<usize> = (8..8 + header_len).filter(|&j| bytes[j].is_ascii_digit()).collect();
                for _ in 0..1 + rng.below(3) { let at = digits[rng.below(digits.len())]; bytes[at] = b'0' + rng.below(10) as u8; }
            }
            // Random bytes of random length.
            4 => bytes = (0..rng.below(600)).map(|_| rng.next_u64() as u8).collect(),
            // Data section corrupted (values only): must load or be refused, e.g. for NaN.
            _ => for _ in 0..8 { let at = 8 + header_len + rng.below(valid.len() - 8 - header_len); bytes[at] = rng.next_u64() as u8; },
        }
        check(&bytes, &mut outcomes);
    }
    println!(
        "{executions} executions in {:.1} s: {} loaded, {} refused with a typed error, 0 panics",
        started.elapsed().as_secs_f64(),
        outcomes[0],
        outcomes[1]
    );
    assert_eq!(outcomes[0] + outcomes[1], executions);
}
