//! The GGUF reader against a tiny file written by `tests/fixtures/make_gguf_fixture.py`, whose
//! expected values NumPy decoded independently; and against hand-built corrupt buffers.

use std::collections::BTreeMap;

use models::gguf::{GgmlType, GgufError, GgufFile, GgufValue};

const FIXTURE: &[u8] = include_bytes!("../fixtures/tiny_quant.gguf");
const EXPECTED: &str = include_str!("../fixtures/tiny_quant_expected.json");

#[derive(serde::Deserialize)]
struct Expected {
    shape: Vec<usize>,
    values: Vec<f32>,
}

#[test]
fn every_supported_type_dequantises_to_the_numpy_values() {
    let file = GgufFile::from_bytes(FIXTURE.to_vec()).unwrap();
    let expected: BTreeMap<String, Expected> = serde_json::from_str(EXPECTED).unwrap();
    assert_eq!(expected.len(), 6);
    for (name, want) in &expected {
        let (shape, values) = file.tensor_f32(name).unwrap();
        assert_eq!(shape, want.shape, "{name}");
        // Exact: both sides do one f32 multiply (and add) per value.
        assert_eq!(values, want.values, "{name}");
    }
}

#[test]
fn metadata_and_tensor_infos_are_read() {
    let file = GgufFile::from_bytes(FIXTURE.to_vec()).unwrap();
    assert_eq!(file.version, 3);
    assert_eq!(
        file.get("general.architecture").unwrap().as_str(),
        Some("test")
    );
    assert_eq!(file.get("general.alignment").unwrap().as_u64(), Some(64));
    assert_eq!(file.get("test.float").unwrap().as_f64(), Some(0.25));
    assert_eq!(file.get("test.flag"), Some(&GgufValue::Bool(true)));
    assert_eq!(
        file.get("test.tokens"),
        Some(&GgufValue::Array(vec![
            GgufValue::String("a".into()),
            GgufValue::String("bc".into())
        ]))
    );
    let q41 = file.tensor_info("t.q4_1").unwrap();
    assert_eq!(q41.ne, vec![64, 2]);
    assert_eq!(q41.shape(), vec![2, 64]);
    assert_eq!(q41.ty, GgmlType::Q4_1);
    assert_eq!(q41.byte_len(), Some(4 * 20));
}

#[test]
fn an_unsupported_type_is_named() {
    let file = GgufFile::from_bytes(FIXTURE.to_vec()).unwrap();
    let err = file.tensor_f32("t.q6_k").unwrap_err();
    assert_eq!(
        err,
        GgufError::UnsupportedType {
            tensor: "t.q6_k".into(),
            ty: GgmlType(14)
        }
    );
    let message = err.to_string();
    assert!(
        message.contains("Q6_K") && message.contains("t.q6_k"),
        "{message}"
    );
    assert!(matches!(
        file.tensor_f32("nope"),
        Err(GgufError::MissingTensor(_))
    ));
}

#[test]
fn every_truncation_is_an_error_not_a_panic() {
    // The header, the metadata, the tensor infos and the data of the last supported tensor
    // are all cut somewhere in this range; every prefix must fail cleanly.
    let last_supported_end = {
        let file = GgufFile::from_bytes(FIXTURE.to_vec()).unwrap();
        let info = file.tensor_info("t.q4_1").unwrap();
        // data section start = file length - (offset of t.q6_k + 210)
        let q6 = file.tensor_info("t.q6_k").unwrap();
        let data_start = FIXTURE.len() as u64 - q6.offset - 210;
        (data_start + info.offset + info.byte_len().unwrap()) as usize
    };
    for len in 0..last_supported_end {
        let err = GgufFile::from_bytes(FIXTURE[..len].to_vec()).unwrap_err();
        assert!(
            matches!(err, GgufError::Truncated { .. }),
            "prefix of {len} bytes: {err:?}"
        );
    }
    let err = GgufFile::from_bytes(FIXTURE[..last_supported_end - 1].to_vec()).unwrap_err();
    assert!(err.to_string().contains("t.q4_1"), "{err}");
}

/// A minimal header: magic, version, no tensors, one metadata entry of `value_type`.
fn header(magic: &[u8; 4], version: u32, value_type: u32, payload: &[u8]) -> Vec<u8> {
    let mut b = magic.to_vec();
    b.extend(version.to_le_bytes());
    b.extend(0u64.to_le_bytes());
    b.extend(1u64.to_le_bytes());
    b.extend(1u64.to_le_bytes());
    b.push(b'k');
    b.extend(value_type.to_le_bytes());
    b.extend(payload);
    b
}

#[test]
fn bad_magic_version_and_value_types_are_reported() {
    let ok = header(b"GGUF", 2, 4, &7u32.to_le_bytes());
    let file = GgufFile::from_bytes(ok).unwrap();
    assert_eq!(file.get("k"), Some(&GgufValue::U32(7)));

    let err = GgufFile::from_bytes(header(b"GGML", 3, 4, &[0; 4])).unwrap_err();
    assert_eq!(err, GgufError::BadMagic { found: *b"GGML" });
    let err = GgufFile::from_bytes(header(b"GGUF", 1, 4, &[0; 4])).unwrap_err();
    assert_eq!(err, GgufError::UnsupportedVersion { version: 1 });
    let err = GgufFile::from_bytes(header(b"GGUF", 3, 13, &[0; 4])).unwrap_err();
    assert!(err.to_string().contains("unknown value type 13"), "{err}");
    let err = GgufFile::from_bytes(header(b"GGUF", 3, 7, &[2])).unwrap_err();
    assert!(matches!(err, GgufError::Corrupt(_)), "{err:?}");
    // An array claiming more items than bytes left is refused before allocating.
    let mut huge = 4u32.to_le_bytes().to_vec();
    huge.extend(u64::MAX.to_le_bytes());
    let err = GgufFile::from_bytes(header(b"GGUF", 3, 9, &huge)).unwrap_err();
    assert!(matches!(err, GgufError::Truncated { .. }), "{err:?}");
}

#[test]
fn a_tensor_outside_the_file_is_truncation() {
    // One F32 tensor of 4 values whose data is missing.
    let mut b = b"GGUF".to_vec();
    b.extend(3u32.to_le_bytes());
    b.extend(1u64.to_le_bytes());
    b.extend(0u64.to_le_bytes());
    b.extend(1u64.to_le_bytes());
    b.push(b'w');
    b.extend(1u32.to_le_bytes());
    b.extend(4u64.to_le_bytes());
    b.extend(0u32.to_le_bytes());
    b.extend(0u64.to_le_bytes());
    let err = GgufFile::from_bytes(b.clone()).unwrap_err();
    assert!(err.to_string().contains("tensor `w`"), "{err}");
    // With the data present (after padding to 32), it reads.
    b.resize(b.len().div_ceil(32) * 32, 0);
    b.extend([1.0f32, 2.0, 3.0, 4.0].iter().flat_map(|v| v.to_le_bytes()));
    let file = GgufFile::from_bytes(b).unwrap();
    assert_eq!(
        file.tensor_f32("w").unwrap(),
        (vec![4], vec![1.0, 2.0, 3.0, 4.0])
    );
}
