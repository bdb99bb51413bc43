//! Figures from repeated benchmark rounds: the benchmarks interleave rounds of the
//! thing measured and its baselines and report each figure's median, which one
//! disturbed round on these shared machines does not move.

/// The median of `values` (the upper one of an even count); NaN when there are none.
pub fn median(values: impl IntoIterator<Item = f64>) -> f64 {
    let mut v: Vec<f64> = values.into_iter().collect();
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

#[cfg(test)]
mod tests {
    use super::median;

    #[test]
    fn middle_value_whatever_the_order() {
        assert_eq!(median([3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median([9.0, 1.0]), 9.0);
        assert!(median([]).is_nan());
    }
}
