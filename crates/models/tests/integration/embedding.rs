//! `embedding`: the host backward of flex/ndarray against Burn's `Embedding` (forward and the
//! table gradient of Burn's autodiff, repeated ids included), against a gradient summed by hand,
//! finite differences, the portable body (f64 tensors take it) against the host path, and an
//! out-of-range id.

use burn::backend::Dispatch;
use burn::module::Param;
use burn::nn::EmbeddingConfig;
use burn::tensor::{DType, Device, Distribution, Int, Tensor, TensorData};
use models::embedding::EmbeddingOps;

use crate::common::{assert_finite_differences, devices, f32_values as values, max_abs_diff};

/// Ids `[batch, seq]` in `0..rows` with repeats (row 3 in every sequence).
fn ids(batch: usize, seq: usize, rows: usize, device: &Device) -> Tensor<2, Int> {
    let v: Vec<i64> = (0..batch * seq)
        .map(|i| {
            if i % 5 == 0 {
                3
            } else {
                ((i * 7 + 1) % rows) as i64
            }
        })
        .collect();
    Tensor::from_data(TensorData::new(v, [batch, seq]), device)
}

#[test]
fn forward_and_table_gradient_match_burns_embedding() {
    for (name, device) in devices() {
        let ad = device.autodiff();
        let (rows, width, batch, seq) = (50, 24, 3, 17);
        let table = EmbeddingConfig::new(rows, width).init(&ad);
        let ids = ids(batch, seq, rows, &ad);
        let w = Tensor::<3>::random([batch, seq, width], Distribution::Normal(0.0, 1.0), &ad);
        let run = |y: Tensor<3>| {
            let grads = (y.clone() * w.clone()).sum().backward();
            (values(y), values(table.weight.val().grad(&grads).unwrap()))
        };
        let (y, g) = run(models::embedding(table.weight.val(), ids.clone()));
        let (y_burn, g_burn) = run(table.forward(ids.clone()));
        assert_eq!(y, y_burn, "{name}: forward");
        let err = max_abs_diff(&g, &g_burn);
        assert!(err < 1e-5, "{name}: table gradient, max error {err:e}");

        // By hand: row v of the gradient is the sum of the rows of `w` whose id is v.
        let (id_values, w_values) = (
            ids.into_data().iter::<i64>().collect::<Vec<_>>(),
            values(w.clone()),
        );
        let mut want = vec![0.0f32; rows * width];
        for (id, row) in id_values.iter().zip(w_values.chunks(width)) {
            for (t, x) in want[*id as usize * width..][..width].iter_mut().zip(row) {
                *t += x;
            }
        }
        let err = max_abs_diff(&g, &want);
        assert!(
            err < 1e-5,
            "{name}: table gradient against the hand sum, {err:e}"
        );
        let untouched = (0..rows).filter(|r| !id_values.contains(&(*r as i64)));
        for r in untouched {
            assert!(
                g[r * width..][..width].iter().all(|v| *v == 0.0),
                "{name}: row {r} no id names has a non-zero gradient"
            );
        }
    }
}

#[test]
fn backward_matches_finite_differences() {
    let (rows, width) = (5usize, 3usize);
    let table: Vec<f32> = (0..rows * width).map(|i| (i as f32 * 0.7).sin()).collect();
    let ws: Vec<f32> = (0..2 * 4 * width).map(|i| (i as f32 * 0.3).cos()).collect();
    for (name, device) in devices() {
        // A non-linear loss, so that the gradient depends on the table's values.
        let loss = |t: &[f32], device: &Device| {
            let t = Tensor::<2>::from_data(TensorData::new(t.to_vec(), [rows, width]), device);
            let t = if device.is_autodiff() {
                t.require_grad()
            } else {
                t
            };
            let ids = Tensor::<2, Int>::from_data(
                TensorData::new(vec![1i64, 4, 1, 0, 2, 2, 1, 3], [2, 4]),
                device,
            );
            let w = Tensor::<3>::from_data(TensorData::new(ws.clone(), [2, 4, width]), device);
            let y = models::embedding(t.clone(), ids);
            ((y.clone() * y * w).sum(), t)
        };
        let (l, t) = loss(&table, &device.clone().autodiff());
        let analytic = values(t.grad(&l.backward()).unwrap());
        assert_finite_differences(name, std::slice::from_ref(&table), &[analytic], |a| {
            loss(&a[0], &device).0.into_scalar::<f32>() as f64
        });
    }
}

#[test]
fn f64_tensors_take_the_portable_body_and_agree_with_the_host_path() {
    let (rows, width, batch, seq) = (40usize, 16usize, 2usize, 9usize);
    let table: Vec<f64> = (0..rows * width).map(|i| (i as f64 * 0.37).sin()).collect();
    let ws: Vec<f64> = (0..batch * seq * width)
        .map(|i| (i as f64 * 0.13).cos())
        .collect();
    for (name, device) in devices() {
        let ad = device.autodiff();
        let run = |dtype: DType| {
            let t =
                Tensor::<2>::from_data(TensorData::new(table.clone(), [rows, width]), (&ad, dtype))
                    .require_grad();
            let w = Tensor::<3>::from_data(
                TensorData::new(ws.clone(), [batch, seq, width]),
                (&ad, dtype),
            );
            let y = models::embedding(t.clone(), ids(batch, seq, rows, &ad));
            assert_eq!(y.dtype(), dtype);
            let grads = (y.clone() * w).sum().backward();
            (values(y), values(t.grad(&grads).unwrap()))
        };
        let ((y32, g32), (y64, g64)) = (run(DType::F32), run(DType::F64));
        assert!(max_abs_diff(&y32, &y64) < 1e-6, "{name}: forward");
        let err = max_abs_diff(&g32, &g64);
        assert!(
            err < 1e-5,
            "{name}: host vs portable gradient, max error {err:e}"
        );
    }
}

#[test]
#[should_panic(
    expected = "embedding: `ids` [1, 2] holds 7 at flat index 1, outside 0..5 (the rows of `weights`)"
)]
fn an_id_outside_the_table_is_rejected_in_the_backward() {
    let device = Device::flex();
    let grad = Tensor::<3>::ones([1, 2, 3], &device);
    let ids = Tensor::<2, Int>::from_ints([[1, 7]], &device);
    let _ = Tensor::<2>::from_dispatch(<Dispatch as EmbeddingOps>::embedding_lookup_backward(
        grad.into_dispatch(),
        ids.into_dispatch(),
        5,
    ));
}

#[test]
fn a_table_parameter_gets_its_gradient_through_a_model() {
    // The path `BertEmbeddings` and `LlamaModel` take: the weight of an `Embedding` module.
    let device = Device::flex().autodiff();
    let mut table = EmbeddingConfig::new(6, 2).init(&device);
    table.weight = Param::from_tensor(
        Tensor::<2>::from_floats(
            [
                [0.0, 0.0],
                [1.0, 1.0],
                [2.0, 2.0],
                [3.0, 3.0],
                [4.0, 4.0],
                [5.0, 5.0],
            ],
            &device,
        )
        .require_grad(),
    );
    let y = models::embedding(table.weight.val(), Tensor::from_ints([[5, 1, 5]], &device));
    let grads = y.sum().backward();
    let g = values(table.weight.val().grad(&grads).unwrap());
    assert_eq!(
        g,
        vec![0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 2.0, 2.0]
    );
}
