//! Loading PyTorch state dicts (`.pth`/`.pt` pickles and `.safetensors`) into the backbones.
//!
//! burn-store reads both formats and writes tensors into module parameters (transposing linear
//! weights, mapping BatchNorm weight/bias to gamma/beta). This module reads the whole file first
//! and checks it against the model in PyTorch's own key names: every key the model needs must be
//! there as float32 with the right shape, and nothing else may be, except `num_batches_tracked`
//! and keys the model deliberately leaves out (its classifier when built without one). Problems
//! come back as one-line errors naming the file and the state-dict key. Only then are the
//! model-specific key renames applied and the tensors written, so a file that fails to load
//! leaves the model as it was.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use burn::store::burn_pack::Tensor as PackTensor;
use burn::store::{
    ApplyResult, KeyRemapper, ModuleSnapshot, ModuleStore, PyTorchToBurnAdapter, PytorchStore,
    SafetensorsStore, bridge,
};
use burn::tensor::DType;

/// Why a weights file could not be loaded into a model.
#[derive(Debug, thiserror::Error)]
pub enum WeightsError {
    #[error("cannot read weights file {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{path}: not a PyTorch checkpoint or a safetensors file; save the state dict with \
         torch.save(model.state_dict(), ...) or safetensors.torch.save_file(...)"
    )]
    UnknownFormat { path: PathBuf },
    #[error(
        "{path}: cannot parse {format} weights ({message}); the file is damaged or not a state dict"
    )]
    Parse {
        path: PathBuf,
        format: WeightsFormat,
        message: String,
    },
    #[error(
        "{path}: tensor '{key}' is {dtype:?} but only float32 weights are supported; convert the \
         state dict with {{k: v.float() for k, v in sd.items()}} before saving"
    )]
    UnsupportedDtype {
        path: PathBuf,
        key: String,
        dtype: DType,
    },
    #[error(
        "{path}: tensor '{key}' has shape {found:?} but the {model} expects {expected:?}{others}; \
         the file was saved from a different variant or class count"
    )]
    ShapeMismatch {
        path: PathBuf,
        model: String,
        key: String,
        expected: Box<[usize]>,
        found: Box<[usize]>,
        others: MoreProblems,
    },
    #[error(
        "{path}: tensor '{key}' needed by the {model} is missing{others}; the file was saved from \
         a different architecture or variant"
    )]
    Missing {
        path: PathBuf,
        model: String,
        key: String,
        others: MoreProblems,
    },
    #[error(
        "{path}: tensor '{key}' is not used by the {model}{others}; the file was saved from a \
         different architecture or variant"
    )]
    Unexpected {
        path: PathBuf,
        model: String,
        key: String,
        others: MoreProblems,
    },
    #[error("{path}: cannot load tensor '{key}': {message}")]
    Load {
        path: PathBuf,
        key: String,
        message: String,
    },
}

/// The on-disk weight formats this crate reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeightsFormat {
    /// `torch.save` output: a zip archive (PyTorch >= 1.6) or the older bare pickle stream.
    Pytorch,
    /// A `.safetensors` file.
    Safetensors,
}

impl std::fmt::Display for WeightsFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Pytorch => "PyTorch",
            Self::Safetensors => "safetensors",
        })
    }
}

/// Renders " (and N more)" after the first reported key, or nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MoreProblems(pub usize);

impl std::fmt::Display for MoreProblems {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            0 => Ok(()),
            n => write!(f, " (and {n} more)"),
        }
    }
}

/// How one model's parameter paths relate to the keys of the PyTorch state dict it imports.
pub struct StateDictLayout {
    /// Shown in errors, e.g. "ResNet-18".
    pub(crate) model_name: String,
    /// Regex rewrites from state-dict keys to module paths, applied in order.
    pub(crate) renames: Vec<(&'static str, &'static str)>,
    /// Turns a module path (with PyTorch's weight/bias for BatchNorm) back into the state-dict key.
    pub(crate) torch_key: fn(&str) -> String,
    /// State-dict key prefixes the model deliberately does not use, such as the classifier of
    /// a model built without one.
    pub(crate) ignored_prefixes: Vec<&'static str>,
}

/// A network whose weights come from a PyTorch state dict. Each backbone only says how its
/// parameter paths relate to the state dict's keys ([`TorchWeights::state_dict_layout`]); loading
/// and listing are the same for all.
pub trait TorchWeights: ModuleSnapshot + Sized {
    /// This model's key mapping.
    fn state_dict_layout(&self) -> StateDictLayout;

    /// Loads a state dict with this model's key names (as PyTorch saved it, e.g. torchvision's
    /// `resnet18.pth`) from a `.pth`/`.pt` file (zip or legacy pickle) or a `.safetensors`
    /// file. Every parameter and BatchNorm statistic must be present with the right shape;
    /// `num_batches_tracked` is ignored, and so are the classifier's keys when the model was
    /// built without one. On error the model is unchanged.
    fn load_weights(&mut self, path: &Path) -> Result<(), WeightsError> {
        let layout = self.state_dict_layout();
        load_state_dict(self, path, &layout)
    }

    /// The state-dict keys and shapes (as PyTorch has them) that [`Self::load_weights`] expects.
    fn expected_state_dict(&self) -> BTreeMap<String, Vec<usize>> {
        expected_state_dict(self, &self.state_dict_layout())
    }
}

/// Identifies the format from the file's first bytes (extensions are unreliable: `.bin` and
/// `.pt` are used for both).
pub fn detect_format(path: &Path) -> Result<WeightsFormat, WeightsError> {
    let mut head = [0u8; 9];
    let mut file = File::open(path).map_err(|source| WeightsError::Io {
        path: path.to_owned(),
        source,
    })?;
    let mut filled = 0;
    while filled < head.len() {
        match file.read(&mut head[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(source) if source.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(source) => {
                return Err(WeightsError::Io {
                    path: path.to_owned(),
                    source,
                });
            }
        }
    }
    let head = &head[..filled];
    // Zip local-file header (modern torch.save) or pickle protocol 2+ opcode (legacy torch.save).
    if head.starts_with(b"PK\x03\x04") || head.first() == Some(&0x80) {
        return Ok(WeightsFormat::Pytorch);
    }
    // safetensors: little-endian u64 header length, then the JSON header itself.
    if head.len() == 9 && head[8] == b'{' {
        return Ok(WeightsFormat::Safetensors);
    }
    Err(WeightsError::UnknownFormat {
        path: path.to_owned(),
    })
}

/// Loads every parameter and BatchNorm statistic of `module` from the state dict at `path`.
///
/// The whole file is read and checked against the module (keys, shapes, dtypes) before anything
/// is written into it, so a file that fails leaves the module as it was. (Cloning the module
/// first would not protect it: burn's BatchNorm running statistics are shared between clones.)
pub(crate) fn load_state_dict<M: ModuleSnapshot>(
    module: &mut M,
    path: &Path,
    layout: &StateDictLayout,
) -> Result<(), WeightsError> {
    let format = detect_format(path)?;
    let stored = read_state_dict(path, format)?;
    let expected = expected_tensors(module, layout);
    let stored = strip_wrapper_prefix(stored, &expected);
    check_against_module(&stored, path, layout, &expected)?;

    let remapper =
        KeyRemapper::from_patterns(layout.renames.clone()).map_err(|e| WeightsError::Parse {
            path: path.to_owned(),
            format,
            message: format!("invalid key rename pattern: {e}"),
        })?;
    // Only what the module needs: bookkeeping and deliberately ignored tensors stay behind.
    let needed: HashSet<&str> = expected.iter().map(|(key, _)| key.as_str()).collect();
    let (renamed, _) = remapper.remap(
        stored
            .into_iter()
            .filter(|tensor| needed.contains(tensor.name.as_str()))
            .collect(),
    );
    let result = module.apply(renamed, None, Some(Box::new(PyTorchToBurnAdapter)), true);
    // The checks above should leave nothing for burn-store to object to; if it still does, say so
    // rather than run with a half-loaded model unnoticed.
    check_apply_result(&result, path, layout)
}

/// Reads every tensor of the file into memory under its state-dict key.
fn read_state_dict(path: &Path, format: WeightsFormat) -> Result<Vec<PackTensor>, WeightsError> {
    let parse_error = |message: String| WeightsError::Parse {
        path: path.to_owned(),
        format,
        message: message.replace('\n', " "),
    };
    let lazy: Vec<PackTensor> = match format {
        WeightsFormat::Pytorch => PytorchStore::from_file(path)
            // Keep the file's indices: renumbering could only hide a missing block.
            .map_indices_contiguous(false)
            .get_all_tensors()
            .map_err(|e| parse_error(e.to_string()))?
            .values()
            .cloned()
            .collect(),
        WeightsFormat::Safetensors => SafetensorsStore::from_file(path)
            .get_all_tensors()
            .map_err(|e| parse_error(e.to_string()))?
            .values()
            .cloned()
            .collect(),
    };
    // Materialise the data now: a damaged payload must fail here, not halfway through applying.
    lazy.into_iter()
        .map(|tensor| {
            if is_bookkeeping(&tensor.name) {
                return Ok(tensor);
            }
            let data = bridge::to_data(&tensor).map_err(|e| WeightsError::Load {
                path: path.to_owned(),
                key: tensor.name.clone(),
                message: format!("{e:?}").replace('\n', " "),
            })?;
            Ok(bridge::from_data(data, tensor.name, None))
        })
        .collect()
}

/// Training checkpoints saved from `nn.DataParallel` (`module.`) or wrapped in another module
/// (`model.`, ...) prefix every key. When every expected key is found under one such prefix,
/// drop it.
fn strip_wrapper_prefix(
    stored: Vec<PackTensor>,
    expected: &[(String, Vec<usize>)],
) -> Vec<PackTensor> {
    let Some((probe, _)) = expected.first() else {
        return stored;
    };
    if stored.iter().any(|tensor| &tensor.name == probe) {
        return stored;
    }
    let Some(prefix) = stored
        .iter()
        .find_map(|tensor| tensor.name.strip_suffix(probe.as_str()))
        .filter(|prefix| prefix.ends_with('.'))
        .map(str::to_owned)
    else {
        return stored;
    };
    let names: HashSet<&str> = stored.iter().map(|tensor| tensor.name.as_str()).collect();
    if !expected
        .iter()
        .all(|(key, _)| names.contains(format!("{prefix}{key}").as_str()))
    {
        return stored;
    }
    stored
        .into_iter()
        .filter_map(|mut tensor| {
            let name = tensor.name.strip_prefix(&prefix)?.to_owned();
            tensor.name = name;
            Some(tensor)
        })
        .collect()
}

/// Compares the file's keys, shapes and dtypes with what the module needs, all in PyTorch's
/// spelling, and reports the first problem of the most telling kind.
fn check_against_module(
    stored: &[PackTensor],
    path: &Path,
    layout: &StateDictLayout,
    expected: &[(String, Vec<usize>)],
) -> Result<(), WeightsError> {
    let model = layout.model_name.clone();
    let in_file: HashMap<&str, &PackTensor> = stored
        .iter()
        .map(|tensor| (tensor.name.as_str(), tensor))
        .collect();

    // burn-store keeps a tensor's stored dtype when loading it, so a float16 or float64 file
    // would silently change the model's precision; refuse anything but float32.
    for (key, _) in expected {
        if let Some(tensor) = in_file.get(key.as_str())
            && tensor.dtype != DType::F32
        {
            return Err(WeightsError::UnsupportedDtype {
                path: path.to_owned(),
                key: key.clone(),
                dtype: tensor.dtype,
            });
        }
    }

    // Reported in the module's own order, so the first problem is the one nearest the input.
    let mismatched: Vec<(&String, &Vec<usize>, Vec<usize>)> = expected
        .iter()
        .filter_map(|(key, shape)| {
            let found = in_file.get(key.as_str())?.shape.to_vec();
            (&found != shape).then_some((key, shape, found))
        })
        .collect();
    if let Some((key, expected_shape, found)) = mismatched.first() {
        return Err(WeightsError::ShapeMismatch {
            path: path.to_owned(),
            model,
            key: (*key).clone(),
            expected: expected_shape.as_slice().into(),
            found: found.as_slice().into(),
            others: MoreProblems(mismatched.len() - 1),
        });
    }

    let missing: Vec<&String> = expected
        .iter()
        .map(|(key, _)| key)
        .filter(|key| !in_file.contains_key(key.as_str()))
        .collect();
    if let Some(key) = missing.first() {
        return Err(WeightsError::Missing {
            path: path.to_owned(),
            model,
            key: (*key).clone(),
            others: MoreProblems(missing.len() - 1),
        });
    }

    let needed: HashSet<&str> = expected.iter().map(|(key, _)| key.as_str()).collect();
    let unexpected: Vec<&str> = stored
        .iter()
        .map(|tensor| tensor.name.as_str())
        .filter(|key| !needed.contains(key) && !is_bookkeeping(key))
        .filter(|key| {
            !layout
                .ignored_prefixes
                .iter()
                .any(|prefix| key.starts_with(prefix))
        })
        .collect();
    if let Some(key) = unexpected.first() {
        return Err(WeightsError::Unexpected {
            path: path.to_owned(),
            model,
            key: (*key).to_owned(),
            others: MoreProblems(unexpected.len() - 1),
        });
    }
    Ok(())
}

/// The state-dict keys (PyTorch spelling) and shapes (PyTorch orientation) that `module` loads;
/// `num_batches_tracked` entries are accepted on load but not listed.
pub(crate) fn expected_state_dict<M: ModuleSnapshot>(
    module: &M,
    layout: &StateDictLayout,
) -> BTreeMap<String, Vec<usize>> {
    expected_tensors(module, layout).into_iter().collect()
}

/// [`expected_state_dict`] in the module's order (input to output).
fn expected_tensors<M: ModuleSnapshot>(
    module: &M,
    layout: &StateDictLayout,
) -> Vec<(String, Vec<usize>)> {
    module
        .collect(None, None, true)
        .into_iter()
        .map(|tensor| {
            (
                restore_torch_key(&tensor.name, layout),
                pytorch_orientation(tensor.shape.as_slice()),
            )
        })
        .collect()
}

/// PyTorch's BatchNorm counts its updates in `num_batches_tracked`; nothing here uses it.
fn is_bookkeeping(key: &str) -> bool {
    key.ends_with(".num_batches_tracked") || key == "num_batches_tracked"
}

/// Turns a module path (burn spelling) into the state-dict key: BatchNorm's gamma/beta become
/// weight/bias, then the layout undoes its renames.
fn restore_torch_key(key: &str, layout: &StateDictLayout) -> String {
    let pytorch_spelling = if let Some(stem) = key.strip_suffix(".gamma") {
        format!("{stem}.weight")
    } else if let Some(stem) = key.strip_suffix(".beta") {
        format!("{stem}.bias")
    } else {
        key.to_owned()
    };
    (layout.torch_key)(&pytorch_spelling)
}

fn check_apply_result(
    result: &ApplyResult,
    path: &Path,
    layout: &StateDictLayout,
) -> Result<(), WeightsError> {
    let problem = result
        .errors
        .first()
        .map(|error| error.to_string())
        .or_else(|| {
            result
                .missing
                .first()
                .map(|(key, _)| format!("no tensor for '{}'", restore_torch_key(key, layout)))
        })
        .or_else(|| {
            result
                .unused
                .first()
                .map(|key| format!("tensor '{key}' was not used"))
        });
    match problem {
        None => Ok(()),
        Some(message) => Err(WeightsError::Load {
            path: path.to_owned(),
            key: String::from("(state dict)"),
            message: format!(
                "burn-store reported a problem the key check did not catch, the model may be \
                 partially loaded: {}",
                message.replace('\n', " ")
            ),
        }),
    }
}

/// burn stores linear weights as `[in, out]`; PyTorch as `[out, in]`. Every rank-2 parameter in
/// these models is a linear weight, so show rank-2 shapes the way the state dict has them.
fn pytorch_orientation(shape: &[usize]) -> Vec<usize> {
    match shape {
        [a, b] => vec![*b, *a],
        other => other.to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity_layout() -> StateDictLayout {
        StateDictLayout {
            model_name: "test model".into(),
            renames: vec![],
            torch_key: |key| key.to_owned(),
            ignored_prefixes: vec![],
        }
    }

    #[test]
    fn format_is_detected_from_content() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, bytes: &[u8]| {
            let path = dir.path().join(name);
            std::fs::write(&path, bytes).unwrap();
            path
        };
        let zip = write("a.bin", b"PK\x03\x04rest-of-zip");
        let legacy = write("b.bin", b"\x80\x02\x8a\x0al\xfc\x9cF");
        let safetensors = write("c.bin", b"\x10\x00\x00\x00\x00\x00\x00\x00{\"a\":1}");
        let text = write("d.pth", b"hello world, not weights");
        let empty = write("e.pth", b"");
        assert_eq!(detect_format(&zip).unwrap(), WeightsFormat::Pytorch);
        assert_eq!(detect_format(&legacy).unwrap(), WeightsFormat::Pytorch);
        assert_eq!(
            detect_format(&safetensors).unwrap(),
            WeightsFormat::Safetensors
        );
        assert!(matches!(
            detect_format(&text),
            Err(WeightsError::UnknownFormat { .. })
        ));
        assert!(matches!(
            detect_format(&empty),
            Err(WeightsError::UnknownFormat { .. })
        ));
        let missing = dir.path().join("nope.pth");
        let err = detect_format(&missing).unwrap_err();
        assert!(err.to_string().contains("nope.pth"), "{err}");
    }

    #[test]
    fn keys_are_reported_in_pytorch_spelling() {
        let layout = identity_layout();
        assert_eq!(restore_torch_key("bn1.gamma", &layout), "bn1.weight");
        assert_eq!(restore_torch_key("bn1.beta", &layout), "bn1.bias");
        assert_eq!(restore_torch_key("fc.weight", &layout), "fc.weight");
        assert_eq!(pytorch_orientation(&[512, 10]), vec![10, 512]);
        assert_eq!(pytorch_orientation(&[8, 3, 3, 3]), vec![8, 3, 3, 3]);
    }

    #[test]
    fn more_problems_renders_only_when_there_are_some() {
        assert_eq!(MoreProblems(0).to_string(), "");
        assert_eq!(MoreProblems(3).to_string(), " (and 3 more)");
    }
}
