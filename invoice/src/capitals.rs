//! Amounts in Chinese capitals (大写金额), as printed in 价税合计（大写）.
//!
//! Canonical form: 圆, `整` after 圆 or 角, the optional 零s written, `（负数）` before negatives,
//! no 圆 below one yuan. Parsing is lenient (元 or 圆, 整 or 正 or nothing, optional 零s left out,
//! half-width brackets) so text from other systems can be checked against an amount; it never
//! panics and answers `None` for anything it cannot read unambiguously.

use rust_decimal::{Decimal, RoundingStrategy};

const DIGITS: [char; 10] = ['零', '壹', '贰', '叁', '肆', '伍', '陆', '柒', '捌', '玖'];
const NEGATIVE_PREFIX: &str = "（负数）";
const NEGATIVE_PREFIX_HALF_WIDTH: &str = "(负数)";

/// 10^16: amounts are number(18,2), so the integer part has at most 16 digits.
const INTEGER_LIMIT: u64 = 10_000_000_000_000_000;
const WAN: u64 = 10_000;
const YI: u64 = 100_000_000;

/// The capitals of `amount`, rounded half-up to 2 places first; `None` when the rounded amount is
/// beyond number(18,2) (|amount| ≥ 10^16).
pub fn amount_in_capitals(amount: Decimal) -> Option<String> {
    let rounded = amount.round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero);
    let cents = rounded.checked_mul(Decimal::ONE_HUNDRED)?.trunc();
    let negative = cents.is_sign_negative() && !cents.is_zero();
    let cents = u64::try_from(cents.abs()).ok()?;
    let integer = cents / 100;
    if integer >= INTEGER_LIMIT {
        return None;
    }
    let jiao = usize::try_from(cents / 10 % 10).ok()?;
    let fen = usize::try_from(cents % 10).ok()?;

    let mut out = String::new();
    if negative {
        out.push_str(NEGATIVE_PREFIX);
    }
    if cents == 0 {
        out.push_str("零圆整");
        return Some(out);
    }
    if integer > 0 {
        write_integer(integer, &mut out);
        out.push('圆');
    }
    if jiao > 0 {
        // The optional 零 before 角 when the 圆 digit is zero: written, so 1320.56 cannot be misread
        // as 1325.6 if the 圆 is missed.
        if integer > 0 && integer % 10 == 0 {
            out.push('零');
        }
        out.push(digit(jiao));
        out.push('角');
    } else if fen > 0 && integer > 0 {
        out.push('零');
    }
    if fen > 0 {
        out.push(digit(fen));
        out.push('分');
    } else {
        out.push('整');
    }
    Some(out)
}

fn digit(d: usize) -> char {
    DIGITS.get(d).copied().unwrap_or('零')
}

/// Writes `n` (1..10^16): the part above 亿 is itself written with 万, so 10^12 is 壹万亿.
fn write_integer(n: u64, out: &mut String) {
    if n >= YI {
        write_below_yi(n / YI, out);
        out.push('亿');
        write_low_part(n % YI, YI / 10, out, write_below_yi);
    } else {
        write_below_yi(n, out);
    }
}

/// Writes `n` (1..10^8).
fn write_below_yi(n: u64, out: &mut String) {
    if n >= WAN {
        write_group(n / WAN, out);
        out.push('万');
        write_low_part(n % WAN, WAN / 10, out, write_group);
    } else {
        write_group(n, out);
    }
}

/// Writes the part below a 万 or 亿 marker, with one 零 when its leading digit (worth `lead`) is
/// zero: a run of zeros across the marker is written once.
fn write_low_part(low: u64, lead: u64, out: &mut String, write: fn(u64, &mut String)) {
    if low == 0 {
        return;
    }
    if low < lead {
        out.push('零');
    }
    write(low, out);
}

/// Writes `n` (1..10^4): 拾 always with its digit, one 零 for a run of inner zeros, none trailing.
fn write_group(n: u64, out: &mut String) {
    let mut pending_zero = false;
    let mut started = false;
    for (place, unit) in [(1000, "仟"), (100, "佰"), (10, "拾"), (1, "")] {
        let d = usize::try_from(n / place % 10).unwrap_or(0);
        if d == 0 {
            pending_zero = started;
            continue;
        }
        if pending_zero {
            out.push('零');
            pending_zero = false;
        }
        started = true;
        out.push(digit(d));
        out.push_str(unit);
    }
}

/// Parse capitals back to an amount (accepts 元 or 圆, 整 or 正 or nothing, with or without the
/// optional 零s, the `（负数）` or `(负数)` prefix); `None` on anything malformed.
pub fn parse_capitals(text: &str) -> Option<Decimal> {
    let (negative, body) = match text
        .strip_prefix(NEGATIVE_PREFIX)
        .or_else(|| text.strip_prefix(NEGATIVE_PREFIX_HALF_WIDTH))
    {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let chars: Vec<char> = body.chars().collect();
    let yuan_at = chars.iter().position(|&c| c == '圆' || c == '元');
    let (integer, rest) = match yuan_at {
        Some(i) => {
            let integer_text = chars.get(..i)?;
            let integer = match integer_text {
                ['零'] => 0,
                _ => parse_integer(integer_text)?,
            };
            (Some(integer), chars.get(i + 1..)?)
        }
        None => (None, chars.as_slice()),
    };
    let fraction = parse_fraction(rest, integer)?;
    let cents = integer
        .unwrap_or(0)
        .checked_mul(100)?
        .checked_add(fraction)?;
    let amount = Decimal::new(i64::try_from(cents).ok()?, 2);
    Some(if negative { -amount } else { amount })
}

fn digit_value(c: char) -> Option<u64> {
    let d = DIGITS.iter().position(|&x| x == c)?;
    u64::try_from(d).ok()
}

/// The integer part before 圆 (1..10^16). At most one 亿 and one 万 on each side of it.
fn parse_integer(chars: &[char]) -> Option<u64> {
    let value = match split_once(chars, '亿') {
        Some((high, low)) => {
            let high = parse_below_yi(high, true)?;
            high.checked_mul(YI)?
                .checked_add(parse_low_part(low, YI / 10, parse_below_yi)?)?
        }
        None => parse_below_yi(chars, true)?,
    };
    (value > 0 && value < INTEGER_LIMIT).then_some(value)
}

/// A number below 10^8, non-zero. `leading` allows a bare 拾 at the start (拾万 for 壹拾万).
fn parse_below_yi(chars: &[char], leading: bool) -> Option<u64> {
    match split_once(chars, '万') {
        Some((high, low)) => {
            let high = parse_group(high, leading)?;
            high.checked_mul(WAN)?
                .checked_add(parse_low_part(low, WAN / 10, |c, _| parse_group(c, false))?)
        }
        None => parse_group(chars, leading),
    }
}

/// The part after a 万 or 亿 marker: empty (0), or a number with an optional leading 零, which is
/// only allowed when the number's leading digit (worth `lead`) is zero.
fn parse_low_part(
    chars: &[char],
    lead: u64,
    parse: fn(&[char], bool) -> Option<u64>,
) -> Option<u64> {
    match chars {
        [] => Some(0),
        ['零', rest @ ..] => parse(rest, false).filter(|&v| v < lead),
        _ => parse(chars, false),
    }
}

/// A 4-digit group, non-zero: digit-unit pairs in decreasing order, a bare digit last, one 零 only
/// where digits are skipped.
fn parse_group(chars: &[char], leading: bool) -> Option<u64> {
    let mut value = 0u64;
    // The position the next digit may take at most, and whether a 零 was just read.
    let mut max_position = 3usize;
    let mut zero = false;
    let mut read_any = false;
    let mut i = 0usize;
    while let Some(&c) = chars.get(i) {
        if c == '零' {
            if !read_any || zero {
                return None;
            }
            zero = true;
            i += 1;
            continue;
        }
        let (d, unit_at) = match digit_value(c) {
            Some(d) if d > 0 => (d, i + 1),
            // 拾 alone at the very start of a number means 壹拾.
            _ if c == '拾' && leading && !read_any => (1, i),
            _ => return None,
        };
        let position = match chars.get(unit_at) {
            Some('拾') => 1,
            Some('佰') => 2,
            Some('仟') => 3,
            _ => 0,
        };
        // A 零 stands for skipped positions, so after it the next digit must be at least two lower.
        let lowest = usize::from(zero);
        if position > max_position || (read_any && position + lowest > max_position) {
            return None;
        }
        value += d * 10u64.pow(u32::try_from(position).ok()?);
        read_any = true;
        zero = false;
        i = if position > 0 { unit_at + 1 } else { unit_at };
        if position == 0 {
            // Units digit: nothing may follow inside the group.
            return (i == chars.len()).then_some(value);
        }
        max_position = position - 1;
    }
    (read_any && !zero).then_some(value)
}

/// The fraction after 圆 (or the whole text when there is no 圆), in cents (0..100).
///
/// Grammar: [零] [D角] [D分] [整|正], with D a non-zero digit. The 零 needs a 圆 before it and
/// 角 or 分 after it; 整 needs something before it; with no 圆 there must be a 角 or 分.
fn parse_fraction(chars: &[char], integer: Option<u64>) -> Option<u64> {
    let mut rest = chars;
    let mut zero = false;
    if let ['零', tail @ ..] = rest {
        integer?;
        zero = true;
        rest = tail;
    }
    let mut jiao = None;
    if let [d, '角', tail @ ..] = rest {
        jiao = Some(digit_value(*d).filter(|&v| v > 0)?);
        rest = tail;
    }
    let mut fen = None;
    if let [d, '分', tail @ ..] = rest {
        fen = Some(digit_value(*d).filter(|&v| v > 0)?);
        rest = tail;
    }
    match rest {
        [] => {}
        ['整' | '正'] => {}
        _ => return None,
    }
    if zero && jiao.is_none() && fen.is_none() {
        return None;
    }
    if integer.is_none() && jiao.is_none() && fen.is_none() {
        return None;
    }
    Some(jiao.unwrap_or(0) * 10 + fen.unwrap_or(0))
}

/// Splits at the only occurrence of `marker`; `None` when it is absent, and an empty pair (which the
/// callers refuse) when it occurs twice.
fn split_once(chars: &[char], marker: char) -> Option<(&[char], &[char])> {
    let at = chars.iter().position(|&c| c == marker)?;
    let (high, low) = chars.split_at(at);
    let low = low.get(1..).unwrap_or_default();
    if low.contains(&marker) {
        return Some((&[], &[]));
    }
    Some((high, low))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn dec(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    fn capitals(s: &str) -> String {
        amount_in_capitals(dec(s)).unwrap()
    }

    fn parse(s: &str) -> Option<Decimal> {
        parse_capitals(s)
    }

    // The accounting rules' worked examples, one assertion each, each checked both ways.
    #[test]
    fn example_123_45() {
        assert_eq!(capitals("123.45"), "壹佰贰拾叁圆肆角伍分");
        assert_eq!(parse("壹佰贰拾叁圆肆角伍分"), Some(dec("123.45")));
    }
    #[test]
    fn example_101_50() {
        assert_eq!(capitals("101.50"), "壹佰零壹圆伍角整");
        assert_eq!(parse("壹佰零壹圆伍角整"), Some(dec("101.50")));
    }
    #[test]
    fn example_1004_56() {
        assert_eq!(capitals("1004.56"), "壹仟零肆圆伍角陆分");
        assert_eq!(parse("壹仟零肆圆伍角陆分"), Some(dec("1004.56")));
    }
    #[test]
    fn example_1320_56_with_and_without_the_optional_zero() {
        assert_eq!(capitals("1320.56"), "壹仟叁佰贰拾圆零伍角陆分");
        assert_eq!(parse("壹仟叁佰贰拾圆零伍角陆分"), Some(dec("1320.56")));
        assert_eq!(parse("壹仟叁佰贰拾圆伍角陆分"), Some(dec("1320.56")));
    }
    #[test]
    fn example_16409_02() {
        assert_eq!(capitals("16409.02"), "壹万陆仟肆佰零玖圆零贰分");
        assert_eq!(parse("壹万陆仟肆佰零玖圆零贰分"), Some(dec("16409.02")));
    }
    #[test]
    fn example_107000_53() {
        assert_eq!(capitals("107000.53"), "壹拾万柒仟圆零伍角叁分");
        assert_eq!(parse("壹拾万柒仟圆零伍角叁分"), Some(dec("107000.53")));
        assert_eq!(parse("壹拾万柒仟圆伍角叁分"), Some(dec("107000.53")));
    }
    #[test]
    fn example_16000_00() {
        assert_eq!(capitals("16000.00"), "壹万陆仟圆整");
        assert_eq!(parse("壹万陆仟圆整"), Some(dec("16000")));
    }
    #[test]
    fn example_1130() {
        assert_eq!(capitals("1130"), "壹仟壹佰叁拾圆整");
        assert_eq!(parse("壹仟壹佰叁拾圆整"), Some(dec("1130")));
    }
    #[test]
    fn example_10_00() {
        assert_eq!(capitals("10.00"), "壹拾圆整");
        assert_eq!(capitals("110"), "壹佰壹拾圆整");
        assert_eq!(parse("壹拾圆整"), Some(dec("10")));
        assert_eq!(parse("拾圆整"), Some(dec("10")));
    }
    #[test]
    fn example_0_50() {
        assert_eq!(capitals("0.50"), "伍角整");
        assert_eq!(parse("伍角整"), Some(dec("0.50")));
        assert_eq!(parse("零圆伍角整"), Some(dec("0.50")));
    }
    #[test]
    fn example_0_05() {
        assert_eq!(capitals("0.05"), "伍分");
        assert_eq!(parse("伍分"), Some(dec("0.05")));
    }
    #[test]
    fn example_0_56() {
        assert_eq!(capitals("0.56"), "伍角陆分");
        assert_eq!(parse("伍角陆分"), Some(dec("0.56")));
    }
    #[test]
    fn example_negative_500() {
        assert_eq!(capitals("-500.00"), "（负数）伍佰圆整");
        assert_eq!(parse("（负数）伍佰圆整"), Some(dec("-500")));
        assert_eq!(parse("(负数)伍佰元正"), Some(dec("-500")));
    }

    #[test]
    fn zero_is_zero_yuan_and_negative_zero_has_no_prefix() {
        assert_eq!(capitals("0"), "零圆整");
        assert_eq!(capitals("-0.001"), "零圆整");
        assert_eq!(parse("零圆整"), Some(Decimal::ZERO));
        assert_eq!(parse("零元"), Some(Decimal::ZERO));
    }

    #[test]
    fn zeros_across_group_boundaries_are_written_once() {
        assert_eq!(capitals("100000001"), "壹亿零壹圆整");
        assert_eq!(capitals("100010000"), "壹亿零壹万圆整");
        assert_eq!(capitals("1000000"), "壹佰万圆整");
        assert_eq!(capitals("10000100"), "壹仟万零壹佰圆整");
        assert_eq!(capitals("100001"), "壹拾万零壹圆整");
        assert_eq!(capitals("10100000"), "壹仟零壹拾万圆整");
        for s in [
            "100000001",
            "100010000",
            "1000000",
            "10000100",
            "100001",
            "10100000",
        ] {
            assert_eq!(parse(&capitals(s)), Some(dec(s)), "{s}");
        }
    }

    #[test]
    fn ten_to_the_twelve_is_wan_yi() {
        assert_eq!(capitals("1000000000000"), "壹万亿圆整");
        assert_eq!(
            capitals("1234567890123456"),
            "壹仟贰佰叁拾肆万伍仟陆佰柒拾捌亿玖仟零壹拾贰万叁仟肆佰伍拾陆圆整"
        );
        assert_eq!(
            capitals("9999999999999999.99"),
            "玖仟玖佰玖拾玖万玖仟玖佰玖拾玖亿玖仟玖佰玖拾玖万玖仟玖佰玖拾玖圆玖角玖分"
        );
        assert_eq!(parse("壹万亿圆整"), Some(dec("1000000000000")));
        assert_eq!(parse("壹万零壹亿圆整"), Some(dec("1000100000000")));
    }

    #[test]
    fn rounds_half_up_to_cents() {
        assert_eq!(capitals("0.005"), "壹分");
        assert_eq!(capitals("0.004"), "零圆整");
        assert_eq!(capitals("-0.005"), "（负数）壹分");
        assert_eq!(capitals("9.995"), "壹拾圆整");
    }

    #[test]
    fn out_of_range_is_none() {
        assert_eq!(amount_in_capitals(dec("10000000000000000")), None);
        assert_eq!(amount_in_capitals(dec("-10000000000000000")), None);
        assert_eq!(amount_in_capitals(dec("9999999999999999.995")), None);
        assert_eq!(amount_in_capitals(Decimal::MAX), None);
        assert_eq!(amount_in_capitals(Decimal::MIN), None);
    }

    #[test]
    fn parse_accepts_yuan_variants_and_missing_optional_zeros() {
        assert_eq!(parse("壹佰元整"), Some(dec("100")));
        assert_eq!(parse("壹佰圆"), Some(dec("100")));
        assert_eq!(parse("壹佰圆正"), Some(dec("100")));
        assert_eq!(parse("壹万陆仟肆佰零玖元零贰分"), Some(dec("16409.02")));
        assert_eq!(parse("壹拾万零柒佰圆整"), Some(dec("100700")));
        assert_eq!(parse("拾万圆整"), Some(dec("100000")));
    }

    #[test]
    fn parse_refuses_malformed_text() {
        for bad in [
            "",
            "整",
            "圆整",
            "零",
            "零零圆整",
            "壹佰零零壹圆整",
            "壹圆圆整",
            "壹拾拾圆整",
            "壹佰贰仟圆整",
            "壹零圆整",
            "壹万万圆整",
            "壹亿壹亿圆整",
            "万圆整",
            "亿圆整",
            "壹拾零壹圆整",
            "壹佰零拾圆整",
            "零壹圆整",
            "壹圆零整",
            "壹圆零角伍分",
            "壹圆伍分伍角",
            "壹圆伍角整伍分",
            "壹佰零圆整",
            "伍角零伍分",
            "零伍分",
            "壹拾圆整整",
            "壹亿壹拾拾圆",
            "佰圆整",
            "壹万零壹仟圆整",
            "壹拾万亿亿圆整",
            "（负数）",
            "壹佰圆abc",
            "100圆整",
            "壹圆伍",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }
}
