//! Models trained with the PyTorch port of PixelCNN++ (pclucas14/pixel-cnn-pp),
//! imported: its `state_dict` (a `torch.save` file) becomes a `pixelcnn++`
//! model of this library, which then evaluates and samples like any other.
//!
//! The port's module names are this library's tensor names (`pixelcnn_pp.rs`),
//! so most tensors carry over as they are. What differs:
//! - the shape is read off the tensors: `filters` and `channels` from
//!   `u_init`, `resnetBlocks` from the blocks of `up_layers.0`, weight
//!   normalisation from `weight_g`, the mixture from `nin_out`; height and
//!   width are not in a state dict (the network is convolutional): the caller
//!   gives them (the port trains 32×32);
//! - the mixture's output channels are ordered per channel in the port
//!   ([K logits, then for each channel c: K means, K log-scales, K
//!   coefficients]); here [K logits, C·K means, C·K log-scales, 3K
//!   coefficients]: `nin_out`'s rows are permuted (weight, gain and bias);
//! - a model saved from `nn.DataParallel` has every name prefixed `module.`.

use crate::config::{Architecture, ModelConfig, Output};
use crate::error::{Error, Result};
use crate::network::pixelcnn_pp;
use crate::state::ModelState;
use std::collections::HashMap;
use std::path::Path;
use tch::{Device, Kind, Tensor};

/// State dicts larger than this are not PixelCNN++ models of any published size.
const MAX_FILE_BYTES: u64 = 8 << 30;

/// The tensors of a `torch.save`d state dict.
pub fn read_state_dict(path: &Path) -> Result<Vec<(String, Tensor)>> {
    let too_large = |size| Error::checkpoint(path, format!("file is {size} bytes, larger than any PixelCNN++ state dict"));
    let bytes = crate::files::read_regular(path, MAX_FILE_BYTES, too_large)?;
    crate::pth::read_state_dict(&bytes, path)
}

/// The size of the images, which a state dict does not record, and the device.
pub struct ImportOptions {
    pub height: i64,
    pub width: i64,
    pub device: Device,
}

/// A `pixelcnn++` model holding the port's weights from `path`.
pub fn import_port(path: &Path, options: &ImportOptions) -> Result<ModelState> {
    from_state_dict(read_state_dict(path)?, options, path)
}

/// A `pixelcnn++` model holding the port's `tensors` (read from `path`, which
/// errors name).
pub fn from_state_dict(tensors: Vec<(String, Tensor)>, options: &ImportOptions, path: &Path) -> Result<ModelState> {
    let mut named: HashMap<String, Tensor> = tensors.into_iter().map(|(n, t)| (n.strip_prefix("module.").map(str::to_string).unwrap_or(n), t)).collect();
    let config = infer_config(&named, options, path)?;
    if config.weight_norm != Some(true) {
        fold_weight_norm(&mut named)?;
    }
    let state = ModelState::new(config.clone(), options.device, 0)?;
    let params = state.net.parameters();
    if let Some(extra) = named.keys().find(|n| !params.iter().any(|(p, _)| p == *n)) {
        return Err(Error::checkpoint(path, format!("tensor `{extra}` is not part of the PixelCNN++ network that the other tensors describe")));
    }
    tch::no_grad(|| -> Result<()> {
        for (name, target) in &params {
            let source = named.get(name).ok_or_else(|| Error::checkpoint(path, format!("tensor `{name}` is missing")))?;
            if source.size() != target.size() {
                return Err(Error::checkpoint(path, format!("tensor `{name}` has shape {:?} but the network needs {:?}", source.size(), target.size())));
            }
            let mut value = source.f_to_kind(Kind::Float)?;
            if name.starts_with("nin_out.") && config.output == Output::LogisticMixture {
                value = value.f_index_select(0, &Tensor::f_from_slice(&mixture_rows(config.mixtures(), config.channels))?)?;
            }
            if f64::try_from(value.f_isfinite()?.f_logical_not()?.f_any()?.f_to_kind(Kind::Double)?)? != 0.0 {
                return Err(Error::checkpoint(path, format!("tensor `{name}` holds a non-finite value")));
            }
            target.shallow_clone().f_copy_(&value.f_to_device(options.device)?)?;
        }
        Ok(())
    })?;
    drop(params);
    Ok(state)
}

/// Replaces every `weight_g`, `weight_v` pair by the `weight` it computes,
/// g · v / ‖v‖ (norm over all but the first dimension). The port before its
/// weight-norm fix of April 2019 (which its published pretrained models
/// predate) normalised only the transposed convolutions and `nin` layers; such
/// a state dict loads as a model without weight normalisation, computing the
/// same function.
fn fold_weight_norm(named: &mut HashMap<String, Tensor>) -> Result<()> {
    let pairs: Vec<String> = named.keys().filter_map(|n| n.strip_suffix(".weight_v").map(str::to_string)).collect();
    for prefix in pairs {
        let (Some(v), Some(g)) = (named.remove(&format!("{prefix}.weight_v")), named.remove(&format!("{prefix}.weight_g"))) else { continue };
        let v = v.f_to_kind(Kind::Double)?;
        let dims: Vec<i64> = (1..v.dim() as i64).collect();
        let norm = v.f_square()?.f_sum_dim_intlist(dims.as_slice(), true, Kind::Double)?.f_sqrt()?;
        let weight = v.f_mul(&g.f_to_kind(Kind::Double)?.f_div(&norm)?)?;
        named.insert(format!("{prefix}.weight"), weight.f_to_kind(Kind::Float)?);
    }
    Ok(())
}

/// For each output channel of this library's mixture layout, the port's
/// channel that holds it.
pub fn mixture_rows(k: i64, channels: i64) -> Vec<i64> {
    let mut rows: Vec<i64> = (0..k).collect();
    if channels == 1 {
        // [K logits, K means, K log-scales] in both.
        rows.extend(k..3 * k);
        return rows;
    }
    let port = |c: i64, part: i64, j: i64| k + c * 3 * k + part * k + j;
    for part in 0..2 {
        for c in 0..3 {
            rows.extend((0..k).map(|j| port(c, part, j)));
        }
    }
    // The port's coefficient slot of channel c holds coefficient c (G on R, B on R, B on G).
    for c in 0..3 {
        rows.extend((0..k).map(|j| port(c, 2, j)));
    }
    rows
}

fn infer_config(named: &HashMap<String, Tensor>, options: &ImportOptions, path: &Path) -> Result<ModelConfig> {
    let missing = |name: &str| Error::checkpoint(path, format!("has no `{name}`: not a state dict of pixel-cnn-pp's PixelCNN"));
    let weight_norm = named.contains_key("u_init.conv.weight_v");
    let direction = if weight_norm { "weight_v" } else { "weight" };
    let first = named.get(&format!("u_init.conv.{direction}")).ok_or_else(|| missing("u_init.conv.weight_v"))?;
    let (filters, channels) = (first.size()[0], first.size()[1] - 1);
    if channels != 1 && channels != 3 {
        return Err(Error::checkpoint(path, format!("`u_init` reads {} input channels: the port's models read 1 or 3 (plus its channel of ones)", channels + 1)));
    }
    let resnet_blocks = (0..).take_while(|j| named.contains_key(&format!("up_layers.0.u_stream.{j}.conv_input.conv.bias"))).count() as i64;
    // Before the port's weight-norm fix nin layers were normalised while the convolutions were not.
    let out = named.get("nin_out.lin_a.weight_v").or_else(|| named.get("nin_out.lin_a.weight")).ok_or_else(|| missing("nin_out.lin_a.weight_v"))?.size()[0];
    let per_mixture = if channels == 3 { 10 } else { 3 };
    if out % per_mixture != 0 {
        return Err(Error::checkpoint(path, format!("`nin_out` has {out} outputs, not a multiple of {per_mixture} (a logistic mixture of {channels} channels)")));
    }
    let config = ModelConfig {
        architecture: Architecture::PixelcnnPp,
        height: options.height,
        width: options.width,
        channels,
        output: Output::LogisticMixture,
        mixtures: Some(out / per_mixture),
        filters,
        resnet_blocks: Some(resnet_blocks),
        weight_norm: Some(weight_norm),
        vocabulary: None,
        embedding: None,
        condition_size: None,
        condition_map: None,
        // The port trains with dropout 0.5 (Dropout2d); it applies only to further training here.
        dropout: Some(0.5),
        ..pixelcnn_pp::preset()
    };
    config.validate()?;
    Ok(config)
}
