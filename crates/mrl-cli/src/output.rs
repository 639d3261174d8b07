//! Every file `mrl` writes as a result goes through here: refused when it holds a number that
//! is not finite (JSON would silently write NaN as `null`), written atomically
//! ([`models::atomic`]), errors naming the flag and the path.

use std::path::Path;

use anyhow::Context;
use serde::Serialize;

/// The first NaN or infinity in `value`, as `(its path, the number)`, e.g.
/// `("dims.64.spearman", NaN)`.
///
/// # Errors
/// When `value` cannot be serialised at all.
pub fn first_non_finite(value: &impl Serialize) -> anyhow::Result<Option<(String, f64)>> {
    let mut probe = Probe::default();
    value
        .serialize(&mut probe)
        .map_err(|e| anyhow::anyhow!("serialising the report: {}", e.0))?;
    Ok(probe.found)
}

/// A serializer that reads nothing but floats, keeping the path to the first non-finite one.
#[derive(Default)]
struct Probe {
    path: Vec<String>,
    found: Option<(String, f64)>,
}

#[derive(Debug)]
struct ProbeError(String);

impl std::fmt::Display for ProbeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ProbeError {}

impl serde::ser::Error for ProbeError {
    fn custom<T: std::fmt::Display>(msg: T) -> Self {
        Self(msg.to_string())
    }
}

impl Probe {
    fn float(&mut self, v: f64) {
        if !v.is_finite() && self.found.is_none() {
            self.found = Some((self.path.join("."), v));
        }
    }

    fn at<T: Serialize + ?Sized>(&mut self, key: String, value: &T) -> Result<(), ProbeError> {
        self.path.push(key);
        let result = value.serialize(&mut *self);
        self.path.pop();
        result
    }
}

/// Map keys as text (`dims.64`): numbers and strings as they print, anything else as `?`.
fn key_text<T: Serialize + ?Sized>(key: &T) -> String {
    match serde_json::to_value(key) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(_) => "?".into(),
    }
}

macro_rules! ignore {
    ($($name:ident: $t:ty),*) => {
        $(fn $name(self, _: $t) -> Result<(), ProbeError> { Ok(()) })*
    };
}

impl serde::Serializer for &mut Probe {
    type Ok = ();
    type Error = ProbeError;
    type SerializeSeq = Self;
    type SerializeTuple = Self;
    type SerializeTupleStruct = Self;
    type SerializeTupleVariant = Self;
    type SerializeMap = Self;
    type SerializeStruct = Self;
    type SerializeStructVariant = Self;

    ignore!(serialize_bool: bool, serialize_i8: i8, serialize_i16: i16, serialize_i32: i32,
        serialize_i64: i64, serialize_u8: u8, serialize_u16: u16, serialize_u32: u32,
        serialize_u64: u64, serialize_char: char, serialize_str: &str, serialize_bytes: &[u8]);

    fn serialize_f32(self, v: f32) -> Result<(), ProbeError> {
        self.float(f64::from(v));
        Ok(())
    }
    fn serialize_f64(self, v: f64) -> Result<(), ProbeError> {
        self.float(v);
        Ok(())
    }
    fn serialize_none(self) -> Result<(), ProbeError> {
        Ok(())
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), ProbeError> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<(), ProbeError> {
        Ok(())
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<(), ProbeError> {
        Ok(())
    }
    fn serialize_unit_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
    ) -> Result<(), ProbeError> {
        Ok(())
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        value: &T,
    ) -> Result<(), ProbeError> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<(), ProbeError> {
        self.at(variant.to_string(), value)
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Self, ProbeError> {
        self.path.push(String::new());
        Ok(self)
    }
    fn serialize_tuple(self, len: usize) -> Result<Self, ProbeError> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_struct(self, _: &'static str, len: usize) -> Result<Self, ProbeError> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Self, ProbeError> {
        self.path.push(variant.to_string());
        self.serialize_seq(Some(len))
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Self, ProbeError> {
        self.path.push(String::new());
        Ok(self)
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Self, ProbeError> {
        Ok(self)
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        _: usize,
    ) -> Result<Self, ProbeError> {
        self.path.push(variant.to_string());
        Ok(self)
    }
}

/// Sequences keep an index in the last path element (`""` before the first item).
fn next_index(path: &mut [String]) {
    let last = path.last_mut().expect("a sequence pushed its index");
    let i = if last.is_empty() {
        0
    } else {
        last.parse::<usize>().unwrap_or(0) + 1
    };
    *last = i.to_string();
}

macro_rules! sequence {
    ($($trait:ident :: $method:ident),*) => {
        $(impl serde::ser::$trait for &mut Probe {
            type Ok = ();
            type Error = ProbeError;
            fn $method<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), ProbeError> {
                next_index(&mut self.path);
                value.serialize(&mut **self)
            }
            fn end(self) -> Result<(), ProbeError> {
                self.path.pop();
                Ok(())
            }
        })*
    };
}

sequence!(
    SerializeSeq::serialize_element,
    SerializeTuple::serialize_element,
    SerializeTupleStruct::serialize_field
);

impl serde::ser::SerializeTupleVariant for &mut Probe {
    type Ok = ();
    type Error = ProbeError;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), ProbeError> {
        next_index(&mut self.path);
        value.serialize(&mut **self)
    }
    fn end(self) -> Result<(), ProbeError> {
        self.path.pop();
        self.path.pop();
        Ok(())
    }
}

impl serde::ser::SerializeMap for &mut Probe {
    type Ok = ();
    type Error = ProbeError;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), ProbeError> {
        *self.path.last_mut().expect("a map pushed its key") = key_text(key);
        Ok(())
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), ProbeError> {
        value.serialize(&mut **self)
    }
    fn end(self) -> Result<(), ProbeError> {
        self.path.pop();
        Ok(())
    }
}

impl serde::ser::SerializeStruct for &mut Probe {
    type Ok = ();
    type Error = ProbeError;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), ProbeError> {
        self.at(key.to_string(), value)
    }
    fn end(self) -> Result<(), ProbeError> {
        Ok(())
    }
}

impl serde::ser::SerializeStructVariant for &mut Probe {
    type Ok = ();
    type Error = ProbeError;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), ProbeError> {
        self.at(key.to_string(), value)
    }
    fn end(self) -> Result<(), ProbeError> {
        self.path.pop();
        Ok(())
    }
}

/// Checks that `value` holds only finite numbers; `what` names it in the error.
///
/// # Errors
/// Naming `what`, the path inside it and the value.
pub fn check_finite(value: &impl Serialize, what: &str) -> anyhow::Result<()> {
    if let Some((path, v)) = first_non_finite(value)? {
        anyhow::bail!("{what}: {path} is {v}, not a finite number; nothing was written");
    }
    Ok(())
}

/// Writes `value` as pretty JSON to `path` (the file given to `flag`), atomically, after
/// checking every number is finite.
///
/// # Errors
/// A non-finite number (nothing is written), or the write failing (naming `flag` and `path`).
pub fn write_json(path: &Path, flag: &str, value: &impl Serialize) -> anyhow::Result<()> {
    check_finite(value, &format!("{flag} {}", path.display()))?;
    let mut bytes = serde_json::to_vec_pretty(value)?;
    bytes.push(b'\n');
    models::atomic::write_atomic(path, &bytes).with_context(|| flag.to_string())?;
    Ok(())
}

/// Writes the line chart of `lines` as SVG to `path` (the file given to `flag`), atomically,
/// after checking every score is finite.
///
/// # Errors
/// A non-finite score (nothing is written), or the write failing (naming `flag` and `path`).
pub fn write_svg(
    path: &Path,
    flag: &str,
    title: &str,
    lines: &[mrl_eval::chart::Line],
) -> anyhow::Result<()> {
    let points: Vec<(&str, &[(usize, f64)])> = lines
        .iter()
        .map(|l| (l.label.as_str(), l.points.as_slice()))
        .collect();
    check_finite(&points, &format!("{flag} {}", path.display()))?;
    let svg = mrl_eval::chart::line_chart_svg(title, lines);
    models::atomic::write_atomic(path, svg.as_bytes()).with_context(|| flag.to_string())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_non_finite_number_is_found_with_its_path() {
        let ok = serde_json::json!({"dims": {"8": {"spearman": 1.5}}, "note": null});
        assert_eq!(first_non_finite(&ok).unwrap(), None);
        #[derive(Serialize)]
        struct Scores {
            dims: std::collections::BTreeMap<usize, Vec<f64>>,
        }
        let bad = Scores {
            dims: [(8, vec![1.0, 2.0]), (64, vec![0.5, f64::NAN])].into(),
        };
        let (path, v) = first_non_finite(&bad).unwrap().unwrap();
        assert_eq!(path, "dims.64.1");
        assert!(v.is_nan());
        let inf = serde_json::json!({"loss": [1.0]});
        assert!(first_non_finite(&inf).unwrap().is_none());
        let err = check_finite(&vec![f32::INFINITY], "--json out.json").unwrap_err();
        assert!(err.to_string().contains("out.json") && err.to_string().contains("inf"));
    }

    #[test]
    fn nothing_is_written_for_a_non_finite_report() {
        let dir = std::env::temp_dir().join(format!("mrl-output-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("scores.json");
        let err = write_json(&path, "--json", &vec![f64::NAN]).unwrap_err();
        assert!(err.to_string().contains("scores.json"), "{err}");
        assert!(!path.exists());
        write_json(&path, "--json", &vec![1.0]).unwrap();
        assert!(std::fs::read_to_string(&path).unwrap().contains("1.0"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
