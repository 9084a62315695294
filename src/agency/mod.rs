//! The agency registry: administrative units and agencies with the dates they were valid, their
//! parents and their successors across reorganisations.
//!
//! An official code names an agency only together with a date (codes are reused across eras), so
//! every lookup by code takes the date it is made at; stored rows point at the agency's own id.

pub mod import;
pub mod store;

use chrono::{FixedOffset, NaiveDate, Offset, Utc};
use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;

pub use store::{Agency, AgencyId};

/// The registry is Vietnam's: "today" is the date in Vietnam (UTC+7), so that a request at
/// 06:00 local time on 1 July sees the new provinces.
pub fn today() -> NaiveDate {
    Utc::now().with_timezone(&vietnam()).date_naive()
}

/// Vietnam's time zone (UTC+7, no daylight saving), in which dates of the registry are meant.
pub fn vietnam() -> FixedOffset {
    const VIETNAM_OFFSET_SECONDS: i32 = 7 * 3600;
    FixedOffset::east_opt(VIETNAM_OFFSET_SECONDS).unwrap_or_else(|| Utc.fix())
}

/// Folds a name for search: lowercase, without diacritics (đ becomes d), single spaces. "Hà Nội"
/// and "Ha Noi" fold to the same text.
pub fn fold_for_search(text: &str) -> String {
    let stripped: String = text
        .nfd()
        .filter(|c| !is_combining_mark(*c))
        .map(|c| match c {
            'đ' | 'Đ' => 'd',
            other => other,
        })
        .flat_map(char::to_lowercase)
        .collect();
    stripped.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Vietnamese name without diacritics, case kept ("Hà Nội" → "Ha Noi").
pub fn strip_diacritics(text: &str) -> String {
    text.nfd()
        .filter(|c| !is_combining_mark(*c))
        .map(|c| match c {
            'đ' => 'd',
            'Đ' => 'D',
            other => other,
        })
        .collect()
}

/// An English name for an official Vietnamese unit name, in the form government English texts use
/// ("Thành phố Hà Nội" → "Ha Noi City", "Phường Ba Đình" → "Ba Dinh Ward"). `None` when the
/// division type is not one of the standard ones.
pub fn english_name(name_vi: &str, division_type: &str) -> Option<String> {
    let (prefixes, suffix): (&[&str], &str) = match division_type {
        "tỉnh" => (&["Tỉnh "], "Province"),
        "thành phố trung ương" | "thành phố" => (&["Thành phố "], "City"),
        "phường" => (&["Phường "], "Ward"),
        "xã" => (&["Xã "], "Commune"),
        "đặc khu" => (&["Đặc khu "], "Special Zone"),
        _ => return None,
    };
    let name_vi = name_vi.nfc().collect::<String>();
    let bare = prefixes.iter().find_map(|p| name_vi.strip_prefix(p)).unwrap_or(&name_vi);
    Some(format!("{} {suffix}", strip_diacritics(bare)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_folding_ignores_diacritics_case_and_spacing() {
        assert_eq!(fold_for_search("Thành phố  Hà Nội"), "thanh pho ha noi");
        assert_eq!(fold_for_search("Đắk Lắk"), "dak lak");
        // Old-style tone placement (Hoà) and decomposed input fold the same as NFC.
        assert_eq!(fold_for_search("Tỉnh Hoà Bình"), fold_for_search("Tỉnh Hòa Bình"));
        assert_eq!(fold_for_search(&"Huế".nfd().collect::<String>()), "hue");
    }

    #[test]
    fn english_names_follow_the_division_type() {
        assert_eq!(english_name("Thành phố Hà Nội", "thành phố trung ương").as_deref(), Some("Ha Noi City"));
        assert_eq!(english_name("Cao Bằng", "tỉnh").as_deref(), Some("Cao Bang Province"));
        assert_eq!(english_name("Phường Ba Đình", "phường").as_deref(), Some("Ba Dinh Ward"));
        assert_eq!(english_name("Đặc khu Phú Quốc", "đặc khu").as_deref(), Some("Phu Quoc Special Zone"));
        assert_eq!(english_name("Bộ Nội vụ", "bộ"), None);
    }
}
