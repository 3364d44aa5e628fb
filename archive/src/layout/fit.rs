//! Fitting text into boxes for [`crate::layout`]: sanitising values, measuring, greedy line
//! wrapping and shrinking the font size until a value fits its box.
//!
//! It only measures with [`crate::font`] and returns sizes and lines; it places nothing and knows
//! nothing about invoices. All sizes are layout units (hundredths of a millimetre). It never
//! panics and never returns text wider than the width it was given (as a last resort it drops
//! what does not fit in a box at the smallest size, which only absurd inputs reach).

use crate::font;

/// The smallest font size anything is shrunk to: 0.8 mm.
pub const FLOOR_SIZE: i32 = 80;
/// Step of the size search: 0.1 mm.
const STEP: i32 = 10;

/// Line pitch (baseline to baseline) of wrapped text at `size`.
pub fn pitch(size: i32) -> i32 {
    size * 5 / 4
}

/// `text` made safe to draw on one line: control characters become spaces, runs of whitespace
/// collapse to one space, ends are trimmed.
pub fn one_line(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut space = false;
    for c in text.chars() {
        if c.is_whitespace() || c.is_control() {
            space = !out.is_empty();
        } else {
            if space {
                out.push(' ');
                space = false;
            }
            out.push(c);
        }
    }
    out
}

/// The largest size in `[floor, size]` (steps of 0.1 mm) at which `text` fits `width` on one
/// line; `floor` if none.
pub fn shrink_to_width(text: &str, width: i32, size: i32, floor: i32) -> i32 {
    let natural = font::width(text, size);
    if natural <= width || size <= floor {
        return size;
    }
    // Width is proportional to size: start from the proportional estimate, then step down.
    let estimate = i64::from(size) * i64::from(width.max(0)) / i64::from(natural.max(1));
    let mut s = i32::try_from(estimate).unwrap_or(floor).clamp(floor, size);
    s -= s % STEP;
    while s > floor && font::width(text, s) > width {
        s -= STEP;
    }
    s.max(floor)
}

/// Greedy wrapping of `text` (already [`one_line`]d per paragraph; `\n` forces a break) into
/// lines no wider than `width` at `size`. Breaks between any two characters but keeps runs of
/// ASCII letters and digits together when they fit on a line of their own; spaces at breaks are
/// dropped. A single character wider than `width` gets a line of its own (callers shrink first).
pub fn wrap(text: &str, width: i32, size: i32) -> Vec<String> {
    let mut lines = Vec::new();
    for paragraph in text.split('\n') {
        wrap_paragraph(paragraph, width, size, &mut lines);
    }
    lines
}

fn wrap_paragraph(text: &str, width: i32, size: i32, lines: &mut Vec<String>) {
    let em = i64::from(font::metrics().units_per_em.max(1));
    // Compare in font units × size to avoid per-glyph rounding: fits if units × size ≤ width × em.
    let limit = i64::from(width.max(0)) * em;
    let size = i64::from(size);
    let chars: Vec<char> = text.chars().collect();
    let advance = |c: char| i64::from(font::glyph(c).advance) * size;
    let mut start = 0;
    while start < chars.len() {
        // Skip spaces at the start of a line.
        while chars.get(start).is_some_and(|c| *c == ' ') {
            start += 1;
        }
        if start >= chars.len() {
            break;
        }
        let mut used = 0i64;
        let mut end = start;
        while let Some(c) = chars.get(end) {
            let next = used + advance(*c);
            if next > limit && end > start {
                break;
            }
            used = next;
            end += 1;
        }
        // Do not split a word of ASCII letters/digits if the line can end before it.
        if end < chars.len() && is_word(chars[end]) && is_word(chars[end - 1]) {
            let mut cut = end;
            while cut > start && is_word(chars[cut - 1]) {
                cut -= 1;
            }
            if cut > start {
                end = cut;
            }
        }
        let line: String = chars[start..end].iter().collect();
        lines.push(line.trim_end().to_owned());
        start = end;
    }
}

fn is_word(c: char) -> bool {
    c.is_ascii_alphanumeric()
}

/// Text fitted into a box: its size and lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fitted {
    pub size: i32,
    pub lines: Vec<String>,
}

impl Fitted {
    /// Height of the lines: `lines × pitch`.
    pub fn height(&self) -> i32 {
        i32::try_from(self.lines.len())
            .unwrap_or(i32::MAX)
            .saturating_mul(pitch(self.size))
    }
}

/// Fit `text` into `width × height`: the largest size in `[floor, size]` at which the wrapped
/// lines fit, continuing below `floor` down to [`FLOOR_SIZE`]; at the smallest size the lines
/// that do not fit are dropped.
pub fn fit_box(text: &str, width: i32, height: i32, size: i32, floor: i32) -> Fitted {
    if text.is_empty() {
        return Fitted {
            size,
            lines: Vec::new(),
        };
    }
    let floor = floor.clamp(FLOOR_SIZE, size.max(FLOOR_SIZE));
    let mut s = size.max(FLOOR_SIZE);
    loop {
        let lines = wrap(text, width, s);
        let fitted = Fitted { size: s, lines };
        if fitted.height() <= height {
            return fitted;
        }
        // Below the preferred floor, jump to the absolute floor's neighbourhood faster.
        let step = if s > floor { STEP } else { STEP * 2 };
        if s - step < FLOOR_SIZE {
            let mut fitted = Fitted {
                size: FLOOR_SIZE,
                lines: wrap(text, width, FLOOR_SIZE),
            };
            let keep = usize::try_from(height / pitch(FLOOR_SIZE)).unwrap_or(0);
            fitted.lines.truncate(keep);
            return fitted;
        }
        s -= step;
    }
}

/// Fit `text` into a cell `width` wide: at `size` on up to `lines` lines if it can, else shrunk
/// (down to `floor`) to fit `lines` lines, else at `floor` on as many lines as `max_height`
/// allows (shrinking further if even that is not enough).
pub fn fit_cell(
    text: &str,
    width: i32,
    size: i32,
    floor: i32,
    lines: usize,
    max_height: i32,
) -> Fitted {
    let wrapped = wrap(text, width, size);
    if wrapped.len() <= lines {
        return Fitted {
            size,
            lines: wrapped,
        };
    }
    let mut s = size - STEP;
    while s >= floor {
        let wrapped = wrap(text, width, s);
        if wrapped.len() <= lines {
            return Fitted {
                size: s,
                lines: wrapped,
            };
        }
        s -= STEP;
    }
    fit_box(text, width, max_height, floor, floor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_removes_control_characters_and_extra_space() {
        assert_eq!(one_line("  a\tb\n\nc \u{7} d "), "a b c d");
        assert_eq!(one_line(""), "");
    }

    #[test]
    fn wrapping_never_exceeds_the_width() {
        let text = "*计算机网络设备*交换机 ThinkStation P3 超长名称超长名称超长名称超长名称";
        for width in [300, 1000, 2500, 4700] {
            let lines = wrap(text, width, 270);
            assert!(lines.len() > 1);
            for line in &lines {
                assert!(font::width(line, 270) <= width, "{line:?} in {width}");
            }
            let joined: String = lines.concat();
            assert_eq!(joined.replace(' ', ""), text.replace(' ', ""));
        }
    }

    #[test]
    fn words_stay_together_when_they_can() {
        let lines = wrap("型号ThinkStation P3", font::width("型号Think", 300), 300);
        assert_eq!(lines[0], "型号");
        assert_eq!(lines.concat().replace(' ', ""), "型号ThinkStationP3");
        assert_eq!(
            wrap("S5735 L48", font::width("S5735 L4", 300), 300),
            ["S5735", "L48"]
        );
    }

    #[test]
    fn shrinking_fits_the_width() {
        let text = "-123456789012.34";
        let s = shrink_to_width(text, 1000, 300, 100);
        assert!(font::width(text, s) <= 1000);
        assert!(font::width(text, s + STEP) > 1000);
        assert_eq!(shrink_to_width("1.00", 1000, 300, 100), 300);
    }

    #[test]
    fn boxes_hold_very_long_text() {
        let text = "很长的备注".repeat(90);
        let fitted = fit_box(&text, 19000, 1700, 270, 180);
        assert!(fitted.height() <= 1700);
        assert_eq!(fitted.lines.concat(), text);
        for line in &fitted.lines {
            assert!(font::width(line, fitted.size) <= 19000);
        }
        // Absurd: 5000 characters in a 1 cm square at most fill it.
        let absurd = "字".repeat(5000);
        let fitted = fit_box(&absurd, 1000, 1000, 300, 200);
        assert_eq!(fitted.size, FLOOR_SIZE);
        assert!(fitted.height() <= 1000);
    }

    #[test]
    fn cells_prefer_two_lines_then_shrink() {
        let name = "*信息技术服务*软件开发服务软件开发服务软件开发服务";
        let fitted = fit_cell(name, 4700, 270, 180, 2, 4000);
        assert!(fitted.lines.len() <= 2);
        assert_eq!(fitted.lines.concat(), name);
        let long = "名".repeat(300);
        let fitted = fit_cell(&long, 4700, 270, 180, 2, 4000);
        assert!(fitted.height() <= 4000);
        assert_eq!(fitted.lines.concat(), long);
    }
}
