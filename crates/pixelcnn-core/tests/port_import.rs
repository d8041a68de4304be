//! Models of the PyTorch port of PixelCNN++ (pclucas14/pixel-cnn-pp), imported:
//! the fixture is two small models saved by that code (`torch.save` of its
//! `state_dict`) with the log-likelihood that code computed for fixed images
//! (`scripts/pixelcnnpp-port-fixture.py`).

use pixelcnn_core::config::{EvalConfig, Precision};
use pixelcnn_core::evaluate::log_probs;
use pixelcnn_core::images::ImagesRef;
use pixelcnn_core::port_import::{from_state_dict, import_port, read_state_dict, ImportOptions};
use pixelcnn_core::state::ModelState;
use pixelcnn_core::Error;
use std::path::{Path, PathBuf};
use tch::{Device, Kind, Tensor};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/pixelcnnpp-port").join(name)
}

fn expected(name: &str) -> (Vec<f64>, i64) {
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(fixture(&format!("{name}.expected.json"))).unwrap()).unwrap();
    let nll = json["nll_per_image"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
    (nll, json["input_channels"].as_i64().unwrap())
}

const SIZE: ImportOptions = ImportOptions { height: 8, width: 8, device: Device::Cpu };

/// Nats per image: minus the sum of every sub-pixel's log-probability.
fn nll_per_image(state: &ModelState, name: &str, channels: i64) -> Vec<f64> {
    let data = std::fs::read(fixture(&format!("{name}.images.bin"))).unwrap();
    let count = data.len() as i64 / (64 * channels);
    let images = ImagesRef { count, height: 8, width: 8, channels, data: pixelcnn_core::images::Values::Bytes(&data) };
    let per_sub_pixel = log_probs(state, &images, &EvalConfig { precision: Precision::Fp32, ..Default::default() }).unwrap();
    per_sub_pixel.chunks((64 * channels) as usize).map(|image| -image.iter().map(|&v| v as f64).sum::<f64>()).collect()
}

#[test]
fn an_imported_model_gives_the_ports_log_likelihood() {
    for name in ["rgb", "gray"] {
        let (want, channels) = expected(name);
        let state = import_port(&fixture(&format!("{name}.pth")), &SIZE).unwrap();
        let config = state.net.config();
        assert_eq!((config.filters, config.resnet_blocks, config.mixtures, config.channels, config.weight_norm), (4, Some(1), Some(2), channels, Some(true)));
        let got = nll_per_image(&state, name, channels);
        for (n, (g, w)) in got.iter().zip(&want).enumerate() {
            assert!((g - w).abs() < 1e-4, "{name} image {n}: {g} nats here, {w} in the port");
        }
    }
}

/// The port before its weight-norm fix (2019) normalised only its transposed
/// convolutions and nin layers: such a file imports as a model without
/// weight normalisation that computes the same.
#[test]
fn a_state_dict_of_the_port_before_its_weight_norm_fix_imports_too() {
    let (want, _) = expected("rgb");
    let mut tensors = read_state_dict(&fixture("rgb.pth")).unwrap();
    let shifted: Vec<String> = tensors.iter().filter_map(|(n, _)| n.strip_suffix(".conv.weight_v").map(|p| format!("{p}.conv"))).collect();
    for prefix in shifted {
        let take = |tensors: &mut Vec<(String, Tensor)>, name: String| {
            let i = tensors.iter().position(|(n, _)| *n == name).unwrap();
            tensors.remove(i).1
        };
        let v = take(&mut tensors, format!("{prefix}.weight_v"));
        let g = take(&mut tensors, format!("{prefix}.weight_g"));
        let norm = v.square().sum_dim_intlist([1i64, 2, 3].as_slice(), true, Kind::Float).sqrt();
        tensors.push((format!("module.{prefix}.weight"), &v * &g / norm));
    }
    let state = from_state_dict(tensors, &SIZE, Path::new("old.pth")).unwrap();
    assert_eq!(state.net.config().weight_norm, Some(false));
    for (g, w) in nll_per_image(&state, "rgb", 3).iter().zip(&want) {
        assert!((g - w).abs() < 1e-4, "{g} nats here, {w} in the port");
    }
}

#[test]
fn files_that_are_not_port_state_dicts_are_checkpoint_errors_naming_the_file() {
    let dir = std::env::temp_dir().join(format!("pixelcnn-import-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let junk = dir.join("junk.pth");
    std::fs::write(&junk, b"not a zip at all").unwrap();
    match import_port(&junk, &SIZE) {
        Err(Error::Checkpoint { path, message }) => {
            assert!(path.contains("junk.pth"), "{path}");
            assert!(message.contains("not a PyTorch state dict"), "{message}");
        }
        other => panic!("{:?}", other.err()),
    }
    // A pickle that would run code in Python is refused before anything runs.
    let evil = dir.join("evil.pth");
    {
        use std::io::Write;
        let mut zip = zip::ZipWriter::new(std::fs::File::create(&evil).unwrap());
        let stored = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
        zip.start_file("evil/data.pkl", stored).unwrap();
        zip.write_all(b"\x80\x02cos\nsystem\nX\x07\x00\x00\x00echo hi\x85R.").unwrap();
        zip.finish().unwrap();
    }
    match import_port(&evil, &SIZE) {
        Err(Error::Checkpoint { message, .. }) => assert!(message.contains("`os.system`"), "{message}"),
        other => panic!("{:?}", other.err()),
    }
    // Cut short, it is an error too, not a crash.
    let whole = std::fs::read(fixture("rgb.pth")).unwrap();
    for cut in [whole.len() / 2, whole.len() - 30] {
        std::fs::write(&junk, &whole[..cut]).unwrap();
        assert!(matches!(import_port(&junk, &SIZE), Err(Error::Checkpoint { .. })), "cut at {cut}");
    }
    // A state dict of another network: its names say so.
    let tensors = vec![("encoder.weight".to_string(), Tensor::zeros([2, 2], (Kind::Float, Device::Cpu)))];
    assert!(matches!(from_state_dict(tensors, &SIZE, Path::new("other.pth")), Err(Error::Checkpoint { .. })));
    // Odd sizes are refused by name.
    let odd = ImportOptions { height: 10, ..SIZE };
    assert!(matches!(import_port(&fixture("rgb.pth"), &odd), Err(Error::InvalidConfig { field, .. }) if field == "model.height"));
    let _ = std::fs::remove_dir_all(&dir);
}
