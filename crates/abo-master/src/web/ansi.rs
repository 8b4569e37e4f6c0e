//! Log text to HTML: escaped, ANSI colours (SGR) as `<span class="...">`, every other
//! terminal escape (cursor moves, OSC titles and links, ...) and control character
//! dropped. The output is built here and embedded with `PreEscaped`; nothing from the log
//! reaches it unescaped.

/// The colour state carried from one piece of a log to the next.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Style {
    fg: Option<u8>,
    bg: Option<u8>,
    bold: bool,
    dim: bool,
    italic: bool,
    underline: bool,
}

impl Style {
    fn classes(&self) -> String {
        let mut c = Vec::new();
        if let Some(f) = self.fg {
            c.push(format!("ansi-fg{f}"));
        }
        if let Some(b) = self.bg {
            c.push(format!("ansi-bg{b}"));
        }
        if self.bold {
            c.push("ansi-bold".into());
        }
        if self.dim {
            c.push("ansi-dim".into());
        }
        if self.italic {
            c.push("ansi-italic".into());
        }
        if self.underline {
            c.push("ansi-underline".into());
        }
        c.join(" ")
    }

    fn apply(&mut self, params: &str) {
        let codes: Vec<u16> = if params.is_empty() {
            vec![0]
        } else {
            params
                .split(';')
                .map(|p| p.parse::<u16>().unwrap_or(0))
                .collect()
        };
        let mut i = 0;
        while i < codes.len() {
            match codes[i] {
                0 => *self = Style::default(),
                1 => self.bold = true,
                2 => self.dim = true,
                3 => self.italic = true,
                4 => self.underline = true,
                22 => {
                    self.bold = false;
                    self.dim = false;
                }
                23 => self.italic = false,
                24 => self.underline = false,
                c @ 30..=37 => self.fg = Some((c - 30) as u8),
                39 => self.fg = None,
                c @ 40..=47 => self.bg = Some((c - 40) as u8),
                49 => self.bg = None,
                c @ 90..=97 => self.fg = Some((c - 90 + 8) as u8),
                c @ 100..=107 => self.bg = Some((c - 100 + 8) as u8),
                // 256-colour and RGB forms: skip their arguments, keep the text plain.
                38 | 48 => {
                    i += match codes.get(i + 1) {
                        Some(5) => 2,
                        Some(2) => 4,
                        _ => 0,
                    };
                }
                _ => {}
            }
            i += 1;
        }
    }
}

fn escape_into(out: &mut String, c: char) {
    match c {
        '&' => out.push_str("&amp;"),
        '<' => out.push_str("&lt;"),
        '>' => out.push_str("&gt;"),
        '"' => out.push_str("&quot;"),
        '\'' => out.push_str("&#39;"),
        c => out.push(c),
    }
}

/// Renders `text` as HTML starting in `style`; returns the HTML and the style at its end.
pub(crate) fn to_html(text: &str, mut style: Style) -> (String, Style) {
    let mut out = String::with_capacity(text.len() + 16);
    let mut open = false;
    let open_span = |out: &mut String, style: &Style, open: &mut bool| {
        let classes = style.classes();
        if !classes.is_empty() {
            out.push_str("<span class=\"");
            out.push_str(&classes);
            out.push_str("\">");
            *open = true;
        }
    };
    open_span(&mut out, &style, &mut open);
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            match chars.peek() {
                Some('[') => {
                    chars.next();
                    // CSI: parameters and intermediates, then one final byte 0x40..=0x7e.
                    let mut params = String::new();
                    let mut fin = None;
                    for d in chars.by_ref() {
                        if ('\u{40}'..='\u{7e}').contains(&d) {
                            fin = Some(d);
                            break;
                        }
                        if params.len() < 64 {
                            params.push(d);
                        }
                    }
                    if fin == Some('m') {
                        if open {
                            out.push_str("</span>");
                            open = false;
                        }
                        style.apply(&params);
                        open_span(&mut out, &style, &mut open);
                    }
                }
                Some(']') => {
                    // OSC: up to BEL or ESC \.
                    chars.next();
                    while let Some(d) = chars.next() {
                        if d == '\u{7}' {
                            break;
                        }
                        if d == '\u{1b}' {
                            if chars.peek() == Some(&'\\') {
                                chars.next();
                            }
                            break;
                        }
                    }
                }
                Some(_) => {
                    // Any other two-character escape.
                    chars.next();
                }
                None => {}
            }
            continue;
        }
        if c.is_control() && c != '\n' && c != '\t' {
            continue;
        }
        escape_into(&mut out, c);
    }
    if open {
        out.push_str("</span>");
    }
    (out, style)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colours_become_classes_and_html_is_escaped() {
        let (html, _) = to_html("\u{1b}[31mred <b>\u{1b}[0m plain", Style::default());
        assert_eq!(html, "<span class=\"ansi-fg1\">red &lt;b&gt;</span> plain");
    }

    #[test]
    fn other_escapes_are_dropped() {
        let (html, _) = to_html(
            "a\u{1b}[2Kb\u{1b}]0;title\u{7}c\u{1b}]8;;http://x\u{1b}\\d\r\u{8}e",
            Style::default(),
        );
        assert_eq!(html, "abcde");
    }

    #[test]
    fn style_carries_over() {
        let (_, s) = to_html("\u{1b}[1;32mgreen", Style::default());
        let (html, _) = to_html("more\u{1b}[m", s);
        assert_eq!(html, "<span class=\"ansi-fg2 ansi-bold\">more</span>");
    }
}
