//! Rules across units: suppression of small units, ranks with ties, and comparisons. Pure
//! functions.

/// Why a unit's estimates are withheld.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Suppression {
    /// Fewer respondents than the campaign's `min_n`.
    TooFew,
    /// Enough respondents, but withheld so that a sibling withheld for too few respondents can't
    /// be derived by subtracting the shown siblings from the parent.
    Complementary,
}

impl Suppression {
    /// The reason's name in the output.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::TooFew => "too_few_respondents",
            Self::Complementary => "complementary",
        }
    }
}

/// Which of a parent's children are suppressed. A child with fewer than `min_n` respondents (but
/// more than none) is withheld; when exactly one such child exists and the parent pools all
/// respondents (`complementary`), the other child with the fewest respondents is withheld too, so
/// that subtraction reveals only the two together. Children with no respondents reveal nothing
/// and count as suppressed without triggering anything.
pub fn suppress(respondents: &[u64], min_n: u64, complementary: bool) -> Vec<Option<Suppression>> {
    let mut result: Vec<Option<Suppression>> =
        respondents.iter().map(|n| (*n < min_n).then_some(Suppression::TooFew)).collect();
    let disclosive = respondents.iter().filter(|n| **n > 0 && **n < min_n).count();
    if complementary && disclosive == 1 {
        let partner = respondents
            .iter()
            .enumerate()
            .filter(|(i, _)| result[*i].is_none())
            .min_by_key(|(i, n)| (**n, *i))
            .map(|(i, _)| i);
        if let Some(partner) = partner {
            result[partner] = Some(Suppression::Complementary);
        }
    }
    result
}

/// Standard competition ranks ("1224"), highest value first; values within `1e-9` tie; units
/// without a value get no rank.
pub fn ranks(values: &[Option<f64>]) -> Vec<Option<u32>> {
    const TIE: f64 = 1e-9;
    values
        .iter()
        .map(|value| {
            let value = (*value)?;
            let above = values.iter().flatten().filter(|other| **other > value + TIE).count();
            u32::try_from(above + 1).ok()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_units_are_suppressed_with_a_complement() {
        use Suppression::*;
        assert_eq!(suppress(&[100, 10, 50, 40], 30, true), vec![None, Some(TooFew), None, Some(Complementary)]);
        assert_eq!(suppress(&[100, 10, 50, 40], 30, false), vec![None, Some(TooFew), None, None]);
        // Two small units protect each other; an empty one discloses nothing.
        assert_eq!(suppress(&[100, 10, 20, 40], 30, true), vec![None, Some(TooFew), Some(TooFew), None]);
        assert_eq!(suppress(&[100, 0, 40], 30, true), vec![None, Some(TooFew), None]);
        // A suppressed only child: nothing to pair it with (the parent then has fewer than
        // min_n respondents of its children and is judged on its own count).
        assert_eq!(suppress(&[12], 30, true), vec![Some(TooFew)]);
        assert_eq!(suppress(&[], 30, true), vec![]);
    }

    #[test]
    fn ranks_tie_and_skip() {
        let values = [Some(80.0), Some(90.0), None, Some(80.0), Some(70.0)];
        assert_eq!(ranks(&values), vec![Some(2), Some(1), None, Some(2), Some(4)]);
        assert_eq!(ranks(&[Some(1.0 / 3.0), Some(1.0 / 3.0 + 1e-12)]), vec![Some(1), Some(1)]);
    }
}
