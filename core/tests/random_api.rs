//! The tensor-level `random` API (keys as arrays of dtype `key<fry>`) against JAX: the
//! `seeds` vectors of `prng_vectors.json` through real shapes, the seed guide's `basic`
//! arrays, the error cases, and properties of `split`, `fold_in` and `uniform`.

use nnx_core::random::{self, RandomOp};
use nnx_core::{DType, ErrorKind, Tensor};
use proptest::prelude::*;
use serde_json::Value;

fn golden(name: &str) -> Value {
    let path = format!(
        "{}/../conformance/golden/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parsing {path}: {e}"))
}

fn shape_of(v: &Value) -> Vec<usize> {
    v.as_array()
        .expect("shape is an array")
        .iter()
        .map(|d| d.as_u64().expect("dimension") as usize)
        .collect()
}

fn u32s(v: &Value) -> Vec<u32> {
    v.as_array()
        .expect("array of words")
        .iter()
        .map(|x| u32::try_from(x.as_u64().expect("word")).expect("fits u32"))
        .collect()
}

fn key_words(keys: &Value) -> Vec<u32> {
    keys.as_array()
        .expect("list of keys")
        .iter()
        .flat_map(u32s)
        .collect()
}

fn f32_bits(t: &Tensor) -> Vec<u32> {
    t.to_vec::<f32>()
        .unwrap()
        .iter()
        .map(|x| x.to_bits())
        .collect()
}

fn data(t: &Tensor) -> Vec<u32> {
    random::key_data(t).unwrap().to_vec::<u32>().unwrap()
}

#[test]
fn seeds_section_matches_jax_through_the_tensor_api() {
    let vectors = golden("prng_vectors.json");
    let mut checked = 0;
    for s in vectors["seeds"].as_array().unwrap() {
        let seed = s["seed"].as_i64().unwrap();
        let key = random::key(seed);
        assert_eq!(key.dtype(), DType::Key);
        assert_eq!(data(&key), u32s(&s["key_data"]), "key({seed})");

        for (num, keys) in s["split"].as_object().unwrap() {
            let got = if num.starts_with('[') {
                let shape = shape_of(&serde_json::from_str(num).unwrap());
                let got = random::split_shape(&key, &shape).unwrap();
                assert_eq!(got.shape(), shape.as_slice());
                got
            } else {
                let n: usize = num.parse().unwrap();
                let got = random::split(&key, n).unwrap();
                assert_eq!(got.shape(), &[n]);
                got
            };
            assert_eq!(data(&got), key_words(keys), "split(key({seed}), {num})");
            checked += 1;
        }
        for (d, want) in s["fold_in"].as_object().unwrap() {
            let got = random::fold_in(&key, d.parse().unwrap()).unwrap();
            assert_eq!(got.shape(), &[] as &[usize]);
            assert_eq!(data(&got), u32s(want), "fold_in(key({seed}), {d})");
            checked += 1;
        }
        for b in s["bits"].as_array().unwrap() {
            if b["dtype"] != "uint32" {
                continue;
            }
            let shape = shape_of(&b["shape"]);
            let got = random::bits(&key, &shape).unwrap();
            assert_eq!(got.shape(), shape.as_slice());
            assert_eq!(got.to_vec::<u32>().unwrap(), u32s(&b["values"]));
            checked += 1;
        }
        for u in s["uniform_f32"].as_array().unwrap() {
            let shape = shape_of(&u["shape"]);
            let (lo, hi) = (u["minval"].as_f64().unwrap(), u["maxval"].as_f64().unwrap());
            let got = random::uniform_range(&key, &shape, lo as f32, hi as f32).unwrap();
            assert_eq!(got.shape(), shape.as_slice());
            assert_eq!(f32_bits(&got), u32s(&u["bits"]), "uniform(key({seed}))");
            if (lo, hi) == (0.0, 1.0) {
                assert!(got.identical(&random::uniform(&key, &shape).unwrap()));
            }
            checked += 1;
        }
        for z in s["normal_f32"].as_array().unwrap() {
            let shape = shape_of(&z["shape"]);
            let got = random::normal(&key, &shape).unwrap();
            assert_eq!(f32_bits(&got), u32s(&z["bits"]), "normal(key({seed}))");
            checked += 1;
        }
        for r in s["randint"].as_array().unwrap() {
            let shape = shape_of(&r["shape"]);
            let lo = r["minval"].as_i64().unwrap() as i32;
            let hi = r["maxval"].as_i64().unwrap() as i32;
            let got = random::randint(&key, &shape, lo, hi).unwrap();
            assert_eq!(got.dtype(), DType::I32);
            let want: Vec<i32> = r["values"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_i64().unwrap() as i32)
                .collect();
            assert_eq!(got.to_vec::<i32>().unwrap(), want, "randint(key({seed}))");
            checked += 1;
        }
        for b in s["bernoulli"].as_array().unwrap() {
            let shape = shape_of(&b["shape"]);
            let p = b["p"].as_f64().unwrap() as f32;
            let got = random::bernoulli(&key, p, &shape).unwrap();
            assert_eq!(got.dtype(), DType::Bool);
            let want: Vec<bool> = b["values"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_bool().unwrap())
                .collect();
            assert_eq!(
                got.to_vec::<bool>().unwrap(),
                want,
                "bernoulli(key({seed}))"
            );
            checked += 1;
        }
    }
    assert!(checked > 100, "only {checked} vectors checked");
}

#[test]
fn seed_guide_weights_and_inputs_match_flax() {
    let guide = golden("seed_guide.json");
    let cases = [
        (
            "kernel",
            random::uniform(&random::key(0), [10, 2, 3]).unwrap(),
        ),
        ("x", random::normal(&random::key(1), [10, 2]).unwrap()),
    ];
    for (name, got) in cases {
        let want = &guide["basic"][name];
        assert_eq!(got.shape(), shape_of(&want["shape"]).as_slice(), "{name}");
        let values = got.to_vec::<f32>().unwrap();
        let expected = want["values"].as_array().unwrap();
        assert_eq!(values.len(), expected.len());
        for (i, (g, w)) in values.iter().zip(expected).enumerate() {
            let w = w.as_f64().unwrap();
            assert!((f64::from(*g) - w).abs() <= 1e-6, "{name}[{i}]: {g} vs {w}");
        }
    }
}

#[test]
fn wrap_key_data_round_trips_and_rejects_bad_data() {
    let keys = random::split_shape(&random::key(7), &[2, 3]).unwrap();
    let raw = random::key_data(&keys).unwrap();
    assert_eq!(raw.shape(), &[2, 3, 2]);
    assert!(random::wrap_key_data(&raw).unwrap().identical(&keys));

    let odd = Tensor::from_vec(&[3], vec![0u32, 1, 2]).unwrap();
    let err = random::wrap_key_data(&odd).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Shape);
    assert!(err.to_string().contains("(3,)"), "{err}");
    let float = Tensor::zeros([2]);
    assert_eq!(
        random::wrap_key_data(&float).unwrap_err().kind(),
        ErrorKind::DType
    );
    assert!(random::wrap_key_data(&Tensor::scalar(1u32)).is_err());
}

#[test]
fn key_arrays_are_refused_where_jax_needs_a_single_key() {
    let keys = random::split(&random::key(0), 3).unwrap();
    let results = [
        random::split(&keys, 2),
        random::split_shape(&keys, &[2]),
        random::fold_in(&keys, 1),
        random::bits(&keys, [2]),
        random::uniform(&keys, [2]),
        random::normal(&keys, [2]),
        random::randint(&keys, [2], 0, 3),
        random::bernoulli(&keys, 0.5, [2]),
    ];
    for result in results {
        let err = result.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Shape);
        assert!(
            err.to_string()
                .contains("expected a single key, but was given a key array of shape (3,) != ()"),
            "{err}"
        );
    }
    assert_eq!(
        random::normal(&keys, [2]).unwrap_err().to_string(),
        "normal: expected a single key, but was given a key array of shape (3,) != (). \
         Use vmap for batching."
    );
}

#[test]
fn non_key_arrays_are_refused_with_a_dtype_error() {
    let not_a_key = Tensor::from_vec(&[2], vec![0u32, 0]).unwrap();
    for result in [
        random::uniform(&not_a_key, [2]),
        random::split(&not_a_key, 2),
        random::fold_in(&not_a_key, 0),
        random::key_data(&not_a_key),
    ] {
        let err = result.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::DType, "{err}");
        assert!(err.to_string().contains("key<fry>"), "{err}");
    }
}

#[test]
fn empty_and_scalar_shapes_behave_like_jax() {
    let k = random::key(0);
    assert_eq!(random::split(&k, 0).unwrap().shape(), &[0]);
    assert_eq!(random::split_shape(&k, &[2, 0]).unwrap().shape(), &[2, 0]);
    assert_eq!(random::uniform(&k, [0]).unwrap().size(), 0);
    let scalar = random::bernoulli(&k, 0.3, []).unwrap();
    assert_eq!(scalar.shape(), &[] as &[usize]);
    assert!(!scalar.item::<bool>().unwrap());
    // p > 1 is always true; maxval <= minval gives minval (JAX clamps below only).
    assert!(
        random::bernoulli(&k, 2.0, [3])
            .unwrap()
            .to_vec::<bool>()
            .unwrap()
            == [true; 3]
    );
    let flat = random::uniform_range(&k, [3], 2.0, 1.0).unwrap();
    assert_eq!(flat.to_vec::<f32>().unwrap(), vec![2.0; 3]);
    // A shape whose element count overflows is an error, not a panic.
    assert!(random::uniform(&k, [usize::MAX, 4]).is_err());
}

#[test]
fn random_ops_describe_their_results_without_running() {
    let op = RandomOp::Randint {
        shape: vec![4, 2],
        minval: 0,
        maxval: 9,
    };
    assert_eq!(op.name(), "randint");
    assert_eq!(op.output_dtype(), DType::I32);
    assert_eq!(op.output_shape(&[]).unwrap(), vec![4, 2]);
    assert!(op.output_shape(&[3]).is_err());
    let fold = RandomOp::FoldIn { data: 3 };
    assert_eq!(fold.output_shape(&[]).unwrap(), Vec::<usize>::new());
    assert_eq!(fold.output_dtype(), DType::Key);
    let k = random::key(5);
    assert!(
        op.apply(&k)
            .unwrap()
            .identical(&random::randint(&k, [4, 2], 0, 9).unwrap())
    );
}

#[test]
fn fold_in_each_folds_every_key_with_its_own_datum() {
    let keys = random::split(&random::key(3), 4).unwrap();
    let counts = Tensor::from_slice(&[5u32, 0, 9, 1]);
    let folded = random::fold_in_each(&keys, &counts).unwrap();
    for (i, d) in [5u32, 0, 9, 1].into_iter().enumerate() {
        let lane = keys.index_axis(0, i as isize).unwrap();
        let want = random::fold_in(&lane, d).unwrap();
        assert!(folded.index_axis(0, i as isize).unwrap().identical(&want));
    }
    let same = random::fold_in_each(&keys, &Tensor::scalar(2u32)).unwrap();
    assert!(
        same.index_axis(0, 3)
            .unwrap()
            .identical(&random::fold_in(&keys.index_axis(0, 3).unwrap(), 2).unwrap())
    );
    assert!(random::fold_in_each(&keys, &Tensor::from_slice(&[1u32, 2])).is_err());
    assert!(random::fold_in_each(&keys, &Tensor::from_slice(&[1i32; 4])).is_err());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn split_element_i_is_fold_in_i(k0: u32, k1: u32, n in 1usize..40) {
        let raw = Tensor::from_vec(&[2], vec![k0, k1]).unwrap();
        let key = random::wrap_key_data(&raw).unwrap();
        let keys = random::split(&key, n).unwrap();
        for i in 0..n {
            let want = random::fold_in(&key, i as u32).unwrap();
            prop_assert!(keys.index_axis(0, i as isize).unwrap().identical(&want));
        }
    }

    #[test]
    fn uniform_stays_in_minval_maxval(
        seed: i64,
        lo in -1.0e3f32..1.0e3,
        span in 1.0e-3f32..2.0e3,
        n in 1usize..200,
    ) {
        // JAX clamps only the lower bound: `fma(f, span, lo)` with `f <= 1 - 2^-23` stays
        // below `maxval` by about `span * 2^-24`, which survives rounding when the span is
        // larger than `|maxval|` (for narrower spans far from zero, JAX's own output can
        // round up to `maxval`, and so does ours).
        let hi = lo + span;
        prop_assume!(hi > lo && (hi - lo) > 1.01 * hi.abs());
        let u = random::uniform_range(&random::key(seed), [n], lo, hi).unwrap();
        for x in u.to_vec::<f32>().unwrap() {
            prop_assert!(x >= lo && x < hi, "{x} not in [{lo}, {hi})");
        }
    }

    #[test]
    fn randint_stays_in_minval_maxval(seed: i64, lo in -1000i32..1000, span in 1i32..5000) {
        let hi = lo + span;
        let r = random::randint(&random::key(seed), [64], lo, hi).unwrap();
        for x in r.to_vec::<i32>().unwrap() {
            prop_assert!((lo..hi).contains(&x));
        }
    }
}
