//! Checks the threefry kernels and samplers against every JAX golden vector in
//! `conformance/golden/prng_vectors.json` that they cover, bit for bit.
//!
//! Covered sections: `threefry2x32_kat`, `seeds` (key data, `split`, `fold_in`, `bits`,
//! `uniform_f32`, `normal_f32`, `randint`, `bernoulli`), `normal_large` and
//! `normal_edge_bits`. The `nnx` section (the `Rngs` object) is checked by `rngs.rs`.
//! Float32 values are compared through their `bits` field; the `decimal` field is also
//! checked to round to the same bits. Every mismatch is collected and reported before
//! the test fails.

use nnx_core::random::sampling::*;
use nnx_core::random::threefry::*;
use serde_json::Value;

const VECTORS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../conformance/golden/prng_vectors.json"
);

/// Number of vector entries in the golden file that this test checks. If the file is
/// regenerated with different contents, update this number after reviewing the diff.
const EXPECTED_CASES: usize = 484;

/// Collects the outcome of every comparison.
#[derive(Default)]
struct Checker {
    cases: usize,
    values: usize,
    failures: Vec<String>,
}

impl Checker {
    /// Compares one vector entry (a list of scalar values) and records the outcome.
    fn check<T: PartialEq + std::fmt::Debug>(&mut self, name: &str, got: &[T], want: &[T]) {
        self.cases += 1;
        self.values += want.len();
        if got != want {
            let first_bad = got
                .iter()
                .zip(want)
                .position(|(g, w)| g != w)
                .unwrap_or(got.len().min(want.len()));
            self.failures.push(format!(
                "{name}: first difference at element {first_bad} \
                 (got {} values, want {})\n  got  {got:?}\n  want {want:?}",
                got.len(),
                want.len()
            ));
        }
    }
}

fn field<'a>(v: &'a Value, name: &str) -> &'a Value {
    v.get(name)
        .unwrap_or_else(|| panic!("malformed vectors: missing field {name:?} in {v}"))
}

fn arr<'a>(v: &'a Value, name: &str) -> &'a [Value] {
    field(v, name)
        .as_array()
        .unwrap_or_else(|| panic!("malformed vectors: {name:?} is not an array"))
}

fn as_u64(v: &Value) -> u64 {
    v.as_u64()
        .unwrap_or_else(|| panic!("malformed vectors: {v} is not an unsigned integer"))
}

fn as_u32(v: &Value) -> u32 {
    u32::try_from(as_u64(v)).unwrap_or_else(|_| panic!("malformed vectors: {v} exceeds u32"))
}

fn as_f64(v: &Value) -> f64 {
    v.as_f64()
        .unwrap_or_else(|| panic!("malformed vectors: {v} is not a number"))
}

fn u32_list(v: &Value, name: &str) -> Vec<u32> {
    arr(v, name).iter().map(as_u32).collect()
}

fn key_of(v: &Value) -> [u32; 2] {
    match v.as_array().map(Vec::as_slice) {
        Some([a, b]) => [as_u32(a), as_u32(b)],
        _ => panic!("malformed vectors: {v} is not a key [k0, k1]"),
    }
}

fn key_list(v: &Value) -> Vec<[u32; 2]> {
    v.as_array()
        .unwrap_or_else(|| panic!("malformed vectors: {v} is not a list of keys"))
        .iter()
        .map(key_of)
        .collect()
}

/// Number of elements of a shape given as a JSON array of dimensions (`[]` is a scalar).
fn numel(shape: &Value) -> usize {
    shape
        .as_array()
        .unwrap_or_else(|| panic!("malformed vectors: shape {shape} is not an array"))
        .iter()
        .map(|d| usize::try_from(as_u64(d)).expect("dimension fits in usize"))
        .product()
}

fn f32_bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// The `decimal` field parsed as f64 and rounded to f32 (lossless by construction).
fn decimal_bits(entry: &Value) -> Vec<u32> {
    arr(entry, "decimal")
        .iter()
        .map(|d| (as_f64(d) as f32).to_bits())
        .collect()
}

fn check_seed(c: &mut Checker, s: &Value) {
    let seed = field(s, "seed")
        .as_i64()
        .unwrap_or_else(|| panic!("malformed vectors: seed {s} is not an i64"));
    let key = seed_key(seed);
    c.check(
        &format!("key_data(seed {seed})"),
        &[key],
        &[key_of(field(s, "key_data"))],
    );

    let splits = field(s, "split").as_object().expect("split is an object");
    for (num, keys) in splits {
        let n = if num.starts_with('[') {
            numel(&serde_json::from_str(num).expect("tuple shape parses"))
        } else {
            num.parse().expect("split count parses")
        };
        c.check(
            &format!("split(key({seed}), {num})"),
            &split(key, n),
            &key_list(keys),
        );
    }

    let folds = field(s, "fold_in")
        .as_object()
        .expect("fold_in is an object");
    for (data, want) in folds {
        let d: u32 = data.parse().expect("fold_in data parses as u32");
        c.check(
            &format!("fold_in(key({seed}), {d})"),
            &[fold_in(key, d)],
            &[key_of(want)],
        );
    }

    for b in arr(s, "bits") {
        let n = numel(field(b, "shape"));
        let dtype = field(b, "dtype").as_str().expect("dtype is a string");
        let name = format!("bits(key({seed}), {}, {dtype})", field(b, "shape"));
        let want: Vec<u64> = arr(b, "values").iter().map(as_u64).collect();
        let got: Vec<u64> = match dtype {
            "uint32" => random_bits_u32(key, n).into_iter().map(u64::from).collect(),
            "uint16" => random_bits_u16(key, n).into_iter().map(u64::from).collect(),
            "uint8" => random_bits_u8(key, n).into_iter().map(u64::from).collect(),
            other => panic!("unexpected bits dtype {other}"),
        };
        c.check(&name, &got, &want);
    }

    for u in arr(s, "uniform_f32") {
        let n = numel(field(u, "shape"));
        let lo = as_f64(field(u, "minval")) as f32;
        let hi = as_f64(field(u, "maxval")) as f32;
        let name = format!("uniform(key({seed}), {}, {lo}, {hi})", field(u, "shape"));
        let want = u32_list(u, "bits");
        c.check(&name, &f32_bits(&uniform_f32(key, n, lo, hi)), &want);
        c.check(&format!("{name} decimal"), &decimal_bits(u), &want);
    }

    for z in arr(s, "normal_f32") {
        let n = numel(field(z, "shape"));
        let name = format!("normal(key({seed}), {})", field(z, "shape"));
        let want = u32_list(z, "bits");
        c.check(&name, &f32_bits(&normal_f32(key, n)), &want);
        c.check(&format!("{name} decimal"), &decimal_bits(z), &want);
    }

    for r in arr(s, "randint") {
        assert_eq!(field(r, "dtype").as_str(), Some("int32"));
        let n = numel(field(r, "shape"));
        let bound = |name: &str| {
            let v = field(r, name)
                .as_i64()
                .expect("randint bound is an integer");
            i32::try_from(v).expect("randint bound fits in i32")
        };
        let (lo, hi) = (bound("minval"), bound("maxval"));
        let want: Vec<i64> = arr(r, "values")
            .iter()
            .map(|v| v.as_i64().expect("randint value is an integer"))
            .collect();
        let got: Vec<i64> = randint_i32(key, n, lo, hi)
            .into_iter()
            .map(i64::from)
            .collect();
        c.check(
            &format!("randint(key({seed}), {}, {lo}, {hi})", field(r, "shape")),
            &got,
            &want,
        );
    }

    for b in arr(s, "bernoulli") {
        let n = numel(field(b, "shape"));
        let p = as_f64(field(b, "p")) as f32;
        let want: Vec<bool> = arr(b, "values")
            .iter()
            .map(|v| v.as_bool().expect("bernoulli value is a bool"))
            .collect();
        c.check(
            &format!("bernoulli(key({seed}), {p}, {})", field(b, "shape")),
            &bernoulli(key, n, p),
            &want,
        );
    }
}

#[test]
fn prng_golden_vectors() {
    let text =
        std::fs::read_to_string(VECTORS).unwrap_or_else(|e| panic!("cannot read {VECTORS}: {e}"));
    let v: Value = serde_json::from_str(&text).expect("vectors file is valid JSON");
    let mut c = Checker::default();

    for t in arr(&v, "threefry2x32_kat") {
        let key = key_of(field(t, "key"));
        let count = key_of(field(t, "count"));
        let want = u32_list(t, "out");
        let name = format!("threefry2x32({key:08x?}, {count:08x?})");
        c.check(&name, &threefry2x32(key, count), &want);
        c.check(
            &format!("{name} flat"),
            &threefry_2x32_flat(key, &count),
            &want,
        );
    }

    for s in arr(&v, "seeds") {
        check_seed(&mut c, s);
    }

    let big = field(&v, "normal_large");
    let seed = field(big, "seed").as_i64().expect("seed is an i64");
    c.check(
        "normal_large",
        &f32_bits(&normal_f32(seed_key(seed), numel(field(big, "shape")))),
        &u32_list(big, "bits"),
    );

    for e in arr(&v, "normal_edge_bits") {
        let raw = as_u32(field(e, "raw_bits"));
        let u_bits = as_u32(field(e, "u_bits"));
        let u = uniform_f32_from_bits(&[raw], NORMAL_MINVAL, 1.0);
        c.check(
            &format!("normal_edge({raw:#010x}) u"),
            &f32_bits(&u),
            &[u_bits],
        );
        c.check(
            &format!("normal_edge({raw:#010x}) erf_inv"),
            &[erf_inv_f32(f32::from_bits(u_bits)).to_bits()],
            &[as_u32(field(e, "erf_inv_bits"))],
        );
        c.check(
            &format!("normal_edge({raw:#010x}) normal"),
            &f32_bits(&normal_f32_from_bits(&[raw])),
            &[as_u32(field(e, "normal_bits"))],
        );
    }

    println!(
        "prng vectors: {} cases ({} values) checked, {} mismatched",
        c.cases,
        c.values,
        c.failures.len()
    );
    assert!(
        c.failures.is_empty(),
        "{} of {} golden vectors mismatch:\n{}",
        c.failures.len(),
        c.cases,
        c.failures.join("\n")
    );
    assert_eq!(
        c.cases, EXPECTED_CASES,
        "number of golden vectors checked changed; was a section skipped?"
    );
}
