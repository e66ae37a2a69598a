//! `Rngs`, `RngStream`, `split_rngs` and `fork_rngs` against Flax NNX: the `nnx` section of
//! `prng_vectors.json` bit for bit, the guide's random-state and split_rngs examples (with
//! vmap's lanes emulated by drawing from key arrays elementwise), printing, errors, and the
//! restore guarantees of `split_rngs`.

use nnx_core::random::{self, RngStream, Rngs, SplitRngs};
use nnx_core::{
    Error, ErrorKind, Filter, Object, Param, RngCount, RngKey, Static, Tensor, Value, graph, trace,
};
use proptest::prelude::*;
use serde_json::Value as Json;

fn golden(name: &str) -> Json {
    let path = format!(
        "{}/../conformance/golden/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parsing {path}: {e}"))
}

/// A number or an array of numbers as u32 words.
fn u32s(v: &Json) -> Vec<u32> {
    match v.as_array() {
        Some(items) => items.iter().flat_map(u32s).collect(),
        None => vec![v.as_f64().expect("number") as u32],
    }
}

fn data(keys: &Tensor) -> Vec<u32> {
    random::key_data(keys).unwrap().to_vec::<u32>().unwrap()
}

fn counts(stream: &RngStream) -> Vec<u32> {
    stream.count().unwrap().value().to_vec::<u32>().unwrap()
}

fn f32_bits(t: &Tensor) -> Vec<u32> {
    t.to_vec::<f32>()
        .unwrap()
        .iter()
        .map(|x| x.to_bits())
        .collect()
}

fn named(seeds: &[(&str, i64)]) -> Rngs {
    seeds
        .iter()
        .fold(Rngs::builder(), |b, (name, seed)| b.stream(name, *seed))
        .build()
        .unwrap()
}

/// An `Rngs` with one stream seeded by `split(key(0), n)`: one key per vmap lane.
fn lanes(name: &str, n: usize) -> Rngs {
    let seed = random::split(&random::key(0), n).unwrap();
    Rngs::builder().stream(name, seed).build().unwrap()
}

/// Shorthands on streams for the assertions below.
trait StreamExt {
    /// The current key.
    fn key_value(&self) -> Tensor;
    /// Whether the current key is bit-identical to `key`.
    fn holds(&self, key: &Tensor) -> bool {
        self.key_value().identical(key)
    }
}

impl StreamExt for RngStream {
    fn key_value(&self) -> Tensor {
        self.key().unwrap().value()
    }
}

fn nnx_vectors() -> Json {
    golden("prng_vectors.json")["nnx"].clone()
}

#[test]
fn noise_stream_draws_fold_in_key_count_like_flax() {
    let v = &nnx_vectors()["rngs_noise_0"];
    let rngs = named(&[("noise", v["seed"].as_i64().unwrap())]);
    let noise = rngs.stream("noise").unwrap();
    assert_eq!(data(&noise.key_value()), u32s(&v["stream_key_data"]));
    for call in v["calls"].as_array().unwrap() {
        assert_eq!(counts(&noise), u32s(&call["count_before"]));
        let k = rngs.next_key("noise").unwrap();
        assert_eq!(data(&k), u32s(&call["key_data"]));
    }
    assert_eq!(counts(&noise), u32s(&v["count_after"]));
}

#[test]
fn unknown_streams_fall_back_to_default_like_flax() {
    let v = &nnx_vectors()["rngs_default_0"];
    let rngs = Rngs::new(0).unwrap();
    for call in v["calls"].as_array().unwrap() {
        let k = match call["call"].as_str().unwrap() {
            "rngs()" => rngs.default_key(),
            "rngs.params()" => rngs.next_key("params"),
            "rngs.dropout()" => rngs.next_key("dropout"),
            "rngs.default()" => rngs.next_key("default"),
            other => panic!("unexpected call {other}"),
        }
        .unwrap();
        assert_eq!(data(&k), u32s(&call["key_data"]), "{}", call["call"]);
    }
    let default = rngs.stream("default").unwrap();
    assert_eq!(counts(&default), u32s(&v["count_after"]));
    assert_eq!(rngs.stream_names(), vec!["default"]);
    assert!(!rngs.contains("params"));
}

#[test]
fn split_rngs_splits_the_drawn_key_and_restores_it_like_flax() {
    let v = &nnx_vectors()["split_rngs_10"];
    let rngs = named(&[("noise", v["seed"].as_i64().unwrap())]);
    let model = Object::new("Model").with("rngs", rngs.clone()).unwrap();
    let noise = rngs.stream("noise").unwrap();

    let lanes = random::split_rngs_scoped(&model, 10, &Filter::Everything, || {
        let key = noise.key()?.value();
        assert_eq!(key.shape(), &[10]);
        assert_eq!(data(&key), u32s(&v["inner_key_data"]));
        assert_eq!(counts(&noise), u32s(&v["inner_count"]));
        // Each vmap lane draws from its own key and count.
        noise.next_key()
    })
    .unwrap();
    assert_eq!(data(&lanes), u32s(&v["vmap_lane_noise_key_data"]));
    let folded = random::fold_in(&random::key(0), 0).unwrap();
    assert_eq!(data(&folded), u32s(&v["folded_key_data"]));

    assert_eq!(data(&noise.key_value()), u32s(&v["after_key_data"]));
    assert_eq!(counts(&noise), u32s(&v["after_count"]));
    assert_eq!(
        data(&noise.next_key().unwrap()),
        u32s(&v["next_noise_key_data"])
    );
}

/// Runs one call of the guide example: the stream holds one key per lane (as inside
/// `vmap` with `StateAxes({RngState: 0})`), every lane draws once and samples normal(3).
fn check_lanes(example: &str, call: &Json, noise: &RngStream) {
    let key = noise.key_value();
    assert_eq!(data(&key), u32s(&call["lane_stream_key_data"]), "{example}");
    assert_eq!(counts(noise), u32s(&call["lane_count_before"]), "{example}");
    let lane_keys = noise.next_key().unwrap();
    assert_eq!(
        data(&lane_keys),
        u32s(&call["lane_noise_key_data"]),
        "{example}"
    );
    let want = call["lane_normal3_bits"].as_array().unwrap();
    for (lane, bits) in want.iter().enumerate() {
        let k = lane_keys.index_axis(0, lane as isize).unwrap();
        let z = random::normal(&k, [3]).unwrap();
        assert_eq!(f32_bits(&z), u32s(bits), "{example} lane {lane}");
    }
}

#[test]
fn guide_examples_lane_keys_and_noise_match_flax() {
    let examples = nnx_vectors()["guide_examples"].clone();
    for example in examples.as_array().unwrap() {
        let name = example["name"].as_str().unwrap();
        let calls = example["calls"].as_array().unwrap();
        match name {
            "random_state" => {
                let rngs = lanes("noise", 10);
                let noise = rngs.stream("noise").unwrap();
                for call in calls {
                    check_lanes(name, call, &noise);
                }
            }
            "split_rngs" => {
                let rngs = named(&[("noise", 0)]);
                let noise = rngs.stream("noise").unwrap();
                for call in calls {
                    random::split_rngs_scoped(&rngs, 10, &Filter::Everything, || {
                        check_lanes(name, call, &noise);
                        Ok(())
                    })
                    .unwrap();
                }
                assert_eq!(counts(&noise), vec![calls.len() as u32]);
            }
            other => panic!("unexpected guide example {other}"),
        }
    }
}

/// The guide's `noisy_vector_dot` for every lane: `x[lane] @ kernel + bias + noise[lane]`.
fn noisy_vector_dot(x: &Tensor, kernel: &[f32], lane_keys: &Tensor) -> Vec<f32> {
    let x = x.to_vec::<f32>().unwrap();
    let mut y = Vec::new();
    for lane in 0..10 {
        let key = lane_keys.index_axis(0, lane as isize).unwrap();
        let noise = random::normal(&key, [3]).unwrap().to_vec::<f32>().unwrap();
        for j in 0..3 {
            let dot = x[2 * lane] * kernel[j] + x[2 * lane + 1] * kernel[3 + j];
            y.push(dot + 0.0 + noise[j]);
        }
    }
    y
}

fn assert_close(got: &[f32], want: &Json, what: &str) {
    let want = want["values"].as_array().unwrap();
    assert_eq!(got.len(), want.len(), "{what}");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let w = w.as_f64().unwrap();
        assert!((f64::from(*g) - w).abs() <= 2e-5, "{what}[{i}]: {g} vs {w}");
    }
}

#[test]
fn guide_random_state_and_split_rngs_outputs_match_the_seed_guide() {
    let guide = golden("seed_guide.json");
    let kernel = random::uniform(&random::key(0), [2, 3]).unwrap();
    let kernel = kernel.to_vec::<f32>().unwrap();
    let x = random::normal(&random::key(1), [10, 2]).unwrap();

    // Rngs(noise=split(key(0), 10)) with the Rng state vmapped on axis 0.
    let g = &guide["random_state"];
    let rngs = lanes("noise", 10);
    for y in ["y1", "y2"] {
        let lanes = rngs.next_key("noise").unwrap();
        assert_close(&noisy_vector_dot(&x, &kernel, &lanes), &g[y], y);
    }
    let noise = rngs.stream("noise").unwrap();
    assert_eq!(counts(&noise), u32s(&g["rng_count"]["values"]));
    assert_eq!(data(&noise.key_value()), u32s(&g["rng_key_data"]["values"]));

    // @split_rngs(splits=10) around the vmap, with a scalar seed.
    let g = &guide["split_rngs"];
    let rngs = named(&[("noise", 0)]);
    for y in ["y1", "y2"] {
        let out = random::split_rngs_scoped(&rngs, 10, &Filter::Everything, || {
            let lanes = rngs.next_key("noise")?;
            Ok(noisy_vector_dot(&x, &kernel, &lanes))
        })
        .unwrap();
        assert_close(&out, &g[y], y);
    }
    let noise = rngs.stream("noise").unwrap();
    assert_eq!(counts(&noise), u32s(&g["rng_count"]["values"]));
    assert_eq!(data(&noise.key_value()), u32s(&g["rng_key_data"]["values"]));
}

#[test]
fn rngs_prints_like_flax() {
    let rngs = Rngs::new(0).unwrap();
    // SEMANTICS.md §11 P4, as printed by Flax 0.12.8.
    let flax = "Rngs( # RngState: 2 (12 B)
  default=RngStream( # RngState: 2 (12 B)
    tag='default',
    key=RngKey( # 1 (8 B)
      value=Array((), dtype=key<fry>) overlaying:
      [0 0],
      tag='default'
    ),
    count=RngCount( # 1 (4 B)
      value=Array(0, dtype=uint32),
      tag='default'
    )
  )
)";
    assert_eq!(rngs.to_string(), flax);
    let two = named(&[("params", 0), ("dropout", 1)]);
    insta::assert_snapshot!(two.to_string());
}

#[test]
fn unknown_stream_error_names_the_existing_streams() {
    let rngs = named(&[("params", 0), ("dropout", 1)]);
    let err = rngs.next_key("noise").unwrap_err();
    insta::assert_snapshot!(err.to_string());
    let err = rngs.default_key().unwrap_err();
    assert!(
        err.to_string()
            .starts_with("No RngStream named 'default' found in Rngs.")
    );
    let empty = Rngs::builder().build().unwrap();
    assert_eq!(
        empty.next_key("x").unwrap_err().to_string(),
        "No RngStream named 'x' found in Rngs. It has no streams."
    );
    // Nothing was drawn.
    assert_eq!(counts(&rngs.stream("params").unwrap()), vec![0]);
}

#[test]
fn seeds_can_be_ints_keys_key_arrays_or_key_data() {
    let key = random::fold_in(&random::key(3), 4).unwrap();
    let raw = random::key_data(&key).unwrap();
    let rngs = Rngs::builder()
        .default_stream(0)
        .stream("a", 5)
        .stream("b", &key)
        .stream("c", raw)
        .stream("d", random::split_shape(&random::key(0), &[2, 5]).unwrap())
        .build()
        .unwrap();
    assert_eq!(rngs.stream_names(), vec!["a", "b", "c", "d", "default"]);
    assert!(rngs.stream("a").unwrap().holds(&random::key(5)));
    for name in ["b", "c"] {
        assert!(rngs.stream(name).unwrap().holds(&key));
    }
    let d = rngs.stream("d").unwrap();
    assert_eq!(d.count().unwrap().shape(), vec![2, 5]);
    assert_eq!(d.count().unwrap().metadata_value("tag"), Some("d".into()));

    let err = Rngs::builder()
        .stream("x", Tensor::scalar(1.5f32))
        .build()
        .unwrap_err();
    assert!(
        err.to_string().starts_with("Invalid rng value: Array(1.5"),
        "{err}"
    );
    let err = Rngs::builder()
        .stream("default", 1)
        .default_stream(2)
        .build()
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("more than one seed for the stream 'default'")
    );
    // A stream as a seed gives its current key and a fresh count.
    let copy = RngStream::new("copy", rngs.stream("b").unwrap()).unwrap();
    assert!(copy.holds(&key));
}

#[test]
fn rngs_split_and_merge_as_a_graph() {
    let rngs = named(&[("params", 0), ("dropout", 1)]);
    rngs.next_key("params").unwrap();
    let (def, state) = graph::split(&rngs);
    let paths: Vec<String> = state.paths().map(ToString::to_string).collect();
    assert_eq!(
        paths,
        vec![
            "('dropout', 'count')",
            "('dropout', 'key')",
            "('params', 'count')",
            "('params', 'key')"
        ]
    );
    // merge shares the State's Variables, as in Flax: drawing advances both.
    let merged: Rngs = graph::merge(&def, [&state]).unwrap();
    assert!(!merged.ptr_eq(&rngs));
    let k1 = random::fold_in(&random::key(0), 1).unwrap();
    assert!(merged.next_key("params").unwrap().identical(&k1));
    assert_eq!(counts(&rngs.stream("params").unwrap()), vec![2]);
    // clone copies them: the copy and the original then draw the same keys.
    let copy: Rngs = graph::clone(&rngs);
    let a = copy.next_key("params").unwrap();
    let b = rngs.next_key("params").unwrap();
    assert!(a.identical(&b));
    let err = Rngs::from_object(Object::new("Model")).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Value);
    assert_eq!(
        err.to_string(),
        "expected an Rngs object, got a 'Model' object"
    );
    let value: Value = rngs.clone().into();
    assert!(value.same_as(&Value::Object(rngs.into_object())));
}

#[test]
fn drawing_from_a_captured_stream_inside_a_transform_is_refused() {
    let rngs = Rngs::new(0).unwrap();
    {
        let _inner = trace::enter_level();
        let err = rngs.default_key().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::TraceContext);
        let fresh = Rngs::new(1).unwrap();
        assert!(fresh.default_key().is_ok());
    }
    assert_eq!(counts(&rngs.stream("default").unwrap()), vec![0]);
}

#[test]
fn fork_split_and_broadcast_draw_one_key_per_stream() {
    let rngs = named(&[("params", 0)]);
    let k0 = random::fold_in(&random::key(0), 0).unwrap();
    let forked = rngs.fork().unwrap();
    let child = forked.stream("params").unwrap();
    assert!(child.holds(&k0));
    assert_eq!(counts(&child), vec![0]);
    assert_eq!(child.tag().unwrap(), "params");

    let split = rngs.split(3).unwrap().stream("params").unwrap();
    let k1 = random::fold_in(&random::key(0), 1).unwrap();
    assert!(split.holds(&random::split(&k1, 3).unwrap()));
    assert_eq!(counts(&split), vec![0; 3]);

    let wide = rngs.broadcast([2, 2]).unwrap().stream("params").unwrap();
    assert_eq!(wide.key().unwrap().shape(), vec![2, 2]);
    let k2 = random::fold_in(&random::key(0), 2).unwrap();
    assert!(
        wide.key_value()
            .index_axis(0, 1)
            .unwrap()
            .index_axis(0, 0)
            .unwrap()
            .identical(&k2)
    );
    assert_eq!(counts(&rngs.stream("params").unwrap()), vec![3]);

    // A key-array stream cannot be split (JAX's split needs a single key): nothing drawn.
    let lanes = lanes("noise", 4);
    assert_eq!(lanes.split(2).unwrap_err().kind(), ErrorKind::Shape);
    assert_eq!(counts(&lanes.stream("noise").unwrap()), vec![0; 4]);
}

#[test]
fn split_rngs_only_touches_streams_matching_the_filter() {
    let rngs = named(&[("params", 0), ("dropout", 1)]);
    let backups = random::split_rngs(&rngs, [2, 5], &Filter::from("dropout")).unwrap();
    assert_eq!(backups.len(), 1);
    let dropout = rngs.stream("dropout").unwrap();
    assert_eq!(dropout.key().unwrap().shape(), vec![2, 5]);
    assert_eq!(dropout.count().unwrap().shape(), vec![2, 5]);
    assert_eq!(
        rngs.stream("params").unwrap().key().unwrap().shape(),
        Vec::<usize>::new()
    );
    backups.restore().unwrap();
    assert!(dropout.holds(&random::key(1)));
    assert_eq!(counts(&dropout), vec![1]);
    assert_eq!(counts(&rngs.stream("params").unwrap()), vec![0]);
}

#[test]
fn split_rngs_squeeze_keeps_a_single_key_and_requires_one_split() {
    let rngs = named(&[("params", 0)]);
    let backups = SplitRngs::new(1).squeeze(true).apply(&rngs).unwrap();
    let s = rngs.stream("params").unwrap();
    let k = random::fold_in(&random::key(0), 0).unwrap();
    assert!(s.holds(&random::fold_in(&k, 0).unwrap()));
    assert_eq!(s.count().unwrap().shape(), Vec::<usize>::new());
    backups.restore().unwrap();

    for splits in [random::Splits::Count(2), random::Splits::Shape(vec![1])] {
        let err = SplitRngs::new(splits)
            .squeeze(true)
            .apply(&rngs)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "squeeze=True is only supported for splits=1"
        );
    }
    assert_eq!(counts(&s), vec![1]);
}

#[test]
fn split_rngs_changes_nothing_when_a_stream_cannot_be_split() {
    let good = named(&[("a", 0)]);
    let lanes = lanes("b", 3);
    let model = Object::new("Model")
        .with("good", good.clone())
        .unwrap()
        .with("lanes", lanes.clone())
        .unwrap();
    let err = random::split_rngs(&model, 4, &Filter::Everything).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Shape);
    assert!(
        err.to_string()
            .contains("at ('lanes', 'b') holds a key array of shape (3,)")
    );
    assert!(good.stream("a").unwrap().holds(&random::key(0)));
    assert_eq!(counts(&good.stream("a").unwrap()), vec![0]);
    assert_eq!(counts(&lanes.stream("b").unwrap()), vec![0; 3]);
}

#[test]
fn split_rngs_scoped_restores_when_the_closure_panics() {
    let rngs = Rngs::new(0).unwrap();
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _ =
            random::split_rngs_scoped(&rngs, 3, &Filter::Everything, || -> nnx_core::Result<()> {
                panic!("inside the split");
            });
    }));
    assert!(caught.is_err());
    let s = rngs.stream("default").unwrap();
    assert!(s.holds(&random::key(0)));
    assert_eq!(counts(&s), vec![1]);
}

#[test]
fn fork_rngs_gives_fresh_keys_for_the_call_and_restores_them() {
    let rngs = named(&[("params", 0), ("noise", 1)]);
    let model = Object::new("Model")
        .with("rngs", rngs.clone())
        .unwrap()
        .with("w", Param::new(Tensor::zeros([2])))
        .unwrap();
    let inside = random::fork_rngs_scoped(&model, &Filter::from("noise"), || {
        let s = rngs.stream("noise")?;
        assert_eq!(counts(&s), vec![0]);
        s.key().map(|k| k.value())
    })
    .unwrap();
    assert!(inside.identical(&random::fold_in(&random::key(1), 0).unwrap()));
    let s = rngs.stream("noise").unwrap();
    assert!(s.holds(&random::key(1)));
    assert_eq!(counts(&s), vec![1]);
    assert_eq!(counts(&rngs.stream("params").unwrap()), vec![0]);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn split_rngs_keeps_keys_and_advances_counts_by_exactly_one(
        seeds in proptest::collection::vec(any::<i64>(), 1..5),
        start in proptest::collection::vec(0u32..5, 5),
        selected in proptest::collection::vec(any::<bool>(), 5),
        splits in 1usize..6,
        fail in any::<bool>(),
    ) {
        let names: Vec<String> = (0..seeds.len()).map(|i| format!("s{i}")).collect();
        let mut builder = Rngs::builder();
        for (name, seed) in names.iter().zip(&seeds) {
            builder = builder.stream(name, *seed);
        }
        let rngs = builder.build().unwrap();
        // Shared through two attributes of a model: each stream is still split once.
        let model = Object::new("Model")
            .with("rngs", rngs.clone()).unwrap()
            .with("alias", rngs.clone()).unwrap();
        for (i, name) in names.iter().enumerate() {
            for _ in 0..start[i] {
                rngs.next_key(name).unwrap();
            }
        }
        let only = Filter::any(
            names.iter().zip(&selected).filter(|(_, s)| **s).map(|(n, _)| Filter::from(n.as_str())),
        );
        let result = random::split_rngs_scoped(&model, splits, &only, || {
            for (i, name) in names.iter().enumerate() {
                let s = rngs.stream(name)?;
                let want = if selected[i] { vec![splits] } else { vec![] };
                assert_eq!(s.key()?.shape(), want);
                if selected[i] {
                    let k = random::fold_in(&random::key(seeds[i]), start[i])?;
                    assert!(s.key()?.value().identical(&random::split(&k, splits)?));
                }
            }
            if fail {
                Err(nnx_core::Error::shape("f", "the call failed"))
            } else {
                Ok(())
            }
        });
        prop_assert_eq!(result.is_err(), fail);
        for (i, name) in names.iter().enumerate() {
            let s = rngs.stream(name).unwrap();
            prop_assert!(s.holds(&random::key(seeds[i])));
            let advanced = start[i] + u32::from(selected[i]);
            prop_assert_eq!(counts(&s), vec![advanced]);
        }
    }
}

#[test]
fn a_malformed_stream_is_reported_by_its_tag() {
    let stream = Object::new("RngStream")
        .with("tag", Static::Str("noise".into()))
        .unwrap()
        .with("key", RngKey::new(random::key(0)))
        .unwrap()
        .with("count", RngCount::new(Tensor::scalar(0.0f32)))
        .unwrap();
    let err = RngStream::from_object(stream).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Value);
    assert!(
        matches!(&err, Error::MalformedRngStream { tag: Some(tag), .. } if tag == "noise"),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "malformed RngStream 'noise': its count holds float32 data, not uint32"
    );
    let untagged = Object::new("RngStream").with("tag", 1).unwrap();
    assert_eq!(
        RngStream::from_object(untagged).unwrap_err().to_string(),
        "malformed RngStream: its tag is not a static string"
    );
    let err = Rngs::builder()
        .stream("x", 0)
        .stream("x", 1)
        .build()
        .unwrap_err();
    assert_eq!(err, Error::DuplicateRngStream { name: "x".into() });
}
