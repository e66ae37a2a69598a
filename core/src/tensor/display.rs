//! `Display` for tensors exactly as JAX prints arrays (numpy's `array2string` rules, 75
//! columns, summarised with `...` past 1000 elements), plus the shape-only summary Flax uses
//! inside Module reprs.

use std::fmt;

use super::shape::strides;
use super::{Array, Buffer, DType};

const LINE_WIDTH: usize = 75;
const SUMMARY_THRESHOLD: usize = 1000;
const EDGE_ITEMS: usize = 3;
const FLOAT_PRECISION: usize = 8;

impl fmt::Display for Array {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.repr())
    }
}

/// A shape as Python prints a tuple: `()`, `(3,)`, `(2, 3)`.
pub(crate) fn python_shape(shape: &[usize]) -> String {
    match shape {
        [d] => format!("({d},)"),
        _ => {
            let dims: Vec<String> = shape.iter().map(usize::to_string).collect();
            format!("({})", dims.join(", "))
        }
    }
}

impl Array {
    /// The repr JAX prints for this array (`Array([1, 2], dtype=int32)`); what `Display` shows.
    pub fn repr(&self) -> String {
        if self.dtype() == DType::Key {
            return self.key_repr();
        }
        let prefix = "Array(";
        let dtype_str = if self.is_weak() {
            format!("dtype={}, weak_type=True)", self.dtype())
        } else {
            format!("dtype={})", self.dtype())
        };
        let body = if self.size() == 0 {
            format!("[], shape={}", python_shape(self.shape()))
        } else {
            array2string(self, prefix.len(), 1, ", ")
        };
        // JAX's own (off-by-two) measure of the last line, kept so output matches it exactly.
        let last_line_len = match body.rfind('\n') {
            Some(i) => body.len() - i + 1,
            None => body.len() + 2,
        };
        let sep = if last_line_len + dtype_str.len() + 1 > LINE_WIDTH {
            " ".repeat(prefix.len())
        } else {
            " ".to_owned()
        };
        format!("{prefix}{body},{sep}{dtype_str}")
    }

    /// Flax's repr of an array inside a Module: the full repr for at most one element,
    /// otherwise `Array(shape=(2, 3), dtype=dtype('float32'))`.
    pub fn summary_repr(&self) -> String {
        if self.size() <= 1 {
            self.repr()
        } else if self.dtype() == DType::Key {
            format!(
                "Array(shape={}, dtype=key<fry>)",
                python_shape(self.shape())
            )
        } else {
            format!(
                "Array(shape={}, dtype=dtype('{}'))",
                python_shape(self.shape()),
                self.dtype()
            )
        }
    }

    fn key_repr(&self) -> String {
        let header = format!(
            "Array({}, dtype=key<fry>) overlaying:",
            python_shape(self.shape())
        );
        match self.key_data() {
            Ok(data) => format!("{header}\n{}", array2string(&data, 0, 0, " ")),
            Err(_) => header,
        }
    }
}

/// numpy's `array2string` for a non-empty array.
fn array2string(t: &Array, prefix_len: usize, suffix_len: usize, separator: &str) -> String {
    let summarize = t.size() > SUMMARY_THRESHOLD;
    let visible = visible_indices(t.shape(), summarize);
    let formatter = ElementFormatter::new(t, &visible);
    let printer = Printer {
        tensor: t,
        strides: strides(t.shape()),
        formatter,
        separator,
        summarize,
    };
    let hanging = " ".repeat(1 + prefix_len);
    printer.recurse(&mut Vec::new(), &hanging, LINE_WIDTH - suffix_len)
}

/// Flat indices of the elements that will be printed (all, or the edges when summarising).
fn visible_indices(shape: &[usize], summarize: bool) -> Vec<usize> {
    let st = strides(shape);
    let mut out = vec![0usize];
    for (axis, &len) in shape.iter().enumerate() {
        let picks: Vec<usize> = if summarize && len > 2 * EDGE_ITEMS {
            (0..EDGE_ITEMS).chain(len - EDGE_ITEMS..len).collect()
        } else {
            (0..len).collect()
        };
        let stride = st[axis];
        out = out
            .iter()
            .flat_map(|&base| picks.iter().map(move |&p| base + p * stride))
            .collect();
    }
    out
}

struct Printer<'a> {
    tensor: &'a Array,
    strides: Vec<usize>,
    formatter: ElementFormatter,
    separator: &'a str,
    summarize: bool,
}

impl Printer<'_> {
    /// numpy's `_formatArray.recurser`.
    fn recurse(&self, index: &mut Vec<usize>, hanging: &str, width: usize) -> String {
        let shape = self.tensor.shape();
        let axis = index.len();
        let axes_left = shape.len() - axis;
        if axes_left == 0 {
            let flat: usize = index.iter().zip(&self.strides).map(|(i, s)| i * s).sum();
            return self.formatter.format(self.tensor.buffer(), flat);
        }
        let next_hanging = format!("{hanging} ");
        let next_width = width - 1;
        let len = shape[axis];
        let show_summary = self.summarize && 2 * EDGE_ITEMS < len;
        let (leading, trailing) = if show_summary {
            (EDGE_ITEMS, EDGE_ITEMS)
        } else {
            (0, len)
        };
        let child = |i: usize, index: &mut Vec<usize>| {
            index.push(i);
            let s = self.recurse(index, &next_hanging, next_width);
            index.pop();
            s
        };
        let mut s = String::new();
        if axes_left == 1 {
            let sep_trimmed = self.separator.trim_end();
            let elem_width = width - sep_trimmed.len().max(1);
            let mut line = hanging.to_owned();
            for i in 0..leading {
                let word = child(i, index);
                extend_line(&mut s, &mut line, &word, elem_width, hanging);
                line.push_str(self.separator);
            }
            if show_summary {
                extend_line(&mut s, &mut line, "...", elem_width, hanging);
                line.push_str(self.separator);
            }
            for i in (len - trailing)..len.saturating_sub(1) {
                let word = child(i, index);
                extend_line(&mut s, &mut line, &word, elem_width, hanging);
                line.push_str(self.separator);
            }
            let word = child(len - 1, index);
            extend_line(&mut s, &mut line, &word, elem_width, hanging);
            s.push_str(&line);
        } else {
            let line_sep = format!(
                "{}{}",
                self.separator.trim_end(),
                "\n".repeat(axes_left - 1)
            );
            for i in 0..leading {
                let nested = child(i, index);
                s.push_str(hanging);
                s.push_str(&nested);
                s.push_str(&line_sep);
            }
            if show_summary {
                s.push_str(hanging);
                s.push_str("...");
                s.push_str(&line_sep);
            }
            for i in (len - trailing)..len.saturating_sub(1) {
                let nested = child(i, index);
                s.push_str(hanging);
                s.push_str(&nested);
                s.push_str(&line_sep);
            }
            let nested = child(len - 1, index);
            s.push_str(hanging);
            s.push_str(&nested);
        }
        format!("[{}]", &s[hanging.len()..])
    }
}

/// numpy's `_extendLine`: wrap before `word` when it would pass `width`.
fn extend_line(s: &mut String, line: &mut String, word: &str, width: usize, hanging: &str) {
    let needs_wrap = line.len() + word.len() > width && line.len() > hanging.len();
    if needs_wrap {
        s.push_str(line.trim_end());
        s.push('\n');
        *line = hanging.to_owned();
    }
    line.push_str(word);
}

/// Formats single elements so that all printed elements line up (numpy's format functions).
enum ElementFormatter {
    Bool { scalar: bool },
    Int { width: usize },
    Float(FloatFormat),
}

impl ElementFormatter {
    fn new(t: &Array, visible: &[usize]) -> ElementFormatter {
        match t.buffer() {
            Buffer::Bool(_) => ElementFormatter::Bool {
                scalar: t.ndim() == 0,
            },
            Buffer::I32(d) => ElementFormatter::Int {
                width: visible
                    .iter()
                    .map(|&i| d[i].to_string().len())
                    .max()
                    .unwrap_or(0),
            },
            Buffer::U32(d) => ElementFormatter::Int {
                width: visible
                    .iter()
                    .map(|&i| d[i].to_string().len())
                    .max()
                    .unwrap_or(0),
            },
            Buffer::Key(_) => ElementFormatter::Int { width: 0 },
            Buffer::F32(d) => {
                let values: Vec<f32> = visible.iter().map(|&i| d[i]).collect();
                ElementFormatter::Float(FloatFormat::new(&values))
            }
        }
    }

    fn format(&self, buffer: &Buffer, i: usize) -> String {
        match (self, buffer) {
            (ElementFormatter::Bool { scalar }, Buffer::Bool(d)) => match (d[i], scalar) {
                (true, true) => "True".to_owned(),
                (true, false) => " True".to_owned(),
                (false, _) => "False".to_owned(),
            },
            (ElementFormatter::Int { width }, Buffer::I32(d)) => format!("{:>width$}", d[i]),
            (ElementFormatter::Int { width }, Buffer::U32(d)) => format!("{:>width$}", d[i]),
            (ElementFormatter::Float(ff), Buffer::F32(d)) => ff.format(d[i]),
            _ => String::from("?"),
        }
    }
}

/// numpy's `FloatingFormat` with `floatmode='maxprec'`, `precision=8`, `sign='-'`.
struct FloatFormat {
    scientific: bool,
    pad_left: usize,
    pad_right: usize,
    /// Scientific only: digits after the point (all values padded to it).
    precision: usize,
    /// Scientific only: minimum exponent digits.
    exp_size: usize,
}

impl FloatFormat {
    fn new(values: &[f32]) -> FloatFormat {
        let finite: Vec<f32> = values.iter().copied().filter(|x| x.is_finite()).collect();
        let abs_nonzero: Vec<f64> = finite
            .iter()
            .filter(|&&x| x != 0.0)
            .map(|&x| (x as f64).abs())
            .collect();
        let scientific = if abs_nonzero.is_empty() {
            false
        } else {
            let max = abs_nonzero.iter().copied().fold(f64::MIN, f64::max);
            let min = abs_nonzero.iter().copied().fold(f64::MAX, f64::min);
            max >= 1e8 || min < 1e-4 || max / min > 1e3
        };
        let mut ff = FloatFormat {
            scientific,
            pad_left: 0,
            pad_right: 0,
            precision: 0,
            exp_size: 0,
        };
        if !finite.is_empty() {
            if scientific {
                let parts: Vec<(String, String, String)> =
                    finite.iter().map(|&x| scientific_parts(x)).collect();
                ff.precision = parts.iter().map(|p| p.1.len()).max().unwrap_or(0);
                ff.exp_size = parts.iter().map(|p| p.2.len()).max().unwrap_or(0).max(2);
                ff.pad_left = parts.iter().map(|p| p.0.len()).max().unwrap_or(0);
                ff.pad_right = ff.exp_size + 2 + ff.precision;
            } else {
                let parts: Vec<(String, String)> =
                    finite.iter().map(|&x| positional_parts(x)).collect();
                ff.pad_left = parts.iter().map(|p| p.0.len()).max().unwrap_or(0);
                ff.pad_right = parts.iter().map(|p| p.1.len()).max().unwrap_or(0);
            }
        }
        if finite.len() != values.len() {
            let neg_inf = values.iter().any(|&x| x.is_infinite() && x < 0.0);
            let offset = ff.pad_right + 1;
            let inf_len = 3 + usize::from(neg_inf);
            ff.pad_left = ff
                .pad_left
                .max(3usize.saturating_sub(offset))
                .max(inf_len.saturating_sub(offset));
        }
        ff
    }

    fn format(&self, x: f32) -> String {
        if !x.is_finite() {
            let s = if x.is_nan() {
                "nan"
            } else if x < 0.0 {
                "-inf"
            } else {
                "inf"
            };
            let width = self.pad_left + self.pad_right + 1;
            return format!("{s:>width$}");
        }
        if self.scientific {
            let (int, frac, exp) = scientific_parts(x);
            let (sign, digits) = match exp.strip_prefix('-') {
                Some(d) => ('-', d),
                None => ('+', exp.as_str()),
            };
            format!(
                "{int:>pl$}.{frac:0<prec$}e{sign}{digits:0>es$}",
                pl = self.pad_left,
                prec = self.precision,
                es = self.exp_size
            )
        } else {
            let (int, frac) = positional_parts(x);
            format!(
                "{int:>pl$}.{frac:<pr$}",
                pl = self.pad_left,
                pr = self.pad_right
            )
        }
    }
}

/// The shortest round-trip digits of `x`, at most 8 after the point: `(int, frac)`.
fn positional_parts(x: f32) -> (String, String) {
    let shortest = format!("{x}");
    let s = match shortest.split_once('.') {
        Some((_, frac)) if frac.len() > FLOAT_PRECISION => {
            let rounded = format!("{x:.FLOAT_PRECISION$}");
            rounded.trim_end_matches('0').to_owned()
        }
        _ => shortest,
    };
    match s.split_once('.') {
        Some((int, frac)) => (int.to_owned(), frac.to_owned()),
        None => (s, String::new()),
    }
}

/// Scientific digits of `x`: `(int, frac, exponent)` with the exponent as a signed integer
/// string (`"-5"`, `"5"`).
fn scientific_parts(x: f32) -> (String, String, String) {
    let shortest = format!("{x:e}");
    let s = match shortest.split_once('e') {
        Some((mantissa, _))
            if mantissa
                .split_once('.')
                .is_some_and(|(_, f)| f.len() > FLOAT_PRECISION) =>
        {
            let rounded = format!("{x:.FLOAT_PRECISION$e}");
            match rounded.split_once('e') {
                Some((m, e)) => format!("{}e{e}", m.trim_end_matches('0')),
                None => rounded,
            }
        }
        _ => shortest,
    };
    let (mantissa, exp) = s.split_once('e').unwrap_or((s.as_str(), "0"));
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    (
        int.to_owned(),
        frac.trim_end_matches('0').to_owned(),
        exp.to_owned(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f32s(data: &[f32]) -> Array {
        Array::from_slice(data)
    }

    #[test]
    fn ints_pad_to_the_widest() {
        let t = (Array::arange(10) + 1).unwrap();
        assert_eq!(
            t.to_string(),
            "Array([ 1,  2,  3,  4,  5,  6,  7,  8,  9, 10], dtype=int32)"
        );
    }

    #[test]
    fn long_rows_wrap_at_75_columns() {
        let t = (Array::arange(30) * 1000).unwrap();
        assert_eq!(
            t.to_string(),
            "Array([    0,  1000,  2000,  3000,  4000,  5000,  6000,  7000,  8000,\n        9000, 10000, 11000, 12000, 13000, 14000, 15000, 16000, 17000,\n       18000, 19000, 20000, 21000, 22000, 23000, 24000, 25000, 26000,\n       27000, 28000, 29000], dtype=int32)"
        );
    }

    #[test]
    fn floats_follow_numpy_maxprec() {
        assert_eq!(
            f32s(&[1.5, 2.0, -3.25]).to_string(),
            "Array([ 1.5 ,  2.  , -3.25], dtype=float32)"
        );
        assert_eq!(
            Array::ones(&[3]).to_string(),
            "Array([1., 1., 1.], dtype=float32)"
        );
        assert_eq!(
            Array::weak_scalar(0.1f32).to_string(),
            "Array(0.1, dtype=float32, weak_type=True)"
        );
        assert_eq!(
            f32s(&[1e-5, 1.0]).to_string(),
            "Array([1.e-05, 1.e+00], dtype=float32)"
        );
        assert_eq!(
            f32s(&[123456.7, 1.0]).to_string(),
            "Array([1.234567e+05, 1.000000e+00], dtype=float32)"
        );
        assert_eq!(
            f32s(&[f32::NAN, f32::INFINITY, f32::NEG_INFINITY, 1.5]).to_string(),
            "Array([ nan,  inf, -inf,  1.5], dtype=float32)"
        );
    }

    #[test]
    fn dtype_moves_when_the_last_line_is_full() {
        // The values JAX printed for jnp.arange(10) / 3 (XLA multiplies by the reciprocal).
        let t = f32s(&[
            0.0, 0.33333334, 0.6666667, 1.0, 1.3333334, 1.6666667, 2.0, 2.3333335, 2.6666667, 3.0,
        ]);
        assert_eq!(
            t.to_string(),
            "Array([0.        , 0.33333334, 0.6666667 , 1.        , 1.3333334 ,\n       1.6666667 , 2.        , 2.3333335 , 2.6666667 , 3.        ],      dtype=float32)"
        );
    }

    #[test]
    fn nested_arrays_and_bools() {
        assert_eq!(
            Array::ones(&[2, 2, 2]).to_string(),
            "Array([[[1., 1.],\n        [1., 1.]],\n\n       [[1., 1.],\n        [1., 1.]]], dtype=float32)"
        );
        let b = Array::from_vec(&[1, 2], vec![true, false]).unwrap();
        assert_eq!(b.to_string(), "Array([[ True, False]], dtype=bool)");
        assert_eq!(
            Array::zeros(&[2, 0]).to_string(),
            "Array([], shape=(2, 0), dtype=float32)"
        );
    }

    #[test]
    fn large_arrays_are_summarised() {
        let t = Array::ones(&[1000, 1000]);
        assert_eq!(
            t.to_string(),
            "Array([[1., 1., 1., ..., 1., 1., 1.],\n       [1., 1., 1., ..., 1., 1., 1.],\n       [1., 1., 1., ..., 1., 1., 1.],\n       ...,\n       [1., 1., 1., ..., 1., 1., 1.],\n       [1., 1., 1., ..., 1., 1., 1.],\n       [1., 1., 1., ..., 1., 1., 1.]], dtype=float32)"
        );
        assert_eq!(
            t.summary_repr(),
            "Array(shape=(1000, 1000), dtype=dtype('float32'))"
        );
    }

    #[test]
    fn keys_show_their_data() {
        let k = Array::from_keys(&[], vec![[0, 0]]).unwrap();
        assert_eq!(
            k.to_string(),
            "Array((), dtype=key<fry>) overlaying:\n[0 0]"
        );
    }
}
