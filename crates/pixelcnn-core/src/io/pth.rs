//! Tensors from a file of Python's `torch.save` (its zip format, the default
//! since PyTorch 1.6): a state dict of named tensors, read without Python.
//!
//! The archive holds `<name>/data.pkl`, a pickle of the state dict, and one
//! entry `<name>/data/<key>` per storage. The pickle is run by a small
//! machine that knows only what `torch.save` of tensors writes: tuples,
//! lists, dicts (the state dict is a `collections.OrderedDict`), strings and
//! numbers, the storages as persistent ids and `torch._utils._rebuild_tensor_v2`
//! (and `_rebuild_parameter`) to make tensors of them. Any other global is
//! refused: unlike Python's `pickle`, nothing in the file can run code.
//! (libtorch's own unpickler turns every OrderedDict into None, so it cannot
//! read a module's state dict.)

use crate::error::{Error, Result};
use std::collections::HashMap;
use std::io::Read;
use std::path::Path;
use tch::{Kind, Tensor};

#[derive(Clone, Debug)]
enum Value {
    None,
    /// Booleans and floats appear only as arguments not needed here.
    Bool,
    Int(i64),
    Float,
    Str(String),
    Tuple(Vec<Value>),
    List(Vec<Value>),
    Dict(Vec<(Value, Value)>),
    /// A module-level name the pickle refers to (a class or function).
    Global(String),
    /// A storage: its entry in the archive and its element type.
    Storage { key: String, kind: Kind },
    Tensor(std::rc::Rc<Tensor>),
    Mark,
}

/// The element types `torch.save` names by storage class.
fn storage_kind(class: &str) -> Option<Kind> {
    Some(match class {
        "torch FloatStorage" => Kind::Float,
        "torch DoubleStorage" => Kind::Double,
        "torch HalfStorage" => Kind::Half,
        "torch BFloat16Storage" => Kind::BFloat16,
        "torch LongStorage" => Kind::Int64,
        "torch IntStorage" => Kind::Int,
        "torch ByteStorage" => Kind::Uint8,
        "torch BoolStorage" => Kind::Bool,
        _ => return None,
    })
}

/// The named tensors of the state dict in `bytes` (the file `path`, for errors), as float32.
pub fn read_state_dict(bytes: &[u8], path: &Path) -> Result<Vec<(String, Tensor)>> {
    let bad = |message: String| Error::checkpoint(path, format!("is not a PyTorch state dict saved with torch.save: {message}"));
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes)).map_err(|e| bad(format!("not a zip archive ({e})")))?;
    let pickle_name = (0..archive.len())
        .filter_map(|i| archive.name_for_index(i).map(str::to_string))
        .find(|n| n.ends_with("/data.pkl") && n.matches('/').count() == 1)
        .ok_or_else(|| bad("the archive has no <name>/data.pkl".into()))?;
    let prefix = pickle_name.trim_end_matches("data.pkl").to_string();
    let mut pickle = Vec::new();
    archive.by_name(&pickle_name).map_err(|e| bad(e.to_string()))?.read_to_end(&mut pickle).map_err(|e| bad(e.to_string()))?;
    let mut storages: HashMap<String, Tensor> = HashMap::new();
    let mut load_storage = |key: &str, kind: Kind| -> Result<Tensor> {
        if let Some(t) = storages.get(key) {
            return Ok(t.shallow_clone());
        }
        let mut data = Vec::new();
        let entry = format!("{prefix}data/{key}");
        archive.by_name(&entry).map_err(|_| bad(format!("storage {key} is missing ({entry})")))?.read_to_end(&mut data).map_err(|e| bad(e.to_string()))?;
        let size = kind.elt_size_in_bytes();
        if data.len() % size != 0 {
            return Err(bad(format!("storage {key} has {} bytes, not a whole number of {kind:?} values", data.len())));
        }
        let t = Tensor::f_from_data_size(&data, &[(data.len() / size) as i64], kind)?;
        storages.insert(key.to_string(), t.shallow_clone());
        Ok(t)
    };
    let value = run(&pickle, &mut load_storage).map_err(|e| match e {
        Error::Checkpoint { .. } => e,
        other => bad(other.to_string()),
    })?;
    let Value::Dict(items) = value else { return Err(bad("the pickle holds something other than a dict".into())) };
    items
        .into_iter()
        .map(|(k, v)| match (k, v) {
            (Value::Str(name), Value::Tensor(t)) => Ok((name, t.f_to_kind(Kind::Float)?)),
            (Value::Str(name), other) => Err(bad(format!("`{name}` is a {}, not a tensor", describe(&other)))),
            (other, _) => Err(bad(format!("a key is a {}, not a name", describe(&other)))),
        })
        .collect()
}

fn describe(v: &Value) -> &'static str {
    match v {
        Value::None => "None",
        Value::Bool => "bool",
        Value::Int(_) => "int",
        Value::Float => "float",
        Value::Str(_) => "string",
        Value::Tuple(_) => "tuple",
        Value::List(_) => "list",
        Value::Dict(_) => "dict",
        Value::Global(_) => "global",
        Value::Storage { .. } => "storage",
        Value::Tensor(_) => "tensor",
        Value::Mark => "mark",
    }
}

struct Reader<'a> {
    data: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8]> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.data.len()).ok_or_else(|| Error::InvalidData("the pickle ends early".into()))?;
        let bytes = &self.data[self.at..end];
        self.at = end;
        Ok(bytes)
    }
    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes")))
    }
    fn line(&mut self) -> Result<String> {
        let rest = &self.data[self.at..];
        let end = rest.iter().position(|&b| b == b'\n').ok_or_else(|| Error::InvalidData("the pickle ends early".into()))?;
        let text = String::from_utf8_lossy(&rest[..end]).into_owned();
        self.at += end + 1;
        Ok(text)
    }
    fn text(&mut self, n: usize) -> Result<String> {
        Ok(String::from_utf8(self.take(n)?.to_vec()).map_err(|_| Error::InvalidData("a string is not UTF-8".into()))?)
    }
}

fn pop(stack: &mut Vec<Value>) -> Result<Value> {
    stack.pop().ok_or_else(|| Error::InvalidData("the pickle pops an empty stack".into()))
}

/// The values above the topmost mark, which is removed.
fn pop_mark(stack: &mut Vec<Value>) -> Result<Vec<Value>> {
    let mark = stack.iter().rposition(|v| matches!(v, Value::Mark)).ok_or_else(|| Error::InvalidData("the pickle has no mark to pop to".into()))?;
    let items = stack.split_off(mark + 1);
    stack.pop();
    Ok(items)
}

fn int(v: &Value) -> Result<i64> {
    match v {
        Value::Int(i) => Ok(*i),
        other => Err(Error::InvalidData(format!("expected an int, got a {}", describe(other)))),
    }
}

fn ints(v: &Value) -> Result<Vec<i64>> {
    match v {
        Value::Tuple(items) | Value::List(items) => items.iter().map(int).collect(),
        other => Err(Error::InvalidData(format!("expected a tuple of ints, got a {}", describe(other)))),
    }
}

/// Runs the pickle `data`; `storage(key, kind)` gives a storage's values.
fn run(data: &[u8], storage: &mut dyn FnMut(&str, Kind) -> Result<Tensor>) -> Result<Value> {
    let mut r = Reader { data, at: 0 };
    let mut stack: Vec<Value> = Vec::new();
    let mut memo: HashMap<u32, Value> = HashMap::new();
    loop {
        let op = r.u8()?;
        match op {
            0x80 => {
                let protocol = r.u8()?;
                if protocol > 5 {
                    return Err(Error::InvalidData(format!("pickle protocol {protocol} is unknown")));
                }
            }
            0x95 => {
                r.take(8)?; // FRAME: a length hint
            }
            b'.' => return pop(&mut stack),
            b'(' => stack.push(Value::Mark),
            b')' => stack.push(Value::Tuple(Vec::new())),
            b't' => {
                let items = pop_mark(&mut stack)?;
                stack.push(Value::Tuple(items));
            }
            0x85 | 0x86 | 0x87 => {
                let n = (op - 0x84) as usize;
                if stack.len() < n {
                    return Err(Error::InvalidData("the pickle pops an empty stack".into()));
                }
                let items = stack.split_off(stack.len() - n);
                stack.push(Value::Tuple(items));
            }
            b']' => stack.push(Value::List(Vec::new())),
            b'}' => stack.push(Value::Dict(Vec::new())),
            b'N' => stack.push(Value::None),
            0x88 | 0x89 => stack.push(Value::Bool),
            b'K' => stack.push(Value::Int(r.u8()? as i64)),
            b'M' => {
                let b = r.take(2)?;
                stack.push(Value::Int(u16::from_le_bytes([b[0], b[1]]) as i64));
            }
            b'J' => stack.push(Value::Int(r.u32()? as i32 as i64)),
            0x8a => {
                let n = r.u8()? as usize;
                let bytes = r.take(n)?;
                if n > 8 {
                    return Err(Error::InvalidData("an integer beyond 64 bits".into()));
                }
                let mut buf = if bytes.last().is_some_and(|&b| b & 0x80 != 0) { [0xffu8; 8] } else { [0u8; 8] };
                buf[..n].copy_from_slice(bytes);
                stack.push(Value::Int(i64::from_le_bytes(buf)));
            }
            b'G' => {
                r.take(8)?;
                stack.push(Value::Float);
            }
            b'X' => {
                let n = r.u32()? as usize;
                stack.push(Value::Str(r.text(n)?));
            }
            0x8c => {
                let n = r.u8()? as usize;
                stack.push(Value::Str(r.text(n)?));
            }
            b'q' => {
                let key = r.u8()? as u32;
                memo.insert(key, stack.last().cloned().ok_or_else(|| Error::InvalidData("memo of an empty stack".into()))?);
            }
            b'r' => {
                let key = r.u32()?;
                memo.insert(key, stack.last().cloned().ok_or_else(|| Error::InvalidData("memo of an empty stack".into()))?);
            }
            0x94 => {
                let key = memo.len() as u32;
                memo.insert(key, stack.last().cloned().ok_or_else(|| Error::InvalidData("memo of an empty stack".into()))?);
            }
            b'h' | b'j' => {
                let key = if op == b'h' { r.u8()? as u32 } else { r.u32()? };
                stack.push(memo.get(&key).cloned().ok_or_else(|| Error::InvalidData(format!("memo {key} is unset")))?);
            }
            b'c' => {
                let module = r.line()?;
                let name = r.line()?;
                stack.push(Value::Global(format!("{module} {name}")));
            }
            0x93 => {
                let name = pop(&mut stack)?;
                let module = pop(&mut stack)?;
                match (module, name) {
                    (Value::Str(m), Value::Str(n)) => stack.push(Value::Global(format!("{m} {n}"))),
                    _ => return Err(Error::InvalidData("STACK_GLOBAL of non-strings".into())),
                }
            }
            b'Q' => {
                // BINPERSID: ('storage', storage class, key, location, numel).
                let pid = pop(&mut stack)?;
                let Value::Tuple(parts) = pid else { return Err(Error::InvalidData("a persistent id that is not a tuple".into())) };
                match parts.as_slice() {
                    [Value::Str(tag), Value::Global(class), Value::Str(key), ..] if tag == "storage" => {
                        let kind = storage_kind(class).ok_or_else(|| Error::InvalidData(format!("storage type `{class}` is not supported")))?;
                        stack.push(Value::Storage { key: key.clone(), kind });
                    }
                    _ => return Err(Error::InvalidData("a persistent id that is not a storage".into())),
                }
            }
            b'R' => {
                let args = pop(&mut stack)?;
                let func = pop(&mut stack)?;
                let Value::Global(name) = func else { return Err(Error::InvalidData(format!("REDUCE of a {}", describe(&func)))) };
                let Value::Tuple(args) = args else { return Err(Error::InvalidData("REDUCE without an argument tuple".into())) };
                stack.push(reduce(&name, args, storage)?);
            }
            b'b' => {
                // BUILD: the OrderedDict's `_metadata` (versions of modules): not needed.
                let _state = pop(&mut stack)?;
            }
            b's' => {
                let value = pop(&mut stack)?;
                let key = pop(&mut stack)?;
                match stack.last_mut() {
                    Some(Value::Dict(items)) => items.push((key, value)),
                    _ => return Err(Error::InvalidData("SETITEM on something other than a dict".into())),
                }
            }
            b'u' => {
                let items = pop_mark(&mut stack)?;
                if items.len() % 2 != 0 {
                    return Err(Error::InvalidData("SETITEMS with an odd number of values".into()));
                }
                let Some(Value::Dict(dict)) = stack.last_mut() else { return Err(Error::InvalidData("SETITEMS on something other than a dict".into())) };
                let mut items = items.into_iter();
                while let (Some(k), Some(v)) = (items.next(), items.next()) {
                    dict.push((k, v));
                }
            }
            b'a' => {
                let value = pop(&mut stack)?;
                match stack.last_mut() {
                    Some(Value::List(items)) => items.push(value),
                    _ => return Err(Error::InvalidData("APPEND on something other than a list".into())),
                }
            }
            b'e' => {
                let values = pop_mark(&mut stack)?;
                match stack.last_mut() {
                    Some(Value::List(items)) => items.extend(values),
                    _ => return Err(Error::InvalidData("APPENDS on something other than a list".into())),
                }
            }
            other => return Err(Error::InvalidData(format!("pickle opcode 0x{other:02x} is not one torch.save writes for tensors"))),
        }
    }
}

/// The few calls `torch.save` pickles for a state dict.
fn reduce(name: &str, args: Vec<Value>, storage: &mut dyn FnMut(&str, Kind) -> Result<Tensor>) -> Result<Value> {
    match name {
        "collections OrderedDict" => Ok(Value::Dict(Vec::new())),
        "torch._utils _rebuild_tensor_v2" => {
            let [Value::Storage { key, kind }, offset, size, stride, ..] = args.as_slice() else {
                return Err(Error::InvalidData("_rebuild_tensor_v2 without (storage, offset, size, stride)".into()));
            };
            let values = storage(key, *kind)?;
            let (offset, size, stride) = (int(offset)?, ints(size)?, ints(stride)?);
            // Every element the view reads must lie in the storage.
            let last = offset + size.iter().zip(&stride).map(|(&n, &s)| (n - 1).max(0) * s).sum::<i64>();
            if offset < 0 || stride.iter().any(|&s| s < 0) || (size.iter().all(|&n| n > 0) && last >= values.numel() as i64) {
                return Err(Error::InvalidData(format!("a tensor of storage {key} reads beyond its {} values", values.numel())));
            }
            Ok(Value::Tensor(std::rc::Rc::new(values.f_as_strided(size.as_slice(), stride.as_slice(), offset)?.f_contiguous()?)))
        }
        "torch._utils _rebuild_parameter" => match args.into_iter().next() {
            Some(t @ Value::Tensor(_)) => Ok(t),
            _ => Err(Error::InvalidData("_rebuild_parameter without a tensor".into())),
        },
        other => Err(Error::InvalidData(format!("the pickle calls `{}`, which a state dict of tensors does not", other.replace(' ', ".")))),
    }
}
